/**
 * Database schema (RFC 7047 section 3.2) as returned by `get_schema`, parsed into a normalised
 * form, plus column-typed decoding of wire values.
 */
import {
  OvsMap,
  OvsSet,
  OvsdbValueError,
  Uuid,
  atomFromJSON,
  valueFromJSON,
  type Atom,
  type Row,
  type Value,
} from './values.js';

export type AtomicType = 'integer' | 'real' | 'boolean' | 'string' | 'uuid';

/** A `<base-type>`: atomic type plus optional constraints. */
export interface BaseType {
  type: AtomicType;
  enum?: OvsSet;
  refTable?: string;
  refType?: 'strong' | 'weak';
  minInteger?: number;
  maxInteger?: number;
  minLength?: number;
  maxLength?: number;
}

/** A normalised column `<type>`: `value` is present for maps; `max` may be Infinity. */
export interface ColumnType {
  key: BaseType;
  value?: BaseType;
  min: number;
  max: number;
}

export interface ColumnSchema {
  type: ColumnType;
  ephemeral: boolean;
  mutable: boolean;
}

export interface TableSchema {
  name: string;
  columns: Record<string, ColumnSchema>;
  isRoot: boolean;
  maxRows?: number;
  indexes: string[][];
}

export interface DatabaseSchema {
  name: string;
  version: string;
  cksum?: string;
  tables: Record<string, TableSchema>;
}

/** Thrown when a schema document is malformed. */
export class SchemaError extends Error {
  override name = 'SchemaError';
}

const ATOMIC_TYPES = new Set(['integer', 'real', 'boolean', 'string', 'uuid']);
const UUID_COLUMN: ColumnSchema = {
  type: { key: { type: 'uuid' }, min: 1, max: 1 },
  ephemeral: false,
  mutable: false,
};
const VERSION_COLUMN = UUID_COLUMN;

/** Parses the result of `get_schema`. */
export function parseSchema(json: unknown): DatabaseSchema {
  const o = asObject(json, 'schema');
  if (typeof o.name !== 'string') throw new SchemaError('schema has no "name"');
  const tablesJson = asObject(o.tables, `schema ${o.name}: tables`);
  const tables: Record<string, TableSchema> = {};
  for (const [tname, tjson] of Object.entries(tablesJson)) {
    tables[tname] = parseTable(tname, tjson);
  }
  return {
    name: o.name,
    version: typeof o.version === 'string' ? o.version : '',
    ...(typeof o.cksum === 'string' ? { cksum: o.cksum } : {}),
    tables,
  };
}

function parseTable(name: string, json: unknown): TableSchema {
  const o = asObject(json, `table ${name}`);
  const cols = asObject(o.columns, `table ${name}: columns`);
  const columns: Record<string, ColumnSchema> = {};
  for (const [cname, cjson] of Object.entries(cols)) {
    const c = asObject(cjson, `column ${name}.${cname}`);
    columns[cname] = {
      type: parseColumnType(c.type, `${name}.${cname}`),
      ephemeral: c.ephemeral === true,
      mutable: c.mutable !== false,
    };
  }
  columns._uuid = UUID_COLUMN;
  columns._version = VERSION_COLUMN;
  return {
    name,
    columns,
    isRoot: o.isRoot === true,
    ...(typeof o.maxRows === 'number' ? { maxRows: o.maxRows } : {}),
    indexes: Array.isArray(o.indexes) ? (o.indexes as string[][]) : [],
  };
}

/** Parses a column `<type>` into its normalised form. */
export function parseColumnType(json: unknown, where = 'column'): ColumnType {
  if (typeof json === 'string') return { key: parseBaseType(json, where), min: 1, max: 1 };
  const o = asObject(json, `${where}: type`);
  const max = o.max === undefined ? 1 : o.max === 'unlimited' ? Infinity : o.max;
  const min = o.min === undefined ? 1 : o.min;
  if (typeof min !== 'number' || typeof max !== 'number') {
    throw new SchemaError(`${where}: bad min/max ${JSON.stringify([o.min, o.max])}`);
  }
  return {
    key: parseBaseType(o.key, `${where}: key`),
    ...(o.value !== undefined ? { value: parseBaseType(o.value, `${where}: value`) } : {}),
    min,
    max,
  };
}

function parseBaseType(json: unknown, where: string): BaseType {
  if (typeof json === 'string') {
    if (!ATOMIC_TYPES.has(json)) throw new SchemaError(`${where}: unknown atomic type "${json}"`);
    return { type: json as AtomicType };
  }
  const o = asObject(json, where);
  if (typeof o.type !== 'string' || !ATOMIC_TYPES.has(o.type)) {
    throw new SchemaError(`${where}: unknown atomic type ${JSON.stringify(o.type)}`);
  }
  const base: BaseType = { type: o.type as AtomicType };
  if (o.enum !== undefined) {
    const e = o.enum;
    base.enum =
      Array.isArray(e) && e[0] === 'set' && Array.isArray(e[1])
        ? new OvsSet(e[1].map(atomFromJSON))
        : new OvsSet([atomFromJSON(e)]);
  }
  if (typeof o.refTable === 'string') base.refTable = o.refTable;
  if (o.refType === 'weak' || o.refType === 'strong') base.refType = o.refType;
  else if (base.refTable) base.refType = 'strong';
  for (const k of ['minInteger', 'maxInteger', 'minLength', 'maxLength'] as const) {
    if (typeof o[k] === 'number') base[k] = o[k] as number;
  }
  return base;
}

/** True for map columns. */
export function isMapType(t: ColumnType): boolean {
  return t.value !== undefined;
}

/** True for set columns, including optional (0..1) scalars. */
export function isSetType(t: ColumnType): boolean {
  return t.value === undefined && !(t.min === 1 && t.max === 1);
}

/** Decodes a wire value using the column's type: sets always become OvsSet, maps OvsMap. */
export function decodeColumnValue(json: unknown, type: ColumnType): Value {
  if (isMapType(type)) {
    if (Array.isArray(json) && json[0] === 'map' && Array.isArray(json[1])) {
      return new OvsMap(
        json[1].map((pair: unknown): [Atom, Atom] => {
          if (!Array.isArray(pair) || pair.length !== 2) {
            throw new OvsdbValueError(`not a map pair: ${JSON.stringify(pair)}`);
          }
          return [atomFromJSON(pair[0]), atomFromJSON(pair[1])];
        }),
      );
    }
    throw new OvsdbValueError(`expected a map, got ${JSON.stringify(json)}`);
  }
  if (isSetType(type)) {
    if (Array.isArray(json) && json[0] === 'set' && Array.isArray(json[1])) {
      return new OvsSet(json[1].map(atomFromJSON));
    }
    return new OvsSet([atomFromJSON(json)]);
  }
  return atomFromJSON(json);
}

/** Decodes a row's wire form with the table schema; unknown columns are decoded schema-less. */
export function decodeRow(json: unknown, table: TableSchema): Row {
  const o = asObject(json, `row of ${table.name}`);
  const row: Row = {};
  for (const [k, v] of Object.entries(o)) {
    const col = table.columns[k];
    row[k] = col ? decodeColumnValue(v, col.type) : valueFromJSON(v);
  }
  return row;
}

/**
 * The default value of a column type: what ovsdb-server omits from update2 rows. Empty for
 * optional columns, sets and maps; 0, false, "" or the all-zero UUID for scalars.
 */
export function defaultValue(type: ColumnType): Value {
  if (isMapType(type)) return new OvsMap();
  if (isSetType(type)) return new OvsSet();
  switch (type.key.type) {
    case 'integer':
    case 'real':
      return 0;
    case 'boolean':
      return false;
    case 'string':
      return '';
    case 'uuid':
      return new Uuid('00000000-0000-0000-0000-000000000000');
  }
}

/** Reads a `_uuid` column. */
export function rowUuid(row: Row): string | undefined {
  const u = row._uuid;
  return u instanceof Uuid ? u.uuid : undefined;
}

function asObject(json: unknown, what: string): Record<string, unknown> {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SchemaError(`${what}: expected a JSON object, got ${JSON.stringify(json)?.slice(0, 80)}`);
  }
  return json as Record<string, unknown>;
}
