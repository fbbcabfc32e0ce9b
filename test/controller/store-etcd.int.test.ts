import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore } from '../../src/controller/store/etcd.js';
import type { Store } from '../../src/controller/store/types.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { storeContract } from './store-contract.js';

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd({ maxTxnOps: 16 });
});
afterAll(async () => {
  await etcd?.stop();
});

const prefixes = new WeakMap<Store, string>();
async function open(prefix = `/loom-${randomUUID()}/`): Promise<EtcdStore> {
  const s = await EtcdStore.open({ endpoints: [etcd.endpoint], prefix, maxTxnOps: 16 });
  prefixes.set(s, prefix);
  return s;
}

describe('EtcdStore contract', () => {
  storeContract({
    consecutive: false,
    create: () => open(),
    async reopen(s) {
      await s.close();
      return open(prefixes.get(s));
    },
  });
});

describe('EtcdStore', () => {
  it('keeps prefixes apart in one etcd: another writer leaves gaps, not foreign keys', async () => {
    const a = await open();
    const b = await open();
    const r1 = (await a.commit([{ type: 'put', key: 'k', value: 'a' }])).revision;
    await b.commit([{ type: 'put', key: 'k', value: 'b' }]);
    const r2 = (await a.commit([{ type: 'put', key: 'j', value: 'a' }])).revision;
    expect(r2).toBeGreaterThan(r1 + 1);
    expect((await a.loadAll()).map((kv) => [kv.key, kv.value])).toEqual([['j', 'a'], ['k', 'a']]);
    expect(await a.changesSince(r1)).toEqual([{ revision: r2, key: 'j', deleted: false }]);
    expect(a.id()).not.toBe(b.id());
    await a.close();
    await b.close();
  });

  it('splits batches to stay within --max-txn-ops and pages the load', async () => {
    const prefix = `/loom-${randomUUID()}/`;
    const s = await EtcdStore.open({ endpoints: [etcd.endpoint], prefix, maxTxnOps: 16, pageSize: 7 });
    const batch = Array.from({ length: 40 }, (_, i) => [{ type: 'put' as const, key: `e/${String(i).padStart(2, '0')}`, value: i }]);
    batch.push([...Array.from({ length: 50 }, (_, i) => ({ type: 'put' as const, key: `big/${String(i).padStart(2, '0')}`, value: i }))]);
    const revs = await s.commitBatch(batch);
    expect(revs).toHaveLength(41);
    for (let i = 1; i < revs.length; i++) expect(revs[i]).toBeGreaterThanOrEqual(revs[i - 1]);
    const all = await s.loadAll();
    expect(all).toHaveLength(90);
    expect(all.find((kv) => kv.key === 'e/39')?.value).toBe(39);
    await s.close();
  });

  it('fences commits: a second writer on the same prefix makes the stale one fail, not apply', async () => {
    const a = await open();
    const b = await open(prefixes.get(a));
    await a.commit([{ type: 'put', key: 'x', value: 1 }]);
    await expect(b.commit([{ type: 'put', key: 'x', value: 2 }])).rejects.toThrow(/moved past revision/);
    expect((await a.loadAll())[0].value).toBe(1);
    await a.close();
    await b.close();
  });

  it('learns compaction from etcd: history compacted by another client answers null, not a short list', async () => {
    const a = await open();
    const r1 = (await a.commit([{ type: 'put', key: 'k', value: 1 }])).revision;
    const r2 = (await a.commit([{ type: 'put', key: 'k', value: 2 }])).revision;
    const other = await open();
    await other.commit([{ type: 'put', key: 'z', value: 0 }]);
    await other.compact(other.revision());
    expect(a.compactedRevision()).toBe(0);
    expect(await a.changesSince(r1)).toBeNull();
    expect(a.compactedRevision()).toBeGreaterThanOrEqual(r2);
    expect((await a.loadAll())[0]).toMatchObject({ key: 'k', value: 2, createRevision: r1, modRevision: r2 });
    await a.close();
    await other.close();
  });

  it('fails to open with a clear error when etcd is unreachable', async () => {
    await expect(EtcdStore.open({ endpoints: ['http://127.0.0.1:1'], prefix: '/x/', timeoutMs: 500 })).rejects.toThrow(/cannot open etcd store http:\/\/127.0.0.1:1/);
  });
});
