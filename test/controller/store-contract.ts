/** The Store contract, run against every backend (SQLite in store.test.ts, etcd in store-etcd.int.test.ts). */
import { expect, it } from 'vitest';
import type { Store } from '../../src/controller/store/types.js';

export interface StoreFactory {
  /** A fresh, empty store. */
  create(): Promise<Store>;
  /** The same store opened again (a controller restart). */
  reopen(s: Store): Promise<Store>;
  /** Whether revisions are this store's alone (SQLite) or global to a shared cluster (etcd: gaps). */
  consecutive: boolean;
}

export function storeContract(f: StoreFactory): void {
  it('gives each commit a new revision and keeps create/mod revisions across reopen', async () => {
    const s = await f.create();
    const r0 = s.revision();
    const r1 = (await s.commit([{ type: 'put', key: 'a', value: { n: 1 } }, { type: 'put', key: 'b', value: 2 }])).revision;
    const r2 = (await s.commit([{ type: 'put', key: 'a', value: { n: 3 } }])).revision;
    const r3 = (await s.commit([{ type: 'delete', key: 'b' }])).revision;
    expect(r1).toBeGreaterThan(r0);
    expect(r2).toBeGreaterThan(r1);
    expect(r3).toBeGreaterThan(r2);
    if (f.consecutive) expect([r1, r2, r3]).toEqual([r0 + 1, r0 + 2, r0 + 3]);
    expect((await s.commit([])).revision).toBe(r3);
    const id = s.id();
    const r = await f.reopen(s);
    expect(r.id()).toBe(id);
    expect(r.revision()).toBe(r3);
    expect(await r.loadAll()).toEqual([{ key: 'a', value: { n: 3 }, createRevision: r1, modRevision: r2 }]);
    expect(await r.changesSince(r1)).toEqual([
      { revision: r2, key: 'a', deleted: false },
      { revision: r3, key: 'b', deleted: true },
    ]);
    expect(await r.changesSince(r3)).toEqual([]);
    await r.compact(r2);
    expect(r.compactedRevision()).toBeGreaterThanOrEqual(r2 - 1);
    expect(await r.changesSince(r1 - 1)).toBeNull();
    expect(await r.changesSince(r2)).toEqual([{ revision: r3, key: 'b', deleted: true }]);
    await r.close();
  });

  it('group commit: every non-empty element gets a revision, in order, all applied', async () => {
    const s = await f.create();
    const base = (await s.commit([{ type: 'put', key: 'x', value: 0 }])).revision;
    const revs = await s.commitBatch([[{ type: 'put', key: 'a', value: 1 }], [], [{ type: 'put', key: 'b', value: 2 }, { type: 'delete', key: 'x' }]]);
    expect(revs).toHaveLength(2);
    expect(revs[0]).toBeGreaterThan(base);
    expect(revs[1]).toBeGreaterThanOrEqual(revs[0]);
    if (f.consecutive) expect(revs).toEqual([base + 1, base + 2]);
    expect(s.revision()).toBe(revs[1]);
    expect(await s.changesSince(base)).toEqual(
      [
        { revision: revs[0], key: 'a', deleted: false },
        { revision: revs[1], key: 'b', deleted: false },
        { revision: revs[1], key: 'x', deleted: true },
      ].sort((p, q) => p.revision - q.revision || p.key.localeCompare(q.key)),
    );
    // Two elements writing the same key: both apply, in order (etcd: two Txns).
    const same = await s.commitBatch([[{ type: 'put', key: 'k', value: 1 }], [{ type: 'put', key: 'k', value: 2 }]]);
    expect(same[1]).toBeGreaterThan(same[0]);
    expect((await s.loadAll()).find((kv) => kv.key === 'k')).toMatchObject({ value: 2, createRevision: same[0], modRevision: same[1] });
    await s.close();
  });
}
