/**
 * Splits a byte stream into OpenFlow messages using the 16-bit length in each header. Pure: feed
 * it chunks as they arrive, get whole messages back.
 */
import { OFP_HEADER_LEN, OpenFlowDecodeError } from './messages.js';

export class Framer {
  private pending: Buffer | undefined;

  /**
   * Adds a chunk and returns every message completed by it (each a Buffer of exactly one message;
   * they may share memory with the chunk). Throws OpenFlowDecodeError on a length below 8, which
   * means the stream is out of sync and the connection should be dropped.
   */
  push(chunk: Buffer): Buffer[] {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    const out: Buffer[] = [];
    let off = 0;
    while (buf.length - off >= OFP_HEADER_LEN) {
      const len = buf.readUInt16BE(off + 2);
      if (len < OFP_HEADER_LEN) {
        throw new OpenFlowDecodeError(`OpenFlow stream out of sync: message length ${len} at offset ${off}`);
      }
      if (buf.length - off < len) break;
      out.push(buf.subarray(off, off + len));
      off += len;
    }
    if (off < buf.length) {
      // Copy so that a small remainder does not pin a large chunk.
      buf = buf.subarray(off);
      this.pending = Buffer.from(buf);
    }
    return out;
  }

  /** Bytes received but not yet part of a whole message. */
  get buffered(): number {
    return this.pending?.length ?? 0;
  }

  reset(): void {
    this.pending = undefined;
  }
}
