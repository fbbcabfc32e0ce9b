/**
 * OpenFlow 1.3 connection to a switch: transport (`unix:<path>` or `tcp:<host>:<port>`), hello and
 * version negotiation, echo both ways with an inactivity probe, xid tracking with request
 * timeouts, barrier-based confirmation of fire-and-forget messages, events for packet_in and
 * unsolicited errors, and reconnection with backoff (e.g. after ovs-vswitchd restarts).
 */
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { Backoff } from '../common/backoff.js';
import { Framer } from './framer.js';
import {
  MultipartAssembler, OFPT, decodeError, decodeFeaturesReply, decodeHello,
  decodeMultipartReply, decodePacketIn, echoData, encodeBarrierRequest, encodeEchoReply, encodeEchoRequest,
  encodeFeaturesRequest, encodeHello, encodeSetConfig, messageTypeName, versionName, type Features, type PacketIn,
} from './messages.js';
import { OpenFlowError, type OfErrorInfo } from './errors.js';
import { OFP13_VERSION, OFPCML_NO_BUFFER } from './consts.js';

export interface ConnectionOptions {
  /** Default timeout of a request awaiting its reply (ms). Default 10 000. */
  requestTimeoutMs?: number;
  /**
   * Send an echo request after this long without traffic; drop the connection if it stays
   * unanswered as long again while no other request is outstanding. 0 disables. Default 5 000.
   */
  probeIntervalMs?: number;
  /** Reconnect after the connection drops. Default true. */
  reconnect?: boolean;
  /** Reconnection backoff, doubling from min to max (ms), jittered. Defaults 100 and 5 000. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Timeout of connect + handshake (ms). Default 10 000. */
  connectTimeoutMs?: number;
  /** miss_send_len sent in SET_CONFIG; a non-zero value is also what makes OVS send packet_in on its management socket. Default 0xffff (whole packet). */
  missSendLen?: number;
}

/** The connection could not be made or was lost. */
export class OpenFlowConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OpenFlowConnectionError';
  }
}

/** The switch does not speak OpenFlow 1.3 on this connection. */
export class OpenFlowVersionError extends OpenFlowConnectionError {
  constructor(message: string) {
    super(message);
    this.name = 'OpenFlowVersionError';
  }
}

/** A request got no reply in time. */
export class OpenFlowTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OpenFlowTimeoutError';
  }
}

interface Pending {
  resolve: (msg: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  what: string;
}

interface ErrorWatch {
  first: number;
  count: number;
  errors: OfErrorInfo[];
}

type Target = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** Parses `unix:<path>`, `tcp:<host>:<port>` (IPv6 host in brackets) or a bare absolute path. */
export function parseTarget(target: string): Target {
  if (target.startsWith('unix:')) return { kind: 'unix', path: target.slice(5) };
  if (target.startsWith('/')) return { kind: 'unix', path: target };
  const m = /^tcp:(\[[^\]]+\]|[^:]+):(\d+)$/.exec(target);
  if (m) {
    const port = Number(m[2]);
    if (port > 0 && port < 65536) return { kind: 'tcp', host: m[1].replace(/^\[|\]$/g, ''), port };
  }
  throw new TypeError(`bad OpenFlow target '${target}': expected unix:<path> or tcp:<host>:<port>`);
}

export interface OpenFlowConnectionEvents {
  packet_in: [PacketIn];
  /** An error message that answers no tracked request. */
  ofp_error: [OfErrorInfo];
  /** Every message received after the handshake (raw). */
  message: [Buffer];
  /**
   * A message from the switch could not be handled (malformed, or a listener threw on it). It was
   * dropped, and a request waiting on its xid was rejected with `error`; the session goes on.
   */
  message_error: [error: Error, message: Buffer];
  disconnected: [Error];
  reconnected: [Features];
}

export class OpenFlowConnection extends EventEmitter<OpenFlowConnectionEvents> {
  readonly target: string;
  /** FEATURES_REPLY of the current session (datapath id, number of tables). */
  features: Features | undefined;
  private readonly addr: Target;
  private readonly opts: Required<ConnectionOptions>;
  private socket: Socket | undefined;
  private framer = new Framer();
  private xid = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly multipart = new MultipartAssembler();
  private readonly watches = new Set<ErrorWatch>();
  private up = false;
  private closing = false;
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private lastRx = 0;
  private probeSentAt = 0;

  private constructor(target: string, opts: ConnectionOptions) {
    super();
    this.target = target;
    this.addr = parseTarget(target);
    this.opts = {
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      probeIntervalMs: opts.probeIntervalMs ?? 5_000,
      reconnect: opts.reconnect ?? true,
      backoffMinMs: opts.backoffMinMs ?? 100,
      backoffMaxMs: opts.backoffMaxMs ?? 5_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      missSendLen: opts.missSendLen ?? OFPCML_NO_BUFFER,
    };
    this.backoff = new Backoff({ minMs: this.opts.backoffMinMs, maxMs: Math.max(this.opts.backoffMinMs, this.opts.backoffMaxMs) });
  }

  /** Connects and completes the handshake (hello, OpenFlow 1.3 check, set_config, features). */
  static async connect(target: string, opts: ConnectionOptions = {}): Promise<OpenFlowConnection> {
    const conn = new OpenFlowConnection(target, opts);
    await conn.open();
    return conn;
  }

  get connected(): boolean {
    return this.up;
  }

  /** Allocates one transaction id. */
  nextXid(): number {
    this.xid = (this.xid + 1) >>> 0;
    if (this.xid === 0) this.xid = 1;
    return this.xid;
  }

  /** Allocates `n` consecutive xids (modulo 2^32) and returns the first. */
  reserveXids(n: number): number {
    const first = this.nextXid();
    this.xid = (first + n - 1) >>> 0;
    return first;
  }

  /** Writes bytes (one or more whole messages). The buffer must not change afterwards. */
  send(buf: Uint8Array): void {
    if (!this.up || !this.socket) throw new OpenFlowConnectionError(`not connected to ${this.target}`);
    this.socket.write(buf);
  }

  /** Sends a request and resolves with its reply message (an ERROR reply rejects with OpenFlowError). */
  request(buf: Uint8Array, xid: number, timeoutMs = this.opts.requestTimeoutMs): Promise<Buffer> {
    const what = messageTypeName(buf[1]);
    const p = this.track(xid, what, timeoutMs);
    try {
      this.send(buf);
    } catch (err) {
      this.settle(xid)?.reject(err as Error);
    }
    return p;
  }

  /** Sends a multipart request; resolves with the reassembled body of all reply parts. */
  async requestMultipart(buf: Uint8Array, xid: number, timeoutMs = this.opts.requestTimeoutMs): Promise<Buffer> {
    return this.request(buf, xid, timeoutMs);
  }

  /** Barrier: resolves once the switch has processed everything sent before. */
  async barrier(timeoutMs = this.opts.requestTimeoutMs): Promise<void> {
    const xid = this.nextXid();
    await this.request(encodeBarrierRequest(xid), xid, timeoutMs);
  }

  /**
   * Collects error messages whose xid lies in first..first+count-1 (modulo 2^32) until `stop()`;
   * they are then not emitted as 'ofp_error'. For messages that have no reply of their own.
   */
  watchErrors(first: number, count: number): { errors: OfErrorInfo[]; stop: () => void } {
    const watch: ErrorWatch = { first, count, errors: [] };
    this.watches.add(watch);
    return { errors: watch.errors, stop: () => this.watches.delete(watch) };
  }

  /**
   * Sends messages that have no reply of their own (flow_mod, group_mod, bundle_add...) using xids
   * first..first+count-1, then a barrier; resolves with the errors the switch sent for them (empty
   * when all succeeded).
   */
  async sendConfirmed(buf: Uint8Array, first: number, count: number, timeoutMs = this.opts.requestTimeoutMs): Promise<OfErrorInfo[]> {
    const watch = this.watchErrors(first, count);
    try {
      this.send(buf);
      await this.barrier(timeoutMs);
      return watch.errors;
    } finally {
      watch.stop();
    }
  }

  /** Echo round trip; resolves with the time it took (ms). */
  async echo(timeoutMs = this.opts.requestTimeoutMs): Promise<number> {
    const xid = this.nextXid();
    const t0 = performance.now();
    await this.request(encodeEchoRequest(xid), xid, timeoutMs);
    return performance.now() - t0;
  }

  /** Resolves when connected (immediately if so); rejects after `timeoutMs`, or at once if closed or not reconnecting. */
  waitConnected(timeoutMs = this.opts.connectTimeoutMs): Promise<void> {
    if (this.up) return Promise.resolve();
    if (this.closing || !this.opts.reconnect) {
      return Promise.reject(new OpenFlowConnectionError(`not connected to ${this.target}${this.closing ? ' (closed)' : ''}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('reconnected', onUp);
        reject(new OpenFlowTimeoutError(`not reconnected to ${this.target} within ${timeoutMs} ms`));
      }, timeoutMs);
      const onUp = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.once('reconnected', onUp);
    });
  }

  /** Closes for good (no reconnection); pending requests are rejected. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    const sock = this.socket;
    this.teardown(new OpenFlowConnectionError(`connection to ${this.target} closed`));
    if (sock && !sock.destroyed) {
      await new Promise<void>((resolve) => {
        sock.once('close', () => resolve());
        sock.end();
        setTimeout(() => sock.destroy(), 1000).unref();
      });
    }
  }

  // -------------------------------------------------------------------------------------------

  private track(xid: number, what: string, timeoutMs: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(xid);
        this.multipart.discard(xid);
        reject(new OpenFlowTimeoutError(`${what} (xid ${xid}) to ${this.target}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(xid, { resolve, reject, timer, what });
    });
  }

  private settle(xid: number): Pending | undefined {
    const p = this.pending.get(xid);
    if (p) {
      clearTimeout(p.timer);
      this.pending.delete(xid);
    }
    return p;
  }

  private open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const sock = this.addr.kind === 'unix'
        ? createConnection({ path: this.addr.path })
        : createConnection({ host: this.addr.host, port: this.addr.port });
      let done = false;
      const fail = (err: Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        reject(err instanceof OpenFlowConnectionError ? err
          : new OpenFlowConnectionError(`cannot connect to ${this.target}: ${err.message}`));
      };
      const timer = setTimeout(() => fail(new OpenFlowConnectionError(
        `cannot connect to ${this.target}: no handshake within ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
      const framer = new Framer();
      let stage: 'hello' | 'features' = 'hello';
      let featuresXid = 0;

      const onData = (chunk: Buffer): void => {
        let msgs: Buffer[];
        try {
          msgs = framer.push(chunk);
        } catch (err) {
          fail(err as Error);
          return;
        }
        try {
          handshake(msgs);
        } catch (err) {
          // A malformed message during the handshake fails this attempt (reconnect backs off).
          fail(new OpenFlowConnectionError(`handshake with ${this.target} failed: ${(err as Error).message}`));
        }
      };
      const handshake = (msgs: Buffer[]): void => {
        for (let i = 0; i < msgs.length; i++) {
          const msg = msgs[i];
          if (done) return;
          const type = msg[1];
          if (type === OFPT.ERROR) {
            const info = decodeError(msg);
            fail(info.type === 0
              ? new OpenFlowVersionError(`${this.target} refused OpenFlow 1.3: ${info.description}`)
              : new OpenFlowConnectionError(`handshake with ${this.target} failed: ${new OpenFlowError(info).message}`));
            return;
          }
          if (type === OFPT.ECHO_REQUEST) {
            sock.write(encodeEchoReply(msg.readUInt32BE(4), echoData(msg)));
          } else if (stage === 'hello' && type === OFPT.HELLO) {
            const hello = decodeHello(msg);
            if (!hello.versions.includes(OFP13_VERSION)) {
              fail(new OpenFlowVersionError(
                `${this.target} does not offer OpenFlow 1.3 (it offers ${hello.versions.map(versionName).join(', ')}); ` +
                'allow it on the bridge, e.g. ovs-vsctl set bridge <br> protocols=OpenFlow13'));
              return;
            }
            stage = 'features';
            featuresXid = this.nextXid();
            sock.write(encodeSetConfig(this.nextXid(), this.opts.missSendLen));
            sock.write(encodeFeaturesRequest(featuresXid));
          } else if (stage === 'features' && type === OFPT.FEATURES_REPLY && msg.readUInt32BE(4) === featuresXid) {
            const features = decodeFeaturesReply(msg);
            done = true;
            clearTimeout(timer);
            sock.off('data', onData);
            sock.off('error', fail);
            sock.off('close', onEarlyClose);
            this.features = features;
            this.attach(sock, framer);
            // Anything after the features reply in this chunk belongs to the session.
            for (const rest of msgs.slice(i + 1)) this.dispatch(rest);
            resolve();
            return;
          }
        }
      };
      const onEarlyClose = (): void => fail(new OpenFlowConnectionError(`${this.target} closed the connection during the handshake`));
      sock.on('data', onData);
      sock.on('error', fail);
      sock.on('close', onEarlyClose);
      sock.on('connect', () => {
        if (this.addr.kind === 'tcp') sock.setNoDelay(true);
        sock.write(encodeHello(this.nextXid()));
      });
    });
  }

  private attach(sock: Socket, framer: Framer): void {
    this.socket = sock;
    this.framer = framer;
    this.up = true;
    this.backoff.reset();
    this.lastRx = Date.now();
    this.probeSentAt = 0;
    sock.on('data', (chunk: Buffer) => {
      this.lastRx = Date.now();
      this.probeSentAt = 0;
      let msgs: Buffer[];
      try {
        msgs = this.framer.push(chunk);
      } catch (err) {
        sock.destroy(err as Error);
        return;
      }
      for (const m of msgs) this.dispatch(m);
    });
    sock.on('error', () => { /* 'close' follows and carries the reconnect logic */ });
    sock.on('close', () => this.onClose(sock));
    if (this.opts.probeIntervalMs > 0) {
      const iv = this.opts.probeIntervalMs;
      this.probeTimer = setInterval(() => this.probe(iv), Math.max(50, Math.floor(iv / 4)));
      this.probeTimer.unref();
    }
  }

  private probe(interval: number): void {
    const now = Date.now();
    if (!this.up || !this.socket) return;
    if (this.probeSentAt === 0) {
      if (now - this.lastRx >= interval) {
        this.probeSentAt = now;
        this.socket.write(encodeEchoRequest(this.nextXid()));
      }
    } else if (now - this.probeSentAt >= interval && this.pending.size === 0) {
      // With requests outstanding the switch may just be busy (a large bundle commit blocks
      // ovs-vswitchd); their own timeouts decide then.
      this.socket.destroy(new Error(`inactivity probe: no reply from ${this.target} for ${now - this.lastRx} ms`));
    }
  }

  /** Handles one message; whatever goes wrong with it stays with it (the session goes on). */
  private dispatch(msg: Buffer): void {
    try {
      this.handle(msg);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      const xid = msg.readUInt32BE(4);
      this.multipart.discard(xid);
      this.settle(xid)?.reject(error);
      if (this.listenerCount('message_error') > 0) {
        try {
          this.emit('message_error', error, msg);
        } catch {
          // A failing error listener must not undo the confinement.
        }
      }
    }
  }

  private handle(msg: Buffer): void {
    const type = msg[1];
    const xid = msg.readUInt32BE(4);
    switch (type) {
      case OFPT.ECHO_REQUEST:
        this.socket?.write(encodeEchoReply(xid, echoData(msg)));
        break;
      case OFPT.ERROR: {
        const info = decodeError(msg);
        const p = this.settle(xid);
        if (p) {
          this.multipart.discard(xid);
          p.reject(new OpenFlowError(info, `${p.what} to ${this.target}`));
          break;
        }
        let watched = false;
        for (const w of this.watches) {
          if (((xid - w.first) >>> 0) < w.count) {
            w.errors.push(info);
            watched = true;
          }
        }
        if (!watched) this.emit('ofp_error', info);
        break;
      }
      case OFPT.MULTIPART_REPLY: {
        if (!this.pending.has(xid)) break;
        let whole: { body: Buffer } | undefined;
        try {
          whole = this.multipart.add(decodeMultipartReply(msg));
        } catch (err) {
          this.settle(xid)?.reject(err as Error);
          break;
        }
        if (whole) this.settle(xid)?.resolve(whole.body);
        break;
      }
      case OFPT.PACKET_IN:
        this.emit('packet_in', decodePacketIn(msg));
        break;
      default:
        this.settle(xid)?.resolve(msg);
    }
    this.emit('message', msg);
  }

  private teardown(reason: Error): void {
    this.up = false;
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    this.socket = undefined;
    for (const [xid, p] of this.pending) {
      clearTimeout(p.timer);
      this.multipart.discard(xid);
      p.reject(new OpenFlowConnectionError(`${p.what} (xid ${xid}) to ${this.target}: ${reason.message}`));
    }
    this.pending.clear();
  }

  private onClose(sock: Socket): void {
    if (this.socket !== sock) return;
    const reason = new OpenFlowConnectionError(`connection to ${this.target} lost`);
    this.teardown(reason);
    if (this.closing) return;
    this.emit('disconnected', reason);
    if (this.opts.reconnect) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = this.backoff.next();
    this.reconnectTimer = setTimeout(() => {
      if (this.closing) return;
      this.open().then(
        () => {
          if (this.closing) {
            this.socket?.destroy();
            return;
          }
          this.emit('reconnected', this.features!);
        },
        () => this.scheduleReconnect(),
      );
    }, delay);
  }
}
