/**
 * OVSDB client (RFC 7047 and the ovsdb-server(7) extensions) over one connection.
 *
 * Wire encoding lives in jsonrpc/, transports in transport.ts; this module matches responses to
 * requests, answers the server's echo, runs the optional inactivity probe, and decodes method
 * results into typed values. It does not reconnect: see session.ts.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { JsonStreamParser } from './jsonrpc/parser.js';
import { classifyMessage, type RpcId, type RpcMessage } from './jsonrpc/messages.js';
import { encodeError, encodeNotification, encodeRequest, encodeResult } from './jsonrpc/serializer.js';
import { connectRemote, type Connector } from './transport.js';
import { decodeRow, parseSchema, type DatabaseSchema } from './schema.js';
import { Uuid, rowFromJSON, type Row } from './values.js';
import type { Condition, Operation, ResultsOf } from './operations.js';
import { ConnectionClosedError, OvsdbError, OvsdbRpcError, RequestTimeoutError, TransactionError } from './errors.js';
import { normalizeUpdates1, normalizeUpdates2, type TableUpdates } from './updates.js';

export interface ClientOptions {
  /** Opens the byte stream; defaults to unix/tcp ({@link connectRemote}). */
  connector?: Connector;
  /** Default 10 s. */
  connectTimeoutMs?: number;
  /** Default timeout of every request; 0 disables. Default 60 s. */
  requestTimeoutMs?: number;
  /** Send an echo after this much silence and close if it gets no answer in as long; 0 (default) disables. */
  probeIntervalMs?: number;
}

export interface RequestOptions {
  /** Overrides the client's request timeout; 0 disables. */
  timeoutMs?: number;
  /** Aborting sends `cancel` for the request and rejects it with an `OvsdbRpcError` "canceled". */
  signal?: AbortSignal;
}

/** Which changes a monitor reports (RFC 7047 `<monitor-select>`). */
export interface MonitorSelect {
  initial?: boolean;
  insert?: boolean;
  delete?: boolean;
  modify?: boolean;
}

/** One `<monitor-request>` / `<monitor-cond-request>`; `where` needs monitor_cond or later. */
export interface MonitorRequest {
  columns?: readonly string[];
  where?: readonly Condition[];
  select?: MonitorSelect;
}

/** Table name to monitor request(s). */
export type MonitorRequests = Record<string, MonitorRequest | readonly MonitorRequest[]>;

export type MonitorMethod = 'monitor_cond_since' | 'monitor_cond' | 'monitor';

/** A monitor opened with {@link OvsdbClient.openMonitor}. */
export interface MonitorHandle {
  readonly id: string;
  readonly db: string;
  /** The method the server accepted (after falling back on "unknown method"). */
  readonly method: MonitorMethod;
  /** monitor_cond_since only: the server knew `lastTxnId`, so `initial` holds just the changes since. */
  readonly found: boolean;
  /** Last transaction id reported by the server (monitor_cond_since only). */
  readonly lastTxnId: string | undefined;
  /** Contents (or changes, when `found`) from the server's reply. */
  readonly initial: TableUpdates;
  /** Starts delivering updates to `onUpdate`: first the ones buffered since the request was sent. */
  resume(): void;
  /** Sends monitor_cancel and stops delivery. */
  cancel(): Promise<void>;
}

export interface OpenMonitorOptions {
  /** Called for every update notification after {@link MonitorHandle.resume}. */
  onUpdate: (updates: TableUpdates, lastTxnId: string | undefined) => void;
  /** For monitor_cond_since: the last transaction id seen before (all zeros / undefined = none). */
  lastTxnId?: string;
  /** Try only these methods, in order. Default: since, cond, plain. */
  methods?: readonly MonitorMethod[];
}

type ClientEvents = {
  /** `update` notification (format 1): monitor id, raw `<table-updates>`. */
  update: [monitorId: unknown, updates: unknown];
  /** `update2` notification: monitor id, raw `<table-updates2>`. */
  update2: [monitorId: unknown, updates: unknown];
  /** `update3` notification: monitor id, last transaction id, raw `<table-updates2>`. */
  update3: [monitorId: unknown, lastTxnId: string, updates: unknown];
  /** The server sent an echo request (already answered). */
  echo: [params: unknown[]];
  /** We acquired a lock we were waiting for. */
  locked: [lock: string];
  /** Another client stole a lock we held. */
  stolen: [lock: string];
  /** The connection closed; `error` says why when it was not a local close(). */
  close: [error: Error | undefined];
};

interface Pending {
  method: string;
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  cleanup: () => void;
}

interface MonitorState {
  format: 1 | 2 | 3;
  buffer: [TableUpdates, string | undefined][] | null;
  onUpdate: OpenMonitorOptions['onUpdate'];
}

const ZERO_TXN = '00000000-0000-0000-0000-000000000000';

export class OvsdbClient extends EventEmitter<ClientEvents> {
  private readonly parser = new JsonStreamParser();
  private readonly pending = new Map<RpcId, Pending>();
  private readonly monitors = new Map<string, MonitorState>();
  private readonly schemas = new Map<string, DatabaseSchema>();
  private nextId = 1;
  private closeReason: string | undefined;
  private lastReceive = Date.now();
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private readonly requestTimeoutMs: number;

  /** Connects to an OVS-style remote (`unix:/path`, `tcp:host:port`). */
  static async connect(remote: string, options: ClientOptions = {}): Promise<OvsdbClient> {
    const connector = options.connector ?? connectRemote;
    const stream = await connector(remote, options.connectTimeoutMs ?? 10_000);
    return new OvsdbClient(stream, remote, options);
  }

  /** Wraps an already connected stream. */
  constructor(
    private readonly stream: Duplex,
    readonly remote: string,
    options: ClientOptions = {},
  ) {
    super();
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) => this.shutdown(err.message, err));
    stream.on('end', () => this.shutdown('server closed the connection', new Error('server closed the connection')));
    stream.on('close', () => this.shutdown('connection closed', new Error('connection closed')));
    const probe = options.probeIntervalMs ?? 0;
    if (probe > 0) {
      this.probeTimer = setInterval(() => this.probe(probe), probe);
      this.probeTimer.unref();
    }
  }

  /** True once the connection is closed; every later request rejects. */
  get isClosed(): boolean {
    return this.closeReason !== undefined;
  }

  /** Closes the connection; pending requests reject with {@link ConnectionClosedError}. */
  close(): void {
    this.shutdown('closed by the client', undefined);
  }

  // ---- generic JSON-RPC ----

  /** Sends a request and resolves with its result; a JSON-RPC error rejects with {@link OvsdbRpcError}. */
  request(method: string, params: readonly unknown[], options: RequestOptions = {}): Promise<unknown> {
    if (this.closeReason !== undefined) {
      return Promise.reject(new ConnectionClosedError(this.remote, this.closeReason));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.settle(id)?.reject(new RequestTimeoutError(method, timeoutMs));
              this.sendCancel(id);
            }, timeoutMs)
          : undefined;
      const onAbort = (): void => {
        if (this.settle(id)) {
          this.sendCancel(id);
          reject(new OvsdbRpcError(method, 'canceled', 'canceled by the caller'));
        }
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        method,
        resolve,
        reject,
        cleanup: () => {
          if (timer) clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
        },
      });
      if (options.signal?.aborted) {
        this.settle(id);
        reject(new OvsdbRpcError(method, 'canceled', 'canceled by the caller'));
      } else {
        this.write(encodeRequest(id, method, params));
      }
    });
  }

  /** Sends a notification (no response). */
  notify(method: string, params: readonly unknown[]): void {
    if (this.closeReason !== undefined) throw new ConnectionClosedError(this.remote, this.closeReason);
    this.write(encodeNotification(method, params));
  }

  // ---- RFC 7047 methods ----

  /** `list_dbs`: names of the server's databases. */
  async listDbs(): Promise<string[]> {
    const r = await this.request('list_dbs', []);
    if (!Array.isArray(r) || !r.every((x) => typeof x === 'string')) throw bad('list_dbs', r);
    return r;
  }

  /** `get_schema`: the parsed schema; it is remembered and used to decode later selects. */
  async getSchema(db: string): Promise<DatabaseSchema> {
    const schema = parseSchema(await this.request('get_schema', [db]));
    this.schemas.set(db, schema);
    return schema;
  }

  /** The schema fetched earlier with {@link getSchema}, if any. */
  schemaOf(db: string): DatabaseSchema | undefined {
    return this.schemas.get(db);
  }

  /**
   * `transact`: runs the operations atomically. Resolves with one typed result per operation;
   * the first failed operation (or a failed commit) rejects with {@link TransactionError}.
   * Selected rows are decoded with the db's schema if {@link getSchema} was called before.
   */
  async transact<const Ops extends readonly Operation[]>(
    db: string,
    ops: Ops,
    options: RequestOptions = {},
  ): Promise<ResultsOf<Ops>> {
    const raw = await this.request('transact', [db, ...ops], options);
    if (!Array.isArray(raw)) throw bad('transact', raw);
    for (let i = 0; i < raw.length; i++) {
      const r = raw[i] as Record<string, unknown> | null;
      if (r && typeof r.error === 'string') {
        const details = typeof r.details === 'string' ? r.details : undefined;
        throw new TransactionError(db, i, ops[i], r.error, details, raw);
      }
    }
    const schema = this.schemas.get(db);
    return ops.map((op, i) => decodeResult(op, raw[i], schema)) as ResultsOf<Ops>;
  }

  /** `monitor` (format 1): raw `<table-updates>` reply; notifications come as `update` events. */
  monitor(db: string, monitorId: unknown, requests: MonitorRequests): Promise<unknown> {
    for (const [table, reqs] of Object.entries(requests)) {
      for (const r of ([] as MonitorRequest[]).concat(reqs)) {
        if (r.where) throw new OvsdbError(`monitor of ${table}: conditions need monitor_cond, which the server lacks`);
      }
    }
    return this.request('monitor', [db, monitorId, requests]);
  }

  /** `monitor_cond`: raw `<table-updates2>` reply; notifications come as `update2` events. */
  monitorCond(db: string, monitorId: unknown, requests: MonitorRequests): Promise<unknown> {
    return this.request('monitor_cond', [db, monitorId, requests]);
  }

  /** `monitor_cond_since`: `found` says the server knew `lastTxnId`; notifications come as `update3`. */
  async monitorCondSince(
    db: string,
    monitorId: unknown,
    requests: MonitorRequests,
    lastTxnId: string = ZERO_TXN,
  ): Promise<{ found: boolean; lastTxnId: string; updates: unknown }> {
    const r = await this.request('monitor_cond_since', [db, monitorId, requests, lastTxnId]);
    if (!Array.isArray(r) || r.length !== 3 || typeof r[0] !== 'boolean' || typeof r[1] !== 'string') {
      throw bad('monitor_cond_since', r);
    }
    return { found: r[0], lastTxnId: r[1], updates: r[2] };
  }

  /** `monitor_cancel`. */
  async monitorCancel(monitorId: unknown): Promise<void> {
    await this.request('monitor_cancel', [monitorId]);
  }

  /**
   * Opens a monitor with the newest method the server supports (monitor_cond_since, then
   * monitor_cond, then monitor, falling back on "unknown method"), with normalised updates.
   * Notifications that arrive before the caller has processed the reply are buffered until
   * {@link MonitorHandle.resume}, so none is lost or applied before the initial contents.
   */
  async openMonitor(db: string, requests: MonitorRequests, options: OpenMonitorOptions): Promise<MonitorHandle> {
    const methods = options.methods ?? ['monitor_cond_since', 'monitor_cond', 'monitor'];
    let lastError: Error | undefined;
    for (const method of methods) {
      const id = `m${this.nextId++}`;
      const format = method === 'monitor' ? 1 : method === 'monitor_cond' ? 2 : 3;
      const state: MonitorState = { format, buffer: [], onUpdate: options.onUpdate };
      this.monitors.set(id, state);
      try {
        let found = false;
        let lastTxnId: string | undefined;
        let initial: TableUpdates;
        if (method === 'monitor_cond_since') {
          const r = await this.monitorCondSince(db, id, requests, options.lastTxnId ?? ZERO_TXN);
          ({ found, lastTxnId } = r);
          initial = normalizeUpdates2(r.updates);
        } else if (method === 'monitor_cond') {
          initial = normalizeUpdates2(await this.monitorCond(db, id, requests));
        } else {
          initial = normalizeUpdates1(await this.monitor(db, id, requests), true);
        }
        return {
          id,
          db,
          method,
          found,
          lastTxnId,
          initial,
          resume: () => {
            const buffered = state.buffer ?? [];
            state.buffer = null;
            for (const [u, txn] of buffered) state.onUpdate(u, txn);
          },
          cancel: async () => {
            this.monitors.delete(id);
            if (!this.isClosed) await this.monitorCancel(id);
          },
        };
      } catch (err) {
        this.monitors.delete(id);
        if (err instanceof OvsdbRpcError && err.error === 'unknown method') {
          lastError = err;
          continue;
        }
        throw err;
      }
    }
    throw lastError ?? new OvsdbError('openMonitor: no monitor method to try');
  }

  /** `lock`: true if acquired now; otherwise a `locked` event follows when it is. */
  async lock(name: string): Promise<boolean> {
    return lockResult('lock', await this.request('lock', [name]));
  }

  /** `steal`: takes the lock from its owner (who gets `stolen`). */
  async steal(name: string): Promise<boolean> {
    return lockResult('steal', await this.request('steal', [name]));
  }

  /** `unlock`: releases or stops waiting for the lock. */
  async unlock(name: string): Promise<void> {
    await this.request('unlock', [name]);
  }

  /** `echo`: round trip; resolves with the params the server sent back. */
  async echo(...params: unknown[]): Promise<unknown[]> {
    const r = await this.request('echo', params);
    if (!Array.isArray(r)) throw bad('echo', r);
    return r;
  }

  // ---- internals ----

  private write(text: string): void {
    this.stream.write(text);
  }

  private sendCancel(id: RpcId): void {
    if (this.closeReason === undefined) this.write(encodeNotification('cancel', [id]));
  }

  /** Removes a pending request and returns it (undefined if it already settled). */
  private settle(id: RpcId): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    p.cleanup();
    return p;
  }

  private onData(chunk: Buffer): void {
    this.lastReceive = Date.now();
    let messages: unknown[];
    try {
      messages = this.parser.push(chunk);
    } catch (err) {
      this.shutdown(`protocol error: ${(err as Error).message}`, err as Error);
      return;
    }
    for (const json of messages) {
      let msg: RpcMessage;
      try {
        msg = classifyMessage(json);
      } catch (err) {
        this.shutdown(`protocol error: ${(err as Error).message}`, err as Error);
        return;
      }
      try {
        this.dispatch(msg);
      } catch (err) {
        // A malformed update (or a listener failing on one) leaves the replica unknown: drop the
        // connection so that the session reconnects and resyncs, rather than crash the process.
        const error = err instanceof Error ? err : new OvsdbError(String(err));
        this.shutdown(`protocol error: ${error.message}`, error);
        return;
      }
      if (this.closeReason !== undefined) return;
    }
  }

  private dispatch(msg: RpcMessage): void {
    if (msg.kind === 'response') {
      const p = this.settle(msg.id);
      if (!p) return; // timed out or canceled earlier
      if (msg.error !== null) p.reject(rpcError(p.method, msg.error));
      else p.resolve(msg.result);
      return;
    }
    if (msg.kind === 'request') {
      if (msg.method === 'echo') {
        this.write(encodeResult(msg.id, msg.params));
        this.emit('echo', msg.params);
      } else this.write(encodeError(msg.id, 'unknown method'));
      return;
    }
    const [a, b, c] = msg.params;
    switch (msg.method) {
      case 'update':
        this.emit('update', a, b);
        this.deliver(a, 1, b, undefined);
        break;
      case 'update2':
        this.emit('update2', a, b);
        this.deliver(a, 2, b, undefined);
        break;
      case 'update3':
        this.emit('update3', a, String(b), c);
        this.deliver(a, 3, c, String(b));
        break;
      case 'locked':
        this.emit('locked', String(a));
        break;
      case 'stolen':
        this.emit('stolen', String(a));
        break;
      default:
        break; // unknown notifications are ignored, as RFC 7047 clients do
    }
  }

  private deliver(monitorId: unknown, format: 1 | 2 | 3, json: unknown, lastTxnId: string | undefined): void {
    const state = typeof monitorId === 'string' ? this.monitors.get(monitorId) : undefined;
    if (!state || state.format !== format) return;
    const updates = format === 1 ? normalizeUpdates1(json, false) : normalizeUpdates2(json);
    if (state.buffer) state.buffer.push([updates, lastTxnId]);
    else state.onUpdate(updates, lastTxnId);
  }

  private probe(intervalMs: number): void {
    if (this.probing || this.isClosed || Date.now() - this.lastReceive < intervalMs) return;
    this.probing = true;
    this.request('echo', [], { timeoutMs: intervalMs }).then(
      () => (this.probing = false),
      (err: Error) => {
        this.probing = false;
        if (err instanceof RequestTimeoutError) {
          this.shutdown(`inactivity probe: no echo reply within ${intervalMs} ms`, err);
        }
      },
    );
  }

  private shutdown(reason: string, error: Error | undefined): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.stream.destroy();
    for (const id of [...this.pending.keys()]) {
      this.settle(id)?.reject(new ConnectionClosedError(this.remote, reason));
    }
    this.monitors.clear();
    this.emit('close', error);
  }
}

function decodeResult(op: Operation, raw: unknown, schema: DatabaseSchema | undefined): unknown {
  const r = (raw ?? {}) as Record<string, unknown>;
  switch (op.op) {
    case 'insert': {
      const u = r.uuid;
      if (!Array.isArray(u) || u[0] !== 'uuid' || typeof u[1] !== 'string') throw bad('transact insert', raw);
      return { uuid: new Uuid(u[1]) };
    }
    case 'select': {
      if (!Array.isArray(r.rows)) throw bad('transact select', raw);
      const table = schema?.tables[op.table];
      return { rows: r.rows.map((row: unknown): Row => (table ? decodeRow(row, table) : rowFromJSON(row))) };
    }
    case 'update':
    case 'mutate':
    case 'delete':
      if (typeof r.count !== 'number') throw bad(`transact ${op.op}`, raw);
      return { count: r.count };
    default:
      return {};
  }
}

function rpcError(method: string, error: unknown): OvsdbRpcError {
  if (typeof error === 'string') return new OvsdbRpcError(method, error);
  if (error && typeof error === 'object') {
    const e = error as Record<string, unknown>;
    return new OvsdbRpcError(
      method,
      typeof e.error === 'string' ? e.error : JSON.stringify(error),
      typeof e.details === 'string' ? e.details : undefined,
    );
  }
  return new OvsdbRpcError(method, JSON.stringify(error));
}

function lockResult(method: string, r: unknown): boolean {
  if (!r || typeof r !== 'object' || typeof (r as { locked?: unknown }).locked !== 'boolean') throw bad(method, r);
  return (r as { locked: boolean }).locked;
}

function bad(method: string, result: unknown): OvsdbError {
  return new OvsdbError(`ovsdb ${method}: unexpected result ${JSON.stringify(result)?.slice(0, 200)}`);
}
