// Benchmark: create 1,000 VXLAN tunnel ports on a netdev bridge and wait until ovs-vswitchd has
// applied them (cur_cfg caught up), once with the OVSDB client (one transaction) and once with a
// single `ovs-vsctl` invocation chaining add-port/set interface, on the same simulated host.
// The bridge is deleted and re-created between runs. Remote IPs are documentation addresses
// (192.0.2.0/24, 198.51.100.0/24); no traffic is ever sent to them.
//
// Run as root: npm run bench:ovsdb   (BENCH_ROUNDS=n to change the number of rounds, default 3)
import { performance } from 'node:perf_hooks';
import { startHost, type SimHost } from '../test/harness/index.js';
import { OvsdbClient } from '../src/ovsdb/client.js';
import { Vswitch, type PortSpec } from '../src/ovsdb/vswitch.js';

const PORTS = 1000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BRIDGE = 'br-bench';

function specs(): PortSpec[] {
  return Array.from({ length: PORTS }, (_, i) => ({
    name: `vx${i}`,
    type: 'vxlan' as const,
    options: { remote_ip: `${i % 2 ? '198.51.100' : '192.0.2'}.${(i % 250) + 1}`, key: String(i + 1) },
  }));
}

async function resetBridge(host: SimHost): Promise<void> {
  await host.vsctl('--if-exists', 'del-br', BRIDGE);
  await host.addBridge(BRIDGE);
}

/** Checks the result with ovs-vsctl: every port exists, is a vxlan with its options and has an ofport. */
async function verify(host: SimHost): Promise<void> {
  const out = await host.vsctl('--bare', '--columns=name,ofport,options', 'find', 'Interface', 'type=vxlan');
  const records = out.trim().split('\n\n').filter(Boolean);
  if (records.length !== PORTS) throw new Error(`expected ${PORTS} vxlan interfaces, found ${records.length}`);
  for (const r of records) {
    const [name, ofport, options] = r.split('\n');
    if (!(Number(ofport) > 0)) throw new Error(`${name}: no ofport assigned (${ofport})`);
    if (!options.includes('remote_ip=')) throw new Error(`${name}: options missing: ${options}`);
  }
}

async function runClient(host: SimHost): Promise<number> {
  const t0 = performance.now();
  const client = await OvsdbClient.connect(`unix:${host.dbSocket}`);
  try {
    const res = await new Vswitch(client).ensurePorts(BRIDGE, specs(), { timeoutMs: 300_000 });
    const t = (performance.now() - t0) / 1000;
    const missing = [...res.interfaces.values()].filter((s) => !(s.ofport && s.ofport > 0));
    if (res.interfaces.size !== PORTS || missing.length) throw new Error(`client: ${missing.length} ports without ofport`);
    return t;
  } finally {
    client.close();
  }
}

async function runVsctl(host: SimHost): Promise<number> {
  const args: string[] = [];
  for (const s of specs()) {
    args.push('--', 'add-port', BRIDGE, s.name, '--', 'set', 'Interface', s.name, 'type=vxlan');
    for (const [k, v] of Object.entries(s.options ?? {})) args.push(`options:${k}=${v}`);
  }
  const t0 = performance.now();
  await host.vsctl('--timeout=300', ...args.slice(1)); // ovs-vsctl waits for cur_cfg by default
  return (performance.now() - t0) / 1000;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const host = await startHost({ name: 'bench' });
try {
  const client: number[] = [];
  const vsctl: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which tool goes first so warm-up effects do not favour one.
    const order = round % 2 === 0 ? (['client', 'vsctl'] as const) : (['vsctl', 'client'] as const);
    for (const tool of order) {
      await resetBridge(host);
      const t = tool === 'client' ? await runClient(host) : await runVsctl(host);
      await verify(host);
      (tool === 'client' ? client : vsctl).push(t);
      console.log(`round ${round + 1} ${tool}: ${PORTS} ports applied in ${t.toFixed(3)} s`);
    }
  }
  await host.vsctl('--if-exists', 'del-br', BRIDGE);
  const c = median(client);
  const v = median(vsctl);
  console.log(`medians over ${ROUNDS} rounds (machine shared with other jobs; expect noise)`);
  console.log(`RESULT ports=${PORTS} client_s=${c.toFixed(3)} ovs_vsctl_s=${v.toFixed(3)} ratio_vs_ovs_vsctl=${(v / c).toFixed(2)}`);
} finally {
  await host.stop();
}
