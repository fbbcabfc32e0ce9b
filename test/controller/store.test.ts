import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/controller/store/sqlite.js';

describe('SqliteStore', () => {
  it('gives each commit one new revision and keeps etcd-style create/mod revisions across reopen', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'loom-store-'));
    try {
      const file = path.join(dir, 's.db');
      const s = new SqliteStore({ path: file });
      expect(s.revision()).toBe(0);
      expect((await s.commit([{ type: 'put', key: 'a', value: { n: 1 } }, { type: 'put', key: 'b', value: 2 }])).revision).toBe(1);
      expect((await s.commit([{ type: 'put', key: 'a', value: { n: 3 } }])).revision).toBe(2);
      expect((await s.commit([{ type: 'delete', key: 'b' }])).revision).toBe(3);
      expect((await s.commit([])).revision).toBe(3);
      await s.close();
      const r = new SqliteStore({ path: file });
      expect(r.revision()).toBe(3);
      expect(await r.loadAll()).toEqual([{ key: 'a', value: { n: 3 }, createRevision: 1, modRevision: 2 }]);
      expect(await r.changesSince(1)).toEqual([
        { revision: 2, key: 'a', deleted: false },
        { revision: 3, key: 'b', deleted: true },
      ]);
      await r.compact(2);
      expect(await r.changesSince(1)).toBeNull();
      expect(await r.changesSince(2)).toEqual([{ revision: 3, key: 'b', deleted: true }]);
      await r.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SqliteStore group commit', () => {
  it('gives every non-empty element of a batch its own consecutive revision', async () => {
    const s = new SqliteStore({ path: ':memory:' });
    await s.commit([{ type: 'put', key: 'x', value: 0 }]);
    expect(await s.commitBatch([[{ type: 'put', key: 'a', value: 1 }], [], [{ type: 'put', key: 'b', value: 2 }, { type: 'delete', key: 'x' }]])).toEqual([2, 3]);
    expect(s.revision()).toBe(3);
    expect(await s.changesSince(1)).toEqual([
      { revision: 2, key: 'a', deleted: false },
      { revision: 3, key: 'b', deleted: false },
      { revision: 3, key: 'x', deleted: true },
    ]);
    await s.close();
  });
});
