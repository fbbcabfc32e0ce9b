import { describe, expect, it } from 'vitest';
import { Convergence } from '../../src/controller/convergence.js';
import { memoryController, registerHosts } from './fixtures.js';

async function setup(): Promise<{ conv: Convergence; rev: number }> {
  const c = await memoryController();
  await registerHosts(c, 2);
  await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
  await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
  await c.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b' });
  return { conv: new Convergence(c), rev: c.revision() };
}

describe('convergence', () => {
  it('waits until every up host applied the revision, by ack or because it did not concern it', async () => {
    const { conv, rev } = await setup();
    expect(conv.pending(rev)).toEqual(['h1', 'h2']);
    const done = conv.wait(rev, 5000);
    conv.report([{ host: 'h1', acked: rev, applied: rev, connected: true }]);
    expect(conv.pending(rev)).toEqual(['h2']);
    conv.report([{ host: 'h2', acked: rev - 1, applied: rev, connected: true }]);
    await expect(done).resolves.toBe(true);
    expect(conv.connected).toBe(2);
    expect(conv.status().map((s) => [s.name, s.connected, s.ackedRevision, s.appliedRevision])).toEqual([
      ['h1', true, rev, rev],
      ['h2', true, rev - 1, rev],
    ]);
  });

  it('a heartbeat\'s applied revision counts for a host streaming from another controller, up to now when nothing it sees changed', async () => {
    const c = await memoryController();
    await registerHosts(c, 3);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
    await c.createNetwork({ name: 'red', ipv4Cidr: '10.2.0.0/24' });
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    await c.createEndpoint({ network: 'red', host: 'h3', containerId: 'r' });
    const conv = new Convergence(c);
    const seen = c.revision();
    // Changes h1 does not see: another network's endpoint, a host that shares no network with it.
    await c.createEndpoint({ network: 'red', host: 'h3', containerId: 'r2' });
    conv.heard('h1', seen);
    expect(conv.appliedRevision('h1')).toBe(c.revision());
    // A change in its own network: only what it applied counts.
    const before = c.revision();
    await c.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b' });
    conv.heard('h1', before);
    expect(conv.appliedRevision('h1')).toBe(before);
    conv.heard('h1', c.revision());
    expect(conv.appliedRevision('h1')).toBe(c.revision());
    // A host streaming here is counted by its stream, not its heartbeats.
    conv.report([{ host: 'h2', acked: 1, applied: 1, connected: true }]);
    conv.heard('h2', c.revision());
    expect(conv.appliedRevision('h2')).toBe(1);
  });

  it('counts only acks once a stream closed, and times out waiting for such a host', async () => {
    const { conv, rev } = await setup();
    conv.report([
      { host: 'h1', acked: rev - 1, applied: rev, connected: true },
      { host: 'h2', acked: rev, applied: rev, connected: true },
    ]);
    conv.report([{ host: 'h1', acked: 0, applied: 0, connected: false }]);
    expect(conv.connected).toBe(1);
    expect(conv.appliedRevision('h1')).toBe(rev - 1);
    expect(await conv.wait(rev, 50)).toBe(false);
  });

  it('observes commit-to-ack latency for acks on an open stream, not for a reconnect', async () => {
    const c = await memoryController();
    await registerHosts(c, 1);
    const latencies: number[] = [];
    const conv = new Convergence(c, { onAckLatency: (s) => latencies.push(s) });
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
    const r1 = c.revision();
    conv.report([{ host: 'h1', acked: r1, applied: r1, connected: true }]);
    expect(latencies).toHaveLength(0);
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    conv.report([{ host: 'h1', acked: c.revision(), applied: c.revision(), connected: true }]);
    expect(latencies).toHaveLength(1);
    expect(latencies[0]).toBeGreaterThanOrEqual(0);
    expect(latencies[0]).toBeLessThan(5);
  });
});
