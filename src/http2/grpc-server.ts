/**
 * A gRPC server for streaming methods on a small HTTP/2 implementation over node:net (h2c with
 * prior knowledge) or node:tls (ALPN h2, mutual TLS if the caller asks for client certificates).
 *
 * Why not grpc-js: with node:http2 underneath it costs tens of microseconds of CPU per message and
 * ack on a long-lived stream; a controller pushing to 1,000+ agents spends most of its time there.
 * Here a small message is one allocation and one socket write, and a received one is a view of the
 * socket read, delivered synchronously.
 *
 * Scope: every method is treated as bidirectional streaming (unary and server-streaming calls
 * work too: the handler just sees one message then a half-close). Messages are opaque Buffers.
 * Not implemented: compression (a compressed message ends the call with UNIMPLEMENTED),
 * grpc-timeout deadlines, server push, priorities.
 *
 * Every quantity a peer controls is bounded (options below, each hit counted in limitsHit):
 * CONTINUATION frames and octets per header block, header list and message sizes, output the peer
 * leaves unread (reading pauses while the socket is backed up), control frames answered
 * meanwhile, streams reset or refused per second, handshake and idle time, connections per address.
 */
import net from 'node:net';
import tls from 'node:tls';
import {
  DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW_SIZE, ErrorCode, FRAME_HEADER_LENGTH, Flag, FrameReader, FrameType, Http2Error, MAX_WINDOW_SIZE,
  SettingsId, decodeSettings, encodeFrame, encodeGoaway, encodeSettings, encodeU32Frame, errorCodeName, writeFrameHeader,
} from './frames.js';
import { GRPC_PREFIX_LENGTH, GrpcMessageSplitter, encodeGrpcMessage, writeGrpcPrefix } from './grpc-framing.js';
import { HeaderListSizeError, HpackDecoder, HpackError, encodeHeaderBlock, type HeaderField } from './hpack.js';

/** gRPC status codes (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/**
 * One call, from the moment its request headers arrived. Callbacks are plain properties: set them
 * in the handler (nothing is delivered before it returns). After end(), or once onCancel ran, the
 * call is over: no more callbacks, send() and end() do nothing.
 */
export interface GrpcStreamCall {
  /** The method, e.g. '/package.Service/Method'. */
  readonly path: string;
  /** Request headers without the pseudo-headers (names lowercase; repeated ones joined with ', '). */
  readonly headers: ReadonlyMap<string, string>;
  /** Remote address:port ([v6]:port). */
  readonly peer: string;
  /** Over TLS, the client's certificate as it presented it (null: plaintext or none); authorization is the handler's. */
  readonly peerCertificate: tls.PeerCertificate | null;
  /** True once end() was called or the call was cancelled. */
  readonly ended: boolean;
  /** Message octets (with their 5-octet prefixes) waiting for flow-control window. */
  readonly bufferedBytes: number;
  /**
   * Sends one message (copied: the caller may reuse `message`). Returns false when the caller
   * should wait for onDrain: this call's messages waiting for HTTP/2 flow-control window exceed
   * the high-water mark, or the connection's socket is above its own high-water mark (its
   * write() returned false and it has not drained yet). Either way the message is queued.
   * `done` runs once the message's last octet was handed to the socket (never synchronously);
   * it does not run for messages dropped because the call was cancelled first.
   */
  send(message: Buffer, done?: () => void): boolean;
  /**
   * Ends the call with trailers grpc-status `code` and, when not empty, grpc-message `details`
   * (percent-encoded). Trailers follow messages still queued. If the client has not half-closed,
   * the stream is then reset with NO_ERROR (as gRPC servers do); the client sees the status.
   */
  end(code: number, details?: string): void;
  /** A whole message, its 5-octet prefix stripped; a view that stays valid (copy it to keep less memory). */
  onMessage: (message: Buffer) => void;
  /** The client half-closed (END_STREAM): it will send no more messages. */
  onHalfClose: () => void;
  /** The call was cut short: reset by the client, connection lost or failed, server closing. */
  onCancel: (reason: string) => void;
  /** After send() returned false: both the call's queue and the socket are below their marks again. */
  onDrain: () => void;
}

export type GrpcStreamHandler = (call: GrpcStreamCall) => void;

/** The peer-controlled quantities the server bounds (see the options of the same names). */
export const HTTP2_LIMITS = [
  'continuation-frames',
  'header-block-bytes',
  'output-bytes',
  'queued-control-frames',
  'stream-resets',
  'handshake-timeout',
  'idle-timeout',
  'connections-per-peer',
] as const;
export type Http2Limit = (typeof HTTP2_LIMITS)[number];

export interface GrpcStreamServerOptions {
  /** Handlers by path ('/package.Service/Method'). Other paths get UNIMPLEMENTED. */
  handlers: Readonly<Record<string, GrpcStreamHandler>>;
  /** Largest message accepted from a client; a larger one ends the call with RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
  /**
   * TLS instead of plaintext h2c: key, cert, and for mutual TLS ca + requestCert (+
   * rejectUnauthorized, the default). ALPN is set to 'h2' here; a client that does not select
   * h2 is disconnected.
   */
  tls?: tls.TlsOptions;
  /** Send a PING after this long without anything from the client; 0 or unset: never. */
  keepaliveMs?: number;
  /** Close the connection when a keepalive PING stays unanswered this long. Default 20 000. */
  keepaliveTimeoutMs?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS: more open calls per connection are refused. Default 100. */
  maxConcurrentStreams?: number;
  /**
   * Our SETTINGS_INITIAL_WINDOW_SIZE: how much a client may send on a call before we top up its
   * window, which we do once half of it was used (messages are delivered synchronously, so the
   * window bounds nothing we hold). Default 8 MiB. The connection window is 2^31-1.
   */
  streamWindowBytes?: number;
  /** Per-call bytes queued for flow-control window above which send() returns false. Default 64 KiB. */
  highWaterMark?: number;
  /** Largest request header list (SETTINGS_MAX_HEADER_LIST_SIZE sizing). Default 16 KiB. */
  maxHeaderListBytes?: number;
  /**
   * Most CONTINUATION frames one header block may take (empty ones count: CVE-2024-27316).
   * Default 8, as nghttp2.
   */
  maxContinuationFrames?: number;
  /** Largest header block (all fragments, before decoding). Default the larger of 64 KiB and 2 x maxHeaderListBytes. */
  maxHeaderBlockBytes?: number;
  /**
   * Output a client leaves unread: reading stops while the socket is backed up (its write()
   * returned false) and resumes on 'drain'; above this many octets queued in the socket the
   * connection is destroyed. Default 16 MiB.
   */
  maxOutputBytes?: number;
  /**
   * Control frames we answer (PING and SETTINGS acks, RST_STREAM) while the socket is backed up;
   * one more is a flood from a client that does not read: GOAWAY ENHANCE_YOUR_CALM. Default 1000.
   */
  maxQueuedControlFrames?: number;
  /**
   * Streams per second and connection that end without being served: reset by the client, refused,
   * or answered at once with an error (unknown method, bad headers). One more is rapid reset
   * (CVE-2023-44487) or a request flood: GOAWAY ENHANCE_YOUR_CALM. Default 200.
   */
  maxStreamResetsPerSecond?: number;
  /** The client preface and SETTINGS (and the TLS handshake) must arrive within this. Default 10 000 ms. */
  handshakeTimeoutMs?: number;
  /** A connection without an open call this long gets GOAWAY and is closed. Default 300 000 ms. */
  idleTimeoutMs?: number;
  /** Open TCP connections per client address; more are closed at accept. Default 64. */
  maxConnectionsPerPeer?: number;
  /** Called whenever one of the limits above is hit (also counted in GrpcStreamServer.limitsHit). */
  onLimit?: (limit: Http2Limit, peer: string, detail: string) => void;
  /**
   * Problems worth a log line: protocol errors (ours to the peer, or the peer's GOAWAY with an
   * error), TLS handshake failures, socket errors other than ECONNRESET/EPIPE, and exceptions
   * thrown by handlers or call callbacks (the call then ends with INTERNAL).
   */
  onError?: (err: Error, peer: string) => void;
}

// ---------------------------------------------------------------- constants

const DEFAULT_STREAM_WINDOW = 8 << 20;
const CONNECTION_WINDOW = MAX_WINDOW_SIZE;
const DEFAULT_HIGH_WATER_MARK = 64 << 10;
const DEFAULT_MAX_HEADER_LIST = 16 << 10;
const MIN_HEADER_BLOCK = 64 << 10;
/** Longest :path named in an UNIMPLEMENTED answer: a long one is not echoed (no amplification). */
const MAX_ECHOED_PATH = 128;
/** How long a connection we finished with may stay half-open before it is destroyed. */
const LINGER_MS = 2000;
const MAX_DETAILS = 4096;

const DATA_PREFIX = FRAME_HEADER_LENGTH + GRPC_PREFIX_LENGTH;
const NOOP = (): void => {};

/** :status 200 and content-type, the same for every call (no dynamic table, so it can be shared). */
const RESPONSE_HEADERS: readonly HeaderField[] = [
  [':status', '200'],
  ['content-type', 'application/grpc'],
];
const RESPONSE_BLOCK = encodeHeaderBlock(RESPONSE_HEADERS);

/** Headers that are HTTP/1 connection-specific, malformed in HTTP/2 (RFC 9113 8.2.2). */
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
const UPPERCASE = /[A-Z]/;
const PLAIN_DETAILS = /^[\x20-\x24\x26-\x7e]*$/;

/** gRPC's percent-encoding of grpc-message: UTF-8, octets outside 0x20-0x7E and '%' as %XX. */
export function percentEncode(text: string): string {
  if (PLAIN_DETAILS.test(text)) return text;
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
  }
  return out;
}

function trailerFields(code: number, details: string, only: boolean, status = '200'): HeaderField[] {
  const fields: HeaderField[] = only ? [[':status', status], ['content-type', 'application/grpc']] : [];
  fields.push(['grpc-status', String(code)]);
  if (details) fields.push(['grpc-message', percentEncode(details.length > MAX_DETAILS ? details.slice(0, MAX_DETAILS) : details)]);
  return fields;
}

function formatPeer(socket: net.Socket): string {
  const addr = socket.remoteAddress ?? 'unknown';
  return `${addr.includes(':') ? `[${addr}]` : addr}:${socket.remotePort ?? 0}`;
}

// ---------------------------------------------------------------- calls

const OPEN = 0;
/** end() called; trailers wait behind queued messages. */
const ENDING = 1;
/** Trailers sent, or reset, or the connection is gone. */
const CLOSED = 2;

class ServerCall implements GrpcStreamCall {
  onMessage: (message: Buffer) => void = NOOP;
  onHalfClose: () => void = NOOP;
  onCancel: (reason: string) => void = NOOP;
  onDrain: () => void = NOOP;

  state = OPEN;
  remoteEnded = false;
  headersSent = false;
  /** Flow control: what we may still send, and what the client sent since our last WINDOW_UPDATE. */
  sendWindow: number;
  recvConsumed = 0;
  /** Messages (prefix + payload, possibly partly sent) waiting for window, and their callbacks. */
  private queue: Buffer[] = [];
  private queueDone: Array<(() => void) | undefined> = [];
  private queued = 0;
  /** send() returned false; onDrain is owed. */
  wantDrain = false;
  private trailerCode = 0;
  private trailerDetails = '';
  private readonly splitter: GrpcMessageSplitter;

  constructor(
    private readonly conn: Connection,
    readonly id: number,
    readonly path: string,
    readonly headers: ReadonlyMap<string, string>,
  ) {
    this.sendWindow = conn.peerInitialWindow;
    this.splitter = new GrpcMessageSplitter(conn.maxMessageBytes);
    this.splitter.onMessage = (m) => this.deliver(m);
    this.splitter.onProblem = (p) => (p.kind === 'compressed' ? this.compressed(p.flag) : this.tooLarge(p.length));
  }

  get peer(): string {
    return this.conn.peer;
  }

  get peerCertificate(): tls.PeerCertificate | null {
    return this.conn.peerCertificate;
  }

  get ended(): boolean {
    return this.state !== OPEN;
  }

  get bufferedBytes(): number {
    return this.queued;
  }

  send(message: Buffer, done?: () => void): boolean {
    if (this.state !== OPEN) return false;
    const c = this.conn;
    if (!this.headersSent) this.sendHeaders();
    const len = message.length;
    const frameLen = 5 + len;
    if (this.queue.length === 0 && frameLen <= c.sendWindow && frameLen <= this.sendWindow && frameLen <= c.peerMaxFrame) {
      // Hot path: frame header, message prefix and payload in one buffer, one write.
      const buf = Buffer.allocUnsafe(DATA_PREFIX + len);
      writeFrameHeader(buf, 0, frameLen, FrameType.DATA, 0, this.id);
      writeGrpcPrefix(buf, FRAME_HEADER_LENGTH, len);
      message.copy(buf, DATA_PREFIX);
      c.sendWindow -= frameLen;
      this.sendWindow -= frameLen;
      if (!c.socket.write(buf, done)) c.backedUp();
    } else {
      const buf = encodeGrpcMessage(message);
      this.queue.push(buf);
      this.queueDone.push(done);
      this.queued += frameLen;
      this.writeQueued();
    }
    if (this.queued > c.highWaterMark || c.congested) {
      this.wantDrain = true;
      return false;
    }
    this.wantDrain = false;
    return true;
  }

  end(code: number, details = ''): void {
    if (this.state !== OPEN) return;
    this.state = ENDING;
    this.wantDrain = false;
    this.trailerCode = code;
    this.trailerDetails = details;
    if (this.queue.length === 0) this.sendTrailers();
  }

  private sendHeaders(): void {
    this.headersSent = true;
    this.conn.writeHeaderBlock(this.id, this.conn.headerBlock(RESPONSE_HEADERS, RESPONSE_BLOCK), false);
  }

  /** Trailers (or a trailers-only response), then a reset if the client is still sending; the stream is done. */
  private sendTrailers(): void {
    const c = this.conn;
    const only = !this.headersSent;
    this.headersSent = true;
    c.socket.cork();
    c.writeHeaderBlock(this.id, c.headerBlock(trailerFields(this.trailerCode, this.trailerDetails, only)), true);
    if (!this.remoteEnded) c.write(encodeU32Frame(FrameType.RST_STREAM, this.id, ErrorCode.NO_ERROR));
    c.socket.uncork();
    this.close();
  }

  /** Window opened (WINDOW_UPDATE, SETTINGS): sends what it admits, then trailers or onDrain if due. */
  flush(): void {
    if (this.state === CLOSED || !this.writeQueued()) return;
    if (this.state === ENDING) return this.sendTrailers();
    this.maybeDrain();
  }

  /**
   * Writes queued messages as far as the windows admit (several frames: corked into one writev);
   * returns true when the queue is empty. Runs no callbacks, so send() can use it.
   */
  private writeQueued(): boolean {
    const c = this.conn;
    const q = this.queue;
    c.blocked.delete(this);
    if (q.length === 0) return true;
    c.socket.cork();
    while (q.length > 0) {
      const head = q[0];
      const n = Math.min(head.length, c.sendWindow, this.sendWindow, c.peerMaxFrame);
      if (n <= 0) break;
      const hdr = Buffer.allocUnsafe(9);
      writeFrameHeader(hdr, 0, n, FrameType.DATA, 0, this.id);
      c.write(hdr);
      c.sendWindow -= n;
      this.sendWindow -= n;
      this.queued -= n;
      if (n === head.length) {
        q.shift();
        const done = this.queueDone.shift();
        if (!c.socket.write(head, done)) c.backedUp();
      } else {
        c.write(head.subarray(0, n));
        q[0] = head.subarray(n);
      }
    }
    c.socket.uncork();
    if (q.length === 0) return true;
    c.blocked.add(this); // at the end: calls take turns when the connection window is short
    return false;
  }

  /** Runs onDrain if it is owed and both marks are clear. */
  maybeDrain(): void {
    const c = this.conn;
    if (!this.wantDrain || this.state !== OPEN || this.queued > c.highWaterMark || c.congested) return;
    this.wantDrain = false;
    try {
      this.onDrain();
    } catch (err) {
      this.fail(err);
    }
  }

  /** DATA payload [start, end): reassembled into gRPC messages; whole ones are delivered as views. */
  receive(d: Buffer, start: number, end: number): void {
    this.splitter.push(d, start, end);
  }

  private deliver(message: Buffer): void {
    try {
      this.onMessage(message);
    } catch (err) {
      this.fail(err);
    }
    if (this.state !== OPEN) this.splitter.stop();
  }

  private compressed(flag: number): void {
    this.end(GrpcStatus.UNIMPLEMENTED, `compressed messages are not supported (compressed flag ${flag})`);
  }

  private tooLarge(len: number): void {
    this.end(GrpcStatus.RESOURCE_EXHAUSTED, `message of ${len} bytes exceeds the limit of ${this.conn.maxMessageBytes}`);
  }

  /** END_STREAM from the client. */
  remoteEnd(): void {
    if (this.remoteEnded) return;
    this.remoteEnded = true;
    if (this.state !== OPEN) return;
    if (this.splitter.partial) {
      this.end(GrpcStatus.INTERNAL, 'the request stream ended inside a message');
      return;
    }
    try {
      this.onHalfClose();
    } catch (err) {
      this.fail(err);
    }
  }

  /** The call is over without trailers from us (reset, connection gone): onCancel if it was still open. */
  abort(reason: string): void {
    if (this.state === CLOSED) return;
    const wasOpen = this.state === OPEN;
    this.close();
    if (!wasOpen) return;
    try {
      this.onCancel(reason);
    } catch (err) {
      this.conn.report(err);
    }
  }

  /** Server shutdown: UNAVAILABLE to the client, onCancel to the application. */
  shutdown(reason: string): void {
    if (this.state !== OPEN) return;
    this.end(GrpcStatus.UNAVAILABLE, reason);
    try {
      this.onCancel(reason);
    } catch (err) {
      this.conn.report(err);
    }
  }

  /** An exception from the application's code: report it and end the call with INTERNAL. */
  fail(err: unknown): void {
    this.conn.report(err);
    this.end(GrpcStatus.INTERNAL, 'internal error');
  }

  private close(): void {
    this.state = CLOSED;
    this.queue = [];
    this.queueDone = [];
    this.queued = 0;
    this.splitter.stop();
    this.conn.removeCall(this);
  }
}

// ---------------------------------------------------------------- connections

class Connection {
  readonly peer: string;
  readonly maxMessageBytes: number;
  readonly highWaterMark: number;
  /** Send side: the client's windows and frame size. */
  sendWindow = DEFAULT_WINDOW_SIZE;
  peerInitialWindow = DEFAULT_WINDOW_SIZE;
  peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  /** The socket's write() returned false and 'drain' has not come yet. */
  congested = false;
  /** Calls with messages waiting for window. */
  readonly blocked = new Set<ServerCall>();
  private readonly calls = new Map<number, ServerCall>();
  private readonly reader: FrameReader;
  private readonly decoder: HpackDecoder;
  private readonly streamWindow: number;
  private recvConsumed = 0;
  /** Highest stream id the client opened (streams above it are idle). */
  private lastStreamId = 0;
  private settingsSeen = false;
  /** The client changed SETTINGS_HEADER_TABLE_SIZE: our next header block starts with a size update. */
  private tableSizeUpdate = false;
  /** We sent GOAWAY (server closing): no new calls; the socket ends when the last call is done. */
  private draining = false;
  /** The client sent GOAWAY NO_ERROR: same, from its side. */
  private peerDraining = false;
  private closed = false;
  private finished = false;
  // A header block spread over CONTINUATION frames.
  private contStream = 0;
  private contEndStream = false;
  private contFragments: Buffer[] = [];
  private contBytes = 0;
  private contFrames = 0;
  // Limits: reading paused while output is backed up; control frames answered meanwhile; resets this second.
  private readPaused = false;
  private controlWhileCongested = 0;
  private resetWindowStart = 0;
  private resets = 0;
  private handshakeTimer: NodeJS.Timeout;
  private idleTimer: NodeJS.Timeout | undefined;
  // Keepalive: anything read since the last tick; when our PING went out (0: none outstanding).
  private readSinceTick = true;
  private pingSentAt = 0;

  get peerCertificate(): tls.PeerCertificate | null {
    const cert = this.socket instanceof tls.TLSSocket ? this.socket.getPeerCertificate() : null;
    return cert && Object.keys(cert).length > 0 ? cert : null;
  }

  constructor(
    readonly socket: net.Socket,
    private readonly server: GrpcStreamServer,
    private readonly opts: ResolvedOptions,
  ) {
    this.peer = formatPeer(socket);
    this.maxMessageBytes = opts.maxMessageBytes;
    this.highWaterMark = opts.highWaterMark;
    this.streamWindow = opts.streamWindowBytes;
    this.decoder = new HpackDecoder({ maxHeaderListSize: opts.maxHeaderListBytes });
    this.reader = new FrameReader((type, flags, id, payload) => this.onFrame(type, flags, id, payload), {
      expectPreface: true,
      maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
    });
    socket.setNoDelay(true);
    this.handshakeTimer = setTimeout(() => {
      if (this.settingsSeen || this.closed) return;
      this.limit('handshake-timeout', `no client preface and SETTINGS within ${opts.handshakeTimeoutMs} ms`);
      this.teardown('handshake timeout');
      this.socket.destroy();
    }, opts.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    this.armIdle();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') this.report(err);
      this.teardown(`connection failed: ${err.message}`);
    });
    socket.on('close', () => {
      this.teardown('connection closed');
      this.server.connectionClosed(this);
    });
    // Our SETTINGS first (the server preface), then open the connection window all the way.
    const settings = encodeSettings([
      [SettingsId.MAX_CONCURRENT_STREAMS, opts.maxConcurrentStreams],
      [SettingsId.INITIAL_WINDOW_SIZE, this.streamWindow],
      [SettingsId.MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE],
      [SettingsId.MAX_HEADER_LIST_SIZE, opts.maxHeaderListBytes],
    ]);
    socket.write(
      Buffer.concat([
        encodeFrame(FrameType.SETTINGS, 0, 0, settings),
        encodeU32Frame(FrameType.WINDOW_UPDATE, 0, CONNECTION_WINDOW - DEFAULT_WINDOW_SIZE),
      ]),
    );
  }

  write(buf: Buffer): void {
    if (!this.socket.write(buf)) this.backedUp();
  }

  /**
   * The socket's write() returned false: stop reading until 'drain' (a client that does not read
   * cannot make us queue answers), and give up past maxOutputBytes.
   */
  backedUp(): void {
    this.congested = true;
    if (!this.readPaused && !this.closed) {
      this.readPaused = true;
      this.socket.pause();
    }
    const queued = this.socket.writableLength;
    if (queued > this.opts.maxOutputBytes && !this.socket.destroyed) {
      this.limit('output-bytes', `${queued} octets unread by the client`);
      this.teardown('output limit');
      this.socket.destroy();
    }
  }

  /** A control frame we must answer (PING, SETTINGS ack, RST_STREAM): bounded while the client does not read. */
  private writeControl(buf: Buffer): void {
    if (this.congested && ++this.controlWhileCongested > this.opts.maxQueuedControlFrames) {
      this.limit('queued-control-frames', `more than ${this.opts.maxQueuedControlFrames} control frames queued`);
      throw new Http2Error('control frames queued beyond the limit', ErrorCode.ENHANCE_YOUR_CALM);
    }
    this.write(buf);
  }

  /** A stream that ended without being served; too many per second is a flood. */
  private noteReset(): void {
    const now = performance.now();
    if (now - this.resetWindowStart >= 1000) {
      this.resetWindowStart = now;
      this.resets = 0;
    }
    if (++this.resets > this.opts.maxStreamResetsPerSecond) {
      this.limit('stream-resets', `more than ${this.opts.maxStreamResetsPerSecond} streams reset or refused in a second`);
      throw new Http2Error('too many streams reset or refused', ErrorCode.ENHANCE_YOUR_CALM);
    }
  }

  limit(limit: Http2Limit, detail: string): void {
    this.server.limitHit(limit, this.peer, detail);
  }

  private armIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.calls.size > 0 || this.closed) return;
      this.limit('idle-timeout', `no call for ${this.opts.idleTimeoutMs} ms`);
      this.write(encodeGoaway(this.lastStreamId, ErrorCode.NO_ERROR, 'idle'));
      this.teardown('idle timeout');
      this.finish();
    }, this.opts.idleTimeoutMs);
    this.idleTimer.unref();
  }

  report(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    try {
      this.opts.onError(e, this.peer);
    } catch {
      // a failing error callback must not take the connection down
    }
  }

  /** The header block to send next: `cached` unless a table size update must lead it. */
  headerBlock(fields: readonly HeaderField[], cached?: Buffer): Buffer {
    if (this.tableSizeUpdate) {
      this.tableSizeUpdate = false;
      return encodeHeaderBlock(fields, 0); // our encoder uses no dynamic table: 0 suits any limit
    }
    return cached ?? encodeHeaderBlock(fields);
  }

  /** HEADERS, plus CONTINUATION frames if the block exceeds the client's frame size. */
  writeHeaderBlock(id: number, block: Buffer, endStream: boolean): void {
    const max = this.peerMaxFrame;
    const es = endStream ? Flag.END_STREAM : 0;
    if (block.length <= max) {
      const buf = Buffer.allocUnsafe(9 + block.length);
      writeFrameHeader(buf, 0, block.length, FrameType.HEADERS, es | Flag.END_HEADERS, id);
      block.copy(buf, 9);
      this.write(buf);
      return;
    }
    this.socket.cork();
    for (let off = 0; off < block.length; off += max) {
      const part = block.subarray(off, off + max);
      const last = off + max >= block.length;
      const type = off === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
      this.write(encodeFrame(type, (off === 0 ? es : 0) | (last ? Flag.END_HEADERS : 0), id, part));
    }
    this.socket.uncork();
  }

  removeCall(call: ServerCall): void {
    if (this.calls.get(call.id) !== call) return;
    this.calls.delete(call.id);
    this.blocked.delete(call);
    this.server.callClosed();
    if (this.calls.size === 0) {
      if (this.draining || this.peerDraining) this.finish();
      else if (!this.closed) this.armIdle();
    }
  }

  // ---------------------------------------------------------------- reading

  private onData(chunk: Buffer): void {
    this.readSinceTick = true;
    // What one read makes us answer (acks, window updates, resets) leaves in one writev.
    this.socket.cork();
    try {
      this.reader.push(chunk);
    } catch (err) {
      if (err instanceof Http2Error) {
        // A bad preface is not HTTP/2 at all: no GOAWAY (RFC 9113 3.4 allows omitting it).
        if (!this.reader.prefaceReceived) {
          this.report(err);
          this.teardown(err.message);
          this.socket.destroy();
          return;
        }
        this.connectionError(err.code, err.message);
      } else if (err instanceof HpackError) {
        this.connectionError(ErrorCode.COMPRESSION_ERROR, err.message);
      } else {
        this.report(err);
        this.connectionError(ErrorCode.INTERNAL_ERROR, 'internal error');
      }
    } finally {
      this.socket.uncork();
    }
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.closed) return;
    if (this.contStream !== 0 && type !== FrameType.CONTINUATION) {
      throw new Http2Error('a header block was interrupted by another frame', ErrorCode.PROTOCOL_ERROR);
    }
    if (!this.settingsSeen) {
      if (type !== FrameType.SETTINGS || flags & Flag.ACK) throw new Http2Error('the client preface must end with SETTINGS', ErrorCode.PROTOCOL_ERROR);
      this.settingsSeen = true;
      clearTimeout(this.handshakeTimer);
    }
    switch (type) {
      case FrameType.DATA:
        return this.onDataFrame(flags, id, p);
      case FrameType.HEADERS:
        return this.onHeaders(flags, id, p);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, id, p);
      case FrameType.PRIORITY:
        if (id === 0) throw new Http2Error('PRIORITY on stream 0', ErrorCode.PROTOCOL_ERROR);
        if (p.length !== 5) this.streamError(id, ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY frame of the wrong size');
        return;
      case FrameType.RST_STREAM:
        return this.onReset(id, p);
      case FrameType.SETTINGS:
        return this.onSettings(flags, id, p);
      case FrameType.PUSH_PROMISE:
        throw new Http2Error('PUSH_PROMISE from a client', ErrorCode.PROTOCOL_ERROR);
      case FrameType.PING:
        if (id !== 0) throw new Http2Error('PING on a stream', ErrorCode.PROTOCOL_ERROR);
        if (p.length !== 8) throw new Http2Error('PING frame of the wrong size', ErrorCode.FRAME_SIZE_ERROR);
        if (flags & Flag.ACK) this.pingSentAt = 0;
        else this.writeControl(encodeFrame(FrameType.PING, Flag.ACK, 0, p));
        return;
      case FrameType.GOAWAY:
        return this.onGoaway(id, p);
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(id, p);
      default:
        return; // unknown frame types are ignored (RFC 9113 4.1)
    }
  }

  private onDataFrame(flags: number, id: number, p: Buffer): void {
    if (id === 0) throw new Http2Error('DATA on stream 0', ErrorCode.PROTOCOL_ERROR);
    const len = p.length;
    // Flow control counts the whole payload, padding included, even on streams we closed.
    this.recvConsumed += len;
    if (this.recvConsumed > CONNECTION_WINDOW) throw new Http2Error('connection flow-control window exceeded', ErrorCode.FLOW_CONTROL_ERROR);
    if (this.recvConsumed >= CONNECTION_WINDOW / 2) {
      this.write(encodeU32Frame(FrameType.WINDOW_UPDATE, 0, this.recvConsumed));
      this.recvConsumed = 0;
    }
    let start = 0;
    let end = len;
    if (flags & Flag.PADDED) {
      if (len === 0 || p[0] >= len) throw new Http2Error('DATA padding exceeds the payload', ErrorCode.PROTOCOL_ERROR);
      start = 1;
      end = len - p[0];
    }
    const call = this.calls.get(id);
    if (call === undefined) {
      if (id > this.lastStreamId) throw new Http2Error(`DATA on idle stream ${id}`, ErrorCode.PROTOCOL_ERROR);
      return; // a stream we closed: ignored (its window was counted above)
    }
    if (call.remoteEnded) return this.streamError(id, ErrorCode.STREAM_CLOSED, 'DATA after END_STREAM');
    const endStream = (flags & Flag.END_STREAM) !== 0;
    call.recvConsumed += len;
    if (call.recvConsumed > this.streamWindow) return this.streamError(id, ErrorCode.FLOW_CONTROL_ERROR, 'stream flow-control window exceeded');
    if (!endStream && call.recvConsumed >= this.streamWindow / 2) {
      this.write(encodeU32Frame(FrameType.WINDOW_UPDATE, id, call.recvConsumed));
      call.recvConsumed = 0;
    }
    if (end > start && call.state === OPEN) call.receive(p, start, end);
    if (endStream) call.remoteEnd();
  }

  private onHeaders(flags: number, id: number, p: Buffer): void {
    if (id === 0 || id % 2 === 0) throw new Http2Error(`HEADERS on stream ${id} (clients open odd streams)`, ErrorCode.PROTOCOL_ERROR);
    let start = 0;
    let end = p.length;
    if (flags & Flag.PADDED) {
      if (end === 0) throw new Http2Error('HEADERS padding exceeds the payload', ErrorCode.PROTOCOL_ERROR);
      start = 1;
      end -= p[0];
    }
    let selfDependent = false;
    if (flags & Flag.PRIORITY) {
      if (end - start >= 4) selfDependent = (p.readUInt32BE(start) & MAX_WINDOW_SIZE) === id;
      start += 5;
    }
    if (start > end) throw new Http2Error('HEADERS padding exceeds the payload', ErrorCode.PROTOCOL_ERROR);
    const fragment = p.subarray(start, end);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (!(flags & Flag.END_HEADERS)) {
      this.contStream = id;
      this.contEndStream = endStream;
      this.contFragments = [fragment]; // a view of the read: node does not reuse read buffers
      this.contBytes = fragment.length;
      this.contFrames = 0;
      return;
    }
    this.onHeaderBlock(id, endStream, fragment, selfDependent);
  }

  private onContinuation(flags: number, id: number, p: Buffer): void {
    if (this.contStream === 0 || id !== this.contStream) throw new Http2Error('CONTINUATION without a header block to continue', ErrorCode.PROTOCOL_ERROR);
    this.contBytes += p.length;
    if (++this.contFrames > this.opts.maxContinuationFrames) {
      this.limit('continuation-frames', `more than ${this.opts.maxContinuationFrames} CONTINUATION frames in one header block`);
      throw new Http2Error(`more than ${this.opts.maxContinuationFrames} CONTINUATION frames in one header block`, ErrorCode.ENHANCE_YOUR_CALM);
    }
    if (this.contBytes > this.opts.maxHeaderBlockBytes) {
      this.limit('header-block-bytes', `header block above ${this.opts.maxHeaderBlockBytes} octets`);
      throw new Http2Error(`header block above ${this.opts.maxHeaderBlockBytes} octets`, ErrorCode.ENHANCE_YOUR_CALM);
    }
    this.contFragments.push(p);
    if (!(flags & Flag.END_HEADERS)) return;
    const block = Buffer.concat(this.contFragments, this.contBytes);
    this.contStream = 0;
    this.contFragments = [];
    this.onHeaderBlock(id, this.contEndStream, block, false);
  }

  /** A complete header block: always decoded (the HPACK table must follow), then acted on. */
  private onHeaderBlock(id: number, endStream: boolean, block: Buffer, selfDependent: boolean): void {
    let fields: HeaderField[] | null = null;
    try {
      fields = this.decoder.decode(block);
    } catch (err) {
      if (!(err instanceof HeaderListSizeError)) throw err; // HpackError: COMPRESSION_ERROR, in onData
    }
    const existing = this.calls.get(id);
    if (existing !== undefined) {
      // Trailers from the client: they must end the stream (RFC 9113 8.1).
      if (!endStream) return this.streamError(id, ErrorCode.PROTOCOL_ERROR, 'a second header block without END_STREAM');
      existing.remoteEnd();
      return;
    }
    if (id <= this.lastStreamId) return; // a stream we already closed or refused: ignored (RFC 9113 5.1)
    this.lastStreamId = id;
    if (selfDependent) return this.streamError(id, ErrorCode.PROTOCOL_ERROR, 'a stream cannot depend on itself');
    if (this.draining || this.peerDraining || this.calls.size >= this.opts.maxConcurrentStreams) {
      this.noteReset();
      this.writeControl(encodeU32Frame(FrameType.RST_STREAM, id, ErrorCode.REFUSED_STREAM));
      return;
    }
    if (fields === null) {
      return this.respond(id, endStream, '200', GrpcStatus.RESOURCE_EXHAUSTED, `request headers exceed ${this.opts.maxHeaderListBytes} octets`);
    }
    const req = parseRequest(fields);
    if (req === null) return this.streamError(id, ErrorCode.PROTOCOL_ERROR, 'malformed request headers');
    if (req.method !== 'POST') {
      return this.respond(id, endStream, '405', GrpcStatus.INTERNAL, `gRPC requires POST, not ${req.method}`);
    }
    const contentType = req.headers.get('content-type') ?? '';
    if (!contentType.startsWith('application/grpc')) {
      // gRPC over HTTP/2 says 415, so that plain HTTP clients do not read the reply as a success.
      return this.respond(id, endStream, '415', GrpcStatus.INTERNAL, `content-type ${JSON.stringify(contentType)} is not application/grpc`);
    }
    const handler = this.opts.handlers.get(req.path);
    if (handler === undefined) {
      const named = req.path.length <= MAX_ECHOED_PATH ? req.path : `(a :path of ${req.path.length} octets)`;
      return this.respond(id, endStream, '200', GrpcStatus.UNIMPLEMENTED, `unknown method ${named}`);
    }
    const call = new ServerCall(this, id, req.path, req.headers);
    this.calls.set(id, call);
    if (this.calls.size === 1) clearTimeout(this.idleTimer);
    this.server.callOpened();
    try {
      handler(call);
    } catch (err) {
      call.fail(err);
    }
    if (endStream) call.remoteEnd();
  }

  /** A response without a call: trailers-only, then a reset if the client is still sending. */
  private respond(id: number, endStream: boolean, status: string, code: number, details: string): void {
    this.noteReset();
    this.socket.cork();
    this.writeHeaderBlock(id, this.headerBlock(trailerFields(code, details, true, status)), true);
    if (!endStream) this.write(encodeU32Frame(FrameType.RST_STREAM, id, ErrorCode.NO_ERROR));
    this.socket.uncork();
  }

  private onReset(id: number, p: Buffer): void {
    if (id === 0) throw new Http2Error('RST_STREAM on stream 0', ErrorCode.PROTOCOL_ERROR);
    if (p.length !== 4) throw new Http2Error('RST_STREAM frame of the wrong size', ErrorCode.FRAME_SIZE_ERROR);
    const call = this.calls.get(id);
    if (call === undefined) {
      if (id > this.lastStreamId) throw new Http2Error(`RST_STREAM on idle stream ${id}`, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    this.noteReset();
    call.abort(`stream reset by the client (${errorCodeName(p.readUInt32BE(0))})`);
  }

  private onSettings(flags: number, id: number, p: Buffer): void {
    if (id !== 0) throw new Http2Error('SETTINGS on a stream', ErrorCode.PROTOCOL_ERROR);
    if (flags & Flag.ACK) {
      if (p.length !== 0) throw new Http2Error('SETTINGS ACK with a payload', ErrorCode.FRAME_SIZE_ERROR);
      return;
    }
    let grew = false;
    for (const [key, value] of decodeSettings(p)) {
      if (key === SettingsId.INITIAL_WINDOW_SIZE) {
        // Applies to open streams as a delta (RFC 9113 6.9.2); windows may go negative.
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const call of this.calls.values()) {
          call.sendWindow += delta;
          if (call.sendWindow > MAX_WINDOW_SIZE) throw new Http2Error('INITIAL_WINDOW_SIZE overflows a stream window', ErrorCode.FLOW_CONTROL_ERROR);
        }
        grew ||= delta > 0;
      } else if (key === SettingsId.MAX_FRAME_SIZE) {
        grew ||= value > this.peerMaxFrame;
        this.peerMaxFrame = value;
      } else if (key === SettingsId.HEADER_TABLE_SIZE) {
        this.tableSizeUpdate = true;
      }
    }
    this.writeControl(encodeFrame(FrameType.SETTINGS, Flag.ACK, 0));
    if (grew) this.flushBlocked();
  }

  private onWindowUpdate(id: number, p: Buffer): void {
    if (p.length !== 4) throw new Http2Error('WINDOW_UPDATE frame of the wrong size', ErrorCode.FRAME_SIZE_ERROR);
    const inc = p.readUInt32BE(0) & MAX_WINDOW_SIZE;
    if (id === 0) {
      if (inc === 0) throw new Http2Error('connection WINDOW_UPDATE of 0', ErrorCode.PROTOCOL_ERROR);
      this.sendWindow += inc;
      if (this.sendWindow > MAX_WINDOW_SIZE) throw new Http2Error('connection window above 2^31-1', ErrorCode.FLOW_CONTROL_ERROR);
      this.flushBlocked();
      return;
    }
    const call = this.calls.get(id);
    if (call === undefined) {
      if (id > this.lastStreamId) throw new Http2Error(`WINDOW_UPDATE on idle stream ${id}`, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    if (inc === 0) return this.streamError(id, ErrorCode.PROTOCOL_ERROR, 'stream WINDOW_UPDATE of 0');
    call.sendWindow += inc;
    if (call.sendWindow > MAX_WINDOW_SIZE) return this.streamError(id, ErrorCode.FLOW_CONTROL_ERROR, 'stream window above 2^31-1');
    if (this.blocked.has(call)) call.flush();
  }

  private onGoaway(id: number, p: Buffer): void {
    if (id !== 0) throw new Http2Error('GOAWAY on a stream', ErrorCode.PROTOCOL_ERROR);
    if (p.length < 8) throw new Http2Error('GOAWAY frame too short', ErrorCode.FRAME_SIZE_ERROR);
    const code = p.readUInt32BE(4);
    if (code !== ErrorCode.NO_ERROR) {
      const debug = p.length > 8 ? `: ${p.toString('utf8', 8, Math.min(p.length, 264))}` : '';
      const reason = `GOAWAY from the client (${errorCodeName(code)}${debug})`;
      this.report(new Http2Error(reason, code));
      this.teardown(reason);
      this.socket.destroy();
      return;
    }
    // Graceful: the client opens no more streams; those open may finish.
    this.peerDraining = true;
    if (this.calls.size === 0) this.finish();
  }

  // ---------------------------------------------------------------- writing, errors, closing

  private flushBlocked(): void {
    if (this.blocked.size === 0) return;
    for (const call of [...this.blocked]) {
      if (this.sendWindow <= 0 || this.closed) break;
      call.flush();
    }
  }

  private onDrain(): void {
    this.congested = false;
    this.controlWhileCongested = 0;
    if (this.readPaused && !this.closed) {
      this.readPaused = false;
      this.socket.resume();
    }
    for (const call of [...this.calls.values()]) {
      if (this.congested) break;
      if (call.wantDrain) call.maybeDrain();
    }
  }

  /** RST_STREAM with `code`; the call, if any, is cancelled. */
  private streamError(id: number, code: number, message: string): void {
    this.noteReset();
    this.writeControl(encodeU32Frame(FrameType.RST_STREAM, id, code));
    this.calls.get(id)?.abort(`stream error ${errorCodeName(code)}: ${message}`);
  }

  /** RFC 9113 5.4.1: GOAWAY with the code, then close. */
  connectionError(code: number, message: string): void {
    if (this.closed) return;
    this.report(new Http2Error(`HTTP/2 connection error ${errorCodeName(code)}: ${message}`, code));
    this.write(encodeGoaway(this.lastStreamId, code, message));
    this.teardown(`connection error ${errorCodeName(code)}: ${message}`);
    this.finish();
  }

  /** Server closing: GOAWAY NO_ERROR, every open call ends with UNAVAILABLE; the socket ends after. */
  shutdown(): void {
    if (this.closed || this.draining) return;
    this.draining = true;
    this.write(encodeGoaway(this.lastStreamId, ErrorCode.NO_ERROR));
    for (const call of [...this.calls.values()]) call.shutdown('server shutting down');
    if (this.calls.size === 0) this.finish();
  }

  /** Keepalive: a PING when the client was silent for a period, the end when it stays unanswered. */
  keepalive(now: number, timeoutMs: number): void {
    if (this.closed) return;
    if (this.pingSentAt !== 0) {
      if (now - this.pingSentAt >= timeoutMs) {
        this.report(new Error(`keepalive PING unanswered for ${timeoutMs} ms`));
        this.teardown('keepalive timeout');
        this.socket.destroy();
      }
    } else if (!this.readSinceTick) {
      this.pingSentAt = now;
      this.write(encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8)));
    }
    this.readSinceTick = false;
  }

  /** Cancels every call and stops reading; the socket is left to finish() or destroy(). */
  teardown(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.idleTimer);
    this.reader.stop();
    for (const call of [...this.calls.values()]) call.abort(reason);
    this.calls.clear();
    this.blocked.clear();
  }

  /** Ends our side once what we wrote is flushed; destroys the socket if the client lingers. */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.closed = true;
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.idleTimer);
    this.reader.stop();
    // A client that does not read our output would not read a GOAWAY either: no lingering.
    if (this.congested) {
      this.socket.destroy();
      return;
    }
    if (!this.socket.writableEnded) this.socket.end();
    this.socket.pause(); // what the client still sends is not read (node would read and drop it)
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }

  destroy(): void {
    this.teardown('server closed');
    this.socket.destroy();
  }
}

interface ParsedRequest {
  method: string;
  path: string;
  headers: Map<string, string>;
}

/** Request pseudo-headers and fields per RFC 9113 8.3.1 / 8.2; null if malformed. */
function parseRequest(fields: readonly HeaderField[]): ParsedRequest | null {
  let method: string | undefined;
  let scheme: string | undefined;
  let path: string | undefined;
  let authority: string | undefined;
  let regular = false;
  const headers = new Map<string, string>();
  for (const [name, value] of fields) {
    if (name.charCodeAt(0) === 0x3a /* : */) {
      if (regular) return null; // pseudo-headers come first
      if (name === ':method' && method === undefined) method = value;
      else if (name === ':path' && path === undefined) path = value;
      else if (name === ':scheme' && scheme === undefined) scheme = value;
      else if (name === ':authority' && authority === undefined) authority = value;
      else return null; // unknown, response-only or repeated
      continue;
    }
    regular = true;
    if (UPPERCASE.test(name) || CONNECTION_HEADERS.has(name)) return null;
    if (name === 'te' && value !== 'trailers') return null;
    const prev = headers.get(name);
    headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  if (method === undefined || scheme === undefined || !path) return null;
  return { method, path, headers };
}

// ---------------------------------------------------------------- server

interface ResolvedOptions {
  handlers: Map<string, GrpcStreamHandler>;
  maxMessageBytes: number;
  maxConcurrentStreams: number;
  streamWindowBytes: number;
  highWaterMark: number;
  maxHeaderListBytes: number;
  maxContinuationFrames: number;
  maxHeaderBlockBytes: number;
  maxOutputBytes: number;
  maxQueuedControlFrames: number;
  maxStreamResetsPerSecond: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnectionsPerPeer: number;
  onError: (err: Error, peer: string) => void;
}

export class GrpcStreamServer {
  private readonly server: net.Server;
  private readonly opts: ResolvedOptions;
  private readonly conns = new Set<Connection>();
  private readonly perPeer = new Map<string, number>();
  private readonly onLimit: (limit: Http2Limit, peer: string, detail: string) => void;
  /** How often each limit was hit since the server started. */
  readonly limitsHit: Record<Http2Limit, number> = Object.fromEntries(HTTP2_LIMITS.map((l) => [l, 0])) as Record<Http2Limit, number>;
  private openStreams = 0;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | null = null;
  /** While closing: resolves close() once the listener and every connection are closed. */
  private onIdle: () => void = NOOP;

  constructor(options: GrpcStreamServerOptions) {
    const positive = (name: string, v: number | undefined, dflt: number, max = Number.MAX_SAFE_INTEGER): number => {
      const value = v ?? dflt;
      if (!Number.isInteger(value) || value < 1 || value > max) throw new RangeError(`${name} must be an integer in 1..${max}, not ${value}`);
      return value;
    };
    this.opts = {
      handlers: new Map(Object.entries(options.handlers)),
      maxMessageBytes: positive('maxMessageBytes', options.maxMessageBytes, 0, 0xffff_ffff),
      maxConcurrentStreams: positive('maxConcurrentStreams', options.maxConcurrentStreams, 100, 0xffff_ffff),
      streamWindowBytes: positive('streamWindowBytes', options.streamWindowBytes, DEFAULT_STREAM_WINDOW, MAX_WINDOW_SIZE),
      highWaterMark: positive('highWaterMark', options.highWaterMark, DEFAULT_HIGH_WATER_MARK),
      maxHeaderListBytes: positive('maxHeaderListBytes', options.maxHeaderListBytes, DEFAULT_MAX_HEADER_LIST, 0xffff_ffff),
      maxContinuationFrames: positive('maxContinuationFrames', options.maxContinuationFrames, 8),
      maxHeaderBlockBytes: 0,
      maxOutputBytes: positive('maxOutputBytes', options.maxOutputBytes, 16 << 20),
      maxQueuedControlFrames: positive('maxQueuedControlFrames', options.maxQueuedControlFrames, 1000),
      maxStreamResetsPerSecond: positive('maxStreamResetsPerSecond', options.maxStreamResetsPerSecond, 200),
      handshakeTimeoutMs: positive('handshakeTimeoutMs', options.handshakeTimeoutMs, 10_000, 2 ** 31 - 1),
      idleTimeoutMs: positive('idleTimeoutMs', options.idleTimeoutMs, 300_000, 2 ** 31 - 1),
      maxConnectionsPerPeer: positive('maxConnectionsPerPeer', options.maxConnectionsPerPeer, 64),
      onError: options.onError ?? NOOP,
    };
    this.opts.maxHeaderBlockBytes = positive('maxHeaderBlockBytes', options.maxHeaderBlockBytes, Math.max(MIN_HEADER_BLOCK, 2 * this.opts.maxHeaderListBytes));
    this.onLimit = options.onLimit ?? NOOP;
    if (options.tls) {
      const server = tls.createServer({ handshakeTimeout: this.opts.handshakeTimeoutMs, ...options.tls, ALPNProtocols: ['h2'] });
      server.on('secureConnection', (socket) => {
        if (socket.alpnProtocol !== 'h2') {
          this.opts.onError(new Error(`TLS client did not select ALPN h2 (${String(socket.alpnProtocol)})`), formatPeer(socket));
          socket.destroy();
          return;
        }
        this.accept(socket);
      });
      server.on('tlsClientError', (err, socket) => this.opts.onError(err, formatPeer(socket)));
      this.server = server;
    } else {
      this.server = net.createServer();
    }
    // Counted on the TCP connection, before any TLS handshake: a handshake flood counts too.
    const plain = !options.tls;
    this.server.on('connection', (socket: net.Socket) => {
      if (this.admit(socket) && plain) this.accept(socket);
    });
    this.server.on('error', (err) => this.opts.onError(err, ''));
    const keepaliveMs = options.keepaliveMs ?? 0;
    if (keepaliveMs > 0) {
      const timeoutMs = options.keepaliveTimeoutMs ?? 20_000;
      this.keepaliveTimer = setInterval(() => {
        const now = performance.now();
        for (const c of this.conns) c.keepalive(now, timeoutMs);
      }, keepaliveMs);
      this.keepaliveTimer.unref();
    }
  }

  /** Open connections. */
  get connections(): number {
    return this.conns.size;
  }

  /** Open calls, over all connections. */
  get streams(): number {
    return this.openStreams;
  }

  /** Listens; resolves with the bound port (pass 0 for any free one). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /**
   * Stops accepting connections; every connection gets GOAWAY NO_ERROR and its open calls end
   * with UNAVAILABLE (their onCancel runs); connections end once their calls are done. After
   * `graceMs` whatever is left is destroyed. Resolves when every connection is closed.
   */
  close(graceMs = 5000): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
      const timer = setTimeout(() => {
        for (const c of this.conns) c.destroy();
      }, graceMs);
      timer.unref();
      let listenerClosed = false;
      this.onIdle = () => {
        if (!listenerClosed || this.conns.size > 0) return;
        clearTimeout(timer);
        resolve();
      };
      this.server.close(() => {
        listenerClosed = true;
        this.onIdle();
      });
      for (const c of this.conns) c.shutdown();
    });
    return this.closing;
  }

  /** Every TCP connection: refused past maxConnectionsPerPeer; counted until it closes. */
  private admit(socket: net.Socket): boolean {
    const addr = socket.remoteAddress ?? '';
    const n = this.perPeer.get(addr) ?? 0;
    if (n >= this.opts.maxConnectionsPerPeer) {
      this.limitHit('connections-per-peer', formatPeer(socket), `${n} connections open from ${addr}`);
      socket.destroy();
      return false;
    }
    this.perPeer.set(addr, n + 1);
    socket.once('close', () => {
      const left = (this.perPeer.get(addr) ?? 1) - 1;
      if (left > 0) this.perPeer.set(addr, left);
      else this.perPeer.delete(addr);
    });
    return true;
  }

  /** @internal */
  limitHit(limit: Http2Limit, peer: string, detail: string): void {
    this.limitsHit[limit]++;
    try {
      this.onLimit(limit, peer, detail);
    } catch {
      // a failing callback must not take the server down
    }
  }

  private accept(socket: net.Socket): void {
    if (socket.destroyed) return;
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.conns.add(new Connection(socket, this, this.opts));
  }

  /** @internal */
  connectionClosed(c: Connection): void {
    this.conns.delete(c);
    if (this.conns.size === 0) this.onIdle();
  }

  /** @internal */
  callOpened(): void {
    this.openStreams++;
  }

  /** @internal */
  callClosed(): void {
    this.openStreams--;
  }
}
