/**
 * Typed OVSDB values (RFC 7047 section 5.1) and their JSON wire forms.
 *
 * Atoms are JS strings, numbers and booleans, plus {@link Uuid} and {@link NamedUuid}.
 * Sets and maps are {@link OvsSet} and {@link OvsMap}; every class has a `toJSON()` that yields the
 * wire form, so operations containing them can be passed to `JSON.stringify` as they are.
 */

/** A row UUID: wire form `["uuid", "<36 chars>"]`. */
export class Uuid {
  constructor(readonly uuid: string) {
    if (!UUID_RE.test(uuid)) throw new OvsdbValueError(`not a UUID: ${JSON.stringify(uuid)}`);
  }
  toJSON(): ['uuid', string] {
    return ['uuid', this.uuid];
  }
  toString(): string {
    return this.uuid;
  }
  equals(other: unknown): boolean {
    return other instanceof Uuid && other.uuid === this.uuid;
  }
}

/** A row inserted earlier in the same transaction: wire form `["named-uuid", "<id>"]`. */
export class NamedUuid {
  constructor(readonly name: string) {
    if (!ID_RE.test(name)) throw new OvsdbValueError(`not a valid uuid-name: ${JSON.stringify(name)}`);
  }
  toJSON(): ['named-uuid', string] {
    return ['named-uuid', this.name];
  }
  toString(): string {
    return this.name;
  }
}

/** An OVSDB atom. Integers and reals are both JS numbers. */
export type Atom = string | number | boolean | Uuid | NamedUuid;

/**
 * An OVSDB set. A set of exactly one element is sent as the bare atom (RFC 7047 permits both
 * forms; this is the shorter one).
 */
export class OvsSet<T extends Atom = Atom> {
  readonly values: readonly T[];
  constructor(values: Iterable<T> = []) {
    this.values = [...values];
  }
  get size(): number {
    return this.values.length;
  }
  has(atom: Atom): boolean {
    return this.values.some((v) => atomEquals(v, atom));
  }
  /** The single element of a 0-or-1 set ("optional" column), or undefined. */
  first(): T | undefined {
    return this.values[0];
  }
  toJSON(): unknown {
    if (this.values.length === 1) return atomToJSON(this.values[0]);
    return ['set', this.values.map(atomToJSON)];
  }
}

/** An OVSDB map. Keys are unique; insertion order is kept. */
export class OvsMap<K extends Atom = Atom, V extends Atom = Atom> {
  readonly entries: readonly (readonly [K, V])[];
  constructor(entries: Iterable<readonly [K, V]> = []) {
    const out: [K, V][] = [];
    for (const [k, v] of entries) {
      const i = out.findIndex(([ok]) => atomEquals(ok, k));
      if (i >= 0) out[i] = [k, v];
      else out.push([k, v]);
    }
    this.entries = out;
  }
  /** Builds a string-to-string map (the shape of `external_ids`, `options`, `other_config`). */
  static fromRecord(record: Record<string, string> | Map<string, string>): OvsMap<string, string> {
    return new OvsMap(record instanceof Map ? record.entries() : Object.entries(record));
  }
  get size(): number {
    return this.entries.length;
  }
  get(key: Atom): V | undefined {
    return this.entries.find(([k]) => atomEquals(k, key))?.[1];
  }
  has(key: Atom): boolean {
    return this.entries.some(([k]) => atomEquals(k, key));
  }
  /** Plain object view; keys are stringified. */
  toRecord(): Record<string, V> {
    const out: Record<string, V> = {};
    for (const [k, v] of this.entries) out[String(k)] = v;
    return out;
  }
  toJSON(): ['map', unknown[]] {
    return ['map', this.entries.map(([k, v]) => [atomToJSON(k), atomToJSON(v)])];
  }
}

/** Any OVSDB value: an atom, a set or a map. */
export type Value = Atom | OvsSet | OvsMap;

/** A row as returned by select or a monitor: column name to value. */
export type Row = Record<string, Value>;

/** Thrown when a JSON value is not a valid OVSDB value. */
export class OvsdbValueError extends Error {
  override name = 'OvsdbValueError';
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const ID_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Convenience constructors. */
export const uuid = (s: string): Uuid => new Uuid(s);
export const namedUuid = (s: string): NamedUuid => new NamedUuid(s);
export const set = <T extends Atom>(...values: T[]): OvsSet<T> => new OvsSet(values);
export const map = (record: Record<string, string> | Map<string, string>): OvsMap<string, string> =>
  OvsMap.fromRecord(record);

/** Equality of atoms (UUIDs by value). */
export function atomEquals(a: Atom, b: Atom): boolean {
  if (a instanceof Uuid) return b instanceof Uuid && a.uuid === b.uuid;
  if (a instanceof NamedUuid) return b instanceof NamedUuid && a.name === b.name;
  return a === b;
}

/** Deep equality of values; sets and maps compare without regard to order. */
export function valueEquals(a: Value, b: Value): boolean {
  if (a instanceof OvsSet) {
    return b instanceof OvsSet && a.size === b.size && a.values.every((v) => b.has(v));
  }
  if (a instanceof OvsMap) {
    if (!(b instanceof OvsMap) || a.size !== b.size) return false;
    return a.entries.every(([k, v]) => {
      const other = b.get(k);
      return other !== undefined && atomEquals(v, other);
    });
  }
  if (b instanceof OvsSet || b instanceof OvsMap) return false;
  return atomEquals(a, b);
}

/** Wire form of an atom. */
export function atomToJSON(a: Atom): unknown {
  return typeof a === 'object' ? a.toJSON() : a;
}

/** Wire form of any value. */
export function valueToJSON(v: Value): unknown {
  return typeof v === 'object' ? v.toJSON() : v;
}

/** Decodes an atom's wire form. */
export function atomFromJSON(json: unknown): Atom {
  if (typeof json === 'string' || typeof json === 'boolean') return json;
  if (typeof json === 'number') return json;
  if (Array.isArray(json) && json.length === 2 && typeof json[1] === 'string') {
    if (json[0] === 'uuid') return new Uuid(json[1]);
    if (json[0] === 'named-uuid') return new NamedUuid(json[1]);
  }
  throw new OvsdbValueError(`not an OVSDB atom: ${JSON.stringify(json)}`);
}

/**
 * Decodes any value's wire form without a schema. Without a schema a one-element set is
 * indistinguishable from an atom, so it is returned as the atom; use `decodeColumnValue` from
 * schema.ts for column-typed decoding.
 */
export function valueFromJSON(json: unknown): Value {
  if (Array.isArray(json) && json.length === 2 && Array.isArray(json[1])) {
    if (json[0] === 'set') return new OvsSet(json[1].map(atomFromJSON));
    if (json[0] === 'map') return new OvsMap(json[1].map(pairFromJSON));
  }
  return atomFromJSON(json);
}

function pairFromJSON(json: unknown): [Atom, Atom] {
  if (!Array.isArray(json) || json.length !== 2) {
    throw new OvsdbValueError(`not a map pair: ${JSON.stringify(json)}`);
  }
  return [atomFromJSON(json[0]), atomFromJSON(json[1])];
}

/** Decodes a row's wire form without a schema (see {@link valueFromJSON}). */
export function rowFromJSON(json: unknown): Row {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new OvsdbValueError(`not a row object: ${JSON.stringify(json)}`);
  }
  const row: Row = {};
  for (const [k, v] of Object.entries(json)) row[k] = valueFromJSON(v);
  return row;
}
