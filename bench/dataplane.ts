// bench:dataplane: TCP throughput container to container between two simulated hosts, in one run
// with interleaved rounds:
//  - Loom on OVS's userspace datapath, one cluster per configuration: today's AF_PACKET ports (the
//    baseline), AF_XDP ports polled by PMD threads (split over the two cores or sharing one),
//    AF_XDP polled by the main thread, userspace TSO, and a jumbo underlay (an option, not a default);
//  - Flannel's data path: kernel VXLAN devices (flannel.1) on a plain veth between two host
//    namespaces, routes, neighbours and FDB entries as flannel's vxlan backend installs them,
//    containers on a Linux bridge (cni0) per host;
//  - the raw underlay veth between those two host namespaces.
// Figures are medians of their rounds. The machine is shared: absolute numbers are noisy, ratios of
// paths measured side by side are what count.
// Last line: RESULT vxlan_gbps=... gre_gbps=... baseline_vxlan_gbps=... flannel_gbps=... underlay_gbps=...
//            ratio_vs_baseline=... loom_vs_flannel=... retransmits=...
import { existsSync, mkdtempSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, runCni, cniEnv, run, type Cluster, type Container, type SimHost } from '../test/harness/index.js';
import { startController, type TestController } from '../test/harness/controller.js';
import { track, untrack, uniqueTag } from '../test/harness/registry.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RMEM_DEFAULT = 4 * 1024 * 1024;
/**
 * The Loom configuration RESULT's vxlan_gbps and gre_gbps report. Both simulated hosts share this
 * machine's 2 cores: `afxdp-pmd-shared` puts the PMD threads on core 1 and leaves core 0 to the
 * containers, the layout a 2-core host would have (split puts a PMD thread on each core, beside
 * the workload). docs/performance.md has the runs behind this choice.
 */
const FAST = process.env.BENCH_FAST ?? 'afxdp-pmd-shared';

interface Measure {
  gbps: number;
  retransmits: number;
}

type Runner = { exec(cmd: string, args?: readonly string[]): Promise<string> };

/** A namespace of this bench's own, as a Runner. */
class Netns implements Runner {
  constructor(readonly name: string) {}
  exec(cmd: string, args: readonly string[] = []): Promise<string> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args]);
  }
  ip(...args: string[]): Promise<string> {
    return run('ip', ['-n', this.name, ...args]);
  }
}

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

/** A Loom configuration under test: agent flags and Open_vSwitch other_config per host. */
interface Variant {
  name: string;
  agentArgs: string[];
  otherConfig: (hostIndex: number) => Record<string, string>;
  underlayMtu: number;
  gre?: boolean;
}

// pmd-maxsleep (OVS 3.1): an idle PMD thread sleeps up to 50 us instead of spinning, so two hosts'
// PMD threads and the iperf3 processes can share 2 cores.
const PMD_SLEEP = { 'pmd-maxsleep': '50' };
const AF_PACKET_ARGS = ['--netdev-port-type', 'af_packet'];
const VARIANTS: Variant[] = [
  { name: 'baseline', agentArgs: AF_PACKET_ARGS, otherConfig: () => ({}), underlayMtu: 1500 },
  {
    name: 'afxdp-pmd-split',
    agentArgs: ['--netdev-port-type', 'afxdp'],
    otherConfig: (i) => ({ 'pmd-cpu-mask': i % 2 === 0 ? '0x1' : '0x2', ...PMD_SLEEP }),
    underlayMtu: 1500,
  },
  {
    name: 'afxdp-pmd-shared',
    agentArgs: ['--netdev-port-type', 'afxdp'],
    otherConfig: () => ({ 'pmd-cpu-mask': '0x2', ...PMD_SLEEP }),
    underlayMtu: 1500,
  },
  {
    // Busy polling, no naps: the PMD threads' core is all theirs.
    name: 'afxdp-pmd-shared-spin',
    agentArgs: ['--netdev-port-type', 'afxdp'],
    otherConfig: () => ({ 'pmd-cpu-mask': '0x2' }),
    underlayMtu: 1500,
  },
  { name: 'afxdp-nonpmd', agentArgs: ['--netdev-port-type', 'afxdp-nonpmd'], otherConfig: () => ({}), underlayMtu: 1500 },
  { name: 'userspace-tso', agentArgs: AF_PACKET_ARGS, otherConfig: () => ({ 'userspace-tso-enable': 'true' }), underlayMtu: 1500 },
  { name: 'jumbo-9000', agentArgs: AF_PACKET_ARGS, otherConfig: () => ({}), underlayMtu: 9000 },
  {
    name: 'afxdp-jumbo-9000',
    agentArgs: ['--netdev-port-type', 'afxdp'],
    otherConfig: (i) => ({ 'pmd-cpu-mask': i % 2 === 0 ? '0x1' : '0x2', ...PMD_SLEEP }),
    underlayMtu: 9000,
  },
];

interface LoomSetup {
  variant: Variant;
  ctl: TestController;
  cluster: Cluster;
  vxlan: [Runner, Runner, string];
  gre?: [Runner, Runner, string];
}

async function startLoom(v: Variant): Promise<LoomSetup> {
  const ctl = await startController({ hostDownAfterMs: 60_000 });
  try {
    await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN' });
    await ctl.client.createNetwork({ name: 'red', ipv4Cidr: '198.19.0.0/16', tunnelType: 'TUNNEL_TYPE_GRE' });
    const cluster = await startCluster({
      hosts: ['ha', 'hb'],
      controller: ctl.target,
      built: true,
      underlayMtu: v.underlayMtu,
      agentArgs: v.agentArgs,
      prepareHost: async (h, i) => {
        const pairs = Object.entries(v.otherConfig(i)).map(([k, val]) => `other_config:${k}=${val}`);
        if (pairs.length) await h.vsctl('set', 'Open_vSwitch', '.', ...pairs);
      },
    });
    try {
      const blueA = await attach(cluster, 0, 'blue-a', 'blue');
      const blueB = await attach(cluster, 1, 'blue-b', 'blue');
      const setup: LoomSetup = { variant: v, ctl, cluster, vxlan: [blueB.c, blueA.c, blueB.ipv4] };
      if (v.gre) {
        const redA = await attach(cluster, 0, 'red-a', 'red');
        const redB = await attach(cluster, 1, 'red-b', 'red');
        setup.gre = [redB.c, redA.c, redB.ipv4];
      }
      await describePorts(v, cluster.hosts[0]!);
      return setup;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  } catch (err) {
    await ctl.stop();
    throw err;
  }
}

/** Shows how OVS reads each port, so a silent fallback to AF_PACKET cannot pass for AF_XDP. */
async function describePorts(v: Variant, h: SimHost): Promise<void> {
  const out = await h.vsctl('--format=csv', '--data=bare', '--no-headings', '--columns=name,type', 'list', 'Interface');
  const ports = out
    .trim()
    .split('\n')
    .map((l) => l.split(','))
    .filter(([name]) => name !== 'br-int' && name !== 'br-phy' && !name!.startsWith('loom-'))
    .map(([name, type]) => `${name}=${type || 'af_packet'}`);
  console.log(`  ${v.name}: ${ports.join(' ')}, underlay MTU ${v.underlayMtu}`);
}

/**
 * Flannel's vxlan backend, by hand: per host flannel.1 (VNI 1, port 8472, nolearning) on the
 * underlay veth, 10.244.N.0/32 on it; per remote host a route `10.244.M.0/24 via 10.244.M.0 dev
 * flannel.1 onlink`, a permanent neighbour for 10.244.M.0 and an FDB entry sending that MAC to
 * the remote's underlay address; containers on cni0 (10.244.N.1/24) with a veth each.
 */
interface FlannelSetup {
  hosts: [Netns, Netns];
  containers: [Netns, Netns];
  underlay: [string, string];
  remove(): Promise<void>;
}

async function startFlannel(): Promise<FlannelSetup> {
  const tag = uniqueTag();
  const names = ['fa', 'fb', 'fca', 'fcb'].map((n) => `lt${tag}-${n}`);
  const removeAll = async () => {
    for (const n of names) {
      await run('ip', ['netns', 'del', n]).catch(() => undefined);
      untrack({ kind: 'netns', name: n });
    }
  };
  try {
    for (const n of names) {
      track({ kind: 'netns', name: n });
      await run('ip', ['netns', 'add', n]);
      await run('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }
    const hosts: [Netns, Netns] = [new Netns(names[0]!), new Netns(names[1]!)];
    const containers: [Netns, Netns] = [new Netns(names[2]!), new Netns(names[3]!)];
    const underlay: [string, string] = ['192.0.2.1', '192.0.2.2'];
    await hosts[0].ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hosts[1].name);
    for (const [i, h] of hosts.entries()) {
      await h.ip('addr', 'add', `${underlay[i]}/24`, 'dev', 'eth0');
      await h.ip('link', 'set', 'eth0', 'up');
      await h.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      await h.ip('link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', underlay[i]!, 'dev', 'eth0', 'dstport', '8472', 'nolearning');
      await h.ip('link', 'set', 'flannel.1', 'mtu', '1450', 'up');
      await h.ip('addr', 'add', `10.244.${i}.0/32`, 'dev', 'flannel.1');
      await h.ip('link', 'add', 'cni0', 'mtu', '1450', 'type', 'bridge');
      await h.ip('addr', 'add', `10.244.${i}.1/24`, 'dev', 'cni0');
      await h.ip('link', 'set', 'cni0', 'up');
      const c = containers[i]!;
      await h.ip('link', 'add', 'veth0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c.name);
      await h.ip('link', 'set', 'veth0', 'master', 'cni0', 'up');
      await c.ip('addr', 'add', `10.244.${i}.2/24`, 'dev', 'eth0');
      await c.ip('link', 'set', 'eth0', 'up');
      await c.ip('route', 'add', 'default', 'via', `10.244.${i}.1`);
    }
    for (const [i, h] of hosts.entries()) {
      const j = 1 - i;
      const remoteMac = (await hosts[j]!.exec('cat', ['/sys/class/net/flannel.1/address'])).trim();
      await h.ip('route', 'add', `10.244.${j}.0/24`, 'via', `10.244.${j}.0`, 'dev', 'flannel.1', 'onlink');
      await h.ip('neigh', 'replace', `10.244.${j}.0`, 'lladdr', remoteMac, 'dev', 'flannel.1', 'nud', 'permanent');
      await h.exec('bridge', ['fdb', 'append', remoteMac, 'dev', 'flannel.1', 'dst', underlay[j]!]);
    }
    await containers[0].exec('ping', ['-c', '1', '-W', '2', '10.244.1.2']);
    return { hosts, containers, underlay, remove: removeAll };
  } catch (err) {
    await removeAll();
    throw err;
  }
}

/** perf profile of an ovs-vswitchd while one round runs (BENCH_PERF=1): where its CPU time goes. */
async function profiled<T>(path: string, pid: number | undefined, work: () => Promise<T>): Promise<T> {
  if (!process.env.BENCH_PERF || pid === undefined || !existsSync('/usr/bin/perf')) return work();
  const file = join(mkdtempSync(join(tmpdir(), 'loom-perf-')), 'perf.data');
  const perf = run('perf', ['record', '-q', '-g', '-F', '997', '-p', String(pid), '-o', file, '--', 'sleep', String(SECONDS)]).catch((e: Error) => e.message);
  const result = await work();
  await perf;
  const report = async (sort: string, limit: string) => {
    const out = await run('perf', ['report', '-i', file, '--stdio', '-n', '--no-children', '--sort', sort, '-g', 'none', '--percent-limit', limit]).catch((e: Error) => e.message);
    return out.split('\n').filter((l) => l.trim() && !l.startsWith('#')).slice(0, 30).join('\n');
  };
  // Samples at 997 Hz over the round: their count says how much of a core ovs-vswitchd had.
  console.log(`perf profile of ovs-vswitchd on host A during ${path} (${SECONDS} s at 997 Hz), ${file}:`);
  console.log(await report('dso', '0.5'));
  console.log(await report('dso,symbol', '1.5'));
  return result;
}

async function main(): Promise<void> {
  if (!['/usr/bin/iperf3', '/bin/iperf3'].some(existsSync)) {
    console.error('bench:dataplane needs iperf3: apt-get install -y iperf3');
    process.exit(2);
  }
  if (!VARIANTS.some((v) => v.name === FAST)) throw new Error(`BENCH_FAST=${FAST} is none of ${VARIANTS.map((v) => v.name).join(', ')}`);
  // AF_PACKET ports read with the default receive buffer: at full TCP speed 208 KiB overflows
  // and drops (a retransmission storm). Operators raise it on such hosts (docs/deploy.md); the
  // bench does the same for every configuration and restores it.
  const rmem = (await run('sysctl', ['-n', 'net.core.rmem_default'])).trim();
  await run('sysctl', ['-qw', `net.core.rmem_default=${RMEM_DEFAULT}`]);
  process.on('exit', () => spawnSync('sysctl', ['-qw', `net.core.rmem_default=${rmem}`]));
  console.log(`net.core.rmem_default ${rmem} -> ${RMEM_DEFAULT} for this run (restored after)`);
  const only = process.env.BENCH_VARIANTS?.split(',');
  const variants = VARIANTS.filter((v) => !only || only.includes(v.name) || v.name === 'baseline' || v.name === FAST).map((v) => ({ ...v, gre: v.name === FAST }));
  const looms: LoomSetup[] = [];
  let flannel: FlannelSetup | undefined;
  try {
    for (const v of variants) looms.push(await startLoom(v));
    flannel = await startFlannel();
    // BENCH_PERF=1 profiles host A's ovs-vswitchd in the baseline and the declared configuration.
    const profiledPids = new Map<string, number | undefined>(
      looms.filter((l) => l.variant.name === 'baseline' || l.variant.name === FAST).map((l) => [`loom vxlan ${l.variant.name}`, l.cluster.hosts[0]!.vswitchdPid]),
    );

    // Rounds interleave every path so a burst of other load on this machine hits all alike.
    const paths: Array<[string, Runner, Runner, string]> = [
      ['underlay veth (host to host)', flannel.hosts[1], flannel.hosts[0], flannel.underlay[1]],
      ['flannel vxlan (container to container)', flannel.containers[1], flannel.containers[0], '10.244.1.2'],
    ];
    for (const l of looms) {
      paths.push([`loom vxlan ${l.variant.name}`, ...l.vxlan]);
      if (l.gre) paths.push([`loom gre ${l.variant.name}`, ...l.gre]);
    }
    const runs = new Map<string, Measure[]>(paths.map(([name]) => [name, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [name, server, client, address] of paths) {
        const measure = () => iperf(server, client, address);
        const profile = round === 1 ? profiledPids.get(name) : undefined;
        const m = profile ? await profiled(name, profile, measure) : await measure();
        runs.get(name)!.push(m);
        console.log(`  round ${round}/${ROUNDS} ${name}: ${m.gbps.toFixed(2)} Gbit/s, ${m.retransmits} retransmits`);
      }
    }
    const median = (name: string): Measure => {
      const ms = [...runs.get(name)!].sort((a, b) => a.gbps - b.gbps);
      return ms[Math.floor(ms.length / 2)]!;
    };
    const base = median('loom vxlan baseline');
    console.log(`medians of ${ROUNDS} rounds of ${SECONDS} s (ratio to the AF_PACKET baseline, retransmits in all rounds):`);
    for (const [name] of paths) {
      const m = median(name);
      const retr = runs.get(name)!.reduce((n, x) => n + x.retransmits, 0);
      console.log(`  ${name.padEnd(42)} ${m.gbps.toFixed(2).padStart(6)} Gbit/s  x${(m.gbps / base.gbps).toFixed(2)}  ${retr} retransmits`);
    }
    const vx = median(`loom vxlan ${FAST}`);
    const gre = median(`loom gre ${FAST}`);
    const fl = median('flannel vxlan (container to container)');
    const ul = median('underlay veth (host to host)');
    const fastRetransmits = [...runs.entries()].filter(([n]) => n.endsWith(` ${FAST}`)).reduce((n, [, ms]) => n + ms.reduce((k, m) => k + m.retransmits, 0), 0);
    console.log(`vxlan_gbps and gre_gbps: Loom configured as ${FAST}; retransmits: its VXLAN and GRE rounds`);
    console.log(
      `RESULT vxlan_gbps=${vx.gbps.toFixed(2)} gre_gbps=${gre.gbps.toFixed(2)} baseline_vxlan_gbps=${base.gbps.toFixed(2)} flannel_gbps=${fl.gbps.toFixed(2)} underlay_gbps=${ul.gbps.toFixed(2)} ratio_vs_baseline=${(vx.gbps / base.gbps).toFixed(2)} loom_vs_flannel=${(vx.gbps / fl.gbps).toFixed(3)} retransmits=${fastRetransmits}`,
    );
  } finally {
    await flannel?.remove();
    for (const l of looms) {
      await l.cluster.stop();
      await l.ctl.stop();
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
