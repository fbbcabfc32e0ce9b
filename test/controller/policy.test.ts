import { describe, expect, it } from 'vitest';
import type { WatchEvent } from '../../src/api/types.js';
import { ViewState } from '../../src/api/view-state.js';
import { portMasks } from '../../src/api/policy.js';
import { toEndpointInfo, toNetwork } from '../../src/controller/convert.js';
import { ApiError } from '../../src/controller/errors.js';
import { Authorizer } from '../../src/controller/authz.js';
import { viewEvents, type EventEncoder } from '../../src/controller/watch-events.js';
import { memoryController, registerHosts } from './fixtures.js';
import type { PeerCertificate } from 'node:tls';

const asObjects: EventEncoder<WatchEvent> = {
  event: (e) => e,
  endpoint: (rec) => ({ endpoint: toEndpointInfo(rec) }),
  network: (net) => ({ network: toNetwork(net) }),
  route: (_source, _owner, route) => ({ route }),
};

async function refused(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (err instanceof ApiError) return `${err.code} ${err.message}`;
    throw err;
  }
  return 'accepted';
}

const peer = (endpoints: string[] = [], labels: Record<string, string> = {}, cidrs: string[] = []) => ({ endpoints, labels, cidrs });

async function setup() {
  const c = await memoryController();
  await registerHosts(c, 3);
  await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv6Cidr: 'fd00:1::/64', isolation: 'ISOLATION_ISOLATED' });
  await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c1', name: 'client', labels: { app: 'cli' } });
  await c.createEndpoint({ network: 'blue', host: 'h2', containerId: 'c2', name: 'server', labels: { app: 'web', tier: 'front' } });
  return c;
}

describe('policy model and API', () => {
  it('keeps isolation per network: open by default, changed by update, committed only when it changes', async () => {
    const c = await memoryController();
    const n = await c.createNetwork({ name: 'red', ipv4Cidr: '10.2.0.0/24' });
    expect(n.isolation).toBe('ISOLATION_OPEN');
    const r0 = c.revision();
    expect((await c.updateNetwork({ name: 'red', isolation: 'ISOLATION_OPEN' })).modRevision).toBe(n.modRevision);
    expect(c.revision()).toBe(r0);
    const u = await c.updateNetwork({ name: 'red', isolation: 'ISOLATION_ISOLATED' });
    expect(u).toMatchObject({ isolation: 'ISOLATION_ISOLATED', ipv4Cidr: '10.2.0.0/24' });
    expect(c.getNetwork('red').isolation).toBe('ISOLATION_ISOLATED');
    expect(await refused(c.updateNetwork({ name: 'nope', isolation: 'ISOLATION_OPEN' }))).toBe('NOT_FOUND network nope does not exist');
    expect(await refused(c.updateNetwork({ name: 'red', isolation: 'BOGUS' as never }))).toBe('INVALID_ARGUMENT network red: isolation "BOGUS" is not OPEN or ISOLATED');
  });

  it('creates, lists, shows, replaces and deletes rules under policies/<net>/<name>', async () => {
    const c = await setup();
    const p = await c.createPolicy({ network: 'blue', name: 'ssh', from: peer(['client']), to: peer(['server']), protocol: 'PROTOCOL_TCP', ports: [{ first: 22, last: 0 }] });
    expect(p).toMatchObject({ network: 'blue', name: 'ssh', protocol: 'PROTOCOL_TCP', ports: [{ first: 22, last: 22 }], from: peer(['client']) });
    expect((await c.store.loadAll()).find((kv) => kv.key === 'policies/blue/ssh')?.value).toMatchObject({ name: 'ssh', protocol: 'tcp', ports: [{ first: 22, last: 22 }] });
    expect(c.getPolicy('blue', 'ssh')).toEqual(p);
    const replaced = await c.createPolicy({ network: 'blue', name: 'ssh', from: peer([], { app: 'cli' }), to: peer(['server']), protocol: 'PROTOCOL_TCP', ports: [{ first: 22, last: 23 }] });
    expect(replaced.createRevision).toBe(p.createRevision);
    expect(replaced.modRevision).toBeGreaterThan(p.modRevision);
    expect(c.listPolicies().map((x) => x.name)).toEqual(['ssh']);
    expect(c.listPolicies('blue')).toHaveLength(1);
    await c.deletePolicy('blue', 'ssh');
    expect(c.listPolicies()).toEqual([]);
    expect(await refused(c.deletePolicy('blue', 'ssh'))).toBe('NOT_FOUND network blue has no policy ssh');
    expect(await refused(() => c.getPolicy('blue', 'ssh'))).toBe('NOT_FOUND network blue has no policy ssh');
  });

  it.each([
    [{ network: 'nope', name: 'x', from: peer(['a']), to: peer(['b']) }, 'NOT_FOUND network nope does not exist'],
    [{ network: 'blue', name: '', from: peer(['a']), to: peer(['b']) }, 'INVALID_ARGUMENT policy name: name is empty'],
    [{ network: 'blue', name: 'a/b', from: peer(['a']), to: peer(['b']) }, /policy name: name "a\/b" contains '\/'/],
    [{ network: 'blue', name: 'x', from: peer(), to: peer(['b']) }, 'INVALID_ARGUMENT policy x: from names nothing: give endpoint names, labels, CIDRs (0.0.0.0/0 and ::/0 for any source) or outside'],
    [{ network: 'blue', name: 'x', from: peer(['a']), to: null }, 'INVALID_ARGUMENT policy x: to names nothing: give endpoint names, labels'],
    [{ network: 'blue', name: 'x', from: peer(['a']), to: peer([], {}, ['10.0.0.0/8']) }, /to: CIDRs name sources only/],
    [{ network: 'blue', name: 'x', from: peer([], {}, ['10.0.0.1/8']), to: peer(['b']) }, 'INVALID_ARGUMENT policy x: from: CIDR "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?'],
    [{ network: 'blue', name: 'x', from: peer([], {}, ['ten']), to: peer(['b']) }, /"ten" is not a CIDR/],
    [{ network: 'blue', name: 'x', from: peer([], { 'bad key!': 'v' }), to: peer(['b']) }, /label key "bad key!" is not like/],
    [{ network: 'blue', name: 'x', from: peer(['a']), to: peer(['b']), ports: [{ first: 22, last: 0 }] }, 'INVALID_ARGUMENT policy x: ports need protocol TCP or UDP (no protocol given)'],
    [{ network: 'blue', name: 'x', from: peer(['a']), to: peer(['b']), protocol: 'PROTOCOL_ICMP' as const, ports: [{ first: 1, last: 0 }] }, /ICMP has no ports/],
    [{ network: 'blue', name: 'x', from: peer(['a']), to: peer(['b']), protocol: 'PROTOCOL_TCP' as const, ports: [{ first: 0, last: 0 }] }, /port 0 is out of range 1..65535/],
    [{ network: 'blue', name: 'x', from: peer(['a']), to: peer(['b']), protocol: 'PROTOCOL_TCP' as const, ports: [{ first: 90, last: 80 }] }, /port range 90-80 must end between 90 and 65535/],
    [{ network: 'blue', name: 'x', from: peer(['a']), to: peer(['b']), protocol: 'PROTOCOL_SCTP' as never }, /protocol "PROTOCOL_SCTP" is not TCP, UDP, ICMP/],
    [{ network: 'blue', name: 'x', from: peer(Array.from({ length: 1001 }, (_, i) => `e${i}`)), to: peer(['b']) }, /from: more than 1000 endpoints and CIDRs/],
  ])('refuses bad rule %#', async (spec, message) => {
    const c = await setup();
    const got = await refused(c.createPolicy(spec));
    if (typeof message === 'string') expect(got).toContain(message);
    else expect(got).toMatch(message);
    expect(c.listPolicies()).toEqual([]);
  });

  it('keeps endpoint labels and refuses bad ones', async () => {
    const c = await setup();
    expect(c.getEndpoint('blue', 'c2').labels).toEqual({ app: 'web', tier: 'front' });
    expect(c.getEndpoint('blue', 'c1').labels).toEqual({ app: 'cli' });
    expect(await refused(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c3', labels: { app: 'x y' } }))).toMatch(/INVALID_ARGUMENT endpoint c3: label app="x y"/);
  });

  it('explains which rule allows a pair, and that nothing does', async () => {
    const c = await setup();
    expect(c.explainPolicy({ from: 'client', to: 'server', port: 22 })).toMatchObject({ network: 'blue', allowed: false, reason: 'network blue is isolated and no policy allows client -> server tcp/22: new connections are dropped' });
    await c.createPolicy({ network: 'blue', name: 'ssh', from: peer(['client']), to: peer([], { app: 'web' }), protocol: 'PROTOCOL_TCP', ports: [{ first: 22, last: 0 }] });
    await c.createPolicy({ network: 'blue', name: 'by-cidr', from: peer([], {}, ['10.1.0.0/24']), to: peer(['server']), protocol: 'PROTOCOL_UDP', ports: [{ first: 5000, last: 5010 }] });
    expect(c.explainPolicy({ from: 'client', to: 'server', port: 22 })).toMatchObject({ allowed: true, policies: ['ssh'], reason: 'client -> server tcp/22 is allowed by ssh (tcp/22); replies pass' });
    expect(c.explainPolicy({ from: 'server', to: 'client', port: 22 })).toMatchObject({ allowed: false });
    expect(c.explainPolicy({ from: 'client', to: 'server', port: 23 })).toMatchObject({ allowed: false });
    expect(c.explainPolicy({ from: 'client', to: 'server', protocol: 'PROTOCOL_UDP', port: 5005 })).toMatchObject({ allowed: true, policies: ['by-cidr'] });
    expect(c.explainPolicy({ network: 'blue', from: 'client', to: 'server' })).toMatchObject({ allowed: true, policies: ['by-cidr', 'ssh'] });
    expect(await refused(() => c.explainPolicy({ from: 'client', to: 'ghost' }))).toBe('NOT_FOUND no network has both endpoints client and ghost');
    await c.updateNetwork({ name: 'blue', isolation: 'ISOLATION_OPEN' });
    expect(c.explainPolicy({ from: 'server', to: 'client', port: 9 })).toMatchObject({ allowed: true, isolation: 'ISOLATION_OPEN' });
  });

  it('takes outside as a source only, stores it, and explains it', async () => {
    const c = await setup();
    expect(await refused(c.createPolicy({ network: 'blue', name: 'bad', from: peer(['client']), to: { ...peer(), outside: true } }))).toMatch(/INVALID_ARGUMENT policy bad: to: outside names a source only/);
    expect(c.explainPolicy({ from: 'outside', to: 'server', port: 80 })).toMatchObject({ allowed: false, reason: expect.stringMatching(/no policy allows outside -> server tcp\/80: new connections are dropped \(a policy from a CIDR/) });
    const p = await c.createPolicy({ network: 'blue', name: 'web', from: { ...peer(), outside: true }, to: peer(['server']), protocol: 'PROTOCOL_TCP', ports: [{ first: 80, last: 0 }] });
    expect(p.from).toEqual({ endpoints: [], labels: {}, cidrs: [], outside: true });
    expect(c.explainPolicy({ from: 'outside', to: 'server', port: 80 })).toMatchObject({ allowed: true, policies: ['web'] });
    expect(c.explainPolicy({ from: 'outside', to: 'server', port: 81 })).toMatchObject({ allowed: false });
    // An endpoint-to-endpoint question is not answered by an outside rule.
    expect(c.explainPolicy({ from: 'client', to: 'server', port: 80 })).toMatchObject({ allowed: false });
    await c.updateNetwork({ name: 'blue', isolation: 'ISOLATION_OPEN' });
    expect(c.explainPolicy({ from: 'outside', to: 'server', port: 9 })).toMatchObject({ allowed: true, reason: expect.stringMatching(/published ports are reachable from outside, limited only by its inbound sources/) });
  });

  it('sends rules to the hosts of their network on Watch, as snapshot and as deltas', async () => {
    const c = await setup();
    await c.createNetwork({ name: 'red', ipv4Cidr: '10.3.0.0/24' });
    await c.createEndpoint({ network: 'red', host: 'h3', containerId: 'r1' });
    const rev0 = c.revision();
    await c.createPolicy({ network: 'blue', name: 'ssh', from: peer(['client']), to: peer(['server']), protocol: 'PROTOCOL_TCP', ports: [{ first: 22, last: 0 }] });
    const delta = (host: string, from: number) => [...viewEvents(c.state, host, c.state.networksOf(host), c.state.networksOf(host), c.changes.keysSince(from), asObjects)];
    expect(delta('h1', rev0)).toEqual([{ policy: expect.objectContaining({ network: 'blue', name: 'ssh' }) }]);
    expect(delta('h2', rev0)).toHaveLength(1);
    expect(delta('h3', rev0)).toEqual([]); // not in blue
    const view = new ViewState();
    view.apply({ revision: c.revision(), reset: true, partial: false, storeId: '', events: [...viewEvents(c.state, 'h1', new Set(), c.state.networksOf('h1'), null, asObjects)] });
    expect([...view.networks.get('blue')!.policies.keys()]).toEqual(['ssh']);
    expect(view.networks.get('blue')!.network.isolation).toBe('ISOLATION_ISOLATED');
    const rev1 = c.revision();
    await c.deletePolicy('blue', 'ssh');
    const removal = delta('h1', rev1);
    expect(removal).toEqual([{ policyRemoved: { network: 'blue', name: 'ssh' } }]);
    view.apply({ revision: c.revision(), reset: false, partial: false, storeId: '', events: removal });
    expect(view.networks.get('blue')!.policies.size).toBe(0);
  });

  it('deletes a network with its rules, and restores rules from the store', async () => {
    const c = await setup();
    await c.createPolicy({ network: 'blue', name: 'ssh', from: peer(['client']), to: peer(['server']) });
    const reopened = await (await import('../../src/controller/controller.js')).Controller.open(c.store, c.opts);
    expect(reopened.listPolicies().map((p) => p.name)).toEqual(['ssh']);
    await c.deleteEndpoint('blue', 'c1');
    await c.deleteEndpoint('blue', 'c2');
    await c.deleteNetwork('blue');
    expect((await c.store.loadAll()).filter((kv) => kv.key.startsWith('policies/'))).toEqual([]);
  });

  it('lets only operators change policy and isolation; agents may read and explain', () => {
    const a = new Authorizer({ mutualTls: true, operatorOrganization: 'loom:operators', agentIdentity: '{host}' }, { endpointHost: () => undefined, host: () => undefined });
    const agent = a.caller({ subject: { CN: 'node1' } } as unknown as PeerCertificate, 'p');
    for (const m of ['CreatePolicy', 'DeletePolicy', 'UpdateNetwork']) expect(() => a.check(agent, m, {})).toThrow(`node1 (role agent) may not call ${m}: it needs the operator role`);
    for (const m of ['GetPolicy', 'ListPolicies', 'ExplainPolicy']) expect(() => a.check(agent, m, {})).not.toThrow();
  });

  it('splits port ranges into the fewest masked matches', () => {
    expect(portMasks(22, 22)).toEqual([{ value: 22, mask: 0xffff }]);
    expect(portMasks(8000, 8007)).toEqual([{ value: 8000, mask: 0xfff8 }]);
    expect(portMasks(1, 65535)).toHaveLength(16);
    for (const [a, b] of [[1000, 1999], [5, 70], [1, 65535], [65535, 65535]] as const) {
      const masks = portMasks(a, b);
      for (let p = Math.max(0, a - 40); p <= Math.min(65535, b + 40); p += p > a + 40 && p < b - 40 ? 97 : 1) {
        expect(masks.some((m) => (p & m.mask) === m.value)).toBe(p >= a && p <= b);
      }
    }
  });
});
