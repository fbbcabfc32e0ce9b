// A follower that wins a term takes over from its hot memory: no reload when it holds every commit
// up to the store's last one at the term's start (Leadership.base), a wait for the watch when it
// is behind, and a reload when the watch does not deliver in time. Fake election on SQLite: the
// "other leader" is a controller of its own whose commits the test lands in this store and
// delivers, as etcd's watch would.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/logging.js';
import { Controller } from '../../src/controller/controller.js';
import { SqliteStore } from '../../src/controller/store/sqlite.js';
import type { FollowedChange, FollowHandlers, KeyValue, Leadership, StoreOp } from '../../src/controller/store/types.js';
import { memoryController } from './fixtures.js';

class ElectedStore extends SqliteStore {
  lead: Leadership = { term: 0, leader: '10.0.0.1:7400' };
  loads = 0;
  /** Runs inside loadAll, after the read: what lands meanwhile is newer than the loaded state. */
  afterLoad: (() => Promise<void>) | undefined;
  private handlers: FollowHandlers | undefined;
  /** As etcd's store: its revision advances with its own commits, loads, and revisions the follower took. */
  private visible = 0;

  leadership(): Leadership {
    return this.lead;
  }

  follow(_after: number, h: FollowHandlers): () => void {
    this.handlers = h;
    return () => (this.handlers = undefined);
  }

  override revision(): number {
    return Math.min(super.revision(), this.visible);
  }

  override async loadAll(): Promise<KeyValue[]> {
    this.loads++;
    const all = await super.loadAll();
    this.visible = super.revision();
    const hook = this.afterLoad;
    this.afterLoad = undefined;
    await hook?.();
    return all;
  }

  override async commitBatch(batch: StoreOp[][]): Promise<number[]> {
    const revs = await super.commitBatch(batch);
    if (revs.length > 0) this.visible = super.revision();
    return revs;
  }

  /** The leader's commit, durable here; delivered to the follower's memory by `deliver`. */
  async land(ops: readonly StoreOp[]): Promise<{ revision: number; changes: FollowedChange[] }> {
    const revision = (await super.commitBatch([[...ops]]))[0];
    return { revision, changes: ops.map((o) => ({ key: o.key, value: o.type === 'put' ? o.value : null, createRevision: revision })) };
  }

  deliver(c: { revision: number; changes: FollowedChange[] }): boolean {
    const taken = this.handlers!.onRevision(c.revision, c.changes);
    if (taken) this.visible = Math.max(this.visible, c.revision);
    return taken;
  }

  /** The last commit in the store, whatever the follower took of it. */
  last(): number {
    return super.revision();
  }

  /** Wins a term: its base is the store's last commit. */
  win(term: number): void {
    this.lead = { term, leader: '10.0.0.2:7400', base: this.last() };
  }
}

/** The old leader (its own store) and the follower's store, which the test keeps equal to it. */
async function setUp(termCatchUpMs?: number) {
  const leader = await memoryController();
  const commits: StoreOp[][] = [];
  leader.onCommit((_rev, ops) => commits.push([...ops]));
  const store = new ElectedStore({ path: ':memory:' });
  const follower = await Controller.open(store, { hostDownAfterMs: 60_000, heartbeatIntervalMs: 1000, changeLogSize: 100, storeHistory: 100, logger: silentLogger(), termCatchUpMs });
  const replicate = async (deliver = true): Promise<void> => {
    for (const ops of commits.splice(0)) {
      const c = await store.land(ops);
      if (deliver) expect(store.deliver(c)).toBe(true);
    }
  };
  await leader.register({ name: 'h1', vtep: '192.0.2.1' });
  await leader.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv4BlockPrefix: 28 });
  await leader.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
  return { leader, store, follower, replicate, commits };
}

describe('a new leader takes over from its followed memory', () => {
  it('writes at once, without reloading, when it holds every commit up to the term base', async () => {
    const { store, follower, replicate } = await setUp();
    await replicate();
    await expect(follower.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b' })).rejects.toThrow(/follower; send writes to the leader at 10.0.0.1:7400/);
    const loads = store.loads;
    store.win(7);
    const b = await follower.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b' });
    expect(store.loads).toBe(loads);
    expect(b.ipv4).not.toBe(follower.getEndpoint('blue', 'a').ipv4);
    expect(follower.listEndpoints({ network: 'blue' }).map((e) => e.containerId).sort()).toEqual(['a', 'b']);
  });

  it('waits for the watch to deliver the last commits of the old term before its first write', async () => {
    const { leader, store, follower, replicate } = await setUp();
    await replicate();
    const a2 = await leader.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a2' });
    await replicate(false); // durable in the store, still in flight to the follower's memory
    const top = store.last();
    const inFlight = (await store.loadAll()).filter((kv) => kv.modRevision === top).map((kv) => ({ key: kv.key, value: kv.value, createRevision: kv.createRevision }));
    expect(inFlight.length).toBeGreaterThan(0);
    const loads = store.loads;
    store.win(8);
    let answered = false;
    const b = follower.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b' }).then((e) => {
      answered = true;
      return e;
    });
    await new Promise((r) => setTimeout(r, 30));
    expect(answered).toBe(false); // held until memory holds the old leader's last commit
    expect(store.deliver({ revision: top, changes: inFlight })).toBe(true);
    const e = await b;
    expect(store.loads).toBe(loads);
    expect(e.ipv4).not.toBe(a2.ipv4);
    expect(follower.getEndpoint('blue', 'a2').ipv4).toBe(a2.ipv4);
  });

  it('reloads when the watch does not deliver the last commits in time, and hands out no address twice', async () => {
    const { leader, store, follower, replicate } = await setUp(50);
    await replicate();
    const a2 = await leader.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a2' });
    await replicate(false); // never delivered
    const loads = store.loads;
    store.win(9);
    const e = await follower.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b' });
    expect(store.loads).toBe(loads + 1);
    expect(e.ipv4).not.toBe(a2.ipv4);
    expect(follower.getEndpoint('blue', 'a2').ipv4).toBe(a2.ipv4);
  });

  it('reloads on a new term when a revision came while it wrote and the watch will not bring it again', async () => {
    const { leader, store, follower, replicate, commits } = await setUp();
    await replicate();
    // A term without a base: the first batch reloads, and the old leader's next commit arrives
    // during that reload (after its read), so memory refuses it while writing.
    store.lead = { term: 10, leader: '10.0.0.2:7400' };
    let a3 = '';
    store.afterLoad = async () => {
      a3 = (await leader.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a3' })).ipv4;
      const c = await store.land(commits.splice(0)[0]);
      expect(store.deliver(c)).toBe(false);
    };
    await expect(follower.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' })).rejects.toThrow(/already has an endpoint/);
    expect(a3).not.toBe('');
    store.lead = { term: 0, leader: '10.0.0.1:7400' };
    // Later revisions are taken: memory's revision passes the refused one.
    await leader.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a4' });
    await replicate();
    const loads = store.loads;
    store.win(11);
    const c = await follower.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c' });
    expect(store.loads).toBe(loads + 1);
    expect(follower.getEndpoint('blue', 'a3').ipv4).toBe(a3);
    expect(c.ipv4).not.toBe(a3);
  });

  it('still reloads on a new term when the store gives no base', async () => {
    const { store, follower, replicate } = await setUp();
    await replicate();
    const loads = store.loads;
    store.lead = { term: 10, leader: '10.0.0.2:7400' };
    await follower.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b' });
    expect(store.loads).toBe(loads + 1);
  });
});
