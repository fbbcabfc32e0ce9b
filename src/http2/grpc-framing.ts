/**
 * gRPC message framing over HTTP/2 DATA (gRPC over HTTP/2, "Length-Prefixed-Message"): a 1-octet
 * compressed flag, a 4-octet big-endian length, the message. One splitter and one prefix writer,
 * shared by the server (grpc-server.ts) and any client built on this codec.
 */

/** Octets before each message: compressed flag + length. */
export const GRPC_PREFIX_LENGTH = 5;

/** Writes an uncompressed message prefix for `length` octets at `buf[off..off+5)`. */
export function writeGrpcPrefix(buf: Buffer, off: number, length: number): void {
  buf[off] = 0;
  buf.writeUInt32BE(length, off + 1);
}

/**
 * A length-prefixed message in one new buffer, with `headroom` free octets before the prefix
 * (e.g. 9 for an HTTP/2 frame header written later), so a send is one allocation.
 */
export function encodeGrpcMessage(message: Uint8Array, headroom = 0): Buffer {
  const buf = Buffer.allocUnsafe(headroom + GRPC_PREFIX_LENGTH + message.length);
  writeGrpcPrefix(buf, headroom, message.length);
  buf.set(message, headroom + GRPC_PREFIX_LENGTH);
  return buf;
}

/** Why the splitter stopped on its own. */
export type GrpcFramingProblem = { kind: 'compressed'; flag: number } | { kind: 'too-large'; length: number };

/**
 * Cuts a call's DATA payloads into messages. Whole messages inside one payload are delivered as
 * views of it (not copied); only a message split across payloads is copied, once, into a buffer
 * of its exact size. A compressed flag or a length above `maxMessageBytes` stops it (onProblem);
 * so does stop(), which onMessage may call to end delivery at the current message.
 */
export class GrpcMessageSplitter {
  onMessage: (message: Buffer) => void = noop;
  onProblem: (problem: GrpcFramingProblem) => void = noop;
  private stopped = false;
  // A message split across payloads: its prefix first, then the body.
  private readonly prefix = Buffer.allocUnsafe(GRPC_PREFIX_LENGTH);
  private prefixFill = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;

  constructor(private readonly maxMessageBytes = 0xffff_ffff) {}

  /** A message is partly received (the stream ending now would cut it). */
  get partial(): boolean {
    return this.prefixFill > 0 || this.body !== null;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Delivers nothing more and drops a partial message. */
  stop(): void {
    this.stopped = true;
    this.body = null;
    this.prefixFill = 0;
  }

  /** Feeds `d[start..end)`. */
  push(d: Buffer, start = 0, end = d.length): void {
    if (this.stopped) return;
    let off = start;
    if (this.prefixFill > 0 || this.body !== null) {
      off = this.completePartial(d, off, end);
      if (off < 0) return;
    }
    while (end - off >= GRPC_PREFIX_LENGTH) {
      if (d[off] !== 0) return this.problem({ kind: 'compressed', flag: d[off] });
      const len = d.readUInt32BE(off + 1);
      if (len > this.maxMessageBytes) return this.problem({ kind: 'too-large', length: len });
      const stop = off + GRPC_PREFIX_LENGTH + len;
      if (stop > end) break;
      this.onMessage(d.subarray(off + GRPC_PREFIX_LENGTH, stop));
      if (this.stopped) return;
      off = stop;
    }
    if (off === end) return;
    if (end - off < GRPC_PREFIX_LENGTH) {
      this.prefixFill = d.copy(this.prefix, 0, off, end);
    } else {
      // The prefix is whole and was checked in the loop: start the body.
      this.body = Buffer.allocUnsafe(d.readUInt32BE(off + 1));
      this.bodyFill = d.copy(this.body, 0, off + GRPC_PREFIX_LENGTH, end);
    }
  }

  /** Continues a split message; returns the offset after it, or -1 if there is no more to do. */
  private completePartial(d: Buffer, off: number, end: number): number {
    if (this.body === null) {
      const take = Math.min(GRPC_PREFIX_LENGTH - this.prefixFill, end - off);
      d.copy(this.prefix, this.prefixFill, off, off + take);
      this.prefixFill += take;
      off += take;
      if (this.prefixFill < GRPC_PREFIX_LENGTH) return -1;
      this.prefixFill = 0;
      if (this.prefix[0] !== 0) {
        this.problem({ kind: 'compressed', flag: this.prefix[0] });
        return -1;
      }
      const len = this.prefix.readUInt32BE(1);
      if (len > this.maxMessageBytes) {
        this.problem({ kind: 'too-large', length: len });
        return -1;
      }
      this.body = Buffer.allocUnsafe(len);
      this.bodyFill = 0;
    }
    const body = this.body;
    const take = Math.min(body.length - this.bodyFill, end - off);
    d.copy(body, this.bodyFill, off, off + take);
    this.bodyFill += take;
    off += take;
    if (this.bodyFill < body.length) return -1;
    this.body = null;
    this.onMessage(body);
    return this.stopped ? -1 : off;
  }

  private problem(p: GrpcFramingProblem): void {
    this.stop();
    this.onProblem(p);
  }
}

function noop(): void {}
