/**
 * A minimal HTTP/2 client (RFC 9113, cleartext with prior knowledge) and gRPC message framing,
 * for benchmarks that simulate many agents on the machine being measured: node:http2 costs tens of
 * microseconds per message, this costs a few. Deliberately small:
 * - header blocks received are not decoded (no HPACK decoder): a block with END_STREAM ends the
 *   stream, so a gRPC call's status (grpc-status) is not visible, only that it ended;
 * - requests are sent with HPACK literals (no dynamic table, no Huffman), by the server's encoder;
 * - receive windows are set to 2^31-1 up front and topped up only after 2^30 bytes;
 * - no server push, no PING/priority of our own, no MAX_CONCURRENT_STREAMS bookkeeping,
 *   socket write back-pressure is not propagated (the peer's flow-control windows bound it).
 * Framing (frames, SETTINGS, cutting reads into frames, gRPC message splitting, HPACK encoding) is
 * the Watch server's codec, src/http2/; what is here is the client's own part.
 */
import net from 'node:net';
import {
  CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW_SIZE, ErrorCode, FRAME_HEADER_LENGTH, Flag, FrameReader, FrameType,
  Http2Error, MAX_WINDOW_SIZE, SettingsId, decodeSettings, encodeFrame, encodeFrameHeader, encodeGoaway, encodeSettings,
  encodeU32Frame, writeFrameHeader,
} from '../../src/http2/frames.js';
import { GrpcMessageSplitter, encodeGrpcMessage } from '../../src/http2/grpc-framing.js';
import { encodeHeaderBlock } from '../../src/http2/hpack.js';

/** RFC 9113 section 7 error codes (the ones used here). */
export const H2_NO_ERROR = ErrorCode.NO_ERROR;
export const H2_PROTOCOL_ERROR = ErrorCode.PROTOCOL_ERROR;
export const H2_FLOW_CONTROL_ERROR = ErrorCode.FLOW_CONTROL_ERROR;
export const H2_FRAME_SIZE_ERROR = ErrorCode.FRAME_SIZE_ERROR;
export const H2_REFUSED_STREAM = ErrorCode.REFUSED_STREAM;
export const H2_CANCEL = ErrorCode.CANCEL;

/** Stream ids are 31 bits, like windows. */
const MAX_STREAM_ID = MAX_WINDOW_SIZE;
/** Receive windows are topped up only once this much was consumed: never in steady state. */
const UPDATE_THRESHOLD = 1 << 30;

/**
 * A stream or connection error: `code` is the HTTP/2 error code (RST_STREAM or GOAWAY). A subclass,
 * to tell it from the plain Http2Error the codec throws (oversized frame, bad SETTINGS), which the
 * connection turns into one of these.
 */
export class H2Error extends Http2Error {
  override name = 'H2Error';
}

// ---------------------------------------------------------------- HPACK (encoding only)

/** The gRPC request header block, encoded by the server's codec (static-table names, literals). */
export function encodeRequestHeaders(path: string, authority: string): Buffer {
  return encodeHeaderBlock([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', authority],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ]);
}

// ---------------------------------------------------------------- streams

/**
 * One request stream. Callbacks are plain properties (set them right after `request()`; nothing
 * arrives before the next socket read). Exactly one of onEnd/onError is called, at most once.
 */
export class H2Stream {
  /** A DATA payload; the Buffer is a view of the socket read (valid as long as you keep it). */
  onData: (data: Buffer) => void = noop;
  /** The peer ended its side: END_STREAM on a header block (`trailers` true) or on DATA. */
  onEnd: (trailers: boolean) => void = noop;
  /** RST_STREAM from the peer, GOAWAY that covers this stream, or the connection failed. */
  onError: (err: Error) => void = noop;

  /** Neither direction can be used any more (ended both ways, reset, or connection gone). */
  closed = false;
  remoteEnded = false;
  localEnded = false;
  /** @internal */ sendWindow: number;
  /** @internal */ recvConsumed = 0;
  /** Payloads waiting for flow-control window (slow path only). */
  private queue: Buffer[] = [];
  private endQueued = false;

  constructor(
    private readonly conn: H2Connection,
    readonly id: number,
    sendWindow: number,
  ) {
    this.sendWindow = sendWindow;
  }

  /** Sends `data` as DATA frame(s), queuing what the windows do not admit yet (not copied then: do not reuse it). */
  write(data: Buffer): void {
    if (this.localEnded || this.endQueued || this.closed || data.length === 0) return;
    if (this.admits(data.length)) {
      this.spend(data.length);
      this.conn.socket.write(encodeFrame(FrameType.DATA, 0, this.id, data));
      return;
    }
    this.queue.push(data);
    this.flush();
  }

  /**
   * write() for a payload already placed at `buf[9..]`, bytes 0-8 left free for the frame header:
   * the hot path then costs one allocation (the caller's) and one socket write, no copy.
   */
  writeFramed(buf: Buffer): void {
    if (this.localEnded || this.endQueued || this.closed || buf.length <= FRAME_HEADER_LENGTH) return;
    const len = buf.length - FRAME_HEADER_LENGTH;
    if (this.admits(len)) {
      writeFrameHeader(buf, 0, len, FrameType.DATA, 0, this.id);
      this.spend(len);
      this.conn.socket.write(buf);
      return;
    }
    this.queue.push(buf.subarray(FRAME_HEADER_LENGTH));
    this.flush();
  }

  /** Nothing is queued and the windows and the peer's frame size admit `len` octets of DATA now. */
  private admits(len: number): boolean {
    const c = this.conn;
    return this.queue.length === 0 && len <= c.sendWindow && len <= this.sendWindow && len <= c.peerMaxFrame;
  }

  /** Takes `len` octets of DATA sent off both send windows. */
  private spend(len: number): void {
    this.conn.sendWindow -= len;
    this.sendWindow -= len;
  }

  /** Half-closes our side (END_STREAM after any queued data). */
  end(): void {
    if (this.localEnded || this.closed || this.endQueued) return;
    this.endQueued = true;
    this.flush();
  }

  /** Resets the stream (RST_STREAM, CANCEL by default); no callback follows. */
  cancel(code: number = H2_CANCEL): void {
    if (this.closed) return;
    this.conn.socket.write(encodeU32Frame(FrameType.RST_STREAM, this.id, code));
    this.conn.removeStream(this);
  }

  /** @internal Sends what the windows admit; cork so a batch of frames is one writev. */
  flush(): void {
    if (this.closed) return;
    const c = this.conn;
    const q = this.queue;
    if (q.length === 0 && !this.endQueued) return;
    c.socket.cork();
    while (q.length > 0) {
      const head = q[0];
      const n = Math.min(head.length, c.sendWindow, this.sendWindow, c.peerMaxFrame);
      if (n <= 0) break;
      // The header in a buffer of its own, the payload written as it is: nothing copied.
      c.socket.write(encodeFrameHeader(n, FrameType.DATA, 0, this.id));
      c.socket.write(n === head.length ? head : head.subarray(0, n));
      this.spend(n);
      if (n === head.length) q.shift();
      else q[0] = head.subarray(n);
    }
    if (q.length > 0) {
      c.blocked.add(this);
    } else if (this.endQueued) {
      this.endQueued = false;
      this.localEnded = true;
      c.socket.write(encodeFrame(FrameType.DATA, Flag.END_STREAM, this.id));
    }
    c.socket.uncork();
    if (this.localEnded && this.remoteEnded) c.removeStream(this);
  }

  /** @internal */
  fail(err: Error): void {
    if (this.closed) return;
    const notify = !this.remoteEnded;
    this.conn.removeStream(this);
    if (notify) this.onError(err);
  }

  /** @internal */
  remoteEnd(trailers: boolean): void {
    if (this.remoteEnded || this.closed) return;
    this.remoteEnded = true;
    if (this.localEnded) this.conn.removeStream(this);
    this.onEnd(trailers);
  }

  /** @internal */
  markClosed(): void {
    this.closed = true;
    this.queue.length = 0;
    this.endQueued = false;
  }
}

function noop(): void {}

// ---------------------------------------------------------------- connection

export class H2Connection {
  /** The connection failed or closed (after streams got their onError). */
  onClose: (err?: Error) => void = noop;

  /** @internal */ sendWindow = DEFAULT_WINDOW_SIZE;
  /** @internal */ peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  /** @internal Streams with data waiting for window. */ blocked = new Set<H2Stream>();
  private peerInitialWindow = DEFAULT_WINDOW_SIZE;
  private readonly streams = new Map<number, H2Stream>();
  private nextId = 1;
  private recvConsumed = 0;
  private goaway = false;
  private done = false;
  /** Whole frames are views of the socket read. We never raise SETTINGS_MAX_FRAME_SIZE: its default is the limit. */
  private readonly reader = new FrameReader((type, flags, id, payload) => this.onFrame(type, flags, id, payload));
  // Header block spread over CONTINUATION frames: the stream it belongs to and its END_STREAM.
  private contStream = 0;
  private contEndStream = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('error', (err) => this.shutdown(err));
    socket.on('close', () => this.shutdown(new Error('HTTP/2 connection closed')));
  }

  /** Opens a gRPC-style POST stream (one HEADERS frame, END_HEADERS, no END_STREAM). */
  request(path: string, authority: string): H2Stream {
    if (this.goaway || this.done) throw new Error('HTTP/2 connection is closing');
    if (this.nextId > MAX_STREAM_ID) throw new Error('HTTP/2 stream ids exhausted');
    const block = encodeRequestHeaders(path, authority);
    if (block.length > this.peerMaxFrame) throw new RangeError('header block exceeds the peer MAX_FRAME_SIZE');
    const s = new H2Stream(this, this.nextId, this.peerInitialWindow);
    this.nextId += 2;
    this.streams.set(s.id, s);
    this.socket.write(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, s.id, block));
    return s;
  }

  /** Sends GOAWAY and ends the socket; streams still open get onError now. */
  close(): void {
    if (this.done || this.socket.writableEnded) return;
    this.goaway = true;
    this.socket.end(encodeGoaway(0, H2_NO_ERROR)); // last stream 0: we accept no pushed streams
    const err = new Error('HTTP/2 connection closed by us');
    for (const s of [...this.streams.values()]) s.fail(err);
  }

  /** @internal */
  removeStream(s: H2Stream): void {
    if (s.closed) return;
    s.markClosed();
    this.streams.delete(s.id);
    this.blocked.delete(s);
    if (this.goaway && this.streams.size === 0 && !this.socket.writableEnded) this.socket.end();
  }

  private shutdown(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.goaway = true;
    this.reader.stop(); // no frame after this one is handled
    for (const s of [...this.streams.values()]) s.fail(err);
    this.socket.destroySoon(); // flushes a GOAWAY we just wrote
    this.onClose(err);
  }

  /** Connection error (RFC 9113 5.4.1): GOAWAY with the code, then close. */
  private connError(code: number, message: string): void {
    if (this.done) return;
    if (!this.socket.writableEnded) this.socket.write(encodeGoaway(0, code));
    this.shutdown(new H2Error(message, code));
  }

  private onSocketData(chunk: Buffer): void {
    try {
      this.reader.push(chunk);
    } catch (err) {
      // A plain Http2Error is the codec's (FrameReader: oversized frame; decodeSettings): a connection
      // error. Anything else was thrown by a callback: not ours to handle.
      if (!(err instanceof Http2Error) || err instanceof H2Error) throw err;
      this.connError(err.code, err.message);
    }
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.contStream !== 0 && type !== FrameType.CONTINUATION) return this.connError(H2_PROTOCOL_ERROR, 'expected CONTINUATION');
    switch (type) {
      case FrameType.DATA:
        return this.onDataFrame(p, flags, id);
      case FrameType.HEADERS: {
        if (id === 0) return this.connError(H2_PROTOCOL_ERROR, 'HEADERS on stream 0');
        let skip = flags & Flag.PADDED ? 1 + p[0] : 0;
        if (flags & Flag.PRIORITY) skip += 5;
        if (skip > p.length) return this.connError(H2_PROTOCOL_ERROR, 'HEADERS padding');
        return this.headerBlock(id, flags);
      }
      case FrameType.CONTINUATION:
        if (id === 0 || id !== this.contStream) return this.connError(H2_PROTOCOL_ERROR, 'unexpected CONTINUATION');
        return this.headerBlock(id, flags);
      case FrameType.RST_STREAM: {
        if (id === 0 || p.length !== 4) return this.connError(H2_PROTOCOL_ERROR, 'bad RST_STREAM');
        const code = p.readUInt32BE(0);
        this.streams.get(id)?.fail(new H2Error(`stream reset by peer (code ${code})`, code));
        return;
      }
      case FrameType.SETTINGS:
        return this.onSettings(p, flags, id);
      case FrameType.PUSH_PROMISE:
        return this.connError(H2_PROTOCOL_ERROR, 'PUSH_PROMISE with push disabled');
      case FrameType.PING:
        if (id !== 0 || p.length !== 8) return this.connError(H2_PROTOCOL_ERROR, 'bad PING');
        if (!(flags & Flag.ACK)) this.socket.write(encodeFrame(FrameType.PING, Flag.ACK, 0, p));
        return;
      case FrameType.GOAWAY:
        if (id !== 0 || p.length < 8) return this.connError(H2_PROTOCOL_ERROR, 'bad GOAWAY');
        return this.onGoaway(p.readUInt32BE(0) & MAX_STREAM_ID, p.readUInt32BE(4));
      case FrameType.WINDOW_UPDATE:
        if (p.length !== 4) return this.connError(H2_FRAME_SIZE_ERROR, 'bad WINDOW_UPDATE');
        return this.onWindowUpdate(id, p.readUInt32BE(0) & MAX_WINDOW_SIZE);
      default:
        return; // PRIORITY and unknown types are ignored
    }
  }

  private onDataFrame(p: Buffer, flags: number, id: number): void {
    if (id === 0) return this.connError(H2_PROTOCOL_ERROR, 'DATA on stream 0');
    const len = p.length;
    // Flow control counts the whole payload, padding included, on every stream (even closed ones).
    this.recvConsumed += len;
    if (this.recvConsumed > UPDATE_THRESHOLD) {
      this.socket.write(encodeU32Frame(FrameType.WINDOW_UPDATE, 0, this.recvConsumed));
      this.recvConsumed = 0;
    }
    let start = 0;
    let end = len;
    if (flags & Flag.PADDED) {
      if (len < 1 || p[0] >= len) return this.connError(H2_PROTOCOL_ERROR, 'DATA padding');
      end -= p[0];
      start = 1;
    }
    const s = this.streams.get(id);
    if (s === undefined || s.remoteEnded) return;
    if (!(flags & Flag.END_STREAM)) {
      s.recvConsumed += len;
      if (s.recvConsumed > UPDATE_THRESHOLD) {
        this.socket.write(encodeU32Frame(FrameType.WINDOW_UPDATE, id, s.recvConsumed));
        s.recvConsumed = 0;
      }
    }
    if (end > start) s.onData(end - start === len ? p : p.subarray(start, end));
    if (flags & Flag.END_STREAM) s.remoteEnd(false);
  }

  /** Header blocks are skipped, not decoded; only where they end and whether they end the stream matter. */
  private headerBlock(id: number, flags: number): void {
    const endStream = this.contStream !== 0 ? this.contEndStream : (flags & Flag.END_STREAM) !== 0;
    if (!(flags & Flag.END_HEADERS)) {
      this.contStream = id;
      this.contEndStream = endStream;
      return;
    }
    this.contStream = 0;
    if (endStream) this.streams.get(id)?.remoteEnd(true);
  }

  private onSettings(p: Buffer, flags: number, id: number): void {
    if (id !== 0) return this.connError(H2_PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) return;
    let grew = false;
    // decodeSettings checks the values (its Http2Error is a connection error, see onSocketData).
    for (const [key, value] of decodeSettings(p)) {
      if (key === SettingsId.INITIAL_WINDOW_SIZE) {
        // Applies to open streams as a delta (RFC 9113 6.9.2); windows may go negative.
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const s of this.streams.values()) s.sendWindow += delta;
        grew ||= delta > 0;
      } else if (key === SettingsId.MAX_FRAME_SIZE) {
        this.peerMaxFrame = value;
      }
    }
    this.socket.write(encodeFrame(FrameType.SETTINGS, Flag.ACK, 0));
    if (grew) this.flushBlocked();
  }

  private onWindowUpdate(id: number, inc: number): void {
    if (id === 0) {
      if (inc === 0) return this.connError(H2_PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.sendWindow += inc;
      if (this.sendWindow > MAX_WINDOW_SIZE) return this.connError(H2_FLOW_CONTROL_ERROR, 'connection window overflow');
      this.flushBlocked();
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) return;
    if (inc === 0 || s.sendWindow + inc > MAX_WINDOW_SIZE) {
      const code = inc === 0 ? H2_PROTOCOL_ERROR : H2_FLOW_CONTROL_ERROR;
      this.socket.write(encodeU32Frame(FrameType.RST_STREAM, id, code));
      s.fail(new H2Error('bad WINDOW_UPDATE from peer', code));
      return;
    }
    s.sendWindow += inc;
    this.blocked.delete(s);
    s.flush();
  }

  private flushBlocked(): void {
    if (this.blocked.size === 0) return;
    const waiting = [...this.blocked];
    this.blocked.clear();
    for (const s of waiting) s.flush();
  }

  /** Streams above lastId were not processed: they fail. With an error code, everything does. */
  private onGoaway(lastId: number, code: number): void {
    this.goaway = true;
    const err = new H2Error(`GOAWAY from peer (code ${code})`, code === H2_NO_ERROR ? H2_REFUSED_STREAM : code);
    if (code !== H2_NO_ERROR) return this.shutdown(err);
    for (const s of [...this.streams.values()]) if (s.id > lastId) s.fail(err);
    if (this.streams.size === 0 && !this.socket.writableEnded) this.socket.end();
  }
}

/** What we announce: no server push; stream windows of 2^31-1 (the connection's is raised by WINDOW_UPDATE). */
const CLIENT_SETTINGS = encodeSettings([
  [SettingsId.ENABLE_PUSH, 0],
  [SettingsId.INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE],
]);

/** Connects (h2c, prior knowledge) and sends the preface, SETTINGS and the connection window raise in one write. */
export function connectH2(host: string, port: number): Promise<H2Connection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      const conn = new H2Connection(socket);
      socket.write(
        Buffer.concat([
          CLIENT_PREFACE,
          encodeFrame(FrameType.SETTINGS, 0, 0, CLIENT_SETTINGS),
          encodeU32Frame(FrameType.WINDOW_UPDATE, 0, MAX_WINDOW_SIZE - DEFAULT_WINDOW_SIZE),
        ]),
      );
      resolve(conn);
    });
  });
}

// ---------------------------------------------------------------- gRPC framing

/**
 * One gRPC call on an H2Stream: messages are the 5-byte prefix (compressed flag, big-endian
 * length) plus payload. The status in the trailers is not decoded: onEnd means "the server ended
 * the call with trailers", whatever its status; a response ended without trailers, a reset or a
 * lost connection is onError. Exactly one of onEnd/onError is called.
 */
export class GrpcCall {
  onEnd: () => void = noop;
  onError: (err: Error) => void = noop;
  /** The server's message splitter (src/http2/grpc-framing.ts), without a size limit. */
  private readonly splitter = new GrpcMessageSplitter();

  constructor(
    readonly stream: H2Stream,
    onMessage: (msg: Buffer) => void,
  ) {
    this.splitter.onMessage = (m) => {
      onMessage(m);
      if (this.stream.closed) this.splitter.stop();
    };
    this.splitter.onProblem = () => this.compressed(); // no limit: only a compressed flag stops it
    stream.onData = (d) => this.splitter.push(d);
    stream.onEnd = (trailers) => {
      // The call is over: release our half too, as grpc-js does (RST_STREAM NO_ERROR or CANCEL).
      if (!stream.closed) stream.cancel(trailers ? H2_NO_ERROR : H2_CANCEL);
      if (trailers) this.onEnd();
      else this.onError(new H2Error('gRPC response ended without trailers', H2_PROTOCOL_ERROR));
    };
    stream.onError = (err) => this.onError(err);
  }

  /** Sends one message: a single allocation and socket write when the windows admit it. */
  send(msg: Buffer): void {
    this.stream.writeFramed(encodeGrpcMessage(msg, FRAME_HEADER_LENGTH));
  }

  /** Half-closes (the client is done sending). */
  end(): void {
    this.stream.end();
  }

  /** RST_STREAM CANCEL; no callback follows. */
  cancel(): void {
    this.stream.cancel();
  }

  /** We never offer grpc-accept-encoding, so a compressed message is a server bug. */
  private compressed(): void {
    this.stream.cancel();
    this.onError(new Error('compressed gRPC message (not supported)'));
  }
}

/** Starts a gRPC call (any arity; streaming both ways) on `conn`. */
export function grpcCall(conn: H2Connection, path: string, authority: string, onMessage: (msg: Buffer) => void): GrpcCall {
  return new GrpcCall(conn.request(path, authority), onMessage);
}
