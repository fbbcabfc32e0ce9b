import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, waitFor, type SimHost } from '../harness/index.js';
import { OvsdbClient } from '../../src/ovsdb/client.js';
import { TableCache, type ChangeEvent } from '../../src/ovsdb/cache.js';
import { OvsMap, OvsSet } from '../../src/ovsdb/values.js';
import type { TableUpdates } from '../../src/ovsdb/updates.js';

const DB = 'Open_vSwitch';
let host: SimHost;
let client: OvsdbClient;

beforeAll(async () => {
  host = await startHost({ name: 'mon', vswitchd: false });
  client = await OvsdbClient.connect(`unix:${host.dbSocket}`);
});

afterAll(async () => {
  client?.close();
  await host?.stop();
});

/** Collects notifications of one kind until `n` arrived. */
function collect<T>(subscribe: (push: (v: T) => void) => void) {
  const got: T[] = [];
  subscribe((v) => got.push(v));
  return { got, until: (n: number) => waitFor(`${n} notifications`, () => got.length >= n && got, 10_000) };
}

describe('monitor methods against a real ovsdb-server', () => {
  it('monitor (format 1): initial rows, then update notifications for insert, modify and delete', async () => {
    await host.vsctl('--no-wait', 'add-br', 'm1-a');
    const initial = (await client.monitor(DB, 'fmt1', { Bridge: { columns: ['name', 'external_ids'] } })) as Record<
      string,
      Record<string, { new?: { name: string } }>
    >;
    expect(Object.values(initial.Bridge).map((r) => r.new?.name)).toEqual(['m1-a']);
    const n = collect<unknown>((push) => client.on('update', (id, u) => id === 'fmt1' && push(u)));
    await host.vsctl('--no-wait', 'add-br', 'm1-b');
    await host.vsctl('--no-wait', 'set', 'Bridge', 'm1-b', 'external_ids:k=v');
    await host.vsctl('--no-wait', 'del-br', 'm1-a');
    const [ins, mod, del] = (await n.until(3)) as Record<string, Record<string, { old?: unknown; new?: unknown }>>[];
    expect(Object.values(ins.Bridge)[0]).toEqual({ new: { name: 'm1-b', external_ids: ['map', []] } });
    expect(Object.values(mod.Bridge)[0]).toEqual({
      old: { external_ids: ['map', []] },
      new: { name: 'm1-b', external_ids: ['map', [['k', 'v']]] },
    });
    expect(Object.values(del.Bridge)[0]).toEqual({ old: { name: 'm1-a', external_ids: ['map', []] } });
    await client.monitorCancel('fmt1');
  });

  it('monitor_cond (update2): a where clause limits rows; modify carries only the diff', async () => {
    await host.vsctl('--no-wait', 'add-br', 'c-yes', '--', 'set', 'Bridge', 'c-yes', 'external_ids:sel=1');
    await host.vsctl('--no-wait', 'add-br', 'c-no');
    const initial = (await client.monitorCond(DB, 'fmt2', {
      Bridge: { columns: ['name', 'external_ids'], where: [['external_ids', 'includes', OvsMap.fromRecord({ sel: '1' })]] },
    })) as Record<string, Record<string, unknown>>;
    expect(Object.values(initial.Bridge)).toEqual([
      { initial: { name: 'c-yes', external_ids: ['map', [['sel', '1']]] } },
    ]);
    const n = collect<unknown>((push) => client.on('update2', (id, u) => id === 'fmt2' && push(u)));
    await host.vsctl('--no-wait', 'set', 'Bridge', 'c-no', 'external_ids:other=1'); // not selected: no update
    await host.vsctl('--no-wait', 'set', 'Bridge', 'c-yes', 'external_ids:x=2');
    const [mod] = (await n.until(1)) as Record<string, Record<string, unknown>>[];
    expect(Object.values(mod.Bridge)).toEqual([{ modify: { external_ids: ['map', [['x', '2']]] } }]);
    await client.monitorCancel('fmt2');
  });

  it('monitor_cond_since (update3): reports a transaction id with every update', async () => {
    const r = await client.monitorCondSince(DB, 'fmt3', { Bridge: { columns: ['name'] } });
    expect(r.found).toBe(false);
    expect(r.lastTxnId).toMatch(/^[0-9a-f-]{36}$/);
    const n = collect<[string, unknown]>((push) => client.on('update3', (id, txn, u) => id === 'fmt3' && push([txn, u])));
    await host.vsctl('--no-wait', 'add-br', 's3');
    const [[txn, u]] = await n.until(1);
    expect(txn).toMatch(/^[0-9a-f-]{36}$/);
    expect(Object.values((u as Record<string, Record<string, unknown>>).Bridge)).toEqual([{ insert: { name: 's3' } }]);
    await client.monitorCancel('fmt3');
  });

  it('openMonitor feeds a TableCache with typed insert, update and delete events', async () => {
    const schema = await client.getSchema(DB);
    const cache = new TableCache(schema, { Bridge: ['name', 'ports', 'external_ids', 'fail_mode'], Port: ['name'] });
    const events: ChangeEvent[] = [];
    cache.on('change', (e) => events.push(e));
    const handle = await client.openMonitor(
      DB,
      { Bridge: { columns: ['name', 'ports', 'external_ids', 'fail_mode'] }, Port: { columns: ['name'] } },
      { onUpdate: (u: TableUpdates) => cache.apply(u) },
    );
    expect(handle.method).toBe('monitor_cond_since');
    cache.resync(handle.initial);
    handle.resume();
    const byName = (name: string) => cache.find('Bridge', (r) => r.name === name)[0];
    events.length = 0;

    await host.vsctl('--no-wait', 'add-br', 'cache-br', '--', 'set', 'Bridge', 'cache-br', 'fail_mode=secure');
    await waitFor('insert', () => byName('cache-br'));
    const br = byName('cache-br');
    expect(br.fail_mode).toEqual(new OvsSet(['secure']));
    expect((br.ports as OvsSet).size).toBe(1);
    expect(cache.row('Port', String((br.ports as OvsSet).first()))?.name).toBe('cache-br');
    expect(events.filter((e) => e.type === 'insert').map((e) => e.table).sort()).toEqual(['Bridge', 'Port']);

    await host.vsctl('--no-wait', 'set', 'Bridge', 'cache-br', 'external_ids:a=1', '--', 'clear', 'Bridge', 'cache-br', 'fail_mode');
    await waitFor('update', () => (byName('cache-br').fail_mode as OvsSet).size === 0);
    expect((byName('cache-br').external_ids as OvsMap).get('a')).toBe('1');
    const upd = events.find((e) => e.type === 'update');
    expect(upd).toMatchObject({ type: 'update', table: 'Bridge' });
    if (upd?.type === 'update') {
      expect(upd.old.fail_mode).toEqual(new OvsSet(['secure']));
      expect(upd.new.fail_mode).toEqual(new OvsSet());
    }

    await host.vsctl('--no-wait', 'del-br', 'cache-br');
    await waitFor('delete', () => !byName('cache-br'));
    const del = events.filter((e) => e.type === 'delete');
    expect(del.map((e) => e.table).sort()).toEqual(['Bridge', 'Port']);
    expect(del.find((e) => e.table === 'Bridge')).toMatchObject({ old: { name: 'cache-br' } });
    await handle.cancel();
  });
});
