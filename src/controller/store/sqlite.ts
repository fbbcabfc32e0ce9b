/**
 * SQLite store (better-sqlite3, WAL). Each commit is one SQLite transaction that writes the
 * keys, appends to the change log and bumps the revision counter.
 *
 * Durability: `synchronous=FULL` by default: the WAL is fsynced at every commit, so a commit
 * acknowledged to a client survives kill -9 AND power loss. `NORMAL` (option `sync: 'normal'`)
 * still survives kill -9 (the WAL is in the OS page cache) but a power cut may lose the last
 * commits; it is ~10x faster on slow disks.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import type { CommitResult, KeyValue, Store, StoreChange, StoreOp } from './types.js';
import { StoreError } from './types.js';

export interface SqliteStoreOptions {
  /** Database file, or ':memory:' for tests. */
  path: string;
  sync?: 'full' | 'normal';
}

interface KvRow {
  key: string;
  value: string;
  create_rev: number;
  mod_rev: number;
}

/** Opens (creating if needed) a SQLite store. */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private rev: number;
  private compacted: number;
  private readonly storeId: string;
  private readonly stmt: {
    getKv: Database.Statement<[string], { create_rev: number }>;
    putKv: Database.Statement<[string, string, number, number]>;
    delKv: Database.Statement<[string]>;
    addChange: Database.Statement<[number, string, number]>;
    setMeta: Database.Statement<[number, string]>;
  };

  constructor(opts: SqliteStoreOptions) {
    try {
      this.db = new Database(opts.path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${opts.sync === 'normal' ? 'NORMAL' : 'FULL'}`);
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS kv (
          key TEXT PRIMARY KEY, value TEXT NOT NULL,
          create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS changes (
          rev INTEGER NOT NULL, key TEXT NOT NULL, deleted INTEGER NOT NULL,
          PRIMARY KEY (rev, key)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
        CREATE TABLE IF NOT EXISTS info (name TEXT PRIMARY KEY, value TEXT NOT NULL);
      `);
      this.db.prepare("INSERT OR IGNORE INTO info VALUES ('id', ?)").run(randomUUID());
    } catch (err) {
      throw new StoreError(`cannot open SQLite store ${opts.path}: ${(err as Error).message}`);
    }
    const meta = (name: string): number =>
      (this.db.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: number }).value;
    this.rev = meta('revision');
    this.storeId = (this.db.prepare("SELECT value FROM info WHERE name = 'id'").get() as { value: string }).value;
    this.compacted = meta('compacted');
    this.stmt = {
      getKv: this.db.prepare('SELECT create_rev FROM kv WHERE key = ?'),
      putKv: this.db.prepare(
        'INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?, ?, ?, ?) ' +
          'ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev',
      ),
      delKv: this.db.prepare('DELETE FROM kv WHERE key = ?'),
      addChange: this.db.prepare('INSERT OR REPLACE INTO changes (rev, key, deleted) VALUES (?, ?, ?)'),
      setMeta: this.db.prepare('UPDATE meta SET value = ? WHERE name = ?'),
    };
  }

  id(): string {
    return this.storeId;
  }

  revision(): number {
    return this.rev;
  }

  compactedRevision(): number {
    return this.compacted;
  }

  async loadAll(): Promise<KeyValue[]> {
    const rows = this.db.prepare('SELECT key, value, create_rev, mod_rev FROM kv ORDER BY key').all() as KvRow[];
    return rows.map((r) => ({
      key: r.key,
      value: JSON.parse(r.value) as unknown,
      createRevision: r.create_rev,
      modRevision: r.mod_rev,
    }));
  }

  private readonly commitTx = (ops: StoreOp[], rev: number): void => {
    for (const op of ops) {
      if (op.type === 'put') {
        this.stmt.putKv.run(op.key, JSON.stringify(op.value), rev, rev);
        this.stmt.addChange.run(rev, op.key, 0);
      } else {
        this.stmt.delKv.run(op.key);
        this.stmt.addChange.run(rev, op.key, 1);
      }
    }
    this.stmt.setMeta.run(rev, 'revision');
  };

  async commit(ops: StoreOp[]): Promise<CommitResult> {
    if (ops.length === 0) return { revision: this.rev };
    const [revision] = await this.commitBatch([ops]);
    return { revision };
  }

  async commitBatch(batch: StoreOp[][]): Promise<number[]> {
    const revs: number[] = [];
    const nonEmpty = batch.filter((ops) => ops.length > 0);
    if (nonEmpty.length === 0) return revs;
    try {
      this.db.transaction(() => {
        let rev = this.rev;
        for (const ops of nonEmpty) this.commitTx(ops, ++rev);
        for (let r = this.rev + 1; r <= rev; r++) revs.push(r);
      })();
    } catch (err) {
      throw new StoreError(`store commit of revisions ${this.rev + 1}..${this.rev + nonEmpty.length} failed: ${(err as Error).message}`);
    }
    this.rev += nonEmpty.length;
    return revs;
  }

  async changesSince(after: number): Promise<StoreChange[] | null> {
    if (after < this.compacted) return null;
    const rows = this.db
      .prepare('SELECT rev, key, deleted FROM changes WHERE rev > ? ORDER BY rev, key')
      .all(after) as { rev: number; key: string; deleted: number }[];
    return rows.map((r) => ({ revision: r.rev, key: r.key, deleted: r.deleted === 1 }));
  }

  async compact(upTo: number): Promise<void> {
    const target = Math.min(upTo, this.rev);
    if (target <= this.compacted) return;
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM changes WHERE rev <= ?').run(target);
      this.stmt.setMeta.run(target, 'compacted');
    })();
    this.compacted = target;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
