// bench:dataplane: TCP throughput between two simulated hosts, measured four ways in one run:
// containers over Loom's VXLAN and GRE overlays, the hosts' underlay through the same OVS
// userspace datapath, and kernel VXLAN devices on that underlay (what a Flannel user runs).
// Last line: RESULT vxlan_gbps=... gre_gbps=... underlay_gbps=... kernel_vxlan_gbps=... overlay_vs_underlay=...
import { existsSync } from 'node:fs';
import { startCluster, runCni, cniEnv, type Cluster, type Container, type SimHost } from '../test/harness/index.js';
import { startController } from '../test/harness/controller.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

interface Measure {
  gbps: number;
  retransmits: number;
}

type Runner = { exec(cmd: string, args?: readonly string[]): Promise<string> };

/** One iperf3 TCP test from `client` to `address` on `server`. */
async function iperf(server: Runner, client: Runner, address: string): Promise<Measure> {
  const srv = server.exec('iperf3', ['-s', '-1', '-p', '5201']);
  let out: string;
  for (let attempt = 0; ; attempt++) {
    try {
      out = await client.exec('iperf3', ['-c', address, '-p', '5201', '-t', String(SECONDS), '-J']);
      break;
    } catch (err) {
      if (attempt > 20) throw err;
      await new Promise((r) => setTimeout(r, 100)); // the server is still binding
    }
  }
  await srv;
  const r = JSON.parse(out) as { end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits: number } } };
  return { gbps: r.end.sum_received.bits_per_second / 1e9, retransmits: r.end.sum_sent.retransmits };
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

    const results: Record<string, Measure> = {};
    const measure = async (name: string, server: Runner, client: Runner, address: string) => {
      process.stdout.write(`  ${name}: ${SECONDS} s of iperf3 ... `);
      results[name] = await iperf(server, client, address);
      console.log(`${results[name]!.gbps.toFixed(2)} Gbit/s, ${results[name]!.retransmits} retransmits`);
    };
    await measure('loom vxlan (container to container)', blueB.c, blueA.c, blueB.ipv4);
    await measure('loom gre (container to container)', redB.c, redA.c, redB.ipv4);
    await measure('underlay (host to host, same OVS datapath)', hb, ha, cluster.vteps.hb!);
    await measure('kernel vxlan device (host to host)', hb, ha, '198.51.100.2');
    const [vx, gre, ul, kvx] = Object.values(results) as [Measure, Measure, Measure, Measure];
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
