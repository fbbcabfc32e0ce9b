// bench:dataplane: TCP throughput between two simulated hosts, measured four ways in one run:
// containers over Loom's VXLAN and GRE overlays, the hosts' underlay through the same OVS
// userspace datapath, and kernel VXLAN devices on that underlay (what a Flannel user runs).
// Last line: RESULT vxlan_gbps=... gre_gbps=... underlay_gbps=... kernel_vxlan_gbps=... overlay_vs_underlay=...
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { startCluster, runCni, cniEnv, run, type Cluster, type Container, type SimHost } from '../test/harness/index.js';
import { startController } from '../test/harness/controller.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const RMEM_DEFAULT = 4 * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

interface Measure {
  gbps: number;
  retransmits: number;
}

type Runner = { exec(cmd: string, args?: readonly string[]): Promise<string> };

/** One iperf3 TCP test from `client` to `address` on `server` (each test on its own port). */
let nextPort = 5201;
async function iperf(server: Runner, client: Runner, address: string): Promise<Measure> {
  const port = String(nextPort++);
  // The server sometimes lingers after its one test; `timeout` ends it, nobody waits for it.
  server.exec('timeout', [String(SECONDS + 10), 'iperf3', '-s', '-1', '-p', port]).catch(() => undefined);
  type Report = { error?: string; end?: { sum_received?: { bits_per_second: number }; sum_sent: { retransmits: number } } };
  for (let attempt = 0; ; attempt++) {
    // iperf3 -J reports a failure in its JSON, with or without a failing exit status.
    const r = await client.exec('iperf3', ['-c', address, '-p', port, '-t', String(SECONDS), '-J']).then(
      (out) => JSON.parse(out) as Report,
      (err: Error) => ({ error: err.message }) as Report,
    );
    if (r.end?.sum_received) return { gbps: r.end.sum_received.bits_per_second / 1e9, retransmits: r.end.sum_sent.retransmits };
    // Only "not listening yet" is worth another try.
    if (attempt > 30 || !/refused/i.test(r.error ?? '')) throw new Error(`iperf3 to ${address}: ${r.error ?? 'no result'}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

async function attach(cluster: Cluster, host: number, name: string, network: string): Promise<{ c: Container; ipv4: string }> {
  const c = await cluster.hosts[host]!.addContainer(name, { empty: true });
  const conf = { cniVersion: '1.0.0', name: network, type: 'loom', agentSocket: cluster.agents[host]!.socket };
  const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, name));
  if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout}`);
  return { c, ipv4: (r.json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]! };
}

async function kernelVxlan(h: SimHost, local: string, remote: string, address: string): Promise<void> {
  // Port 4790: OVS's userspace tunnel already terminates 4789 on this address.
  await h.exec('ip', ['link', 'add', 'kvx0', 'type', 'vxlan', 'id', '4242', 'local', local, 'remote', remote, 'dstport', '4790', 'dev', 'br-phy']);
  await h.exec('ip', ['link', 'set', 'kvx0', 'mtu', '1450', 'up']);
  await h.exec('ip', ['addr', 'add', address, 'dev', 'kvx0']);
}

async function main(): Promise<void> {
  if (!['/usr/bin/iperf3', '/bin/iperf3'].some(existsSync)) {
    console.error('bench:dataplane needs iperf3: apt-get install -y iperf3');
    process.exit(2);
  }
  // OVS's userspace datapath reads ports through AF_PACKET sockets with the default receive
  // buffer; at full TCP speed a 208 KiB buffer overflows and drops (a retransmission storm).
  // Operators raise it on such hosts (docs/deploy.md); the bench does the same and restores it.
  const rmem = (await run('sysctl', ['-n', 'net.core.rmem_default'])).trim();
  await run('sysctl', ['-qw', `net.core.rmem_default=${RMEM_DEFAULT}`]);
  process.on('exit', () => spawnSync('sysctl', ['-qw', `net.core.rmem_default=${rmem}`]));
  console.log(`net.core.rmem_default ${rmem} -> ${RMEM_DEFAULT} for this run (restored after)`);
  const ctl = await startController({ hostDownAfterMs: 60_000 });
  await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN' });
  await ctl.client.createNetwork({ name: 'red', ipv4Cidr: '198.19.0.0/16', tunnelType: 'TUNNEL_TYPE_GRE' });
  const cluster = await startCluster({ hosts: ['ha', 'hb'], controller: ctl.target, built: true });
  try {
    const [ha, hb] = cluster.hosts as [SimHost, SimHost];
    const blueA = await attach(cluster, 0, 'blue-a', 'blue');
    const blueB = await attach(cluster, 1, 'blue-b', 'blue');
    const redA = await attach(cluster, 0, 'red-a', 'red');
    const redB = await attach(cluster, 1, 'red-b', 'red');
    await kernelVxlan(ha, cluster.vteps.ha!, cluster.vteps.hb!, '198.51.100.1/24');
    await kernelVxlan(hb, cluster.vteps.hb!, cluster.vteps.ha!, '198.51.100.2/24');
    await ha.exec('ping', ['-c', '2', '-W', '2', '198.51.100.2']);

    // Rounds interleave the four paths so a burst of other load on this machine hits all alike;
    // each figure is the median of its rounds.
    const paths: Array<[string, Runner, Runner, string]> = [
      ['underlay (host to host, same OVS datapath)', hb, ha, cluster.vteps.hb!],
      ['kernel vxlan device (host to host)', hb, ha, '198.51.100.2'],
      ['loom vxlan (container to container)', blueB.c, blueA.c, blueB.ipv4],
      ['loom gre (container to container)', redB.c, redA.c, redB.ipv4],
    ];
    const runs = paths.map(() => [] as Measure[]);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [i, [name, server, client, address]] of paths.entries()) {
        const m = await iperf(server, client, address);
        runs[i]!.push(m);
        console.log(`  round ${round}/${ROUNDS} ${name}: ${m.gbps.toFixed(2)} Gbit/s, ${m.retransmits} retransmits`);
      }
    }
    const median = (ms: Measure[]): Measure => [...ms].sort((a, b) => a.gbps - b.gbps)[Math.floor(ms.length / 2)]!;
    const [ul, kvx, vx, gre] = runs.map(median) as [Measure, Measure, Measure, Measure];
    const retransmits = runs.flat().reduce((n, m) => n + m.retransmits, 0);
    console.log(`medians of ${ROUNDS} rounds of ${SECONDS} s; ${retransmits} retransmits in all runs`);
    console.log(`RESULT vxlan_gbps=${vx.gbps.toFixed(2)} gre_gbps=${gre.gbps.toFixed(2)} underlay_gbps=${ul.gbps.toFixed(2)} kernel_vxlan_gbps=${kvx.gbps.toFixed(2)} overlay_vs_underlay=${(vx.gbps / ul.gbps).toFixed(2)}`);
  } finally {
    await cluster.stop();
    await ctl.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
