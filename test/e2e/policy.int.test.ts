// Policy end to end: an isolated (icc=false) dual-stack network on two simulated hosts, endpoints
// attached through the CNI plugin, rules written through the controller API. Enforcement is
// stateful (conntrack) at the destination's host, so it holds on one host and across hosts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, runCni, cniEnv, tcpTransfer, waitFor, type Cluster, type Container } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';
import type { Policy } from '../../src/api/types.js';

interface Placed {
  c: Container;
  ipv4: string;
  ipv6: string;
}

describe('policy: isolation and allow rules, on one host and across hosts', () => {
  let ctl: TestController;
  let cluster: Cluster;
  const eps: Record<string, Placed> = {};
  let nextPort = 7000;
  const listeners: Promise<unknown>[] = [];

  const conf = (host: number) => ({ cniVersion: '1.0.0', name: 'iso', type: 'loom', agentSocket: cluster.agents[host]!.socket });
  const attach = async (name: string, host: number, labels?: string) => {
    const c = await cluster.hosts[host]!.addContainer(name, { empty: true });
    const r = await runCni(cluster.cniBin, 'ADD', conf(host), cniEnv(c, `id-${name}`, `K8S_POD_NAME=${name}${labels ? `;LABELS=${labels}` : ''}`));
    expect(r.code, r.stdout).toBe(0);
    const res = r.json as { ips: Array<{ address: string }> };
    eps[name] = { c, ipv4: res.ips[0]!.address.split('/')[0]!, ipv6: res.ips[1]!.address.split('/')[0]! };
  };
  const converge = async () => {
    const { revision } = await ctl.client.getStatus();
    const w = await ctl.client.wait(revision, 15_000);
    expect(w.converged, `pending: ${w.pendingHosts.join(',')}`).toBe(true);
  };
  const pings = (from: string, to: string, v6: boolean) =>
    eps[from]!.c.exec('ping', [...(v6 ? ['-6'] : []), '-c', '1', '-W', '1', v6 ? eps[to]!.ipv6 : eps[to]!.ipv4]).then(
      () => true,
      () => false,
    );
  /**
   * Whether `from` can open a TCP connection to `to` on `port` (fresh port each time unless
   * given): a listener runs on `to` first, so a refusal is the policy's, not a closed port's RST.
   */
  const connects = async (from: string, to: string, v6: boolean, port = nextPort++): Promise<boolean> => {
    const family = v6 ? '-6' : '-4';
    const listening = async (only?: string) => (await eps[to]!.c.exec('ss', ['-Hltn', ...(only ? [only] : []), `sport = :${port}`])).includes(String(port));
    // A listener of the other family on the same port may still be exiting: [::] would not bind beside it.
    await waitFor(`port ${port} free on ${to}`, async () => !(await listening()), 5000, 20);
    listeners.push(eps[to]!.c.exec('sh', ['-c', `timeout 3 nc ${family} -l ${port} > /dev/null; true`]));
    await waitFor(`listener on ${to}:${port}`, () => listening(family), 5000, 20);
    const address = v6 ? eps[to]!.ipv6 : eps[to]!.ipv4;
    return eps[from]!.c.exec('nc', [family, '-z', '-w', '1', address, String(port)]).then(
      () => true,
      () => false,
    );
  };
  const link = (client: string, server: string, port: number): Promise<Policy> =>
    ctl.client.createPolicy({
      network: 'iso',
      name: `link.${client}.${server}.tcp${port}`,
      from: { endpoints: [client], labels: {}, cidrs: [] },
      to: { endpoints: [server], labels: {}, cidrs: [] },
      protocol: 'PROTOCOL_TCP',
      ports: [{ first: port, last: 0 }],
    });

  beforeAll(async () => {
    ctl = await startController({ hostDownAfterMs: 10_000, heartbeatIntervalMs: 300 });
    await ctl.client.createNetwork({ name: 'iso', ipv4Cidr: '198.18.0.0/16', ipv6Cidr: 'fd00:b::/64', tunnelType: 'TUNNEL_TYPE_VXLAN' });
    cluster = await startCluster({ hosts: ['ha', 'hb'], controller: ctl.target });
    await attach('a1', 0);
    await attach('a2', 0);
    await attach('b1', 1);
    await converge();
  });

  afterAll(async () => {
    await Promise.allSettled(listeners);
    await cluster?.stop();
    await ctl?.stop();
  });

  it('reaches everything while open, and nothing once isolated (same host and across, IPv4 and IPv6)', async () => {
    const pairs = [['a1', 'a2'], ['a1', 'b1'], ['b1', 'a2']] as const;
    const open = await Promise.all(pairs.flatMap(([x, y]) => [pings(x, y, false), pings(y, x, true)]));
    expect(open).toEqual(open.map(() => true));
    await ctl.client.updateNetwork({ name: 'iso', isolation: 'ISOLATION_ISOLATED' });
    await converge();
    const closed = await Promise.all(pairs.flatMap(([x, y]) => [pings(x, y, false), pings(y, x, false), pings(x, y, true), pings(y, x, true)]));
    expect(closed).toEqual(closed.map(() => false));
    expect(await Promise.all([connects('a1', 'b1', false), connects('a2', 'a1', true)])).toEqual([false, false]);
  });

  it('opens exactly client -> server:port for a link, with its replies, across hosts and on one host', async () => {
    await link('a1', 'b1', 5001); // across hosts
    await link('a2', 'a1', 5002); // on one host
    await converge();
    expect((await ctl.client.explainPolicy({ from: 'a1', to: 'b1', port: 5001 })).allowed).toBe(true);
    for (const [from, to, port] of [['a1', 'b1', 5001], ['a2', 'a1', 5002]] as const) {
      for (const v6 of [false, true]) {
        const t = await tcpTransfer(eps[from]!.c, eps[to]!.c, v6 ? eps[to]!.ipv6 : eps[to]!.ipv4, 200_000, port);
        expect(t.received, `${from} -> ${to}:${port} ${v6 ? 'IPv6' : 'IPv4'}`).toBe(t.sent);
      }
    }
    const denied = await Promise.all([
      connects('b1', 'a1', false, 5001), // the same port the other way
      connects('a1', 'a2', true, 5002),
      connects('a1', 'b1', false, 5003), // another port
      connects('a2', 'a1', true, 5004),
      connects('b1', 'a2', false, 5001), // a third endpoint
    ]);
    expect(denied).toEqual([false, false, false, false, false]);
    expect(await pings('a1', 'b1', false)).toBe(false); // ICMP is not part of the link
  });

  it('allows a source CIDR: only addresses inside it', async () => {
    await ctl.client.createPolicy({
      network: 'iso',
      name: 'from-b1-v4',
      from: { endpoints: [], labels: {}, cidrs: [`${eps.b1!.ipv4}/32`] },
      to: { endpoints: ['a2'], labels: {}, cidrs: [] },
      protocol: 'PROTOCOL_TCP',
      ports: [{ first: 6000, last: 6010 }],
    });
    await converge();
    expect(await connects('b1', 'a2', false, 6005)).toBe(true);
    expect(await Promise.all([connects('b1', 'a2', true, 6006), connects('a1', 'a2', false, 6007), connects('b1', 'a2', false, 6011)])).toEqual([false, false, false]);
  });

  it('follows labels: endpoints that come with the label are allowed, and their addresses leave with them', async () => {
    await ctl.client.createPolicy({
      network: 'iso',
      name: 'clients-to-b1',
      from: { endpoints: [], labels: { role: 'client' }, cidrs: [] },
      to: { endpoints: ['b1'], labels: {}, cidrs: [] },
      protocol: 'PROTOCOL_TCP',
      ports: [{ first: 5100, last: 0 }],
    });
    await attach('a3', 0, 'role=client,tier=x');
    await converge();
    expect(await connects('a3', 'b1', false, 5100)).toBe(true);
    expect(await connects('a3', 'b1', true, 5100)).toBe(true);
    expect(await connects('a1', 'b1', false, 5100)).toBe(false);
    const a3 = eps.a3!;
    expect((await runCni(cluster.cniBin, 'DEL', conf(0), cniEnv(a3.c, 'id-a3'))).code).toBe(0);
    await attach('a4', 0); // no label; it may well get a3's old address
    await converge();
    expect(await Promise.all([connects('a4', 'b1', false, 5100), connects('a4', 'b1', true, 5100)])).toEqual([false, false]);
  });

  it('keeps allowed traffic and denied traffic as they are through an agent restart (0 packets lost)', async () => {
    await ctl.client.createPolicy({
      network: 'iso',
      name: 'ping-a1-b1',
      from: { endpoints: ['a1'], labels: {}, cidrs: [] },
      to: { endpoints: ['b1'], labels: {}, cidrs: [] },
      protocol: 'PROTOCOL_ICMP',
      ports: [],
    });
    await converge();
    expect(await pings('a1', 'b1', false)).toBe(true);
    // Allowed: a1 -> b1 (replies pass as +est). Denied: b1 -> a1. Both run through restarts of
    // the agents on both hosts (the destination's, which enforces, and the source's).
    const allowed = eps.a1!.c.exec('ping', ['-q', '-i', '0.01', '-c', '1500', '-W', '1', eps.b1!.ipv4]).catch((e: Error) => e.message);
    const denied = eps.b1!.c.exec('ping', ['-q', '-i', '0.05', '-c', '300', '-W', '1', eps.a1!.ipv4]).catch((e: Error) => e.message);
    let allowedDone = false;
    void allowed.then(() => (allowedDone = true));
    for (const [i, agent] of [cluster.agents[1]!, cluster.agents[0]!].entries()) {
      await agent.stop();
      await agent.start();
      // The destination's agent (which enforces) restarted while the allowed ping still ran.
      if (i === 0) expect(allowedDone).toBe(false);
    }
    await converge();
    const [a, d] = await Promise.all([allowed, denied]);
    expect(a).toMatch(/1500 packets transmitted, 1500 received, 0% packet loss/);
    expect(d).toMatch(/300 packets transmitted, 0 received/);
  });

  it('denies new connections once a removed rule is applied everywhere (Wait returns)', async () => {
    expect(await connects('a1', 'b1', true, 5001)).toBe(true);
    const { revision } = await ctl.client.deletePolicy('iso', 'link.a1.b1.tcp5001');
    const w = await ctl.client.wait(revision, 15_000);
    expect(w.converged).toBe(true);
    expect(await Promise.all([connects('a1', 'b1', false, 5001), connects('a1', 'b1', true, 5001)])).toEqual([false, false]);
    // The other link is untouched.
    expect(await connects('a2', 'a1', false, 5002)).toBe(true);
  });
});
