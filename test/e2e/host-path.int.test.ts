// Ways in and out on simulated hosts: the host reaches its containers (here and over the
// overlay) through its gateway port, containers reach "the outside" (a namespace on the underlay)
// through their host with its address as source, and one network never reaches another that way.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { startCluster, runCni, cniEnv, createOutside, holdEchoConnection, startEchoServer, stopEchoServer, type Cluster, type Container, type Outside } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';

const ECHO_PORT = 7000;
const OUT4 = '192.0.2.100';
const OUT6 = '2001:db8::100';
/** A second outside address that the green network's source limit does not allow. */
const STRANGER4 = '192.0.2.101';
const STRANGER6 = '2001:db8::101';

/** A conflist as the Ansible role writes it: loom declares the portMappings capability. */
const conflist = (net: string, agentSocket: string) => ({
  cniVersion: '1.0.0',
  name: net,
  plugins: [{ type: 'loom', agentSocket, capabilities: { portMappings: true } }],
});

/** What libcni (podman, containerd) hands each plugin of a conflist: its entry + runtimeConfig for its capabilities. */
function pluginConf(list: ReturnType<typeof conflist>, runtimeConfig: { portMappings: object[] }) {
  const plugin = list.plugins[0]!;
  return { ...plugin, cniVersion: list.cniVersion, name: list.name, runtimeConfig: plugin.capabilities.portMappings ? { portMappings: runtimeConfig.portMappings } : {} };
}
// podman run -p 8080:80 -p 8081:81/udp -p 127.0.0.1:8082:81/udp
const PORT_MAPPINGS = [
  { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' },
  { hostPort: 8081, containerPort: 81, protocol: 'udp', hostIP: '' },
  { hostPort: 8082, containerPort: 81, protocol: 'udp', hostIP: '127.0.0.1' },
];

interface Placed {
  c: Container;
  host: number;
  ipv4: string;
  ipv6: string;
}

describe('host path and egress', () => {
  let ctl: TestController;
  let cluster: Cluster;
  let outside: Outside;
  const servers: ChildProcess[] = [];
  const eps: Record<string, Placed> = {};

  const attach = async (name: string, host: number, net: string) => {
    const c = await cluster.hosts[host]!.addContainer(name, { empty: true });
    const conf = { cniVersion: '1.0.0', name: net, type: 'loom', agentSocket: cluster.agents[host]!.socket };
    const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, `id-${name}`));
    expect(r.code, r.stdout).toBe(0);
    const ips = (r.json as { ips: Array<{ address: string }> }).ips.map((i) => i.address.split('/')[0]!);
    eps[name] = { c, host, ipv4: ips[0]!, ipv6: ips[1] ?? '' };
  };
  const hostAddress = async (host: number, net: string, family: 4 | 6) => {
    const { endpoints } = await ctl.client.listEndpoints({ network: net, host: cluster.hosts[host]!.name });
    const gw = endpoints.find((e) => e.hostGateway)!;
    return (family === 4 ? gw.ipv4 : gw.ipv6).split('/')[0]!;
  };
  const ping = (exec: (cmd: string, args: string[]) => Promise<string>, address: string, waitS = 2) =>
    exec('ping', [...(address.includes(':') ? ['-6'] : []), '-c', '1', '-W', String(waitS), address]);
  /** Connects to an echo server; resolves with the source address the server saw. */
  const seenBy = async (exec: (cmd: string, args: string[]) => Promise<string>, address: string, udp = false, port = ECHO_PORT, from = '') => {
    const out = await exec('sh', ['-c', `echo hello | nc ${udp ? '-u ' : ''}-w 1 ${from ? `-s ${from} ` : ''}${address.includes(':') ? '-6' : '-4'} ${address} ${port} | head -n 1`]);
    return /^peer (\S+)/.exec(out)?.[1];
  };
  const fromOutside = (cmd: string, args: string[]) => outside.exec(cmd, args);
  const hb = () => cluster.vteps.hb!;

  beforeAll(async () => {
    ctl = await startController({ hostDownAfterMs: 5000, heartbeatIntervalMs: 300 });
    await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '10.91.0.0/24', ipv6Cidr: 'fd00:91::/64' });
    await ctl.client.createNetwork({ name: 'red', ipv4Cidr: '10.92.0.0/24', ipv6Cidr: 'fd00:92::/64', egress: 'EGRESS_MODE_OFF' });
    cluster = await startCluster({ hosts: ['ha', 'hb'], controller: ctl.target });
    for (const [i, h] of cluster.hosts.entries()) await h.exec('ip', ['addr', 'add', `2001:db8::${i + 1}/64`, 'dev', 'br-phy', 'nodad']);
    outside = await createOutside(cluster.underlay, [`${OUT4}/24`, `${OUT6}/64`, `${STRANGER4}/24`]);
    // Deprecated, so the echo server never answers from it unless a client chose it (nc -s).
    await outside.exec('ip', ['addr', 'add', `${STRANGER6}/64`, 'dev', 'eth0', 'nodad', 'preferred_lft', '0']);
    await outside.startEcho(ECHO_PORT);
    await ctl.client.createNetwork({ name: 'green', ipv4Cidr: '10.93.0.0/24', ipv6Cidr: 'fd00:93::/64', inboundSources: [`${OUT4}/32`, OUT6] });
    await attach('a1', 0, 'blue');
    await attach('b1', 1, 'blue');
    await attach('r1', 0, 'red');
    // g1 on hb, published the way podman asks for `-p`.
    const g1 = await cluster.hosts[1]!.addContainer('g1', { empty: true });
    const conf = pluginConf(conflist('green', cluster.agents[1]!.socket), { portMappings: PORT_MAPPINGS });
    const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(g1, 'id-g1'));
    expect(r.code, r.stdout).toBe(0);
    const ips = (r.json as { ips: Array<{ address: string }> }).ips.map((i) => i.address.split('/')[0]!);
    eps.g1 = { c: g1, host: 1, ipv4: ips[0]!, ipv6: ips[1]! };
    servers.push(await startEchoServer(g1.netns, 80), await startEchoServer(g1.netns, 81));
    const { revision } = await ctl.client.getStatus();
    expect((await ctl.client.wait(revision, 10_000)).converged).toBe(true);
  });

  afterAll(async () => {
    for (const srv of servers) await stopEchoServer(srv);
    await outside?.remove();
    await cluster?.stop();
    await ctl?.stop();
  });

  it('gives each host an address per network it serves, from the top of its block', async () => {
    expect(await hostAddress(0, 'blue', 4)).toBe('10.91.0.63');
    expect(await hostAddress(1, 'blue', 4)).toBe('10.91.0.127');
    expect(eps.a1!.ipv4).toBe('10.91.0.2');
    const addrs = await cluster.hosts[0]!.exec('ip', ['-o', 'addr', 'show', 'dev', 'loom-gw0']);
    expect(addrs).toContain('10.91.0.63/32');
    expect(addrs).toContain('10.92.0.63/32');
    const routes = await cluster.hosts[0]!.exec('ip', ['route', 'show', 'dev', 'loom-gw0']);
    expect(routes).toContain('10.91.0.0/24 via 10.91.0.1');
  });

  it('lets the host reach its own containers and one on another host, IPv4 and IPv6', async () => {
    const ha = cluster.hosts[0]!;
    const exec = (cmd: string, args: string[]) => ha.exec(cmd, args);
    for (const name of ['a1', 'b1', 'r1']) {
      await ping(exec, eps[name]!.ipv4);
      await ping(exec, eps[name]!.ipv6);
    }
    // TCP both ways of the overlay: the container answers with the host's address in its network.
    const b1 = eps.b1!.c;
    const server = b1.exec('sh', ['-c', 'echo from-b1 | timeout 10 nc -l -N 7100']);
    const got = await ha.exec('sh', ['-c', `for i in 1 2 3 4 5 6 7 8 9 10; do nc -w 2 -4 ${eps.b1!.ipv4} 7100 < /dev/null && break; sleep 0.1; done`]);
    await server;
    expect(got.trim()).toBe('from-b1');
  });

  it('lets containers on both hosts reach the outside with their host address as source', async () => {
    expect(await seenBy((c, a) => eps.a1!.c.exec(c, a), OUT4)).toBe(cluster.vteps.ha);
    expect(await seenBy((c, a) => eps.b1!.c.exec(c, a), OUT4)).toBe(cluster.vteps.hb);
    expect(await seenBy((c, a) => eps.a1!.c.exec(c, a), OUT6)).toBe('2001:db8::1');
    expect(await seenBy((c, a) => eps.b1!.c.exec(c, a), OUT4, true)).toBe(cluster.vteps.hb);
    expect(await seenBy((c, a) => eps.b1!.c.exec(c, a), OUT6, true)).toBe('2001:db8::2');
  });

  it('keeps egress off where the network says so', async () => {
    expect(await seenBy((c, a) => eps.r1!.c.exec(c, a), OUT4).catch(() => undefined)).toBeUndefined();
  });

  it('never lets one network reach another through the host', async () => {
    const r1 = (cmd: string, args: string[]) => eps.r1!.c.exec(cmd, args);
    for (const target of [eps.a1!.ipv4, eps.b1!.ipv4, eps.a1!.ipv6, await hostAddress(0, 'blue', 4)]) {
      await expect(ping(r1, target, 1), target).rejects.toThrow();
    }
    // Its own host, through its own network's address, it reaches.
    await ping(r1, await hostAddress(0, 'red', 4));
  });

  it('owns only table inet loom in the host firewall', async () => {
    const tables = await cluster.hosts[0]!.exec('nft', ['list', 'tables']);
    expect(tables.trim().split('\n')).toEqual(['table inet loom']);
  });

  it('publishes ports to allowed sources (TCP, UDP, IPv6) and gives others nothing', async () => {
    expect(await seenBy(fromOutside, hb(), false, 8080, OUT4)).toBe(OUT4);
    expect(await seenBy(fromOutside, hb(), true, 8081, OUT4)).toBe(OUT4);
    expect(await seenBy(fromOutside, '2001:db8::2', false, 8080, OUT6)).toBe(OUT6);
    expect(await seenBy(fromOutside, hb(), false, 8080, STRANGER4).catch(() => undefined)).toBeUndefined();
    expect(await seenBy(fromOutside, '2001:db8::2', false, 8080, STRANGER6).catch(() => undefined)).toBeUndefined();
    expect(await seenBy(fromOutside, hb(), true, 8081, STRANGER4).catch(() => undefined)).toBeUndefined();
    // -p 127.0.0.1:8082:81/udp: only the host itself; the container sees the host's green address.
    const host = (cmd: string, args: string[]) => cluster.hosts[1]!.exec(cmd, args);
    expect(await seenBy(host, '127.0.0.1', true, 8082)).toBe(await hostAddress(1, 'green', 4));
    expect(await seenBy(fromOutside, hb(), true, 8082, OUT4).catch(() => undefined)).toBeUndefined();
    // Another network's container does not get in through the host's published port either.
    expect(await seenBy((c, a) => eps.b1!.c.exec(c, a), hb(), false, 8080).catch(() => undefined)).toBeUndefined();
  });

  it('keeps published ports and an established NATed connection across an agent restart', async () => {
    // a1 (on ha) holds a TCP connection to the outside through NAT while ha's agent restarts.
    const conn = await holdEchoConnection(eps.a1!.c.netns, OUT4, ECHO_PORT);
    try {
      await conn.send('one');
      expect(conn.received()).toContain(`peer ${cluster.vteps.ha}`);
      for (const i of [0, 1]) {
        await cluster.agents[i]!.stop();
        await cluster.agents[i]!.start();
      }
      const { revision } = await ctl.client.getStatus();
      expect((await ctl.client.wait(revision, 10_000)).converged).toBe(true);
      await conn.send('two');
    } finally {
      await conn.close();
    }
    expect(await seenBy(fromOutside, hb(), false, 8080, OUT4)).toBe(OUT4);
  });

  it('refuses -p [::1]:PORT:PORT with a CNI error that says why, and publishes nothing', async () => {
    const c = await cluster.hosts[1]!.addContainer('g6', { empty: true });
    const conf = pluginConf(conflist('green', cluster.agents[1]!.socket), { portMappings: [{ hostPort: 8090, containerPort: 80, protocol: 'tcp', hostIP: '::1' }] });
    const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, 'id-g6'));
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/::1 is not supported/);
    const rules = await cluster.hosts[1]!.exec('nft', ['list', 'table', 'inet', 'loom']);
    expect(rules).not.toContain('dport 8090');
  });

  it('removes the mapping on DEL', async () => {
    const conf = pluginConf(conflist('green', cluster.agents[1]!.socket), { portMappings: PORT_MAPPINGS });
    const r = await runCni(cluster.cniBin, 'DEL', conf, cniEnv(eps.g1!.c, 'id-g1'));
    expect(r.code, r.stdout).toBe(0);
    const rules = await cluster.hosts[1]!.exec('nft', ['list', 'table', 'inet', 'loom']).catch(() => '');
    expect(rules).not.toContain('dport 8080');
    expect(await seenBy(fromOutside, hb(), false, 8080, OUT4).catch(() => undefined)).toBeUndefined();
  });
});
