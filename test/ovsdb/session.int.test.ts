import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { run, startHost, waitFor, type SimHost } from '../harness/index.js';
import { OvsdbSession, type SyncInfo } from '../../src/ovsdb/session.js';
import { connectRemote, type Connector } from '../../src/ovsdb/transport.js';
import type { ChangeEvent } from '../../src/ovsdb/cache.js';
import { OvsMap, OvsSet } from '../../src/ovsdb/values.js';
import { ConnectionClosedError } from '../../src/ovsdb/errors.js';

let host: SimHost;
let session: OvsdbSession | undefined;

beforeAll(async () => {
  host = await startHost({ name: 'ses', vswitchd: false });
});
afterEach(async () => {
  await session?.close();
  session = undefined;
});
afterAll(async () => {
  await host?.stop();
});

/** A connector that holds new connections until `open()`, so the test decides when the session reconnects. */
function gatedConnector() {
  let gate: Promise<void> = Promise.resolve();
  let release = (): void => undefined;
  const connector: Connector = async (remote, timeoutMs) => {
    await gate;
    return connectRemote(remote, timeoutMs);
  };
  return {
    connector,
    close: () => (gate = new Promise<void>((r) => (release = r))),
    open: () => release(),
  };
}

function startSession(connector: Connector, remote = `unix:${host.dbSocket}`): { s: OvsdbSession; events: ChangeEvent[]; syncs: SyncInfo[] } {
  const s = new OvsdbSession({
    remote,
    db: 'Open_vSwitch',
    tables: { Bridge: ['name', 'external_ids', 'ports'], Port: ['name'] },
    connector,
    minBackoffMs: 20,
    maxBackoffMs: 200,
  });
  session = s;
  const events: ChangeEvent[] = [];
  const syncs: SyncInfo[] = [];
  s.on('synced', (i) => syncs.push(i));
  s.on('synced', () => s.cache.on('change', (e) => events.push(e)));
  return { s, events, syncs };
}

const bridges = (s: OvsdbSession): Record<string, Record<string, string>> =>
  Object.fromEntries(
    s.cache.find('Bridge').map((r) => [r.name as string, (r.external_ids as OvsMap<string, string>).toRecord()]),
  );

/** The oracle: what ovs-vsctl reads from the server. */
async function vsctlBridges(): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const name of (await host.vsctl('--no-wait', 'list-br')).split('\n').filter(Boolean)) {
    const ids = (await host.vsctl('--no-wait', 'br-get-external-id', name)).split('\n').filter(Boolean);
    out[name] = Object.fromEntries(ids.map((l) => l.split('=') as [string, string]));
  }
  return out;
}

describe('OvsdbSession keeps its cache correct across reconnects', () => {
  it('after ovsdb-server is killed (-9) and restarted, with changes made while disconnected', async () => {
    await host.vsctl('--no-wait', 'add-br', 'keep', '--', 'br-set-external-id', 'keep', 'v', '1');
    await host.vsctl('--no-wait', 'add-br', 'gone');
    const gate = gatedConnector();
    const { s, events, syncs } = startSession(gate.connector);
    await s.start();
    expect(bridges(s)).toEqual(await vsctlBridges());
    const gonePort = s.cache.find('Port', (r) => r.name === 'gone')[0];
    expect(gonePort).toBeDefined();

    const disconnected = new Promise((r) => s.once('disconnected', r));
    gate.close();
    await host.stopOvsdb();
    await disconnected;
    await expect(s.transact([{ op: 'comment', comment: 'x' }])).rejects.toThrow(ConnectionClosedError);
    await host.startOvsdb();
    await host.vsctl('--no-wait', 'del-br', 'gone');
    await host.vsctl('--no-wait', 'add-br', 'new', '--', 'br-set-external-id', 'new', 'n', '2');
    await host.vsctl('--no-wait', 'br-set-external-id', 'keep', 'v', '3');
    gate.open();
    await waitFor('resync', () => syncs.length >= 2);

    expect(bridges(s)).toEqual(await vsctlBridges());
    expect(bridges(s)).toEqual({ keep: { v: '3' }, new: { n: '2' } });
    const summary = events.map((e) => `${e.type} ${e.table} ${e.type === 'delete' ? e.old.name : e.new.name}`).sort();
    expect(summary).toEqual([
      'delete Bridge gone',
      'delete Port gone',
      'insert Bridge new',
      'insert Port new',
      'update Bridge keep',
    ]);
    const upd = events.find((e) => e.type === 'update');
    expect(upd?.type === 'update' && (upd.old.external_ids as OvsMap).get('v')).toBe('1');
    expect(s.cache.row('Port', String(gonePort._uuid))).toBeUndefined();
    // live updates keep flowing on the new connection
    await host.vsctl('--no-wait', 'add-br', 'live');
    await waitFor('live update', () => 'live' in bridges(s));
    expect(((s.cache.find('Bridge', (r) => r.name === 'live')[0].ports) as OvsSet).size).toBe(1);
  });

  it('after the connection drops while the server stays up, catching up on missed changes', async () => {
    const gate = gatedConnector();
    const { s, events, syncs } = startSession(gate.connector);
    await s.start();
    expect(syncs[0]).toEqual({ method: 'monitor_cond_since', resumed: false });
    events.length = 0;

    gate.close();
    const disconnected = new Promise((r) => s.once('disconnected', r));
    s.client!.close();
    await disconnected;
    await host.vsctl('--no-wait', 'del-br', 'live');
    await host.vsctl('--no-wait', 'br-set-external-id', 'new', 'm', '9');
    gate.open();
    await waitFor('resync', () => syncs.length >= 2);

    expect(bridges(s)).toEqual(await vsctlBridges());
    const summary = events.map((e) => `${e.type} ${e.table} ${e.type === 'delete' ? e.old.name : e.new.name}`).sort();
    expect(summary).toEqual(['delete Bridge live', 'delete Port live', 'update Bridge new']);
  });

  it('keeps retrying with backoff while the server is down, then syncs', async () => {
    await host.stopOvsdb();
    const { s } = startSession(connectRemote);
    const retries: number[] = [];
    s.on('retry', (_e, ms) => retries.push(ms));
    const started = s.start();
    await waitFor('retries', () => retries.length >= 3);
    expect(retries.every((ms) => ms <= 200)).toBe(true);
    await host.startOvsdb();
    await started;
    expect(bridges(s)).toEqual(await vsctlBridges());
  });
});

// Only clustered (and relay) databases keep the transaction history that monitor_cond_since
// resumes from; the harness hosts are standalone, so this test runs its own clustered server.
describe('OvsdbSession on a clustered database', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-ovsdb-cluster-'));
  const sock = join(dir, 'db.sock');
  let pid: number | undefined;
  const vsctl = (...args: string[]) => run('ovs-vsctl', [`--db=unix:${sock}`, '--no-wait', ...args]);

  beforeAll(async () => {
    const db = join(dir, 'conf.db');
    await run('ovsdb-tool', ['create-cluster', db, '/usr/share/openvswitch/vswitch.ovsschema', `unix:${join(dir, 'raft.sock')}`]);
    const child = spawn(
      'ovsdb-server',
      [db, `--remote=punix:${sock}`, `--unixctl=${join(dir, 'ctl')}`, `--log-file=${join(dir, 'log')}`, '-vconsole:off'],
      { stdio: 'ignore' },
    );
    pid = child.pid;
    await waitFor('clustered ovsdb-server', async () => {
      await run('ovsdb-client', ['list-dbs', `unix:${sock}`], { timeoutMs: 2000 });
      return true;
    });
    await vsctl('init');
    // ovsdb-server keeps history only up to the size of the database, so give it some rows.
    await vsctl(...Array.from({ length: 40 }, (_, i) => ['--', 'add-br', `b${i}`]).flat().slice(1));
  });
  afterAll(() => {
    if (pid) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('resumes with monitor_cond_since after a dropped connection and receives only the missed changes', async () => {
    const gate = gatedConnector();
    const { s, events, syncs } = startSession(gate.connector, `unix:${sock}`);
    await s.start();
    expect(Object.keys(bridges(s))).toHaveLength(40);
    // A small live transaction: its id (from update3) is what the session resumes from. The big
    // initial one may already have been trimmed from the server's history by then.
    await vsctl('br-set-external-id', 'b2', 'seen', 'live');
    await waitFor('live update', () => bridges(s).b2?.seen === 'live');
    events.length = 0;

    gate.close();
    const disconnected = new Promise((r) => s.once('disconnected', r));
    s.client!.close();
    await disconnected;
    await vsctl('del-br', 'b0');
    await vsctl('add-br', 'fresh');
    await vsctl('br-set-external-id', 'b1', 'k', 'v');
    gate.open();
    await waitFor('resync', () => syncs.length >= 2);

    expect(syncs).toEqual([
      { method: 'monitor_cond_since', resumed: false },
      { method: 'monitor_cond_since', resumed: true },
    ]);
    const summary = events.map((e) => `${e.type} ${e.table} ${e.type === 'delete' ? e.old.name : e.new.name}`).sort();
    expect(summary).toEqual(['delete Bridge b0', 'delete Port b0', 'insert Bridge fresh', 'insert Port fresh', 'update Bridge b1']);
    const names = (await vsctl('list-br')).split('\n').filter(Boolean).sort();
    expect(Object.keys(bridges(s)).sort()).toEqual(names);
    expect(bridges(s).b1).toEqual({ k: 'v' });
  });
});
