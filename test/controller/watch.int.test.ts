import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostView } from '../../src/controller/routes.js';
import { SimAgent, startController, type TestController } from './helpers.js';

let tc: TestController;
const agents: SimAgent[] = [];
/** Watch on the controller's dedicated Watch server instead of the API port (grpc-js). */
let onWatchPort = false;

async function agent(name: string, vtep: string, watch = true): Promise<SimAgent> {
  const a = new SimAgent(tc.target, name, vtep, name, onWatchPort ? tc.watchTarget : tc.target);
  agents.push(a);
  await a.register();
  if (watch) a.watch();
  return a;
}

/** The view an agent holds must equal the controller's computed view for that host. */
function expectViewMatches(a: SimAgent): void {
  const expected = hostView(tc.controller.state, a.name).networks.map((n) => ({
    network: n.network,
    routes: [...n.routes].sort((x, y) => x.prefix.localeCompare(y.prefix)),
    endpoints: [...n.endpoints].sort((x, y) => x.containerId.localeCompare(y.containerId)),
  }));
  expect(a.view.toJSON()).toEqual(expected);
}

beforeEach(async () => {
  tc = await startController();
});
afterEach(async () => {
  for (const a of agents.splice(0)) a.close();
  await tc.stop();
});

// Every behaviour holds on both servers that carry Watch.
describe.each([
  ['the API port (grpc-js)', false],
  ['the Watch port (src/http2)', true],
])('over %s', (_name, dedicated) => {
  beforeEach(() => {
    onWatchPort = dedicated;
  });

  describe('watch stream', () => {
    it('sends a snapshot first, then deltas with increasing revisions', async () => {
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      const h1 = await agent('h1', '192.0.2.1');
      const h2 = await agent('h2', '192.0.2.2');
      await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c1' });
      const ep = await tc.client.createEndpoint({ network: 'blue', host: 'h2', containerId: 'c2' });
      await h1.untilRevision(ep.modRevision);
      await h2.untilRevision(ep.modRevision);
      expect(h1.messages[0].reset).toBe(true);
      expect(h1.messages.slice(1).every((m) => !m.reset)).toBe(true);
      const revs = h1.messages.map((m) => m.revision);
      expect([...revs].sort((a, b) => a - b)).toEqual(revs);
      expect(new Set(revs).size).toBe(revs.length);
      // h1 routes to h2's block via h2's VTEP, and sees both endpoints.
      const blue = h1.view.networks.get('blue')!;
      expect([...blue.routes.values()]).toEqual([
        { network: 'blue', prefix: '10.1.0.64/26', host: 'h2', vtep: '192.0.2.2', kind: 'ROUTE_KIND_BLOCK' },
      ]);
      expect([...blue.endpoints.keys()].sort()).toEqual(['c1', 'c2']);
      expectViewMatches(h1);
      expectViewMatches(h2);
    });
  });

  describe('watch deltas follow every kind of change', () => {
    it('keeps agent views equal to the computed views through creates, deletes, joins and leaves', async () => {
      await tc.client.createNetwork({ name: 'red', ipv4Cidr: '10.2.0.0/24', ipv4BlockPrefix: 28, ipv6Cidr: 'fd00:2::/64' });
      await tc.client.createNetwork({ name: 'green', ipv4Cidr: '10.3.0.0/24', ipv4BlockPrefix: 29 });
      const hosts = [await agent('h1', '192.0.2.1'), await agent('h2', '192.0.2.2'), await agent('h3', '192.0.2.3')];
      const live: { network: string; id: string }[] = [];
      let rev = 0;
      // Deterministic pseudo-random sequence (LCG) so a failure reproduces.
      let seed = 42;
      const rnd = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      for (let i = 0; i < 120; i++) {
        if (live.length > 0 && rnd(3) === 0) {
          const [e] = live.splice(rnd(live.length), 1);
          rev = (await tc.client.deleteEndpoint(e.network, e.id)).revision;
        } else {
          const network = rnd(2) === 0 ? 'red' : 'green';
          const id = `c${i}`;
          // Every 7th endpoint asks for a static address somewhere in the range (an exception).
          const ipv4 = i % 7 === 0 ? (network === 'red' ? `10.2.0.${200 + (i % 50)}` : `10.3.0.${200 + (i % 50)}`) : undefined;
          const ep = await tc.client.createEndpoint({ network, host: `h${1 + rnd(3)}`, containerId: id, ipv4 });
          live.push({ network, id });
          rev = ep.modRevision;
        }
        if (i % 20 === 19) {
          for (const h of hosts) await h.untilRevision(rev);
          for (const h of hosts) expectViewMatches(h);
        }
      }
      // Empty a network entirely: every agent drops it.
      for (const e of live.filter((x) => x.network === 'green')) rev = (await tc.client.deleteEndpoint(e.network, e.id)).revision;
      for (const h of hosts) {
        await h.untilRevision(rev);
        expect(h.view.networks.has('green')).toBe(false);
        expectViewMatches(h);
      }
      expect(tc.controller.state.networks.get('green')!.blocks.size).toBe(0);
    });
  });

  describe('resume', () => {
    it('resumes from the revision an agent holds with a delta, not a snapshot', async () => {
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      const h1 = await agent('h1', '192.0.2.1');
      await agent('h2', '192.0.2.2');
      await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
      const b = await tc.client.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b' });
      await h1.untilRevision(b.modRevision);
      h1.stopWatch();
      const heldRevision = h1.view.revision;
      const heldNetworks = [...h1.view.networks.keys()];
      // Changes while h1 is away: a delete, a create, a new host's block.
      await tc.client.deleteEndpoint('blue', 'b');
      await agent('h3', '192.0.2.3');
      const d = await tc.client.createEndpoint({ network: 'blue', host: 'h3', containerId: 'd' });
      const before = h1.messages.length;
      h1.watch(heldRevision, heldNetworks, h1.view.storeId);
      await h1.untilRevision(d.modRevision);
      const resumed = h1.messages.slice(before);
      expect(resumed.some((m) => m.reset)).toBe(false);
      expectViewMatches(h1);
      expect([...h1.view.networks.get('blue')!.endpoints.keys()].sort()).toEqual(['a', 'd']);
    });

    it('sends a snapshot to an agent whose revision comes from another store', async () => {
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      const h1 = await agent('h1', '192.0.2.1');
      const a = await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
      await h1.untilRevision(a.modRevision);
      expect(h1.view.storeId).toBe(tc.controller.store.id());
      h1.stopWatch();
      const held = { revision: h1.view.revision, storeId: h1.view.storeId };
      // A rebuilt controller (new store) that happens to have passed the same revision.
      await tc.stop();
      tc = await startController();
      await tc.client.createNetwork({ name: 'green', ipv4Cidr: '10.2.0.0/16' });
      await tc.client.register({ name: 'h1', vtep: '192.0.2.1' });
      let last = 0;
      for (let i = 0; i < held.revision; i++) last = (await tc.client.createEndpoint({ network: 'green', host: 'h1', containerId: `g${i}` })).modRevision;
      const again = new SimAgent(tc.target, 'h1', '192.0.2.1');
      agents.push(again);
      for (const [k, v] of h1.view.networks) again.view.networks.set(k, v);
      again.watch(held.revision, ['blue'], held.storeId);
      await again.untilRevision(last);
      expect(again.messages[0].reset).toBe(true);
      expect([...again.view.networks.keys()]).toEqual(['green']);
    });

    it('sends a snapshot when the change log no longer reaches the requested revision', async () => {
      await tc.stop();
      tc = await startController({ changeLogSize: 4 });
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      const h1 = await agent('h1', '192.0.2.1');
      const a = await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
      await h1.untilRevision(a.modRevision);
      h1.stopWatch();
      let last = 0;
      for (let i = 0; i < 10; i++) last = (await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: `x${i}` })).modRevision;
      const before = h1.messages.length;
      h1.watch(a.modRevision, ['blue']);
      await h1.untilRevision(last);
      expect(h1.messages[before].reset).toBe(true);
      expectViewMatches(h1);
    });
  });

  describe('slow agents', () => {
    it('coalesces a stalled agent without holding up the others, then catches it up', async () => {
      // A short ack timeout: the stalled stream's flow control, not the missing acks, must bound it.
      await tc.stop();
      tc = await startController({ ackTimeoutMs: 20 });
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.0.0.0/8', ipv4BlockPrefix: 20 });
      const slow = await agent('slow', '192.0.2.1');
      const fast = await agent('fast', '192.0.2.2');
      await agent('busy', '192.0.2.3');
      await tc.client.createEndpoint({ network: 'blue', host: 'slow', containerId: 's' });
      const f = await tc.client.createEndpoint({ network: 'blue', host: 'fast', containerId: 'f' });
      await slow.untilRevision(f.modRevision);
      slow.call!.pause(); // stop reading: HTTP/2 flow control fills, writes stop completing
      const n = 2000;
      let last = 0;
      for (let i = 0; i < n; i++) {
        last = (await tc.client.createEndpoint({ network: 'blue', host: 'busy', containerId: `b${i}`, name: `endpoint-with-a-long-name-${i}` })).modRevision;
      }
      await fast.untilRevision(last);
      const session = tc.hub.session('slow')!;
      expect(session.waiting).toBe(true);
      const bytesWhileStalled = session.bytesSent;
      // Bounded: the controller stopped writing to the stalled stream well before all deltas.
      expect(session.messagesSent).toBeLessThan(n / 2);
      expect(await tc.client.wait(last, 1000)).toEqual({ converged: false, revision: last, pendingHosts: ['slow'] });
      const before = slow.messages.length;
      slow.call!.resume();
      await slow.untilRevision(last, 20_000);
      expectViewMatches(slow);
      expect(slow.messages.length - before).toBeLessThan(n / 2);
      expect(slow.messages.slice(before).some((m) => m.reset)).toBe(false);
      expect(bytesWhileStalled).toBeLessThan(1 << 20);
      expect((await tc.client.wait(last, 5000)).converged).toBe(true);
    });
  });

  describe('ack-clocked updates', () => {
    it('holds changes for an agent until it acked its last update, then sends them in one message', async () => {
      await tc.stop();
      tc = await startController({ quietMs: 0, coalesceMs: 0, ackTimeoutMs: 60_000 });
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      const slow = await agent('slow', '192.0.2.1');
      const fast = await agent('fast', '192.0.2.2');
      await tc.client.createEndpoint({ network: 'blue', host: 'slow', containerId: 's' });
      const f = await tc.client.createEndpoint({ network: 'blue', host: 'fast', containerId: 'f' });
      await slow.untilRevision(f.modRevision);
      slow.autoAck = false;
      const first = await tc.client.createEndpoint({ network: 'blue', host: 'fast', containerId: 'x0' });
      await slow.untilRevision(first.modRevision); // received, not acknowledged: "applying"
      const before = slow.messages.length;
      let last = 0;
      for (let i = 1; i <= 5; i++) {
        last = (await tc.client.createEndpoint({ network: 'blue', host: 'fast', containerId: `x${i}` })).modRevision;
        await fast.untilRevision(last); // the other agent is not held up
      }
      expect(slow.messages.length).toBe(before);
      slow.call!.write({ ack: { revision: first.modRevision } });
      await slow.untilRevision(last);
      expect(slow.messages.length - before).toBe(1);
      expect(slow.messages[before]!.events).toHaveLength(5);
      expectViewMatches(slow);
    });

    it('sends to an agent that stopped acknowledging once the ack timeout passed', async () => {
      await tc.stop();
      tc = await startController({ quietMs: 0, coalesceMs: 0, ackTimeoutMs: 300 });
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      const mute = await agent('mute', '192.0.2.1');
      const a = await tc.client.createEndpoint({ network: 'blue', host: 'mute', containerId: 'a' });
      await mute.untilRevision(a.modRevision);
      mute.autoAck = false;
      const b = await tc.client.createEndpoint({ network: 'blue', host: 'mute', containerId: 'b' });
      await mute.untilRevision(b.modRevision);
      const t0 = Date.now();
      const c = await tc.client.createEndpoint({ network: 'blue', host: 'mute', containerId: 'c' });
      await mute.untilRevision(c.modRevision, 5000);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      expectViewMatches(mute);
    });
  });

  describe('liveness', () => {
    it('withdraws the routes of a host that stops heartbeating and restores them when it returns', async () => {
      await tc.stop();
      tc = await startController({ hostDownAfterMs: 400 });
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      const h1 = await agent('h1', '192.0.2.1');
      await agent('h2', '192.0.2.2');
      await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
      await tc.client.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b' });
      const b = await tc.client.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b2', ipv4: '10.1.200.7' });
      await h1.untilRevision(b.modRevision);
      const routesOf = (): string[] => [...h1.view.networks.get('blue')!.routes.keys()].sort();
      expect(routesOf()).toEqual(['10.1.0.64/26', '10.1.200.7/32']);
      // h1 keeps heartbeating, h2 goes silent.
      const beat = setInterval(() => void h1.client.heartbeat('h1').catch(() => undefined), 100);
      try {
        await h1.until(() => routesOf().length === 0, 5000);
        expect((await tc.client.listHosts()).hosts.map((h) => [h.name, h.up])).toEqual([
          ['h1', true],
          ['h2', false],
        ]);
        // Its endpoints stay in the directory; only forwarding is withdrawn.
        expect(h1.view.networks.get('blue')!.endpoints.has('b')).toBe(true);
        await tc.client.heartbeat('h2');
        await h1.until(() => routesOf().length === 2, 5000);
        expectViewMatches(h1);
      } finally {
        clearInterval(beat);
      }
    });
  });

  describe('wait', () => {
    it('reports convergence only once every interested agent acknowledged', async () => {
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      const h1 = await agent('h1', '192.0.2.1');
      const h2 = await agent('h2', '192.0.2.2');
      await agent('idle', '192.0.2.9'); // no endpoints: not interested, must not hold up waits
      await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
      const b = await tc.client.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b' });
      expect((await tc.client.wait(b.modRevision, 5000)).converged).toBe(true);
      h2.autoAck = false;
      const c = await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c' });
      await h2.untilRevision(c.modRevision);
      const res = await tc.client.wait(c.modRevision, 300);
      expect(res).toEqual({ converged: false, revision: c.modRevision, pendingHosts: ['h2'] });
      const waiting = tc.client.wait(c.modRevision, 5000);
      h2.call!.write({ ack: { revision: c.modRevision } });
      expect((await waiting).converged).toBe(true);
      const status = await tc.client.getStatus();
      expect(status.hosts.find((h) => h.name === 'h2')).toMatchObject({ up: true, connected: true, ackedRevision: c.modRevision, lag: 0 });
      expect(h1.view.revision).toBe(c.modRevision);
    });
  });

  describe('large views', () => {
    it('splits a snapshot into partial chunks that the agent applies as one revision', async () => {
      await tc.stop();
      tc = await startController({ maxMessageBytes: 4096 });
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16', ipv6Cidr: 'fd00:1::/64' });
      await agent('h1', '192.0.2.1', false);
      let last = 0;
      for (let i = 0; i < 300; i++) last = (await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: `c${i}` })).modRevision;
      const h2 = await agent('h2', '192.0.2.2', false);
      const mine = await tc.client.createEndpoint({ network: 'blue', host: 'h2', containerId: 'own' });
      last = mine.modRevision;
      h2.watch();
      await h2.untilRevision(last);
      const snapshot = h2.messages.filter((m) => m.revision === last);
      expect(snapshot.length).toBeGreaterThan(3);
      expect(snapshot[0].reset).toBe(true);
      expect(snapshot.slice(1).every((m) => !m.reset)).toBe(true);
      expect(snapshot.map((m) => m.partial)).toEqual([...Array(snapshot.length - 1).fill(true), false]);
      expect(h2.view.networks.get('blue')!.endpoints.size).toBe(301);
      expectViewMatches(h2);
    });
  });

  describe('coalescing', () => {
    it('sends one message per agent for a burst of back-to-back changes, never later than the cap', async () => {
      await tc.stop();
      tc = await startController({ quietMs: 50, coalesceMs: 2000 });
      await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      const h1 = await agent('h1', '192.0.2.1');
      const first = await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
      await h1.untilRevision(first.modRevision);
      const before = h1.messages.length;
      let last = 0;
      for (let i = 0; i < 20; i++) last = (await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: `b${i}` })).modRevision;
      await h1.untilRevision(last);
      // Requests came faster than the 50 ms quiet period: one message carries all 20 revisions.
      expect(h1.messages.length - before).toBe(1);
      expect(h1.messages[before].events).toHaveLength(20);
      expectViewMatches(h1);
    });
  });
});
