/** Text <-> bytes for Ethernet, IPv4 and IPv6 addresses, formatted the way Open vSwitch prints them. */
import { OpenFlowCodecError } from './types.js';

const hexDigit = (c: number): number =>
  c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;

/** Parses `aa:bb:cc:dd:ee:ff` (1 or 2 hex digits per byte) into out[off..off+6). */
export function writeMac(text: string, out: Buffer, off: number): void {
  let p = 0;
  for (let i = 0; i < 6; i++) {
    if (i > 0 && text.charCodeAt(p++) !== 58) p = -1; // ':'
    const a = p >= 0 ? hexDigit(text.charCodeAt(p)) : -1;
    const b = a >= 0 ? hexDigit(text.charCodeAt(p + 1)) : -1;
    if (a < 0) throw new OpenFlowCodecError(`invalid Ethernet address "${text}"`);
    out[off + i] = b >= 0 ? a * 16 + b : a;
    p += b >= 0 ? 2 : 1;
  }
  if (p !== text.length) throw new OpenFlowCodecError(`invalid Ethernet address "${text}"`);
}

export function macToBytes(text: string): Buffer {
  const out = Buffer.alloc(6);
  writeMac(text, out, 0);
  return out;
}

export function bytesToMac(buf: Buffer): string {
  return Array.from(buf, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Parses a dotted quad into out[off..off+4). */
export function writeIpv4(text: string, out: Buffer, off: number): void {
  let p = 0;
  for (let i = 0; i < 4; i++) {
    if (i > 0 && text.charCodeAt(p++) !== 46) p = text.length + 1; // '.'
    let n = 0;
    let digits = 0;
    for (let c = text.charCodeAt(p); c >= 48 && c <= 57 && digits < 4; c = text.charCodeAt(++p)) {
      n = n * 10 + (c - 48);
      digits++;
    }
    if (digits === 0 || digits > 3 || n > 255) throw new OpenFlowCodecError(`invalid IPv4 address "${text}"`);
    out[off + i] = n;
  }
  if (p !== text.length) throw new OpenFlowCodecError(`invalid IPv4 address "${text}"`);
}

export function ipv4ToBytes(text: string): Buffer {
  const out = Buffer.alloc(4);
  writeIpv4(text, out, 0);
  return out;
}

export function bytesToIpv4(buf: Buffer): string {
  return `${buf[0]}.${buf[1]}.${buf[2]}.${buf[3]}`;
}

export function ipv6ToBytes(text: string): Buffer {
  const bad = (): never => {
    throw new OpenFlowCodecError(`invalid IPv6 address "${text}"`);
  };
  let s = text;
  const out = Buffer.alloc(16);
  // Embedded IPv4 tail (e.g. ::ffff:1.2.3.4) becomes two hextets.
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = ipv4ToBytes(v4[2]);
    s = `${v4[1]}${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) bad();
  const parse = (h: string): number[] =>
    h === ''
      ? []
      : h.split(':').map((x) => {
          if (!/^[0-9a-fA-F]{1,4}$/.test(x)) bad();
          return parseInt(x, 16);
        });
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  if (halves.length === 1 ? head.length !== 8 : head.length + tail.length > 7) bad();
  head.forEach((v, i) => out.writeUInt16BE(v, i * 2));
  tail.forEach((v, i) => out.writeUInt16BE(v, 16 - (tail.length - i) * 2));
  return out;
}

/** RFC 5952 text (as glibc inet_ntop prints it): longest run of >= 2 zero hextets becomes "::". */
export function bytesToIpv6(buf: Buffer): string {
  const h: number[] = [];
  for (let i = 0; i < 16; i += 2) h.push(buf.readUInt16BE(i));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (h[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && h[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return hex(h);
  return `${hex(h.slice(0, bestStart))}::${hex(h.slice(bestStart + bestLen))}`;
}

/** Number of leading one bits if `mask` is a CIDR prefix mask, else -1. */
export function prefixLength(mask: Buffer): number {
  let n = 0;
  let i = 0;
  for (; i < mask.length && mask[i] === 0xff; i++) n += 8;
  if (i < mask.length) {
    const b = mask[i];
    let bits = 0;
    while (bits < 8 && b & (0x80 >> bits)) bits++;
    if (((0xff00 >> bits) & 0xff) !== b) return -1;
    n += bits;
    for (i++; i < mask.length; i++) if (mask[i] !== 0) return -1;
  }
  return n;
}

/** An all-ones-then-zeros mask of `bytes` bytes with `prefix` leading ones. */
export function prefixMask(prefix: number, bytes: number): Buffer {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bytes * 8) {
    throw new OpenFlowCodecError(`invalid prefix length ${prefix} for a ${bytes * 8}-bit address`);
  }
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) {
    const bits = Math.min(8, Math.max(0, prefix - i * 8));
    out[i] = (0xff00 >> bits) & 0xff;
  }
  return out;
}
