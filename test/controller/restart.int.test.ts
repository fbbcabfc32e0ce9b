import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LoomClient } from '../../src/api/client.js';
import type { Endpoint } from '../../src/api/types.js';
import { startDaemon, tempDir, type Daemon } from '../harness/controller-daemon.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { SimAgent } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let etcd: EtcdServer | null = null;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

async function daemon(storeArgs: string[]): Promise<Daemon> {
  const d = await startDaemon(storeArgs);
  cleanups.push(() => d.kill9());
  return d;
}

/** The store's flags: a fresh SQLite file, or a fresh prefix in the test's etcd. */
function freshStore(kind: 'sqlite' | 'etcd'): string[] {
  if (kind === 'etcd') return ['--store', 'etcd', '--etcd-endpoints', etcd!.endpoint, '--etcd-prefix', `/loom-${randomUUID()}/`];
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  return ['--db', `${dir}/controller.db`];
}

/** A daemon on a fresh store, and a client of it; all cleaned up after the test. */
async function firstStart(kind: 'sqlite' | 'etcd'): Promise<{ db: string[]; d1: Daemon; c1: LoomClient }> {
  const db = freshStore(kind);
  const d1 = await daemon(db);
  expect(d1.output()).toContain(`"store":"${kind}"`);
  const c1 = new LoomClient(d1.target);
  cleanups.push(() => c1.close());
  return { db, d1, c1 };
}

describe.each(['sqlite', 'etcd'] as const)('controller restart with the %s store', (kind) => {
  it('loses nothing it acknowledged when killed with SIGKILL mid-load', async () => {
    const { db, d1, c1 } = await firstStart(kind);
    await c1.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16', ipv6Cidr: 'fd00:1::/64', ipv4BlockPrefix: 28 });
    for (let h = 1; h <= 4; h++) await c1.register({ name: `h${h}`, vtep: `192.0.2.${h}` });
    const agent = new SimAgent(d1.target, 'h1', '192.0.2.1');
    cleanups.push(() => agent.close());
    agent.watch();

    // Eight concurrent writers create endpoints until the controller dies under them.
    const acked: Endpoint[] = [];
    let failures = 0;
    let seq = 0;
    const writer = async (): Promise<void> => {
      for (;;) {
        const i = seq++;
        try {
          acked.push(await c1.createEndpoint({ network: 'blue', host: `h${1 + (i % 4)}`, containerId: `c${i}` }));
        } catch {
          failures++; // cut off by the kill: not acknowledged, may or may not exist
          return;
        }
      }
    };
    const writers = Array.from({ length: 8 }, writer);
    while (acked.length < 150) await new Promise((r) => setTimeout(r, 5));
    await d1.kill9();
    await Promise.all(writers);
    expect(failures).toBe(8);
    const lastAcked = Math.max(...acked.map((e) => e.modRevision));
    agent.close();

    const d2 = await daemon(db);
    const c2 = new LoomClient(d2.target);
    cleanups.push(() => c2.close());
    const after = await c2.listEndpoints({ network: 'blue' });
    expect(after.revision).toBeGreaterThanOrEqual(lastAcked);
    const byId = new Map(after.endpoints.map((e) => [e.containerId, e]));
    for (const e of acked) expect(byId.get(e.containerId)).toEqual(e);
    // No address handed out twice, even across the crash.
    const v4 = after.endpoints.map((e) => e.ipv4);
    expect(new Set(v4).size).toBe(v4.length);
    expect((await c2.listHosts()).hosts.map((h) => h.name)).toEqual(['h1', 'h2', 'h3', 'h4']);

    // A new agent gets everything in its snapshot.
    const fresh = new SimAgent(d2.target, 'h2', '192.0.2.2');
    cleanups.push(() => fresh.close());
    fresh.watch();
    await fresh.untilRevision(after.revision);
    expect(fresh.view.networks.get('blue')!.endpoints.size).toBe(after.endpoints.length);
    // Creating more after the restart continues the revision sequence and the allocation.
    const next = await c2.createEndpoint({ network: 'blue', host: 'h1', containerId: 'after-restart' });
    if (kind === 'sqlite') expect(next.modRevision).toBe(after.revision + 1);
    else expect(next.modRevision).toBeGreaterThan(after.revision);
    expect(v4).not.toContain(next.ipv4);
  });

  it('resumes a watching agent with a delta after a restart', async () => {
    const { db, d1, c1 } = await firstStart(kind);
    await c1.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
    await c1.register({ name: 'h1', vtep: '192.0.2.1' });
    await c1.register({ name: 'h2', vtep: '192.0.2.2' });
    const a = new SimAgent(d1.target, 'h1', '192.0.2.1');
    cleanups.push(() => a.close());
    a.watch();
    await c1.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    const b = await c1.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b' });
    await a.untilRevision(b.modRevision);
    a.close();
    await d1.kill9();

    const d2 = await daemon(db);
    const c2 = new LoomClient(d2.target);
    cleanups.push(() => c2.close());
    const c = await c2.createEndpoint({ network: 'blue', host: 'h2', containerId: 'c' });
    const a2 = new SimAgent(d2.target, 'h1', '192.0.2.1');
    cleanups.push(() => a2.close());
    // Carry the state over, as an agent that kept its view would.
    for (const [k, v] of a.view.networks) a2.view.networks.set(k, v);
    a2.view.revision = a.view.revision;
    a2.watch(a.view.revision, [...a.view.networks.keys()], a.view.storeId); // the store id survives restarts
    await a2.untilRevision(c.modRevision);
    expect(a2.messages.some((m) => m.reset)).toBe(false);
    expect([...a2.view.networks.get('blue')!.endpoints.keys()].sort()).toEqual(['a', 'b', 'c']);
  });
});
