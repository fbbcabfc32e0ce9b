/**
 * HTTP/2 framing (RFC 9113 section 4 and 6): the constants, frame encoding, SETTINGS payloads and
 * a reader that cuts a byte stream into frames. Pure: no sockets, no timers, no protocol state
 * beyond what framing needs (the connection preface and the maximum frame size).
 */

/** The client connection preface (RFC 9113 3.4): 24 octets before the client's first SETTINGS. */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FRAME_HEADER_LENGTH = 9;

/** Frame types (RFC 9113 6). */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags. Several share a bit: their meaning depends on the frame type. */
export const Flag = {
  /** DATA, HEADERS. */
  END_STREAM: 0x1,
  /** SETTINGS, PING. */
  ACK: 0x1,
  /** HEADERS, PUSH_PROMISE, CONTINUATION. */
  END_HEADERS: 0x4,
  /** DATA, HEADERS, PUSH_PROMISE. */
  PADDED: 0x8,
  /** HEADERS. */
  PRIORITY: 0x20,
} as const;

/** Error codes of RST_STREAM and GOAWAY (RFC 9113 7). */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

const ERROR_NAMES: readonly string[] = Object.keys(ErrorCode);

/** 'PROTOCOL_ERROR' for 1, and so on; unknown codes as '0x..' (they are allowed, RFC 9113 7). */
export function errorCodeName(code: number): string {
  return ERROR_NAMES[code] ?? `0x${code.toString(16)}`;
}

/** SETTINGS parameters (RFC 9113 6.5.2). */
export const SettingsId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** Initial values every endpoint assumes until SETTINGS say otherwise (RFC 9113 6.5.2, 6.9.2). */
export const DEFAULT_HEADER_TABLE_SIZE = 4096;
export const DEFAULT_WINDOW_SIZE = 65_535;
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
/** Largest MAX_FRAME_SIZE a peer may announce (2^24-1). */
export const MAX_ALLOWED_FRAME_SIZE = 0xff_ffff;
/** Largest flow-control window (2^31-1); also the largest WINDOW_UPDATE increment. */
export const MAX_WINDOW_SIZE = 0x7fff_ffff;

/**
 * A connection error (RFC 9113 5.4.1): the connection is unusable and is closed with GOAWAY
 * carrying `code`. Thrown by the pure parts (FrameReader, decodeSettings) for the caller to send.
 */
export class Http2Error extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
    this.name = 'Http2Error';
  }
}

/** Writes a 9-octet frame header at `buf[off..off+9)`. */
export function writeFrameHeader(buf: Buffer, off: number, length: number, type: number, flags: number, streamId: number): void {
  buf[off] = length >>> 16;
  buf[off + 1] = (length >>> 8) & 0xff;
  buf[off + 2] = length & 0xff;
  buf[off + 3] = type;
  buf[off + 4] = flags;
  buf.writeUInt32BE(streamId & MAX_WINDOW_SIZE, off + 5); // the reserved bit is sent as 0
}

/** A whole frame in one Buffer (header and a copy of `payload`). */
export function encodeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): Buffer {
  const len = payload === undefined ? 0 : payload.length;
  const buf = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + len);
  writeFrameHeader(buf, 0, len, type, flags, streamId);
  if (payload !== undefined) buf.set(payload, FRAME_HEADER_LENGTH);
  return buf;
}

/** A frame header alone, for a payload of `length` octets written after it as it is (not copied). */
export function encodeFrameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
  writeFrameHeader(buf, 0, length, type, flags, streamId);
  return buf;
}

/** RST_STREAM and WINDOW_UPDATE: a frame whose payload is one 32-bit value. */
export function encodeU32Frame(type: number, streamId: number, value: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + 4);
  writeFrameHeader(buf, 0, 4, type, 0, streamId);
  buf.writeUInt32BE(value, FRAME_HEADER_LENGTH);
  return buf;
}

/** GOAWAY (RFC 9113 6.8): the last stream the sender processed, an error code, optional debug text. */
export function encodeGoaway(lastStreamId: number, code: number, debug = ''): Buffer {
  const text = Buffer.from(debug, 'utf8');
  const buf = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + 8 + text.length);
  writeFrameHeader(buf, 0, 8 + text.length, FrameType.GOAWAY, 0, 0);
  buf.writeUInt32BE(lastStreamId & MAX_WINDOW_SIZE, 9);
  buf.writeUInt32BE(code, 13);
  text.copy(buf, 17);
  return buf;
}

export type SettingsEntry = readonly [id: number, value: number];

/** A SETTINGS payload: 6 octets (16-bit id, 32-bit value) per entry, in the order given. */
export function encodeSettings(entries: readonly SettingsEntry[]): Buffer {
  const buf = Buffer.allocUnsafe(entries.length * 6);
  entries.forEach(([id, value], i) => {
    buf.writeUInt16BE(id, i * 6);
    buf.writeUInt32BE(value, i * 6 + 2);
  });
  return buf;
}

/**
 * Decodes a SETTINGS payload (not an ACK) and checks the values RFC 9113 6.5.2 constrains.
 * Unknown ids are returned too (a receiver must ignore them). Throws Http2Error.
 */
export function decodeSettings(payload: Uint8Array): SettingsEntry[] {
  if (payload.length % 6 !== 0) throw new Http2Error(`SETTINGS payload of ${payload.length} octets`, ErrorCode.FRAME_SIZE_ERROR);
  const view = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  const out: SettingsEntry[] = [];
  for (let i = 0; i < view.length; i += 6) {
    const id = view.readUInt16BE(i);
    const value = view.readUInt32BE(i + 2);
    if (id === SettingsId.ENABLE_PUSH && value > 1) {
      throw new Http2Error(`SETTINGS_ENABLE_PUSH ${value}`, ErrorCode.PROTOCOL_ERROR);
    }
    if (id === SettingsId.INITIAL_WINDOW_SIZE && value > MAX_WINDOW_SIZE) {
      throw new Http2Error(`SETTINGS_INITIAL_WINDOW_SIZE ${value}`, ErrorCode.FLOW_CONTROL_ERROR);
    }
    if (id === SettingsId.MAX_FRAME_SIZE && (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_ALLOWED_FRAME_SIZE)) {
      throw new Http2Error(`SETTINGS_MAX_FRAME_SIZE ${value}`, ErrorCode.PROTOCOL_ERROR);
    }
    out.push([id, value]);
  }
  return out;
}

/**
 * Called for each whole frame. `payload` is a view: of the socket chunk when the frame arrived
 * whole in one read (not copied), else of a buffer holding just that frame. Node allocates every
 * socket read afresh, so the view stays valid after the call; keeping it pins the chunk.
 */
export type FrameHandler = (type: number, flags: number, streamId: number, payload: Buffer) => void;

export interface FrameReaderOptions {
  /** Largest frame payload accepted (our SETTINGS_MAX_FRAME_SIZE); larger is FRAME_SIZE_ERROR. */
  maxFrameSize?: number;
  /** Expect the 24-octet client preface before the first frame (a server's reader). */
  expectPreface?: boolean;
}

/**
 * Cuts socket chunks into frames. Frames that arrive whole are handed over as views of the chunk;
 * only a frame split across reads is copied, once, into a buffer of its exact size. Throws
 * Http2Error (preface mismatch: PROTOCOL_ERROR; oversized frame: FRAME_SIZE_ERROR); after a throw,
 * or after stop(), it ignores further input.
 */
export class FrameReader {
  private readonly maxFrameSize: number;
  private prefaceLeft: number;
  private stopped = false;
  // A frame split across reads: the 9-octet header first, then the whole frame.
  private readonly head = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
  private headFill = 0;
  private partial: Buffer | null = null;
  private partialFill = 0;

  constructor(
    private readonly onFrame: FrameHandler,
    opts: FrameReaderOptions = {},
  ) {
    this.maxFrameSize = opts.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.prefaceLeft = opts.expectPreface ? CLIENT_PREFACE.length : 0;
  }

  /** Ignores all further input (the handler may call this to stop at the current frame). */
  stop(): void {
    this.stopped = true;
    this.partial = null;
  }

  /** False until the whole client preface arrived (always true without expectPreface). */
  get prefaceReceived(): boolean {
    return this.prefaceLeft === 0;
  }

  /** Octets held for a frame not yet complete. */
  get buffered(): number {
    return this.partial !== null ? this.partialFill : this.headFill;
  }

  /** Feeds one chunk; the handler runs for every frame it completes, in order. */
  push(chunk: Buffer): void {
    if (this.stopped) return;
    const n = chunk.length;
    let off = 0;
    if (this.prefaceLeft > 0) {
      off = this.matchPreface(chunk);
      if (this.prefaceLeft > 0) return;
    }
    if (this.headFill > 0 || this.partial !== null) {
      off = this.completePartial(chunk, off);
      if (off < 0) return;
    }
    // The common case: whole frames in this chunk, parsed in place.
    while (n - off >= FRAME_HEADER_LENGTH) {
      const len = (chunk[off] << 16) | (chunk[off + 1] << 8) | chunk[off + 2];
      if (len > this.maxFrameSize) return this.oversized(len);
      const end = off + FRAME_HEADER_LENGTH + len;
      if (end > n) break;
      this.onFrame(chunk[off + 3], chunk[off + 4], chunk.readUInt32BE(off + 5) & MAX_WINDOW_SIZE, chunk.subarray(off + FRAME_HEADER_LENGTH, end));
      if (this.stopped) return;
      off = end;
    }
    if (off === n) return;
    if (n - off < FRAME_HEADER_LENGTH) {
      this.headFill = chunk.copy(this.head, 0, off);
    } else {
      const len = (chunk[off] << 16) | (chunk[off + 1] << 8) | chunk[off + 2];
      this.partial = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + len);
      this.partialFill = chunk.copy(this.partial, 0, off);
    }
  }

  private matchPreface(chunk: Buffer): number {
    const start = CLIENT_PREFACE.length - this.prefaceLeft;
    const take = Math.min(this.prefaceLeft, chunk.length);
    if (CLIENT_PREFACE.compare(chunk, 0, take, start, start + take) !== 0) {
      this.stop();
      throw new Http2Error('not an HTTP/2 client preface', ErrorCode.PROTOCOL_ERROR);
    }
    this.prefaceLeft -= take;
    return take;
  }

  /** Continues a frame split across reads; returns the offset after it, or -1 if still incomplete. */
  private completePartial(chunk: Buffer, off: number): number {
    if (this.partial === null) {
      const take = Math.min(FRAME_HEADER_LENGTH - this.headFill, chunk.length - off);
      chunk.copy(this.head, this.headFill, off, off + take);
      this.headFill += take;
      off += take;
      if (this.headFill < FRAME_HEADER_LENGTH) return -1;
      this.headFill = 0;
      const len = (this.head[0] << 16) | (this.head[1] << 8) | this.head[2];
      if (len > this.maxFrameSize) {
        this.oversized(len);
        return -1;
      }
      this.partial = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + len);
      this.head.copy(this.partial, 0);
      this.partialFill = FRAME_HEADER_LENGTH;
    }
    const p = this.partial;
    const take = Math.min(p.length - this.partialFill, chunk.length - off);
    chunk.copy(p, this.partialFill, off, off + take);
    this.partialFill += take;
    off += take;
    if (this.partialFill < p.length) return -1;
    this.partial = null;
    this.onFrame(p[3], p[4], p.readUInt32BE(5) & MAX_WINDOW_SIZE, p.subarray(FRAME_HEADER_LENGTH));
    return this.stopped ? -1 : off;
  }

  private oversized(len: number): never {
    this.stop();
    throw new Http2Error(`frame of ${len} octets exceeds the maximum of ${this.maxFrameSize}`, ErrorCode.FRAME_SIZE_ERROR);
  }
}
