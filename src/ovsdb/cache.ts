/**
 * In-memory replica of monitored tables (like libovsdb's TableCache): rows by UUID per table,
 * fed by monitor updates, with typed change events. Callers read from memory instead of asking
 * the server.
 */
import { EventEmitter } from 'node:events';
import { decodeRow, defaultValue, type DatabaseSchema, type TableSchema } from './schema.js';
import { Uuid, valueEquals, type Row } from './values.js';
import { applyModify, type RowUpdate, type TableUpdates } from './updates.js';
import { OvsdbError } from './errors.js';

/** A row change. `old`/`new` are complete rows (monitored columns plus `_uuid`). */
export type ChangeEvent =
  | { type: 'insert'; table: string; uuid: string; new: Row }
  | { type: 'update'; table: string; uuid: string; old: Row; new: Row }
  | { type: 'delete'; table: string; uuid: string; old: Row };

type CacheEvents = { change: [event: ChangeEvent] };

/** The cache and the server disagree (e.g. a modify for an unknown row); resync to recover. */
export class CacheError extends OvsdbError {
  override name = 'CacheError';
}

export class TableCache extends EventEmitter<CacheEvents> {
  private readonly tables = new Map<string, Map<string, Row>>();
  private schema: DatabaseSchema;

  /**
   * @param columns table name to the monitored columns (undefined: all columns); rows are completed
   *   with default values for monitored columns the server omits.
   */
  constructor(
    schema: DatabaseSchema,
    private readonly columns: Record<string, readonly string[] | undefined>,
  ) {
    super();
    this.schema = schema;
    for (const [t, cols] of Object.entries(columns)) {
      const ts = this.tableSchema(t);
      const unknown = (cols ?? []).filter((c) => !ts.columns[c]);
      if (unknown.length) throw new CacheError(`table ${t} has no column(s) ${unknown.join(', ')}`);
      this.tables.set(t, new Map());
    }
  }

  /** Replaces the schema (after a reconnect to an upgraded server). */
  setSchema(schema: DatabaseSchema): void {
    this.schema = schema;
  }

  /** Rows of a table by UUID (read-only view; empty for unmonitored tables). */
  table(name: string): ReadonlyMap<string, Row> {
    return this.tables.get(name) ?? new Map();
  }

  /** One row, or undefined. */
  row(table: string, uuid: string): Row | undefined {
    return this.tables.get(table)?.get(uuid);
  }

  /** Rows of a table that satisfy the predicate. */
  find(table: string, predicate: (row: Row) => boolean = () => true): Row[] {
    return [...this.table(table).values()].filter(predicate);
  }

  /** Applies live updates (or monitor_cond_since changes), emitting one event per row change. */
  apply(updates: TableUpdates): void {
    for (const [table, changes] of Object.entries(updates)) {
      const rows = this.tables.get(table);
      if (!rows) continue;
      const ts = this.tableSchema(table);
      for (const u of changes) this.applyOne(table, ts, rows, u);
    }
  }

  /**
   * Replaces the contents of the tables present in `snapshot` with a full snapshot (the initial
   * rows of a new monitor), emitting inserts, updates and deletes for the difference, so listeners
   * see rows that vanished while the connection was down.
   */
  resync(snapshot: TableUpdates): void {
    for (const table of this.tables.keys()) {
      const ts = this.tableSchema(table);
      const rows = this.tables.get(table)!;
      const fresh = new Map<string, Row>();
      for (const u of snapshot[table] ?? []) {
        if (u.kind !== 'initial' && u.kind !== 'insert') {
          throw new CacheError(`resync of ${table}: expected initial rows, got ${u.kind} for ${u.uuid}`);
        }
        fresh.set(u.uuid, this.fullRow(ts, u));
      }
      for (const [uuid, old] of rows) {
        if (!fresh.has(uuid)) {
          rows.delete(uuid);
          this.emit('change', { type: 'delete', table, uuid, old });
        }
      }
      for (const [uuid, row] of fresh) {
        const old = rows.get(uuid);
        rows.set(uuid, row);
        if (!old) this.emit('change', { type: 'insert', table, uuid, new: row });
        else if (!rowsEqual(old, row)) this.emit('change', { type: 'update', table, uuid, old, new: row });
      }
    }
  }

  private applyOne(table: string, ts: TableSchema, rows: Map<string, Row>, u: RowUpdate): void {
    const old = rows.get(u.uuid);
    switch (u.kind) {
      case 'initial':
      case 'insert': {
        const row = this.fullRow(ts, u);
        rows.set(u.uuid, row);
        if (old) this.emit('change', { type: 'update', table, uuid: u.uuid, old, new: row });
        else this.emit('change', { type: 'insert', table, uuid: u.uuid, new: row });
        return;
      }
      case 'modify': {
        if (!old) throw new CacheError(`modify of unknown ${table} row ${u.uuid}`);
        const row = applyModify(old, u.row ?? {}, u.diff, ts);
        rows.set(u.uuid, row);
        this.emit('change', { type: 'update', table, uuid: u.uuid, old, new: row });
        return;
      }
      case 'delete':
        if (!old) return; // already gone: deleting is idempotent
        rows.delete(u.uuid);
        this.emit('change', { type: 'delete', table, uuid: u.uuid, old });
        return;
    }
  }

  private fullRow(ts: TableSchema, u: RowUpdate): Row {
    const row = decodeRow(u.row ?? {}, ts);
    for (const col of this.columns[ts.name] ?? Object.keys(ts.columns)) {
      if (col === '_version') continue;
      if (!(col in row)) row[col] = defaultValue(ts.columns[col].type);
    }
    row._uuid = new Uuid(u.uuid);
    return row;
  }

  private tableSchema(name: string): TableSchema {
    const ts = this.schema.tables[name];
    if (!ts) throw new CacheError(`table "${name}" is not in schema ${this.schema.name}`);
    return ts;
  }
}

function rowsEqual(a: Row, b: Row): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => k in b && valueEquals(a[k], b[k]));
}
