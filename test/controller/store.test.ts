import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/controller/store/sqlite.js';
import type { Store } from '../../src/controller/store/types.js';
import { storeContract } from './store-contract.js';

describe('SqliteStore contract', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'loom-store-'));
  const files = new WeakMap<Store, string>();
  let n = 0;
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  storeContract({
    consecutive: true,
    async create() {
      const file = path.join(dir, `s${n++}.db`);
      const s = new SqliteStore({ path: file });
      files.set(s, file);
      return s;
    },
    async reopen(s) {
      await s.close();
      return new SqliteStore({ path: files.get(s)! });
    },
  });
});

describe('SqliteStore', () => {
  it('starts at revision 0 and numbers commits 1, 2, ...', async () => {
    const s = new SqliteStore({ path: ':memory:' });
    expect(s.revision()).toBe(0);
    expect((await s.commit([{ type: 'put', key: 'a', value: 1 }])).revision).toBe(1);
    expect(await s.commitBatch([[{ type: 'put', key: 'b', value: 1 }], [{ type: 'put', key: 'c', value: 1 }]])).toEqual([2, 3]);
    await s.close();
  });
});
