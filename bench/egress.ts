// bench:egress: TCP throughput through a host's ways in and out, measured three ways in one run
// on one simulated host and an "outside" machine on its underlay:
//   egress:  container -> outside, through the gateway port and the host's NAT (table inet loom)
//   publish: outside -> container, through a published port (DNAT)
//   host:    host -> outside on the same underlay (the same OVS userspace datapath to the wire),
//            what the container would get if it used the host's network namespace (podman --network host)
// Beside each throughput: ovs-vswitchd's CPU seconds per GB moved (/proc/PID/stat), the cost of the
// path in the datapath's own thread, which bounds it on the userspace datapath and, unlike Gbit/s,
// hardly depends on what else the machine runs.
// BENCH_OVS_NAT_SKETCH=1 also measures the design docs/architecture.md proposes for the userspace
// datapath (NAT in OVS's conntrack, out through a patch port), hand-built, after the real paths.
// Last line: RESULT egress_gbps=... publish_gbps=... host_gbps=... egress_vs_host=... publish_vs_host=...
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { startCluster, runCni, cniEnv, run, createOutside, type Container } from '../test/harness/index.js';
import { startController } from '../test/harness/controller.js';
import { installOvsNatSketch, sketchPackets } from './egress-ovs-nat-sketch.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RMEM_DEFAULT = 4 * 1024 * 1024;
const OUT4 = '192.0.2.100';
const PUBLISHED = 5301;

interface Measure {
  gbps: number;
  retransmits: number;
  /** ovs-vswitchd CPU seconds per GB received. */
  ovsSecondsPerGb: number;
}
type Runner = { exec(cmd: string, args?: readonly string[]): Promise<string> };

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString().trim()) || 100;

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  // Fields after the parenthesised name: utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** One iperf3 TCP test from `client` to `address:port`; the server serves exactly one test. */
async function iperf(server: Runner, client: Runner, address: string, port: number, ovsPid: number): Promise<Measure> {
  server.exec('timeout', [String(SECONDS + 10), 'iperf3', '-s', '-1', '-p', String(port)]).catch(() => undefined);
  type Report = { error?: string; end?: { sum_received?: { bits_per_second: number; bytes: number }; sum_sent: { retransmits: number } } };
  for (let attempt = 0; ; attempt++) {
    const cpu0 = cpuSeconds(ovsPid);
    const r = await client.exec('iperf3', ['-c', address, '-p', String(port), '-t', String(SECONDS), '-J']).then(
      (out) => JSON.parse(out) as Report,
      (err: Error) => ({ error: err.message }) as Report,
    );
    const cpu = cpuSeconds(ovsPid) - cpu0;
    if (r.end?.sum_received) {
      const { bits_per_second, bytes } = r.end.sum_received;
      return { gbps: bits_per_second / 1e9, retransmits: r.end.sum_sent.retransmits, ovsSecondsPerGb: cpu / (bytes / 1e9) };
    }
    // Only "not listening yet" is worth another try.
    if (attempt > 30 || !/refused/i.test(r.error ?? '')) throw new Error(`iperf3 to ${address}:${port}: ${r.error ?? 'no result'}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

async function main(): Promise<void> {
  if (!['/usr/bin/iperf3', '/bin/iperf3'].some(existsSync)) {
    console.error('bench:egress needs iperf3: apt-get install -y iperf3');
    process.exit(2);
  }
  if (!['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].some(existsSync)) {
    console.error('bench:egress needs nftables (nft): apt-get install -y nftables');
    process.exit(2);
  }
  // As in bench:dataplane: the userspace datapath needs bigger socket buffers at full TCP speed.
  const rmem = (await run('sysctl', ['-n', 'net.core.rmem_default'])).trim();
  await run('sysctl', ['-qw', `net.core.rmem_default=${RMEM_DEFAULT}`]);
  process.on('exit', () => spawnSync('sysctl', ['-qw', `net.core.rmem_default=${rmem}`]));
  console.log(`net.core.rmem_default ${rmem} -> ${RMEM_DEFAULT} for this run (restored after)`);
  const ctl = await startController({ hostDownAfterMs: 60_000 });
  await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16' });
  const cluster = await startCluster({ hosts: ['ha'], controller: ctl.target, built: true });
  const outside = await createOutside(cluster.underlay, [`${OUT4}/24`]);
  try {
    const ha = cluster.hosts[0]!;
    const ovsPid = ha.vswitchdPid;
    if (ovsPid === undefined) throw new Error('the simulated host runs no ovs-vswitchd');
    const c: Container = await ha.addContainer('c', { empty: true });
    const conf = {
      cniVersion: '1.0.0',
      name: 'blue',
      type: 'loom',
      agentSocket: cluster.agents[0]!.socket,
      runtimeConfig: { portMappings: [{ hostPort: PUBLISHED, containerPort: PUBLISHED, protocol: 'tcp' }] },
    };
    const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, 'c'));
    if (r.code !== 0) throw new Error(`ADD: ${r.stdout}`);
    const { revision } = await ctl.client.getStatus();
    if (!(await ctl.client.wait(revision, 10_000)).converged) throw new Error('the agent did not converge');
    await c.exec('ping', ['-c', '1', '-W', '2', OUT4]);

    const paths: Array<[string, Runner, Runner, string, number]> = [
      ['host -> outside (same underlay)', outside, ha, OUT4, 5201],
      ['container -> outside (egress NAT)', outside, c, OUT4, 5202],
      ['outside -> container (published port)', c, outside, cluster.vteps.ha!, PUBLISHED],
    ];
    const measureRounds = async (label: string) => {
      const runs = paths.map(() => [] as Measure[]);
      for (let round = 1; round <= ROUNDS; round++) {
        for (const [i, [name, server, client, address, port]] of paths.entries()) {
          const m = await iperf(server, client, address, port, ovsPid);
          runs[i]!.push(m);
          console.log(`  ${label}round ${round}/${ROUNDS} ${name}: ${m.gbps.toFixed(2)} Gbit/s, ${m.retransmits} retransmits, ovs-vswitchd ${m.ovsSecondsPerGb.toFixed(1)} CPU s/GB`);
        }
      }
      const median = (ms: Measure[]): Measure => [...ms].sort((a, b) => a.gbps - b.gbps)[Math.floor(ms.length / 2)]!;
      const cost = (ms: Measure[]) => [...ms].map((m) => m.ovsSecondsPerGb).sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
      const [host, egress, publish] = runs.map(median) as [Measure, Measure, Measure];
      const [hostCost, egressCost, publishCost] = runs.map(cost) as [number, number, number];
      console.log(`${label}medians of ${ROUNDS} rounds of ${SECONDS} s`);
      console.log(
        `${label}ovs-vswitchd CPU s/GB (median): host ${hostCost.toFixed(1)}, egress ${egressCost.toFixed(1)} (x${(egressCost / hostCost).toFixed(2)}), ` +
          `publish ${publishCost.toFixed(1)} (x${(publishCost / hostCost).toFixed(2)})`,
      );
      return (
        `egress_gbps=${egress.gbps.toFixed(2)} publish_gbps=${publish.gbps.toFixed(2)} host_gbps=${host.gbps.toFixed(2)} ` +
        `egress_vs_host=${(egress.gbps / host.gbps).toFixed(2)} publish_vs_host=${(publish.gbps / host.gbps).toFixed(2)}`
      );
    };
    const result = await measureRounds('');
    if (process.env.BENCH_OVS_NAT_SKETCH === '1') {
      // The design not built yet (bench/egress-ovs-nat-sketch.ts), measured in the same run; not in RESULT.
      const ip = JSON.parse(await c.exec('ip', ['-j', '-4', 'addr', 'show', 'eth0'])) as Array<{ addr_info: Array<{ local: string }> }>;
      const containerIp = ip[0]?.addr_info[0]?.local;
      if (!containerIp) throw new Error('the container has no IPv4 address');
      const remove = await installOvsNatSketch({ host: ha, vtep: cluster.vteps.ha!, container: c, containerIp, outside, outsideIp: OUT4, publishedPort: PUBLISHED });
      try {
        const before = await sketchPackets(ha);
        console.log(`sketch (OVS ct(nat), patch port to br-phy): ${await measureRounds('sketch ')}`);
        console.log(`sketch flows carried ${(await sketchPackets(ha)) - before} packets in br-int`);
      } finally {
        await remove();
      }
    }
    console.log(`RESULT ${result}`);
  } finally {
    await outside.remove();
    await cluster.stop();
    await ctl.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
