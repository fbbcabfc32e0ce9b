// The mission in one picture: a controller, three hosts each with OVS and an agent, two
// dual-stack networks (VXLAN and GRE), containers attached through the CNI plugin, talking
// across hosts through tunnels Loom built.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, seedTunnelNeighbours, runCni, cniEnv, tcpTransfer, waitFor, type Cluster, type Container } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';

interface Placed {
  c: Container;
  host: number;
  net: 'blue' | 'red';
  ipv4: string;
  ipv6: string;
  mac: string;
  mtu: number;
}

const HOST_DOWN_MS = 3000;

describe('overlay across three hosts', () => {
  let ctl: TestController;
  let cluster: Cluster;
  const eps: Record<string, Placed> = {};

  const attach = async (name: string, host: number, net: 'blue' | 'red') => {
    const c = await cluster.hosts[host]!.addContainer(name, { empty: true });
    const conf = { cniVersion: '1.0.0', name: net, type: 'loom', agentSocket: cluster.agents[host]!.socket };
    const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, `id-${name}`));
    expect(r.code, r.stdout).toBe(0);
    const res = r.json as { interfaces: Array<{ mac?: string; mtu?: number }>; ips: Array<{ address: string }> };
    const bare = (i: number) => res.ips[i]!.address.split('/')[0]!;
    eps[name] = { c, host, net, ipv4: bare(0), ipv6: bare(1), mac: res.interfaces[1]!.mac!, mtu: res.interfaces[1]!.mtu! };
  };
  const detach = (name: string) => {
    const e = eps[name]!;
    const conf = { cniVersion: '1.0.0', name: e.net, type: 'loom', agentSocket: cluster.agents[e.host]!.socket };
    return runCni(cluster.cniBin, 'DEL', conf, cniEnv(e.c, `id-${name}`));
  };
  const ping = (from: string, to: string, opts: { v6?: boolean; size?: number } = {}) =>
    eps[from]!.c.exec('ping', [
      ...(opts.v6 ? ['-6'] : []),
      ...(opts.size ? ['-M', 'do', '-s', String(opts.size)] : []),
      '-c', '2', '-i', '0.2', '-W', '2',
      opts.v6 ? eps[to]!.ipv6 : eps[to]!.ipv4,
    ]);
  // Live counters from the switch (the database's statistics column lags by seconds).
  const tunnelTx = async () => {
    let sum = 0;
    for (const h of cluster.hosts) {
      for (const port of ['loom-vxlan', 'loom-gre']) {
        const out = await h.ofctl('dump-ports', 'br-int', port);
        sum += Number(/tx pkts=(\d+)/.exec(out)?.[1] ?? NaN);
      }
    }
    return sum;
  };

  beforeAll(async () => {
    ctl = await startController({ hostDownAfterMs: HOST_DOWN_MS, heartbeatIntervalMs: 300 });
    await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', ipv6Cidr: 'fd00:b::/64', tunnelType: 'TUNNEL_TYPE_VXLAN' });
    await ctl.client.createNetwork({ name: 'red', ipv4Cidr: '198.19.0.0/16', ipv6Cidr: 'fd00:c::/64', tunnelType: 'TUNNEL_TYPE_GRE' });
    cluster = await startCluster({ hosts: ['ha', 'hb', 'hc'], controller: ctl.target });
    await attach('a1', 0, 'blue');
    await attach('b1', 1, 'blue');
    await attach('c1', 2, 'blue');
    await attach('a2', 0, 'red');
    await attach('b2', 1, 'red');
    await attach('c2', 2, 'red');
    const { revision } = await ctl.client.getStatus();
    const wait = await ctl.client.wait(revision, 10_000);
    expect(wait.converged, `pending: ${wait.pendingHosts.join(',')}`).toBe(true);
  });

  afterAll(async () => {
    await cluster?.stop();
    await ctl?.stop();
  });

  it('builds the bridges and tunnel ports it owns, marked as its own', async () => {
    for (const h of cluster.hosts) {
      for (const br of ['br-int', 'br-phy']) expect(await h.vsctl('get', 'bridge', br, 'external_ids:loom-owner'), `${h.name} ${br}`).toContain('agent');
      expect(await h.vsctl('get', 'bridge', 'br-int', 'fail_mode')).toContain('secure');
      expect(await h.vsctl('port-to-br', 'ul0')).toContain('br-phy');
      for (const [port, type, ofport] of [['loom-vxlan', 'vxlan', '65001'], ['loom-gre', 'gre', '65002']]) {
        expect((await h.vsctl('get', 'interface', port, 'type')).trim()).toBe(type);
        expect((await h.vsctl('get', 'interface', port, 'ofport')).trim()).toBe(ofport);
        expect(await h.vsctl('get', 'interface', port, 'options')).toMatch(/key=flow, remote_ip=flow/);
      }
    }
  });

  it('carries ping across hosts, IPv4 and IPv6, on the VXLAN and the GRE network', async () => {
    for (const [from, to] of [['a1', 'b1'], ['b1', 'c1'], ['c1', 'a1'], ['a2', 'b2'], ['b2', 'c2'], ['c2', 'a2']] as const) {
      expect(await ping(from, to), `${from} -> ${to}`).toContain('2 received');
      expect(await ping(from, to, { v6: true }), `${from} -> ${to} (IPv6)`).toContain('2 received');
    }
  });

  it('passes full-size packets at the container MTU, without fragmenting', async () => {
    expect(eps.a1!.mtu).toBe(1450);
    expect(eps.a2!.mtu).toBe(1458);
    for (const [from, to] of [['a1', 'b1'], ['a2', 'b2']] as const) {
      const mtu = eps[from]!.mtu;
      expect(await ping(from, to, { size: mtu - 28 })).toContain('2 received');
      expect(await ping(from, to, { v6: true, size: mtu - 48 })).toContain('2 received');
    }
  });

  it('carries TCP across hosts with the content intact, IPv4 and IPv6, on both networks', async () => {
    for (const [from, to, v6] of [['a1', 'c1', false], ['c1', 'a1', true], ['b2', 'a2', false], ['a2', 'c2', true]] as const) {
      const t = await tcpTransfer(eps[from]!.c, eps[to]!.c, v6 ? eps[to]!.ipv6 : eps[to]!.ipv4, 3_000_000);
      expect(t.received, `${from} -> ${to}`).toBe(t.sent);
    }
  });

  it('drops no tunnel packet while links come and go on a host (its underlay routes are pinned in ovs-vswitchd)', async () => {
    const hb = cluster.hosts[1]!;
    // ovs-vswitchd keeps no copy of the kernel's table to flush on a link change; the agent pinned the route.
    const table = await hb.appctl('ovs/route/show');
    expect(table).toMatch(/User: 192\.0\.2\.0\/24 dev br-phy/);
    expect(table).not.toMatch(/Cached: .* dev br-phy/);
    const ping = eps.a1!.c.exec('ping', ['-q', '-c', '400', '-i', '0.01', '-W', '1', eps.b1!.ipv4]);
    let stop = false;
    let changes = 0;
    const churn = (async () => {
      while (!stop) {
        const link = `lc${changes++}`;
        await hb.exec('ip', ['link', 'add', link, 'type', 'veth', 'peer', 'name', `${link}p`]);
        await hb.exec('ip', ['link', 'set', link, 'up']);
        await hb.exec('ip', ['link', 'del', link]);
      }
    })();
    const out = await ping.finally(() => (stop = true));
    await churn;
    expect(changes).toBeGreaterThan(10);
    expect(out).toContain('400 received');
  });

  it('forwards across hosts again after ovs-vswitchd restarts with an empty flow table', async () => {
    const before = cluster.agents[0]!.logs.split('re-established').length;
    await cluster.hosts[0]!.restartVswitchd();
    // A new ovs-vswitchd has forgotten the tunnel peers' MACs: seed them again (see startCluster).
    await seedTunnelNeighbours(cluster.hosts, cluster.vteps);
    await waitFor('a1 -> b1 after the restart', () => eps.a1!.c.exec('ping', ['-c', '1', '-W', '1', eps.b1!.ipv4]).then(() => true, () => false), 20_000, 50);
    for (const [from, to] of [['a1', 'b1'], ['c1', 'a1'], ['a2', 'c2'], ['b2', 'a2']] as const) {
      expect(await ping(from, to), `${from} -> ${to}`).toContain('2 received');
      expect(await ping(from, to, { v6: true }), `${from} -> ${to} (IPv6)`).toContain('2 received');
    }
    expect(cluster.agents[0]!.logs.split('re-established').length).toBe(before + 1);
  });

  it('removes flow-restore-wait once its flows are back, when a restart procedure set it (as ovs-ctl restart does)', async () => {
    const h = cluster.hosts[0]!;
    await h.vsctl('set', 'Open_vSwitch', '.', 'other_config:flow-restore-wait=true');
    await h.restartVswitchd();
    await seedTunnelNeighbours(cluster.hosts, cluster.vteps);
    await waitFor('flow-restore-wait to be removed', async () => !(await h.vsctl('get', 'Open_vSwitch', '.', 'other_config')).includes('flow-restore-wait'), 20_000, 50);
    await waitFor('a1 -> b1 after the restart', () => eps.a1!.c.exec('ping', ['-c', '1', '-W', '1', eps.b1!.ipv4]).then(() => true, () => false), 20_000, 50);
    expect(await ping('a2', 'c2')).toContain('2 received');
    expect(cluster.agents[0]!.logs).toContain('removed other_config:flow-restore-wait');
  });

  it('keeps networks apart, also where both run a service on the same port', async () => {
    // Give blue containers a route into red's range so their packets really leave them.
    for (const n of ['a1', 'b1']) await eps[n]!.c.exec('ip', ['route', 'add', '198.19.0.0/16', 'via', '198.18.0.1', 'dev', 'eth0', 'onlink']);
    await expect(ping('a1', 'b2')).rejects.toThrow(/100% packet loss/);
    await expect(ping('a1', 'a2')).rejects.toThrow(/100% packet loss/);
    // Same port in both networks: blue reaches blue's listener, never red's.
    const redListener = eps.b2!.c.exec('sh', ['-c', 'timeout 4 nc -l 5001 | wc -c']);
    const blue = await tcpTransfer(eps.a1!.c, eps.b1!.c, eps.b1!.ipv4, 10_000);
    expect(blue.received).toBe(blue.sent);
    await expect(eps.a1!.c.exec('sh', ['-c', `echo hello | nc -N -w 2 ${eps.b2!.ipv4} 5001`])).rejects.toThrow();
    expect((await redListener.catch((e: Error) => e.message)).trim()).not.toMatch(/^[1-9]/);
  });

  it('sends nothing into a tunnel when a container ARPs for an address nobody has', async () => {
    const before = await tunnelTx();
    const c = eps.a1!.c;
    // An on-link route makes the kernel ARP for the address itself.
    await c.exec('ip', ['route', 'add', '198.18.250.250/32', 'dev', 'eth0']);
    await expect(c.exec('ping', ['-c', '3', '-i', '0.2', '-W', '1', '198.18.250.250'])).rejects.toThrow();
    expect(await c.exec('ip', ['neigh', 'show', '198.18.250.250'])).not.toContain('lladdr');
    expect(await tunnelTx()).toBe(before);
  });

  it('removes a torn-down container from every host', async () => {
    await attach('c3', 2, 'red');
    const gone = eps.c3!;
    expect(await ping('a2', 'c3')).toContain('2 received');
    const r = await detach('c3');
    expect(r.code, r.stdout).toBe(0);
    for (const h of cluster.hosts) {
      const flows = await h.ofctl('dump-flows', 'br-int');
      expect(flows, h.name).not.toContain(gone.ipv4);
      expect(flows, h.name).not.toContain(gone.mac);
    }
    await expect(ping('a2', 'c3')).rejects.toThrow(/100% packet loss/);
  });

  it('withdraws a host whose agent stops heartbeating, and brings it back', async () => {
    const hc = cluster.vteps.hc!;
    const routesTo = async (i: number) => (await cluster.hosts[i]!.ofctl('dump-flows', 'br-int')).includes(`${hc}->tun_dst`);
    expect(await routesTo(0)).toBe(true);
    await cluster.agents[2]!.stop('SIGKILL');
    await waitFor('hc to be withdrawn from ha and hb', async () => !(await routesTo(0)) && !(await routesTo(1)), HOST_DOWN_MS * 4, 200);
    await expect(ping('a1', 'c1')).rejects.toThrow(/100% packet loss/);
    await cluster.agents[2]!.start();
    await waitFor('hc to be back on ha and hb', async () => (await routesTo(0)) && (await routesTo(1)), 15_000, 200);
    expect(await ping('a1', 'c1')).toContain('2 received');
  });
});
