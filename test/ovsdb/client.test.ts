// Client logic against a scripted fake server on a unix socket: ordering, fallbacks, timeouts and
// probes that a real ovsdb-server cannot be made to exercise on demand. The real-server behaviour
// is proven in *.int.test.ts.
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OvsdbClient } from '../../src/ovsdb/client.js';
import { ConnectionClosedError, RequestTimeoutError } from '../../src/ovsdb/errors.js';
import { JsonStreamParser } from '../../src/ovsdb/jsonrpc/parser.js';
import { parseSchema } from '../../src/ovsdb/schema.js';
import { TableCache } from '../../src/ovsdb/cache.js';
import { OvsdbSession } from '../../src/ovsdb/session.js';
import type { TableUpdates } from '../../src/ovsdb/updates.js';

type Msg = { id: unknown; method?: string; params?: unknown[] };
type Handler = (msg: Msg, send: (...objs: unknown[]) => void) => void;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A fake OVSDB server; `send` writes all given messages in ONE chunk. */
async function fakeServer(handler: Handler): Promise<{ remote: string; received: Msg[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'ovsdb-fake-'));
  const path = join(dir, 'sock');
  const received: Msg[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((sock) => {
    sockets.push(sock);
    const parser = new JsonStreamParser();
    const send = (...objs: unknown[]): void => void sock.write(objs.map((o) => JSON.stringify(o)).join(''));
    sock.on('data', (b: Buffer) => {
      for (const m of parser.push(b) as Msg[]) {
        received.push(m);
        handler(m, send);
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, r));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { remote: `unix:${path}`, received };
}

const U1 = '11111111-1111-1111-1111-111111111111';
const miniSchema = {
  name: 'Test',
  version: '1.0.0',
  tables: { T: { columns: { name: { type: 'string' }, n: { type: 'integer' } }, isRoot: true } },
};

describe('OvsdbClient (fake server)', () => {
  it('buffers updates that arrive in the same chunk as the monitor reply until resume()', async () => {
    const { remote } = await fakeServer((m, send) => {
      if (m.method === 'get_schema') send({ id: m.id, result: miniSchema, error: null });
      if (m.method === 'monitor_cond_since') {
        const monId = m.params![1];
        send(
          { id: m.id, result: [false, 'txn-1', { T: { [U1]: { initial: { name: 'a', n: 1 } } } }], error: null },
          { id: null, method: 'update3', params: [monId, 'txn-2', { T: { [U1]: { modify: { n: 2 } } } }] },
        );
      }
    });
    const client = await OvsdbClient.connect(remote);
    cleanups.push(() => client.close());
    const cache = new TableCache(await client.getSchema('Test'), { T: undefined });
    const seen: [TableUpdates, string | undefined][] = [];
    const handle = await client.openMonitor('Test', { T: {} }, {
      onUpdate: (u, txn) => {
        seen.push([u, txn]);
        cache.apply(u);
      },
    });
    // the notification has been read from the socket, but not delivered before the reply is processed
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual([]);
    cache.resync(handle.initial);
    handle.resume();
    expect(seen.map(([, txn]) => txn)).toEqual(['txn-2']);
    expect(cache.row('T', U1)).toMatchObject({ name: 'a', n: 2 });
    expect(handle).toMatchObject({ method: 'monitor_cond_since', found: false, lastTxnId: 'txn-1' });
  });

  it('falls back from monitor_cond_since to monitor_cond to monitor on "unknown method"', async () => {
    const { remote, received } = await fakeServer((m, send) => {
      if (m.method === 'monitor_cond_since' || m.method === 'monitor_cond') {
        send({ id: m.id, result: null, error: 'unknown method' });
      }
      if (m.method === 'monitor') {
        send(
          { id: m.id, result: { T: { [U1]: { new: { name: 'a' } } } }, error: null },
          { id: null, method: 'update', params: [m.params![1], { T: { [U1]: { old: { name: 'a' } } } }] },
        );
      }
    });
    const client = await OvsdbClient.connect(remote);
    cleanups.push(() => client.close());
    const updates: TableUpdates[] = [];
    const handle = await client.openMonitor('Test', { T: { columns: ['name'] } }, { onUpdate: (u) => updates.push(u) });
    expect(received.map((m) => m.method)).toEqual(['monitor_cond_since', 'monitor_cond', 'monitor']);
    expect(handle.method).toBe('monitor');
    expect(handle.initial).toEqual({ T: [{ uuid: U1, kind: 'initial', row: { name: 'a' }, diff: false }] });
    handle.resume();
    expect(updates).toEqual([{ T: [{ uuid: U1, kind: 'delete', row: { name: 'a' }, diff: false }] }]);
  });

  it('times out a request, sends cancel for it, and stays usable', async () => {
    const { remote, received } = await fakeServer((m, send) => {
      if (m.method === 'echo') send({ id: m.id, result: m.params, error: null });
    });
    const client = await OvsdbClient.connect(remote, { requestTimeoutMs: 100 });
    cleanups.push(() => client.close());
    const err = await client.transact('Test', [{ op: 'comment', comment: 'never answered' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestTimeoutError);
    expect((err as Error).message).toBe('ovsdb transact got no response within 100 ms');
    expect(await client.echo('x')).toEqual(['x']);
    const transactId = received.find((m) => m.method === 'transact')!.id;
    expect(received.find((m) => m.method === 'cancel')).toEqual({ id: null, method: 'cancel', params: [transactId] });
  });

  it('answers the server\'s echo requests with the same id and params', async () => {
    let reply: unknown;
    const { remote, received } = await fakeServer((m, send) => {
      if (m.method === 'list_dbs') send({ id: 'echo', method: 'echo', params: ['hello', 1] });
      if (m.id === 'echo' && !m.method) {
        reply = m;
        send({ id: 1, result: ['Test'], error: null });
      }
    });
    const client = await OvsdbClient.connect(remote);
    cleanups.push(() => client.close());
    expect(await client.listDbs()).toEqual(['Test']);
    expect(reply).toEqual({ id: 'echo', result: ['hello', 1], error: null });
    expect(received).toHaveLength(2);
  });

  it('closes the connection when the inactivity probe gets no echo reply', async () => {
    const { remote } = await fakeServer(() => undefined);
    const client = await OvsdbClient.connect(remote, { probeIntervalMs: 80, requestTimeoutMs: 0 });
    cleanups.push(() => client.close());
    const closed = new Promise<Error | undefined>((r) => client.once('close', r));
    const pending = client.listDbs().catch((e: unknown) => e);
    expect((await closed)?.message).toMatch(/no response within 80 ms/);
    const err = await pending;
    expect(err).toBeInstanceOf(ConnectionClosedError);
    expect((err as Error).message).toMatch(/closed: inactivity probe: no echo reply within 80 ms/);
  });

  it('closes with a readable protocol error when the server sends garbage', async () => {
    const { remote } = await fakeServer((m, send) => {
      if (m.method === 'list_dbs') send('not json-rpc');
    });
    const client = await OvsdbClient.connect(remote);
    cleanups.push(() => client.close());
    await expect(client.listDbs()).rejects.toThrow(/closed: protocol error: expected a JSON object or array, got "\\"" at top level/);
  });

  const badUpdates: Array<[string, unknown, RegExp]> = [
    ['table-updates that is a number', 42, /table-updates2: expected a JSON object, got 42/],
    ['a row update with no operation', { T: { [U1]: {} } }, /row-update2 T 1111.*: no initial\/insert\/modify\/delete/],
  ];
  for (const [what, updates, message] of badUpdates) {
    it(`closes the session, not the process, on an update2 with ${what}`, async () => {
      const { remote } = await fakeServer((m, send) => {
        if (m.method === 'monitor_cond') {
          send(
            { id: m.id, result: {}, error: null },
            { id: null, method: 'update2', params: [m.params![1], updates] },
          );
        }
      });
      const client = await OvsdbClient.connect(remote);
      cleanups.push(() => client.close());
      const closed = new Promise<Error | undefined>((r) => client.once('close', r));
      const handle = await client.openMonitor('Test', { T: {} }, { methods: ['monitor_cond'], onUpdate: () => undefined });
      handle.resume();
      const err = await closed;
      expect(err?.name).toBe('UpdateFormatError');
      expect(err?.message).toMatch(message);
      expect(client.isClosed).toBe(true);
      await expect(client.listDbs()).rejects.toThrow(/closed: protocol error: /);
    });
  }

  it('OvsdbSession reconnects and resyncs after a malformed update', async () => {
    let connections = 0;
    const { remote } = await fakeServer((m, send) => {
      if (m.method === 'get_schema') send({ id: m.id, result: miniSchema, error: null });
      if (m.method === 'monitor_cond_since') send({ id: m.id, result: null, error: 'unknown method' });
      if (m.method === 'monitor_cond') {
        connections++;
        send({ id: m.id, result: { T: { [U1]: { initial: { name: `c${connections}`, n: connections } } } }, error: null });
        if (connections === 1) send({ id: null, method: 'update2', params: [m.params![1], 'not an object'] });
      }
    });
    const session = new OvsdbSession({ remote, db: 'Test', tables: { T: undefined }, minBackoffMs: 10, maxBackoffMs: 20 });
    cleanups.push(() => void session.close());
    const disconnected = new Promise<Error | undefined>((r) => session.once('disconnected', r));
    let synced = 0;
    const resynced = new Promise<void>((r) => session.on('synced', () => ++synced === 2 && r()));
    await session.start();
    expect((await disconnected)?.message).toMatch(/table-updates2: expected a JSON object/);
    await resynced;
    expect(session.cache.row('T', U1)).toMatchObject({ name: 'c2', n: 2 });
    await session.close();
  });

  it('parses a schema that a fake server sends (sanity of the fixture)', () => {
    expect(parseSchema(miniSchema).tables.T.columns.n.type.key.type).toBe('integer');
  });
});
