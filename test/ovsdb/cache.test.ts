import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it } from 'vitest';
import { CacheError, TableCache, type ChangeEvent } from '../../src/ovsdb/cache.js';
import { parseSchema } from '../../src/ovsdb/schema.js';
import { normalizeUpdates1, normalizeUpdates2 } from '../../src/ovsdb/updates.js';
import { OvsMap, OvsSet, Uuid } from '../../src/ovsdb/values.js';

const schema = parseSchema(JSON.parse(readFileSync(new URL('./fixtures/vswitch.ovsschema', import.meta.url), 'utf8')));
const B1 = '11111111-1111-1111-1111-111111111111';
const B2 = '22222222-2222-2222-2222-222222222222';
const P1 = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa';
const P2 = 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb';
const P3 = 'cccccccc-cccc-cccc-cccc-cccccccccccc';

let cache: TableCache;
let events: ChangeEvent[];

beforeEach(() => {
  cache = new TableCache(schema, { Bridge: ['name', 'ports', 'external_ids', 'fail_mode', 'stp_enable'] });
  events = [];
  cache.on('change', (e) => events.push(e));
});

const bridge = (uuid: string) => cache.row('Bridge', uuid)!;

describe('TableCache with update2 (monitor_cond) updates', () => {
  it('fills monitored columns the server omitted with their defaults and adds _uuid', () => {
    cache.apply(normalizeUpdates2({ Bridge: { [B1]: { insert: { name: 'br0' } } } }));
    expect(bridge(B1)).toEqual({
      name: 'br0',
      ports: new OvsSet(),
      external_ids: new OvsMap(),
      fail_mode: new OvsSet(),
      stp_enable: false,
      _uuid: new Uuid(B1),
    });
    expect(events).toEqual([{ type: 'insert', table: 'Bridge', uuid: B1, new: bridge(B1) }]);
  });

  it('applies modify diffs: set elements toggle, map keys add/remove/replace, optional values replace', () => {
    cache.apply(
      normalizeUpdates2({
        Bridge: {
          [B1]: {
            initial: {
              name: 'br0',
              ports: ['set', [['uuid', P1], ['uuid', P2]]],
              external_ids: ['map', [['keep', '1'], ['drop', '2'], ['change', '3']]],
              fail_mode: 'secure',
            },
          },
        },
      }),
    );
    cache.apply(
      normalizeUpdates2({
        Bridge: {
          [B1]: {
            modify: {
              ports: ['set', [['uuid', P2], ['uuid', P3]]], // remove P2, add P3
              external_ids: ['map', [['drop', '2'], ['change', '30'], ['add', '4']]],
              fail_mode: 'standalone',
              stp_enable: true,
            },
          },
        },
      }),
    );
    const row = bridge(B1);
    expect(row.ports).toEqual(new OvsSet([new Uuid(P1), new Uuid(P3)]));
    expect((row.external_ids as OvsMap).toRecord()).toEqual({ keep: '1', change: '30', add: '4' });
    expect(row.fail_mode).toEqual(new OvsSet(['standalone']));
    expect(row.stp_enable).toBe(true);
    const upd = events[1];
    expect(upd.type).toBe('update');
    if (upd.type === 'update') expect(upd.old.fail_mode).toEqual(new OvsSet(['secure']));
  });

  it('emits delete with the last known row and ignores deletes of unknown rows', () => {
    cache.apply(normalizeUpdates2({ Bridge: { [B1]: { insert: { name: 'br0' } } } }));
    cache.apply(normalizeUpdates2({ Bridge: { [B1]: { delete: null }, [B2]: { delete: null } } }));
    expect(cache.table('Bridge').size).toBe(0);
    expect(events.map((e) => e.type)).toEqual(['insert', 'delete']);
    expect(events[1]).toMatchObject({ old: { name: 'br0' } });
  });

  it('refuses a modify for a row it never saw (the replica diverged)', () => {
    expect(() => cache.apply(normalizeUpdates2({ Bridge: { [B1]: { modify: { name: 'x' } } } }))).toThrow(CacheError);
  });
});

describe('TableCache with update (monitor, format 1) updates', () => {
  it('replaces changed columns with the new values', () => {
    cache.apply(normalizeUpdates1({ Bridge: { [B1]: { new: { name: 'br0', external_ids: ['map', [['a', '1']]] } } } }, true));
    cache.apply(
      normalizeUpdates1(
        { Bridge: { [B1]: { old: { external_ids: ['map', [['a', '1']]] }, new: { name: 'br0', external_ids: ['map', [['b', '2']]] } } } },
        false,
      ),
    );
    expect((bridge(B1).external_ids as OvsMap).toRecord()).toEqual({ b: '2' });
    cache.apply(normalizeUpdates1({ Bridge: { [B1]: { old: { name: 'br0' } } } }, false));
    expect(events.map((e) => e.type)).toEqual(['insert', 'update', 'delete']);
  });
});

describe('TableCache.resync', () => {
  it('turns a fresh snapshot into the difference: inserts, updates, deletes, nothing for unchanged rows', () => {
    const B3 = '33333333-3333-3333-3333-333333333333';
    cache.apply(
      normalizeUpdates2({
        Bridge: { [B1]: { initial: { name: 'same' } }, [B2]: { initial: { name: 'changes' } }, [B3]: { initial: { name: 'vanishes' } } },
      }),
    );
    events.length = 0;
    const B4 = '44444444-4444-4444-4444-444444444444';
    cache.resync(
      normalizeUpdates2({
        Bridge: {
          [B1]: { initial: { name: 'same' } },
          [B2]: { initial: { name: 'changes', external_ids: ['map', [['k', 'v']]] } },
          [B4]: { initial: { name: 'appears' } },
        },
      }),
    );
    const summary = events.map((e) => `${e.type} ${e.uuid}`).sort();
    expect(summary).toEqual([`delete ${B3}`, `insert ${B4}`, `update ${B2}`]);
    expect([...cache.table('Bridge').keys()].sort()).toEqual([B1, B2, B4]);
  });

  it('treats a missing table in the snapshot as empty', () => {
    cache.apply(normalizeUpdates2({ Bridge: { [B1]: { initial: { name: 'x' } } } }));
    cache.resync({});
    expect(cache.table('Bridge').size).toBe(0);
    expect(events.at(-1)).toMatchObject({ type: 'delete', uuid: B1 });
  });

  it('rejects unknown tables and columns up front', () => {
    expect(() => new TableCache(schema, { Nope: undefined })).toThrow(/table "Nope" is not in schema Open_vSwitch/);
    expect(() => new TableCache(schema, { Bridge: ['name', 'nope'] })).toThrow(/table Bridge has no column\(s\) nope/);
  });
});
