import { describe, expect, it } from 'vitest';
import {
  NamedUuid,
  OvsMap,
  OvsSet,
  OvsdbValueError,
  Uuid,
  map,
  namedUuid,
  rowFromJSON,
  set,
  uuid,
  valueEquals,
  valueFromJSON,
  valueToJSON,
} from '../../src/ovsdb/values.js';
import { decodeColumnValue, parseColumnType, parseSchema } from '../../src/ovsdb/schema.js';
import { readFileSync } from 'node:fs';

const U1 = '3c12f491-7146-42d3-b309-e77279ab198f';
const U2 = '688bcd79-6b71-4038-b67f-800c9fbf4916';

describe('OVSDB values', () => {
  it('encodes atoms, uuids and named uuids to their wire forms', () => {
    expect(valueToJSON('x')).toBe('x');
    expect(valueToJSON(7)).toBe(7);
    expect(valueToJSON(false)).toBe(false);
    expect(valueToJSON(uuid(U1))).toEqual(['uuid', U1]);
    expect(valueToJSON(namedUuid('row1'))).toEqual(['named-uuid', 'row1']);
  });

  it('encodes a set of one as the bare atom and other sets as ["set", ...]', () => {
    expect(valueToJSON(set('a'))).toBe('a');
    expect(valueToJSON(set())).toEqual(['set', []]);
    expect(valueToJSON(set(uuid(U1), uuid(U2)))).toEqual(['set', [['uuid', U1], ['uuid', U2]]]);
  });

  it('encodes maps from records and Maps, last duplicate key winning', () => {
    expect(valueToJSON(map({ a: '1', b: '2' }))).toEqual(['map', [['a', '1'], ['b', '2']]]);
    expect(valueToJSON(map(new Map([['k', 'v']])))).toEqual(['map', [['k', 'v']]]);
    expect(new OvsMap([['a', 1], ['a', 2]]).entries).toEqual([['a', 2]]);
  });

  it('decodes wire forms back into typed values', () => {
    const s = valueFromJSON(['set', [['uuid', U1], 3]]);
    expect(s).toBeInstanceOf(OvsSet);
    expect((s as OvsSet).has(uuid(U1))).toBe(true);
    const m = valueFromJSON(['map', [['k', ['uuid', U2]]]]) as OvsMap;
    expect(m.get('k')).toEqual(uuid(U2));
    expect(valueFromJSON(['named-uuid', 'n'])).toBeInstanceOf(NamedUuid);
    expect(rowFromJSON({ a: 1, b: ['uuid', U1] })).toEqual({ a: 1, b: new Uuid(U1) });
  });

  it('round-trips through JSON text', () => {
    const v = set(uuid(U1), uuid(U2));
    expect(valueEquals(valueFromJSON(JSON.parse(JSON.stringify(v))), v)).toBe(true);
  });

  it('compares sets and maps regardless of order', () => {
    expect(valueEquals(set(1, 2), set(2, 1))).toBe(true);
    expect(valueEquals(set(1, 2), set(1))).toBe(false);
    expect(valueEquals(map({ a: '1', b: '2' }), map({ b: '2', a: '1' }))).toBe(true);
    expect(valueEquals(map({ a: '1' }), map({ a: '2' }))).toBe(false);
    expect(valueEquals(uuid(U1), uuid(U1))).toBe(true);
    expect(valueEquals(set('a'), 'a')).toBe(false);
  });

  it('rejects malformed input with the offending value in the message', () => {
    expect(() => uuid('not-a-uuid')).toThrow(/not a UUID: "not-a-uuid"/);
    expect(() => namedUuid('1bad')).toThrow(OvsdbValueError);
    expect(() => valueFromJSON({ x: 1 })).toThrow(/not an OVSDB atom: \{"x":1\}/);
    expect(() => valueFromJSON(['map', [['a']]])).toThrow(/not a map pair/);
  });
});

describe('column-typed decoding', () => {
  it('turns a bare atom into a set of one for set columns (the wire cannot tell them apart)', () => {
    const ports = parseColumnType({ key: { type: 'uuid', refTable: 'Port' }, min: 0, max: 'unlimited' });
    const v = decodeColumnValue(['uuid', U1], ports);
    expect(v).toBeInstanceOf(OvsSet);
    expect((v as OvsSet).values).toEqual([uuid(U1)]);
    expect(ports.max).toBe(Infinity);
    expect(ports.key.refType).toBe('strong');
  });

  it('keeps scalars as atoms and optional scalars as 0..1 sets', () => {
    expect(decodeColumnValue('x', parseColumnType('string'))).toBe('x');
    const ofport = parseColumnType({ key: 'integer', min: 0, max: 1 });
    expect(decodeColumnValue(['set', []], ofport)).toEqual(new OvsSet());
    expect((decodeColumnValue(5, ofport) as OvsSet).first()).toBe(5);
  });

  it('parses the Open_vSwitch schema shipped with OVS 3.1', () => {
    const json: unknown = JSON.parse(readFileSync(new URL('./fixtures/vswitch.ovsschema', import.meta.url), 'utf8'));
    const schema = parseSchema(json);
    expect(schema.name).toBe('Open_vSwitch');
    expect(schema.tables.Open_vSwitch.isRoot).toBe(true);
    expect(schema.tables.Interface.columns.options.type.value?.type).toBe('string');
    expect(schema.tables.Bridge.columns.fail_mode.type.key.enum?.has('secure')).toBe(true);
    expect(schema.tables.Bridge.columns._uuid.type.key.type).toBe('uuid');
  });

  it('reports where a schema is malformed', () => {
    expect(() => parseSchema({ name: 'x', tables: { T: { columns: { c: { type: 'float' } } } } })).toThrow(
      /T\.c: unknown atomic type "float"/,
    );
  });
});
