import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, type SimHost } from '../harness/index.js';
import { OvsdbClient } from '../../src/ovsdb/client.js';
import { ConnectionClosedError, OvsdbRpcError, TransactionError } from '../../src/ovsdb/errors.js';
import { OvsMap, OvsSet, Uuid, map, namedUuid, set } from '../../src/ovsdb/values.js';

const DB = 'Open_vSwitch';
let host: SimHost;
let client: OvsdbClient;

beforeAll(async () => {
  host = await startHost({ name: 'oc', vswitchd: false });
  client = await OvsdbClient.connect(`unix:${host.dbSocket}`);
  await client.getSchema(DB);
});

afterAll(async () => {
  client?.close();
  await host?.stop();
});

/** ovs-vsctl as the oracle: one column of one record. */
const vsctlGet = async (table: string, record: string, column: string): Promise<string> =>
  (await host.vsctl('--no-wait', 'get', table, record, column)).trim();

describe('OvsdbClient against a real ovsdb-server', () => {
  it('list_dbs and get_schema', async () => {
    expect(await client.listDbs()).toContain(DB);
    const schema = await client.getSchema(DB);
    expect(schema.tables.Bridge.columns.name.type.key.type).toBe('string');
    expect(client.schemaOf(DB)).toBe(schema);
  });

  it('insert with uuid-name referenced by a mutate in the same transaction, then select', async () => {
    const [ins, , mut, sel] = await client.transact(DB, [
      { op: 'insert', table: 'Bridge', 'uuid-name': 'newbr', row: { name: 'br-ins', external_ids: map({ owner: 'test' }) } },
      { op: 'comment', comment: 'client test: insert br-ins' },
      { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'insert', set(namedUuid('newbr'))]] },
      { op: 'select', table: 'Bridge', where: [['name', '==', 'br-ins']], columns: ['_uuid', 'name', 'external_ids', 'ports'] },
    ]);
    expect(ins.uuid).toBeInstanceOf(Uuid);
    expect(mut.count).toBe(1);
    expect(sel.rows).toHaveLength(1);
    expect(sel.rows[0]._uuid).toEqual(ins.uuid);
    expect((sel.rows[0].external_ids as OvsMap).get('owner')).toBe('test');
    expect(sel.rows[0].ports).toEqual(new OvsSet()); // decoded with the schema: a set even when empty
    expect(await vsctlGet('Bridge', 'br-ins', '_uuid')).toBe(ins.uuid.uuid);
    // comment ops are written into the database log
    expect(readFileSync(host.dbPath, 'utf8')).toContain('client test: insert br-ins');
  });

  it('update and mutate (integer, set, map) change what ovs-vsctl reads back', async () => {
    const [{ uuid: qos }] = await client.transact(DB, [
      { op: 'insert', table: 'QoS', row: { type: 'linux-htb', external_ids: map({ a: '1', b: '2' }) } },
    ]);
    const where = [['_uuid', '==', qos]] as const;
    const [upd, mutMap, mutCfg] = await client.transact(DB, [
      { op: 'update', table: 'QoS', where, row: { type: 'linux-hfsc', other_config: map({ 'max-rate': '1000' }) } },
      { op: 'mutate', table: 'QoS', where, mutations: [['external_ids', 'delete', set('a')], ['external_ids', 'insert', map({ c: '3' })]] },
      { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 5]] },
    ]);
    expect([upd.count, mutMap.count, mutCfg.count]).toEqual([1, 1, 1]);
    expect(await vsctlGet('QoS', qos.uuid, 'type')).toBe('linux-hfsc');
    expect(await vsctlGet('QoS', qos.uuid, 'other_config')).toBe('{max-rate="1000"}');
    expect(await vsctlGet('QoS', qos.uuid, 'external_ids')).toBe('{b="2", c="3"}');
    expect(Number(await vsctlGet('Open_vSwitch', '.', 'next_cfg'))).toBeGreaterThanOrEqual(5);
  });

  it('insert with a caller-chosen uuid (ovsdb-server extension)', async () => {
    const chosen = new Uuid('0badc0de-0000-4000-8000-000000000001');
    const [ins] = await client.transact(DB, [{ op: 'insert', table: 'QoS', uuid: chosen.uuid, row: { type: 'chosen' } }]);
    expect(ins.uuid).toEqual(chosen);
    expect(await vsctlGet('QoS', chosen.uuid, 'type')).toBe('chosen');
  });

  it('delete removes rows and reports the count', async () => {
    await client.transact(DB, [
      { op: 'insert', table: 'QoS', row: { type: 'del-me' } },
      { op: 'insert', table: 'QoS', row: { type: 'del-me' } },
    ]);
    const [del] = await client.transact(DB, [{ op: 'delete', table: 'QoS', where: [['type', '==', 'del-me']] }]);
    expect(del.count).toBe(2);
    expect(await host.vsctl('--no-wait', '--bare', '--columns=type', 'find', 'QoS', 'type=del-me')).toBe('');
  });

  it('wait succeeds when rows match and times out with the operation index when they do not', async () => {
    await host.vsctl('--no-wait', 'add-br', 'br-wait');
    const ok = await client.transact(DB, [
      { op: 'wait', table: 'Bridge', where: [['name', '==', 'br-wait']], columns: ['name'], until: '==', rows: [{ name: 'br-wait' }], timeout: 0 },
    ]);
    expect(ok).toEqual([{}]);
    const err = await client
      .transact(DB, [
        { op: 'comment', comment: 'x' },
        { op: 'wait', table: 'Bridge', where: [['name', '==', 'br-wait']], columns: ['name'], until: '!=', rows: [{ name: 'br-wait' }], timeout: 0 },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionError);
    expect(err).toMatchObject({ index: 1, error: 'timed out' });
    expect((err as Error).message).toMatch(/operation #1 \(wait on Bridge\): timed out/);
  });

  it('a blocked wait completes once another client makes its condition true', async () => {
    const pending = client.transact(DB, [
      { op: 'wait', table: 'Bridge', where: [['name', '==', 'br-later']], columns: ['name'], until: '==', rows: [{ name: 'br-later' }] },
      { op: 'select', table: 'Bridge', where: [['name', '==', 'br-later']], columns: ['name'] },
    ]);
    await host.vsctl('--no-wait', 'add-br', 'br-later');
    const [, sel] = await pending;
    expect(sel.rows.map((r) => r.name)).toEqual(['br-later']);
  });

  it('cancel: an aborted transaction is canceled on the server and never commits', async () => {
    const ac = new AbortController();
    const pending = client.transact(
      DB,
      [
        { op: 'wait', table: 'Bridge', where: [['name', '==', 'br-gate']], columns: ['name'], until: '==', rows: [{ name: 'br-gate' }] },
        { op: 'insert', table: 'QoS', row: { type: 'must-not-exist' } },
      ],
      { signal: ac.signal },
    );
    ac.abort();
    await expect(pending).rejects.toMatchObject({ name: 'OvsdbRpcError', error: 'canceled' });
    await client.echo('flush'); // the server handled the cancel before this reply
    await host.vsctl('--no-wait', 'add-br', 'br-gate');
    await client.echo('again');
    expect(await host.vsctl('--no-wait', '--bare', '--columns=type', 'find', 'QoS', 'type=must-not-exist')).toBe('');
  });

  it('commit durable succeeds; abort rolls back earlier operations', async () => {
    expect(await client.transact(DB, [{ op: 'commit', durable: true }])).toEqual([{}]);
    const err = await client
      .transact(DB, [{ op: 'insert', table: 'QoS', row: { type: 'aborted-row' } }, { op: 'abort' }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionError);
    expect(err).toMatchObject({ index: 1, error: 'aborted', op: { op: 'abort' } });
    expect(await host.vsctl('--no-wait', '--bare', '--columns=type', 'find', 'QoS', 'type=aborted-row')).toBe('');
  });

  it('a bad transaction names the failing operation and the server details', async () => {
    const err = await client
      .transact(DB, [
        { op: 'comment', comment: 'bad fail_mode' },
        { op: 'update', table: 'Bridge', where: [['name', '==', 'br-ins']], row: { fail_mode: 'sometimes' } },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionError);
    const te = err as TransactionError;
    expect(te.index).toBe(1);
    expect(te.op).toMatchObject({ op: 'update', table: 'Bridge' });
    expect(te.error).toBe('constraint violation');
    expect(te.message).toMatch(/operation #1 \(update on Bridge\): constraint violation: .*sometimes/);
  });

  it('a commit-time failure (referential integrity) is reported after the last operation', async () => {
    const err = await client
      .transact(DB, [{ op: 'delete', table: 'Bridge', where: [['name', '==', 'br-ins']] }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionError);
    expect(err).toMatchObject({ index: 1, op: undefined, error: 'referential integrity violation' });
    expect((err as Error).message).toMatch(/failed at commit \(after 1 operations\): referential integrity violation/);
  });

  it('an unknown database name gives a readable error', async () => {
    await expect(client.getSchema('No_Such_DB')).rejects.toThrow(
      /ovsdb get_schema failed: unknown database: .*No_Such_DB/,
    );
    const err = await client.transact('No_Such_DB', [{ op: 'comment', comment: 'x' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OvsdbRpcError);
    expect((err as OvsdbRpcError).error).toBe('unknown database');
    // the connection survives bad requests
    expect(await client.listDbs()).toContain(DB);
  });

  it('echo round trip from the client', async () => {
    expect(await client.echo('ping', 1, ['x'])).toEqual(['ping', 1, ['x']]);
  });
});

describe('locks', () => {
  it('lock, wait for it, steal it, assert it', async () => {
    const a = await OvsdbClient.connect(`unix:${host.dbSocket}`);
    const b = await OvsdbClient.connect(`unix:${host.dbSocket}`);
    try {
      expect(await a.lock('leader')).toBe(true);
      const bLocked = new Promise<string>((r) => b.once('locked', r));
      expect(await b.lock('leader')).toBe(false);
      await expect(b.transact(DB, [{ op: 'assert', lock: 'leader' }])).rejects.toMatchObject({ error: 'not owner', index: 0 });
      await a.unlock('leader');
      expect(await bLocked).toBe('leader');
      expect(await b.transact(DB, [{ op: 'assert', lock: 'leader' }])).toEqual([{}]);

      const bStolen = new Promise<string>((r) => b.once('stolen', r));
      expect(await a.steal('leader')).toBe(true);
      expect(await bStolen).toBe('leader');
      expect(await a.transact(DB, [{ op: 'assert', lock: 'leader' }])).toEqual([{}]);
      await expect(b.transact(DB, [{ op: 'assert', lock: 'leader' }])).rejects.toBeInstanceOf(TransactionError);
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('TCP transport and server echo', () => {
  it('answers the echo probes ovsdb-server sends on an idle TCP connection', async () => {
    const tcp = await OvsdbClient.connect(`tcp:127.0.0.1:${host.dbTcpPort}`);
    try {
      const echoes: unknown[][] = [];
      tcp.on('echo', (p) => echoes.push(p));
      expect(await tcp.listDbs()).toContain(DB);
      // ovsdb-server probes TCP clients after 5 s of silence and drops them if unanswered after 5 more.
      await new Promise((r) => setTimeout(r, 11_500));
      expect(echoes.length).toBeGreaterThanOrEqual(1);
      expect(tcp.isClosed).toBe(false);
      expect(await tcp.echo('still here')).toEqual(['still here']);
    } finally {
      tcp.close();
    }
  });
});

describe('closed connections', () => {
  it('requests on a locally closed client reject with a readable error', async () => {
    const c = await OvsdbClient.connect(`unix:${host.dbSocket}`);
    c.close();
    await expect(c.listDbs()).rejects.toThrow(ConnectionClosedError);
    await expect(c.listDbs()).rejects.toThrow(/ovsdb connection to unix:.*db\.sock closed: closed by the client/);
  });

  it('a pending request rejects when the server dies, and connecting to a dead server fails clearly', async () => {
    const c = await OvsdbClient.connect(`unix:${host.dbSocket}`);
    const closed = new Promise<Error | undefined>((r) => c.once('close', r));
    const pending = c.transact(DB, [
      { op: 'wait', table: 'Bridge', where: [['name', '==', 'never']], columns: ['name'], until: '==', rows: [{ name: 'never' }] },
    ]);
    const failure = pending.catch((e: unknown) => e);
    await c.echo(); // the wait is queued on the server
    await host.stopOvsdb();
    const err = await failure;
    expect(err).toBeInstanceOf(ConnectionClosedError);
    expect((err as Error).message).toMatch(/closed: (server closed the connection|connection closed|read ECONNRESET)/);
    expect(await closed).toBeInstanceOf(Error);
    await expect(OvsdbClient.connect(`unix:${host.dbSocket}`)).rejects.toThrow(/connect to unix:.*db\.sock failed/);
    await host.startOvsdb();
    const again = await OvsdbClient.connect(`unix:${host.dbSocket}`);
    expect(await again.listDbs()).toContain(DB);
    again.close();
  });
});
