// --nat-path ovs on simulated hosts: containers reach "the outside" (a namespace on the underlay)
// with their host's address as source through OVS conntrack and the patch port to br-phy, published
// ports (TCP, UDP) are DNATed there for allowed sources only, isolation holds, DEL removes the
// mapping, an established NATed connection survives an agent restart, new ones are NATed in OVS
// again after ovs-vswitchd restarts, and --nat-path host removes the patch ports again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { startCluster, runCni, cniEnv, createOutside, holdEchoConnection, startEchoServer, stopEchoServer, waitFor, type Cluster, type Container, type Outside } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';
import { NAT_ZONE } from '../../src/agent/pipeline/fields.js';

const ECHO_PORT = 7000;
const OUT4 = '192.0.2.100';
/** An outside address the green network's source limit does not allow. */
const STRANGER4 = '192.0.2.101';
const PORT_MAPPINGS = [
  { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' },
  { hostPort: 8081, containerPort: 81, protocol: 'udp', hostIP: '' },
];

describe('NAT in OVS conntrack (--nat-path ovs)', () => {
  let ctl: TestController;
  let cluster: Cluster;
  let outside: Outside;
  const servers: ChildProcess[] = [];
  const eps: Record<string, { c: Container; ipv4: string }> = {};

  const attach = async (name: string, host: number, net: string, portMappings?: object[]) => {
    const c = await cluster.hosts[host]!.addContainer(name, { empty: true });
    const conf = { cniVersion: '1.0.0', name: net, type: 'loom', agentSocket: cluster.agents[host]!.socket, ...(portMappings ? { runtimeConfig: { portMappings } } : {}) };
    const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, `id-${name}`));
    expect(r.code, r.stdout).toBe(0);
    eps[name] = { c, ipv4: (r.json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]! };
  };
  /** Connects to an echo server; resolves with the source address the server saw. */
  const seenBy = async (exec: (cmd: string, args: string[]) => Promise<string>, address: string, udp = false, port = ECHO_PORT, from = '') => {
    const out = await exec('sh', ['-c', `echo hello | nc ${udp ? '-u ' : ''}-w 1 ${from ? `-s ${from} ` : ''}-4 ${address} ${port} | head -n 1`]);
    return /^peer (\S+)/.exec(out)?.[1];
  };
  const inContainer = (name: string) => (cmd: string, args: string[]) => eps[name]!.c.exec(cmd, args);
  const fromOutside = (cmd: string, args: string[]) => outside.exec(cmd, args);
  const conntrack = (host: number) => cluster.hosts[host]!.appctl('dpctl/dump-conntrack', `zone=${NAT_ZONE}`);
  /** Packets counted by a bridge's flows in one table whose text contains `needle`. */
  const packets = async (host: number, bridge: string, table: number, needle: string) => {
    const h = cluster.hosts[host]!;
    const out = await h.ofctl('dump-flows', h.mgmtSocket(bridge), `table=${table}`);
    return out.split('\n').filter((l) => l.includes(needle)).reduce((n, l) => n + Number(/n_packets=(\d+)/.exec(l)?.[1] ?? 0), 0);
  };
  const hb = () => cluster.vteps.hb!;

  beforeAll(async () => {
    ctl = await startController({ hostDownAfterMs: 5000, heartbeatIntervalMs: 300 });
    await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '10.94.0.0/24' });
    await ctl.client.createNetwork({ name: 'red', ipv4Cidr: '10.96.0.0/24', egress: 'EGRESS_MODE_OFF' });
    await ctl.client.createNetwork({ name: 'green', ipv4Cidr: '10.95.0.0/24', inboundSources: [`${OUT4}/32`] });
    cluster = await startCluster({ hosts: ['ha', 'hb'], controller: ctl.target, agentArgs: ['--nat-path', 'ovs'] });
    outside = await createOutside(cluster.underlay, [`${OUT4}/24`, `${STRANGER4}/24`]);
    await outside.startEcho(ECHO_PORT);
    await attach('a1', 0, 'blue');
    await attach('b1', 1, 'blue');
    await attach('r1', 0, 'red');
    await attach('g1', 1, 'green', PORT_MAPPINGS);
    servers.push(await startEchoServer(eps.g1!.c.netns, 80), await startEchoServer(eps.g1!.c.netns, 81));
    const { revision } = await ctl.client.getStatus();
    expect((await ctl.client.wait(revision, 10_000)).converged).toBe(true);
    // The first packets take the kernel path (ICMP always does), which resolves the outside's
    // MAC; the agents mirror the neighbour into their next-hop tables within a second.
    for (const [name, host] of [['a1', 0], ['b1', 1]] as const) {
      await eps[name]!.c.exec('ping', ['-c', '1', '-W', '2', OUT4]);
      const h = cluster.hosts[host]!;
      await waitFor(`${h.name}: next hop of ${OUT4}`, async () => (await h.ofctl('dump-flows', h.mgmtSocket('br-int'), 'table=62')).includes(`nw_dst=${OUT4} actions=`), 15_000, 50);
    }
  });

  afterAll(async () => {
    for (const srv of servers) await stopEchoServer(srv);
    await outside?.remove();
    await cluster?.stop();
    await ctl?.stop();
  });

  it('has Loom-owned patch ports between br-int and br-phy', async () => {
    const h = cluster.hosts[0]!;
    expect((await h.vsctl('list-ports', 'br-int')).split('\n')).toContain('loom-int-phy');
    expect((await h.vsctl('list-ports', 'br-phy')).split('\n')).toContain('loom-phy-int');
    expect(await h.vsctl('get', 'port', 'loom-int-phy', 'external_ids:loom-owner')).toContain('agent');
  });

  it('takes containers on both hosts to the outside through OVS conntrack, with their host address as source', async () => {
    const committed = await packets(0, 'br-int', 63, 'ct(commit');
    expect(await seenBy(inContainer('a1'), OUT4)).toBe(cluster.vteps.ha);
    expect(await seenBy(inContainer('b1'), OUT4)).toBe(cluster.vteps.hb);
    expect(await seenBy(inContainer('b1'), OUT4, true)).toBe(cluster.vteps.hb);
    expect(await packets(0, 'br-int', 63, 'ct(commit')).toBeGreaterThan(committed);
    // The connection is in OVS's NAT zone, translated to the VTEP address in the SNAT range...
    const ct = await conntrack(0);
    expect(ct).toMatch(new RegExp(`tcp,orig=\\(src=${eps.a1!.ipv4},dst=${OUT4}.*reply=\\(src=${OUT4},dst=${cluster.vteps.ha!.replace(/\./g, '\\.')},sport=${ECHO_PORT},dport=6[1-5]\\d{3}\\)`));
    expect(await conntrack(1)).toMatch(new RegExp(`udp,orig=\\(src=${eps.b1!.ipv4},dst=${OUT4}`));
    // ...and replies came back through br-phy's NAT flows, not the host's stack.
    expect(await packets(0, 'br-phy', 201, 'output:65004')).toBeGreaterThan(0);
  });

  it("brings ICMP errors about a NATed connection back to the container (port unreachable)", async () => {
    const probe = `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect(('${OUT4}', 9))
s.send(b'x')
try:
    s.recv(16)
    print('answered')
except ConnectionRefusedError:
    print('refused')
except socket.timeout:
    print('timeout')`;
    const related = await packets(0, 'br-phy', 201, '+rel');
    expect((await eps.a1!.c.exec('python3', ['-c', probe])).trim()).toBe('refused');
    expect(await packets(0, 'br-phy', 201, '+rel')).toBeGreaterThan(related);
  });

  it('traces a connection to the outside as leaving through OVS NAT, and ICMP through the host', async () => {
    const trace = (body: object) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = http.request({ socketPath: cluster.agents[0]!.socket, path: '/v1/trace', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(JSON.parse(text) as Record<string, unknown>));
        });
        req.on('error', reject);
        req.end(JSON.stringify(body));
      });
    const tcp = await trace({ containerId: 'id-a1', destination: OUT4, proto: 'tcp', port: ECHO_PORT });
    expect(tcp.verdict, JSON.stringify(tcp)).toMatchObject({ kind: 'nat_out', ofport: 65004 });
    expect((tcp.steps as Array<{ tableName: string }>).map((s) => s.tableName)).toEqual(expect.arrayContaining(['nat_conntrack', 'nat_next_hop', 'nat_commit']));
    // ICMP is never committed in the NAT zone: the host's stack (loom-gw0) takes it.
    expect((await trace({ containerId: 'id-a1', destination: OUT4, proto: 'icmp' })).verdict).toMatchObject({ kind: 'to_host' });
  });

  it('keeps egress off where the network says so, and one network out of another', async () => {
    expect(await seenBy(inContainer('r1'), OUT4).catch(() => undefined)).toBeUndefined();
    await expect(eps.r1!.c.exec('ping', ['-c', '1', '-W', '1', eps.a1!.ipv4])).rejects.toThrow();
    // blue's b1 does not reach green's published port through its host's address.
    expect(await seenBy(inContainer('b1'), hb(), false, 8080).catch(() => undefined)).toBeUndefined();
  });

  it('publishes TCP and UDP ports to allowed sources through OVS and gives others nothing', async () => {
    expect(await seenBy(fromOutside, hb(), false, 8080, OUT4)).toBe(OUT4);
    expect(await seenBy(fromOutside, hb(), true, 8081, OUT4)).toBe(OUT4);
    expect(await conntrack(1)).toMatch(new RegExp(`tcp,orig=\\(src=${OUT4},dst=${hb().replace(/\./g, '\\.')},sport=\\d+,dport=8080\\),reply=\\(src=${eps.g1!.ipv4},dst=${OUT4},sport=80`));
    expect(await packets(1, 'br-phy', 202, 'ct(commit')).toBeGreaterThan(0);
    expect(await seenBy(fromOutside, hb(), false, 8080, STRANGER4).catch(() => undefined)).toBeUndefined();
    expect(await seenBy(fromOutside, hb(), true, 8081, STRANGER4).catch(() => undefined)).toBeUndefined();
  });

  it('keeps an established NATed connection across an agent restart', async () => {
    const conn = await holdEchoConnection(eps.a1!.c.netns, OUT4, ECHO_PORT);
    try {
      await conn.send('one');
      expect(conn.received()).toContain(`peer ${cluster.vteps.ha}`);
      await cluster.agents[0]!.stop();
      await cluster.agents[0]!.start();
      const { revision } = await ctl.client.getStatus();
      expect((await ctl.client.wait(revision, 10_000)).converged).toBe(true);
      await conn.send('two');
      // Still on the NAT path (the kernel path would have translated it anew, and the server reset it).
      expect(await packets(0, 'br-int', 61, '+est-rpl')).toBeGreaterThan(0);
    } finally {
      await conn.close();
    }
  });

  it('NATs new connections in OVS again after ovs-vswitchd restarts (its bindings are gone)', async () => {
    const h = cluster.hosts[0]!;
    await h.restartVswitchd();
    await waitFor('patch port back in br-phy with its flows', async () => (await h.ofctl('dump-flows', h.mgmtSocket('br-phy'), 'table=201').catch(() => '')).includes('output:65004'), 20_000, 50);
    expect(await conntrack(0)).not.toContain(eps.a1!.ipv4);
    // The new ovs-vswitchd has the same flows; the kernel path (ICMP) still works, and TCP takes OVS.
    await waitFor('a1 reaches the outside', () => eps.a1!.c.exec('ping', ['-c', '1', '-W', '1', OUT4]).then(() => true, () => false), 20_000, 50);
    expect(await seenBy(inContainer('a1'), OUT4)).toBe(cluster.vteps.ha);
    expect(await conntrack(0)).toMatch(new RegExp(`tcp,orig=\\(src=${eps.a1!.ipv4},dst=${OUT4}`));
  });

  it('removes the mapping on DEL', async () => {
    const r = await runCni(cluster.cniBin, 'DEL', { cniVersion: '1.0.0', name: 'green', type: 'loom', agentSocket: cluster.agents[1]!.socket, runtimeConfig: { portMappings: PORT_MAPPINGS } }, cniEnv(eps.g1!.c, 'id-g1'));
    expect(r.code, r.stdout).toBe(0);
    const h = cluster.hosts[1]!;
    expect(await h.ofctl('dump-flows', h.mgmtSocket('br-phy'))).not.toContain('tp_dst=8080');
    expect(await seenBy(fromOutside, hb(), false, 8080, OUT4).catch(() => undefined)).toBeUndefined();
  });

  it('removes the patch ports and its br-phy flows when started with --nat-path host', async () => {
    const agent = cluster.agents[1]!;
    const args = agent.opts.extraArgs!;
    args.splice(args.indexOf('--nat-path'), 2, '--nat-path', 'host');
    await agent.stop();
    await agent.start();
    const { revision } = await ctl.client.getStatus();
    expect((await ctl.client.wait(revision, 10_000)).converged).toBe(true);
    const h = cluster.hosts[1]!;
    await waitFor('patch ports removed', async () => !(await h.vsctl('list-ports', 'br-int')).includes('loom-int-phy'), 5000, 50);
    expect(await h.vsctl('list-ports', 'br-phy')).not.toContain('loom-phy-int');
    expect(await h.ofctl('dump-flows', h.mgmtSocket('br-phy'))).not.toContain('ct(');
    // The host path carries egress again.
    expect(await seenBy(inContainer('b1'), OUT4)).toBe(cluster.vteps.hb);
  });
});
