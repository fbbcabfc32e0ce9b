// bench:egress: TCP throughput through a host's ways in and out, measured on one simulated host
// and an "outside" machine on its underlay, with the agent on each NAT path in turn:
//   egress:  container -> outside (--nat-path host: gateway port and the host's nftables NAT;
//            --nat-path ovs: OVS conntrack SNAT, out through the patch port to br-phy)
//   publish: outside -> container, through a published port (DNAT, in nftables or in OVS)
//   host:    host -> outside on the same underlay (the same OVS userspace datapath to the wire),
//            what the container would get if it used the host's network namespace (podman --network host)
// Beside each throughput: ovs-vswitchd's CPU seconds per GB moved (/proc/PID/stat), the cost of the
// path in the datapath's own thread, which bounds it on the userspace datapath and, unlike Gbit/s,
// hardly depends on what else the machine runs.
// Last line: RESULT egress_gbps=... publish_gbps=... host_gbps=... egress_vs_host=... publish_vs_host=...
// (the ovs path, each ratio against the host measured in the same phase) host_nat_egress_gbps=...
// host_nat_publish_gbps=... host_nat_egress_vs_host=... host_nat_publish_vs_host=... (the host path).
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { startCluster, runCni, cniEnv, run, createOutside, waitFor, type Container, type SimHost } from '../test/harness/index.js';
import { startController } from '../test/harness/controller.js';

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

/** Packets counted by br-int's NAT flows (tables 60-63): proof the measured traffic took the OVS path. */
async function natPackets(host: SimHost): Promise<number> {
  let n = 0;
  for (const table of [61, 63]) {
    const out = await host.ofctl('dump-flows', host.mgmtSocket('br-int'), `table=${table}`);
    for (const line of out.split('\n')) if (line.includes('output:65004')) n += Number(/n_packets=(\d+)/.exec(line)?.[1] ?? 0);
  }
  return n;
}

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
  const cluster = await startCluster({ hosts: ['ha'], controller: ctl.target, built: true, agentArgs: ['--nat-path', 'host'] });
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
      ['container -> outside (egress)', outside, c, OUT4, 5202],
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
      return { egress: egress.gbps, publish: publish.gbps, host: host.gbps };
    };
    const hostNat = await measureRounds('nat-path host: ');
    // The same host, its agent restarted with the NAT path in OVS (connections from now on take it).
    const agent = cluster.agents[0]!;
    agent.opts.extraArgs!.push('--nat-path', 'ovs');
    await agent.stop();
    await agent.start();
    const { revision: again } = await ctl.client.getStatus();
    if (!(await ctl.client.wait(again, 10_000)).converged) throw new Error('the agent did not converge with --nat-path ovs');
    await c.exec('ping', ['-c', '1', '-W', '2', OUT4]);
    await waitFor(`next hop of ${OUT4} in br-int`, async () => (await ha.ofctl('dump-flows', ha.mgmtSocket('br-int'), 'table=62')).includes(`nw_dst=${OUT4} actions=`), 10_000, 50);
    const before = await natPackets(ha);
    const ovsNat = await measureRounds('nat-path ovs: ');
    const carried = (await natPackets(ha)) - before;
    console.log(`nat-path ovs: br-int's NAT flows carried ${carried} packets out the patch port`);
    if (carried < 1000) throw new Error('the measured traffic did not take the OVS NAT path');
    const f = (n: number) => n.toFixed(2);
    console.log(
      `RESULT egress_gbps=${f(ovsNat.egress)} publish_gbps=${f(ovsNat.publish)} host_gbps=${f(ovsNat.host)} ` +
        `egress_vs_host=${f(ovsNat.egress / ovsNat.host)} publish_vs_host=${f(ovsNat.publish / ovsNat.host)} ` +
        `host_nat_egress_gbps=${f(hostNat.egress)} host_nat_publish_gbps=${f(hostNat.publish)} ` +
        `host_nat_egress_vs_host=${f(hostNat.egress / hostNat.host)} host_nat_publish_vs_host=${f(hostNat.publish / hostNat.host)}`,
    );
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
