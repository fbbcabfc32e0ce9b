// The cross-host trace's logic on fakes: resolving both ends, whom it asks with what, and the
// verdict it combines from the hosts' answers.
import { describe, expect, it } from 'vitest';
import { combine, compareLive, emptyVerdict, resolveEndpoint, traceAcrossHosts, type TraceDeps, type TraceEndpoint } from '../../src/controller/trace.js';
import { TraceAskError } from '../../src/controller/trace-broker.js';
import type { AgentTraceReply, AgentTraceRequest, TraceHostResult, TraceVerdict } from '../../src/api/types.js';

const EPS: TraceEndpoint[] = [
  { network: 'blue', name: 'a1', containerId: 'id-a1', host: 'h1', ipv4: '198.18.0.2', ipv6: 'fd00:b::2', vni: 5101, tunnel: 'vxlan' },
  { network: 'blue', name: 'b1', containerId: 'id-b1', host: 'h2', ipv4: '198.18.0.66', ipv6: 'fd00:b::42', vni: 5101, tunnel: 'vxlan' },
  { network: 'blue', name: 'a2', containerId: 'id-a2', host: 'h1', ipv4: '198.18.0.3', ipv6: '', vni: 5101, tunnel: 'vxlan' },
  { network: 'red', name: 'r1', containerId: 'id-r1', host: 'h2', ipv4: '198.19.0.66', ipv6: '', vni: 5102, tunnel: 'gre' },
  { network: 'red', name: 'dup', containerId: 'id-a1', host: 'h1', ipv4: '198.18.0.2', ipv6: '', vni: 5102, tunnel: 'gre' },
];
const HOSTS: Record<string, { vtep: string; up: boolean }> = { h1: { vtep: '192.0.2.1', up: true }, h2: { vtep: '192.0.2.2', up: true } };

const part = (host: string, role: string, v: Partial<TraceVerdict>, tables: string[] = []): TraceHostResult => ({
  host,
  role,
  flow: 'f',
  steps: tables.map((t, i) => ({ table: i * 10, tableName: t, feature: 'x', priority: 1, cookie: '', match: '', actions: [] })),
  verdict: emptyVerdict(v),
  datapathActions: '',
});
const tunnel = { kind: 'tunnel', tunnel: 'vxlan', vni: 5101, remoteVtep: '192.0.2.2' };

/** Fake deps: answers by host (a reply, or an error to throw); records what was asked. */
function deps(answers: Record<string, (r: Omit<AgentTraceRequest, 'id'>) => AgentTraceReply | TraceAskError>, hosts = HOSTS) {
  const asked: Array<{ host: string; req: Omit<AgentTraceRequest, 'id'> }> = [];
  const d: TraceDeps = {
    endpoints: () => EPS,
    host: (n) => hosts[n],
    hostByVtep: (v) => Object.entries(hosts).find(([, h]) => h.vtep === v)?.[0],
    ask: async (host, req) => {
      asked.push({ host, req });
      const a = answers[host]?.(req) ?? new TraceAskError('not_connected', host, `the agent of host ${host} is not connected to the controller`);
      if (a instanceof TraceAskError) throw a;
      return a;
    },
  };
  return { d, asked };
}

describe('resolveEndpoint', () => {
  it('finds NETWORK/NAME, NETWORK/CONTAINER_ID, a container id and an address; refuses the ambiguous and the unknown', () => {
    expect(resolveEndpoint('blue/b1', EPS).ep?.containerId).toBe('id-b1');
    expect(resolveEndpoint('red/id-r1', EPS).ep?.name).toBe('r1');
    expect(resolveEndpoint('id-b1', EPS).ep?.name).toBe('b1');
    expect(resolveEndpoint('FD00:B::42', EPS)).toMatchObject({ ep: { name: 'b1' }, address: 'fd00:b::42' });
    expect(resolveEndpoint('203.0.113.9', EPS)).toEqual({ address: '203.0.113.9' });
    expect(() => resolveEndpoint('id-a1', EPS)).toThrow(/container id-a1 has endpoints in networks blue, red; name one as NETWORK\/id-a1/);
    expect(() => resolveEndpoint('198.18.0.2', EPS)).toThrow(/belongs to endpoints of networks blue, red/);
    expect(resolveEndpoint('198.18.0.2', EPS, 'red').ep?.name).toBe('dup');
    expect(() => resolveEndpoint('blue/zz', EPS)).toThrow('trace: no endpoint zz in network blue');
    expect(() => resolveEndpoint('nope', EPS)).toThrow(/no endpoint named nope/);
  });
});

describe('traceAcrossHosts', () => {
  it('asks the source host from its endpoint, then the host of the remote VTEP for the packet from the tunnel, and says delivered', async () => {
    const { d, asked } = deps({
      h1: () => ({ id: 1, result: part('h1', 'source', tunnel, ['classifier', 'spoof_guard', 'l3_forwarding', 'policy', 'output']) }),
      h2: () => ({ id: 2, result: part('h2', 'destination', { kind: 'delivered', container: 'id-b1', network: 'blue', policy: 'web' }, ['classifier', 'l3_forwarding', 'policy', 'output']) }),
    });
    const t = await traceAcrossHosts({ from: 'blue/a1', to: 'blue/b1', protocol: 'tcp', port: 80 }, d);
    expect(asked).toEqual([
      { host: 'h1', req: { network: 'blue', role: 'source', containerId: 'id-a1', source: '', destination: '198.18.0.66', protocol: 'tcp', port: 80 } },
      { host: 'h2', req: { network: 'blue', role: 'destination', source: '198.18.0.2', destination: '198.18.0.66', protocol: 'tcp', port: 80, tunnel: 'vxlan', vni: 5101, remoteVtep: '192.0.2.1' } },
    ]);
    expect(t).toMatchObject({ verdict: 'delivered', host: 'h2', table: 'output', tunnel: { remoteVtep: '192.0.2.2' }, source: { host: 'h1' }, destination: { host: 'h2' } });
    expect(t.explanation).toMatch(/allowed by policy rule web/);
    expect(t.hosts.map((h) => h.host)).toEqual(['h1', 'h2']);
  });

  it('refuses what cannot be traced with a clear status', async () => {
    const { d } = deps({});
    await expect(traceAcrossHosts({ from: '203.0.113.1', to: 'blue/b1' }, d)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/is no endpoint/) });
    await expect(traceAcrossHosts({ from: 'blue/a1', to: 'blue/b1', protocol: 'sctp' }, d)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(traceAcrossHosts({ from: 'blue/a1', to: 'blue/b1', port: 80 }, d)).rejects.toThrow(/needs --proto tcp or udp/);
    await expect(traceAcrossHosts({ from: 'blue/a2', to: 'fd00:b::42' }, d)).rejects.toThrow(/a2 has no IPv6 address/);
    await expect(traceAcrossHosts({ from: 'blue/a1', to: 'blue/b1' }, d)).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/cannot trace from host h1: the agent of host h1 is not connected/) });
    const old = deps({ h1: () => new TraceAskError('too_old', 'h1', 'too old') }).d;
    await expect(traceAcrossHosts({ from: 'blue/a1', to: 'blue/b1' }, old)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/upgrade its agent/) });
  });

  it('an endpoint the source agent does not have is "endpoint not on this host"', async () => {
    const { d } = deps({ h1: () => ({ id: 1, error: 'no endpoint of container id-a1 in network blue on host h1', errorKind: 'not_found' }) });
    const t = await traceAcrossHosts({ from: 'blue/a1', to: 'blue/b1' }, d);
    expect(t).toMatchObject({ verdict: 'endpoint_not_on_host', host: 'h1' });
  });

  it('a destination agent that does not answer, or is too old, gives a verdict naming it, with the source part', async () => {
    for (const [failure, verdict] of [['timeout', 'timeout'], ['too_old', 'agent_too_old'], ['not_connected', 'host_unreachable']] as const) {
      const { d } = deps({ h1: () => ({ id: 1, result: part('h1', 'source', tunnel) }), h2: () => new TraceAskError(failure, 'h2', `h2 ${failure}`) });
      const t = await traceAcrossHosts({ from: 'blue/a1', to: 'blue/b1' }, d);
      expect(t).toMatchObject({ verdict, host: 'h2' });
      expect(t.explanation).toMatch(new RegExp(`\\(host h2\\); the rest is not traced: h2 ${failure}`));
      expect(t.hosts).toHaveLength(1);
    }
  });

  it('live: compares each host\'s observation with its simulated part; a disagreement is reported', async () => {
    const sim = { h1: () => ({ id: 1, result: part('h1', 'source', tunnel) }) };
    const answers = (dstSeen: boolean) =>
      deps({
        h1: (r) => (r.live ? { id: 1, live: { host: 'h1', seen: true, outcome: 'tunnel', ofport: 65001 } } : sim.h1()),
        h2: (r) =>
          r.live?.phase === 'collect'
            ? { id: 3, live: { host: 'h2', seen: dstSeen, outcome: dstSeen ? 'delivered' : '', ofport: dstSeen ? 5 : 0 } }
            : r.live
              ? { id: 2, live: { host: 'h2', seen: false, outcome: 'armed', ofport: 0 } }
              : { id: 2, result: part('h2', 'destination', { kind: 'delivered' }) },
      });
    const ok = answers(true);
    const t = await traceAcrossHosts({ from: 'blue/a1', to: 'blue/b1', live: true }, ok.d);
    expect(ok.asked.map((a) => `${a.host}:${a.req.live?.phase ?? 'sim'}`)).toEqual(['h1:sim', 'h2:sim', 'h2:arm', 'h1:inject', 'h2:collect']);
    expect(t.live).toMatchObject({ injected: true, agrees: true });
    const bad = await traceAcrossHosts({ from: 'blue/a1', to: 'blue/b1', live: true }, answers(false).d);
    expect(bad.live).toMatchObject({ agrees: false });
    expect(bad.live!.summary).toMatch(/host h2: not seen leaving .*simulated: delivered -- DISAGREES/);
  });
});

describe('combine', () => {
  const blue = EPS[0]!;
  const b1 = EPS[1]!;
  const r1 = EPS[3]!;
  const a2 = EPS[2]!;
  const d = { host: (n: string) => HOSTS[n], hostByVtep: (v: string) => (v === '192.0.2.2' ? 'h2' : undefined) };
  const one = (v: Partial<TraceVerdict>, dst: TraceEndpoint | undefined, dd = d) => combine({ hosts: [part('h1', 'source', v)], tunnel: null, destination: null }, blue, dst, dd);

  it('names the spoof guard, isolation between networks, a host that is down, policy default deny, and local delivery', () => {
    expect(one({ kind: 'dropped', reason: 'spoof_guard', table: 'spoof_guard' }, b1)).toMatchObject({ verdict: 'dropped', host: 'h1', table: 'spoof_guard', explanation: expect.stringMatching(/spoof guard/) });
    expect(one({ kind: 'to_host' }, r1)).toMatchObject({ verdict: 'isolated_networks', explanation: expect.stringMatching(/blue\/a1 and red\/r1 are in different networks/) });
    expect(one({ kind: 'dropped', reason: 'no_route', table: 'l3_forwarding' }, r1)).toMatchObject({ verdict: 'isolated_networks' });
    const down = { ...d, host: (n: string) => (n === 'h2' ? { vtep: '192.0.2.2', up: false } : HOSTS[n]) };
    expect(one({ kind: 'dropped', reason: 'no_route', table: 'l3_forwarding' }, b1, down)).toMatchObject({ verdict: 'host_down', table: 'l3_forwarding', explanation: expect.stringMatching(/on host h2, which is down/) });
    expect(one({ kind: 'to_host' }, b1, down)).toMatchObject({ verdict: 'host_down', host: 'h1' });
    expect(one({ kind: 'to_host' }, b1)).toMatchObject({ verdict: 'dropped', explanation: expect.stringMatching(/no route on host h1/) });
    expect(one({ kind: 'dropped', reason: 'network_policy', table: 'policy', network: 'blue' }, a2)).toMatchObject({ verdict: 'dropped', table: 'policy', explanation: expect.stringMatching(/default deny of isolated network blue: no policy rule allows/) });
    expect(one({ kind: 'delivered', container: 'id-a2' }, a2)).toMatchObject({ verdict: 'delivered', host: 'h1', explanation: 'delivered on host h1 to endpoint blue/a2' });
    expect(one({ kind: 'to_host', explanation: 'to the host' }, undefined)).toMatchObject({ verdict: 'to_host' });
  });

  it('across the tunnel: the destination host decides; a VTEP no host has is said so', () => {
    const two = (dv: Partial<TraceVerdict>) =>
      combine({ hosts: [part('h1', 'source', tunnel), part('h2', 'destination', dv)], tunnel: emptyVerdict(tunnel), destination: null }, blue, b1, d);
    expect(two({ kind: 'dropped', reason: 'network_policy', table: 'policy', network: 'blue' })).toMatchObject({ verdict: 'dropped', host: 'h2', explanation: expect.stringMatching(/^forwarded from host h1 into the vxlan tunnel .*default deny/) });
    expect(two({ kind: 'delivered' })).toMatchObject({ verdict: 'delivered', host: 'h2' });
    expect(combine({ hosts: [part('h1', 'source', { ...tunnel, remoteVtep: '192.0.2.99' })], tunnel: null, destination: null }, blue, b1, d)).toMatchObject({ verdict: 'other', explanation: expect.stringMatching(/which no registered host has/) });
  });
});

describe('compareLive', () => {
  it('a drop agrees with not seen; a tunnel seen as delivered disagrees; a host that did not answer disagrees', () => {
    const drop = part('h1', 'source', { kind: 'dropped' });
    expect(compareLive([drop], [{ host: 'h1', seen: false, outcome: '', ofport: 0 }]).agrees).toBe(true);
    expect(compareLive([part('h1', 'source', tunnel)], [{ host: 'h1', seen: true, outcome: 'delivered', ofport: 3 }])).toMatchObject({ agrees: false });
    expect(compareLive([drop], []).summary).toMatch(/not observed/);
  });
});
