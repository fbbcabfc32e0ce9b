/**
 * Monitor updates: the wire formats of `update` (monitor), `update2` (monitor_cond) and `update3`
 * (monitor_cond_since) normalised into one shape, and application of update2 "modify" diffs.
 */
import { decodeColumnValue, isMapType, isSetType, type TableSchema } from './schema.js';
import { OvsMap, OvsSet, Uuid, atomEquals, type Atom, type Row, type Value } from './values.js';
import { OvsdbError } from './errors.js';

/**
 * One row's change. `row` holds wire JSON:
 * - initial/insert: the full row;
 * - modify with `diff: false` (format 1): the new values of the monitored columns;
 * - modify with `diff: true` (formats 2/3): per-column diffs to apply with {@link applyModify};
 * - delete: nothing (format 2) or the old row (format 1).
 */
export interface RowUpdate {
  uuid: string;
  kind: 'initial' | 'insert' | 'modify' | 'delete';
  row?: Record<string, unknown>;
  diff: boolean;
}

/** Table name to row changes, in the order the server sent them. */
export type TableUpdates = Record<string, RowUpdate[]>;

/** Thrown for update JSON that does not follow RFC 7047 / ovsdb-server(7). */
export class UpdateFormatError extends OvsdbError {
  override name = 'UpdateFormatError';
}

/**
 * Normalises format-1 `<table-updates>` (from `monitor`). `initial` says whether these are the
 * rows of the monitor reply (inserts there are the initial contents).
 */
export function normalizeUpdates1(json: unknown, initial: boolean): TableUpdates {
  const out: TableUpdates = {};
  for (const [table, rows] of entries(json, 'table-updates')) {
    const list: RowUpdate[] = (out[table] = []);
    for (const [uuid, ru] of entries(rows, `table-update of ${table}`)) {
      const u = obj(ru, `row-update ${table} ${uuid}`);
      const oldRow = u.old === undefined ? undefined : obj(u.old, 'old row');
      const newRow = u.new === undefined ? undefined : obj(u.new, 'new row');
      if (newRow && oldRow) list.push({ uuid, kind: 'modify', row: newRow, diff: false });
      else if (newRow) list.push({ uuid, kind: initial ? 'initial' : 'insert', row: newRow, diff: false });
      else list.push({ uuid, kind: 'delete', ...(oldRow ? { row: oldRow } : {}), diff: false });
    }
  }
  return out;
}

/** Normalises format-2 `<table-updates2>` (from `monitor_cond` and `monitor_cond_since`). */
export function normalizeUpdates2(json: unknown): TableUpdates {
  const out: TableUpdates = {};
  for (const [table, rows] of entries(json, 'table-updates2')) {
    const list: RowUpdate[] = (out[table] = []);
    for (const [uuid, ru] of entries(rows, `table-update2 of ${table}`)) {
      const u = obj(ru, `row-update2 ${table} ${uuid}`);
      if (u.initial !== undefined) list.push({ uuid, kind: 'initial', row: obj(u.initial, 'initial'), diff: false });
      else if (u.insert !== undefined) list.push({ uuid, kind: 'insert', row: obj(u.insert, 'insert'), diff: false });
      else if (u.modify !== undefined) list.push({ uuid, kind: 'modify', row: obj(u.modify, 'modify'), diff: true });
      else if ('delete' in u) list.push({ uuid, kind: 'delete', diff: false });
      else throw new UpdateFormatError(`row-update2 ${table} ${uuid}: no initial/insert/modify/delete`);
    }
  }
  return out;
}

/**
 * Applies a "modify" to a decoded row and returns the new row (the input is not changed).
 * With `diff`, set columns toggle the listed elements, map columns add, remove (same value) or
 * replace (other value) keys, and columns holding at most one value (scalars and optional
 * values) take the new value, which is what ovsdb-server 3.1 sends for them.
 */
export function applyModify(old: Row, changes: Record<string, unknown>, diff: boolean, table: TableSchema): Row {
  const row: Row = { ...old };
  for (const [col, json] of Object.entries(changes)) {
    const schema = table.columns[col];
    if (!schema) throw new UpdateFormatError(`modify of ${table.name}: unknown column "${col}"`);
    const value = decodeColumnValue(json, schema.type);
    if (!diff) row[col] = value;
    else if (isMapType(schema.type)) row[col] = applyMapDiff(asMap(old[col]), value as OvsMap);
    else if (isSetType(schema.type) && schema.type.max > 1) row[col] = applySetDiff(asSet(old[col]), value as OvsSet);
    else row[col] = value;
  }
  return row;
}

function applySetDiff(old: OvsSet, diff: OvsSet): OvsSet {
  const values: Atom[] = [...old.values];
  for (const atom of diff.values) {
    const i = values.findIndex((v) => atomEquals(v, atom));
    if (i >= 0) values.splice(i, 1);
    else values.push(atom);
  }
  return new OvsSet(values);
}

function applyMapDiff(old: OvsMap, diff: OvsMap): OvsMap {
  const entries: [Atom, Atom][] = old.entries.map(([k, v]) => [k, v]);
  for (const [k, v] of diff.entries) {
    const i = entries.findIndex(([ek]) => atomEquals(ek, k));
    if (i < 0) entries.push([k, v]);
    else if (atomEquals(entries[i][1], v)) entries.splice(i, 1);
    else entries[i] = [k, v];
  }
  return new OvsMap(entries);
}

function asSet(v: Value | undefined): OvsSet {
  if (v === undefined) return new OvsSet();
  return v instanceof OvsSet ? v : new OvsSet([v as Atom]);
}

function asMap(v: Value | undefined): OvsMap {
  return v instanceof OvsMap ? v : new OvsMap();
}

/** Adds the `_uuid` column a monitor row lacks. */
export function withUuid(row: Row, uuid: string): Row {
  return { ...row, _uuid: new Uuid(uuid) };
}

function entries(json: unknown, what: string): [string, unknown][] {
  return Object.entries(obj(json, what));
}

function obj(json: unknown, what: string): Record<string, unknown> {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new UpdateFormatError(`${what}: expected a JSON object, got ${JSON.stringify(json)?.slice(0, 120)}`);
  }
  return json as Record<string, unknown>;
}
