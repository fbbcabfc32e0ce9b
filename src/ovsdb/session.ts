/**
 * A reconnecting OVSDB session that keeps a {@link TableCache} in step with the server.
 *
 * On every (re)connection it fetches the schema and opens a monitor. With monitor_cond_since and
 * a transaction id the server still knows, only the missed changes are applied; otherwise the
 * fresh contents replace the cache through a diff, so listeners get delete events for rows that
 * vanished while disconnected. Reconnects use exponential backoff with jitter.
 */
import { EventEmitter } from 'node:events';
import { Backoff } from '../common/backoff.js';
import { OvsdbClient, type ClientOptions, type MonitorHandle, type MonitorMethod, type RequestOptions } from './client.js';
import { TableCache } from './cache.js';
import { ConnectionClosedError } from './errors.js';
import type { Operation, ResultsOf } from './operations.js';

export interface SessionOptions extends ClientOptions {
  /** OVS-style remote: `unix:/path` or `tcp:host:port`. */
  remote: string;
  db: string;
  /** Tables to mirror: table name to columns (undefined: every column). */
  tables: Record<string, readonly string[] | undefined>;
  /** First reconnect delay (default 100 ms); doubles per failed attempt up to `maxBackoffMs` (default 8 s), jittered. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface SyncInfo {
  /** Monitor method the server accepted. */
  method: MonitorMethod;
  /** True when monitor_cond_since resumed from the last transaction id (only changes were sent). */
  resumed: boolean;
}

type SessionEvents = {
  /** The cache matches the server (after the first connection and after every reconnect). */
  synced: [info: SyncInfo];
  /** The connection dropped; the session reconnects by itself. */
  disconnected: [error: Error | undefined];
  /** A connection or sync attempt failed; the next one starts after `retryInMs`. */
  retry: [error: Error, retryInMs: number];
};

export class OvsdbSession extends EventEmitter<SessionEvents> {
  private cacheRef: TableCache | undefined;
  private current: OvsdbClient | undefined;
  private lastTxnId: string | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly backoff: Backoff;

  constructor(private readonly options: SessionOptions) {
    super();
    const minMs = options.minBackoffMs ?? 100;
    this.backoff = new Backoff({ minMs, maxMs: Math.max(minMs, options.maxBackoffMs ?? 8000) });
  }

  /** Starts connecting; resolves once the cache first matches the server. Retries until then. */
  start(): Promise<void> {
    if (this.loop) throw new Error('OvsdbSession already started');
    const first = new Promise<void>((resolve) => this.once('synced', () => resolve()));
    this.loop = this.run();
    return first;
  }

  /** The replica; available once {@link start} resolved. */
  get cache(): TableCache {
    if (!this.cacheRef) throw new Error('OvsdbSession: cache not ready before the first sync');
    return this.cacheRef;
  }

  /** The connected client, or undefined while reconnecting. */
  get client(): OvsdbClient | undefined {
    return this.current;
  }

  /** The connected client; throws {@link ConnectionClosedError} while reconnecting. */
  requireClient(): OvsdbClient {
    const c = this.current;
    if (!c || c.isClosed) throw new ConnectionClosedError(this.options.remote, 'not connected (reconnecting)');
    return c;
  }

  /** True while connected and in sync. */
  get connected(): boolean {
    return this.current !== undefined && !this.current.isClosed;
  }

  /** Runs a transaction on the session's database; rejects with ConnectionClosedError while disconnected. */
  transact<const Ops extends readonly Operation[]>(ops: Ops, options?: RequestOptions): Promise<ResultsOf<Ops>> {
    try {
      return this.requireClient().transact(this.options.db, ops, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Resolves when the next `synced` event fires (immediately if connected now). */
  async whenSynced(): Promise<void> {
    if (this.connected) return;
    await new Promise<void>((resolve) => this.once('synced', () => resolve()));
  }

  /** Stops reconnecting and closes the connection. */
  async close(): Promise<void> {
    this.stopped = true;
    this.current?.close();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let client: OvsdbClient | undefined;
      try {
        client = await OvsdbClient.connect(this.options.remote, this.options);
        const closed = new Promise<Error | undefined>((resolve) => client!.once('close', resolve));
        if (this.stopped) {
          client.close();
          break;
        }
        const info = await this.sync(client);
        this.current = client;
        this.backoff.reset();
        this.emit('synced', info);
        const error = await closed;
        this.current = undefined;
        if (this.stopped) break;
        this.emit('disconnected', error);
      } catch (err) {
        client?.close();
        this.current = undefined;
        if (this.stopped) break;
        const delay = this.backoff.next();
        this.emit('retry', err as Error, delay);
        await this.sleep(delay);
        continue;
      }
      // Reconnect promptly after a drop (one jittered minimum delay); back off only if that fails.
      await this.sleep(this.backoff.next());
    }
  }

  private async sync(client: OvsdbClient): Promise<SyncInfo> {
    const { db, tables } = this.options;
    const schema = await client.getSchema(db);
    if (!this.cacheRef) this.cacheRef = new TableCache(schema, tables);
    else this.cacheRef.setSchema(schema);
    const cache = this.cacheRef;
    const requests = Object.fromEntries(
      Object.entries(tables).map(([t, columns]) => [t, columns ? { columns: [...columns] } : {}]),
    );
    const handle: MonitorHandle = await client.openMonitor(db, requests, {
      lastTxnId: this.lastTxnId,
      onUpdate: (updates, txnId) => {
        try {
          cache.apply(updates);
          if (txnId) this.lastTxnId = txnId;
        } catch {
          // The replica diverged; a fresh connection resyncs it from scratch.
          this.lastTxnId = undefined;
          client.close();
        }
      },
    });
    const resumed = handle.method === 'monitor_cond_since' && handle.found;
    if (resumed) cache.apply(handle.initial);
    else cache.resync(handle.initial);
    this.lastTxnId = handle.lastTxnId;
    handle.resume();
    return { method: handle.method, resumed };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }
}
