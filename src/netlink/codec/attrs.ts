/**
 * Netlink attributes (struct nlattr / rtattr: u16 length, u16 type, payload padded to 4 bytes).
 * Host byte order (little-endian on every platform this runs on: x64, arm64).
 */

import { NetlinkDecodeError } from './errors.js';

export const NLA_ALIGNTO = 4;
export const NLA_HDRLEN = 4;
/** Type bits that are flags, not part of the attribute type. */
const NLA_TYPE_MASK = ~(0x8000 | 0x4000) & 0xffff;

export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** Builds a sequence of attributes; nested attributes are built with a callback. */
export class AttrWriter {
  private readonly chunks: Buffer[] = [];
  private length = 0;

  /** Appends raw bytes (a fixed header such as ifinfomsg, already padded). */
  raw(bytes: Buffer): this {
    this.push(bytes);
    return this;
  }

  bytes(type: number, value: Buffer): this {
    const header = Buffer.alloc(NLA_HDRLEN);
    header.writeUInt16LE(NLA_HDRLEN + value.length, 0);
    header.writeUInt16LE(type, 2);
    this.push(header);
    this.push(value);
    const pad = align4(value.length) - value.length;
    if (pad > 0) this.push(Buffer.alloc(pad));
    return this;
  }

  u8(type: number, value: number): this {
    return this.bytes(type, Buffer.from([value & 0xff]));
  }

  u16(type: number, value: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value, 0);
    return this.bytes(type, b);
  }

  u32(type: number, value: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0, 0);
    return this.bytes(type, b);
  }

  s32(type: number, value: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32LE(value, 0);
    return this.bytes(type, b);
  }

  /** NUL-terminated string, as the kernel expects for names (NLA_STRING / NLA_NUL_STRING). */
  string(type: number, value: string): this {
    return this.bytes(type, Buffer.concat([Buffer.from(value, 'utf8'), Buffer.alloc(1)]));
  }

  nested(type: number, build: (w: AttrWriter) => void): this {
    const inner = new AttrWriter();
    build(inner);
    return this.bytes(type, inner.toBuffer());
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }

  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
}

/** Attributes decoded from a buffer: first value per type (types are unique in rtnetlink replies). */
export class Attrs {
  private constructor(private readonly byType: Map<number, Buffer>) {}

  /** Parses attributes; a truncated trailing attribute is an error, not silently dropped. */
  static parse(buf: Buffer, offset = 0): Attrs {
    const map = new Map<number, Buffer>();
    let pos = offset;
    while (pos + NLA_HDRLEN <= buf.length) {
      const len = buf.readUInt16LE(pos);
      const type = buf.readUInt16LE(pos + 2) & NLA_TYPE_MASK;
      if (len < NLA_HDRLEN || pos + len > buf.length) {
        throw new NetlinkDecodeError(`malformed netlink attribute at offset ${pos}: length ${len}, ${buf.length - pos} bytes left`);
      }
      if (!map.has(type)) map.set(type, buf.subarray(pos + NLA_HDRLEN, pos + len));
      pos += align4(len);
    }
    return new Attrs(map);
  }

  has(type: number): boolean {
    return this.byType.has(type);
  }

  bytes(type: number): Buffer | undefined {
    return this.byType.get(type);
  }

  u8(type: number): number | undefined {
    const b = this.byType.get(type);
    return b && b.length >= 1 ? b.readUInt8(0) : undefined;
  }

  u32(type: number): number | undefined {
    const b = this.byType.get(type);
    return b && b.length >= 4 ? b.readUInt32LE(0) : undefined;
  }

  s32(type: number): number | undefined {
    const b = this.byType.get(type);
    return b && b.length >= 4 ? b.readInt32LE(0) : undefined;
  }

  /** String up to the first NUL. */
  string(type: number): string | undefined {
    const b = this.byType.get(type);
    if (!b) return undefined;
    const nul = b.indexOf(0);
    return b.toString('utf8', 0, nul === -1 ? b.length : nul);
  }

  nested(type: number): Attrs | undefined {
    const b = this.byType.get(type);
    return b ? Attrs.parse(b) : undefined;
  }
}
