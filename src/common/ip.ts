/**
 * Network addresses for every layer, written once: IPv4/IPv6 text <-> bytes <-> bigint, RFC 5952
 * text for IPv6, CIDR math, MAC text <-> bytes. Every bad input throws AddressError.
 *
 * Three views of one address: text, bytes (what the wire carries: 4 or 16 for IP, 6 for Ethernet)
 * and a bigint (IpAddr, for range math such as IPAM and overlap checks). The byte parsers write in
 * place without allocating, because the OpenFlow encoder calls them for every match field.
 */

export type Family = 4 | 6;

/** A parsed address: family and numeric value. */
export interface IpAddr {
  readonly family: Family;
  readonly value: bigint;
}

/** A parsed prefix; `base` has the host bits cleared. */
export interface Cidr {
  readonly family: Family;
  readonly base: bigint;
  readonly prefix: number;
}

/**
 * Text grammar. `strict` is what an operator should write: IPv4 parts without leading zeros, MAC
 * bytes of two hex digits separated by ':' or '-'. `ovs` is what ovs-ofctl accepts: IPv4 parts may
 * have leading zeros (read as decimal), MAC bytes may have one hex digit, ':' only.
 */
export type AddressSyntax = 'strict' | 'ovs';

/**
 * How IPv6 text shows an IPv4-mapped address (::ffff:0:0/96): `hex` is RFC 5952 section 4 alone
 * (::ffff:a00:1); `dotted` is its section 5 mixed notation (::ffff:10.0.0.1), as iproute2 prints.
 */
export type MappedIpv4Form = 'hex' | 'dotted';

/** The one error for an address, prefix or MAC that cannot be read; names the input and what was expected. */
export class AddressError extends Error {
  override readonly name = 'AddressError';
  constructor(
    /** The text (or description of the bytes) that was rejected. */
    readonly input: string,
    /** What would have been accepted. */
    readonly expected: string,
    message = `invalid address "${input}": expected ${expected}`,
  ) {
    super(message);
  }
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };
const EXPECT_V4 = 'four decimal numbers 0-255 like 192.0.2.1';
const EXPECT_V6 = "eight hex groups of up to four digits, '::' at most once, like fd00::1";
const EXPECT_IP = 'an IPv4 or IPv6 address like 192.0.2.1 or fd00::1';
const EXPECT_MAC = 'six hex bytes like 02:42:ac:11:00:02';
const EXPECT_CIDR = 'address/length like 10.0.0.0/24 or fd00::/64';

const ipv4Error = (text: string): AddressError =>
  new AddressError(text, EXPECT_V4, `invalid IPv4 address "${text}": expected ${EXPECT_V4}`);
const ipv6Error = (text: string): AddressError =>
  new AddressError(text, EXPECT_V6, `invalid IPv6 address "${text}": expected ${EXPECT_V6}`);
const ipError = (text: string): AddressError =>
  new AddressError(text, EXPECT_IP, `invalid IP address "${text}": not an IPv4 or IPv6 address`);
const macError = (text: string): AddressError =>
  new AddressError(text, EXPECT_MAC, `invalid Ethernet address "${text}": not a MAC address of ${EXPECT_MAC}`);

/** Address width in bits. */
export function bitsOf(family: Family): number {
  return BITS[family];
}

// ---- text -> bytes ------------------------------------------------------------------------------

const hexDigit = (c: number): number =>
  c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;

/** Reads text[start..end) as a dotted quad into out[off..off+4); false when it is not one. */
function scanIpv4(text: string, start: number, end: number, out: Uint8Array, off: number, syntax: AddressSyntax): boolean {
  let p = start;
  for (let i = 0; i < 4; i++) {
    if (i > 0) {
      if (p >= end || text.charCodeAt(p) !== 46) return false; // '.'
      p++;
    }
    const first = p;
    let n = 0;
    for (; p < end && p - first < 4; p++) {
      const c = text.charCodeAt(p);
      if (c < 48 || c > 57) break;
      n = n * 10 + (c - 48);
    }
    const digits = p - first;
    if (digits === 0 || digits > 3 || n > 255) return false;
    if (syntax === 'strict' && digits > 1 && text.charCodeAt(first) === 48) return false;
    out[off + i] = n;
  }
  return p === end;
}

/** Reads IPv6 text (optionally with a dotted-quad tail) into out[off..off+16); false when it is not one. */
function scanIpv6(text: string, out: Uint8Array, off: number, syntax: AddressSyntax): boolean {
  const end = text.length;
  // The longest valid text is 45 characters (six full groups and a dotted quad).
  if (end < 2 || end > 45) return false;
  let n = 0; // groups written
  let gap = -1; // group index where '::' stands
  let p = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return false;
    gap = 0;
    p = 2;
  }
  while (p < end) {
    if (n >= 8) return false;
    let q = p;
    let v = 0;
    for (; q < end && q - p < 5; q++) {
      const h = hexDigit(text.charCodeAt(q));
      if (h < 0) break;
      v = v * 16 + h;
    }
    const c = q < end ? text.charCodeAt(q) : -1;
    if (c === 46) {
      // A dotted quad ends the address and fills two groups.
      if (n > 6 || !scanIpv4(text, p, end, out, off + n * 2, syntax)) return false;
      n += 2;
      break;
    }
    if (q === p || q - p > 4) return false;
    out[off + n * 2] = v >> 8;
    out[off + n * 2 + 1] = v & 0xff;
    n++;
    p = q;
    if (p === end) break;
    if (c !== 58) return false; // ':'
    p++;
    if (p === end) return false; // a single trailing ':'
    if (text.charCodeAt(p) === 58) {
      if (gap >= 0) return false;
      gap = n;
      p++;
    }
  }
  if (gap < 0) return n === 8;
  if (n > 7) return false; // '::' stands for at least one group
  const tail = n - gap;
  out.copyWithin(off + 16 - tail * 2, off + gap * 2, off + n * 2);
  out.fill(0, off + gap * 2, off + 16 - tail * 2);
  return true;
}

/** Reads a MAC into out[off..off+6); false when it is not one. */
function scanMac(text: string, out: Uint8Array, off: number, syntax: AddressSyntax): boolean {
  let p = 0;
  for (let i = 0; i < 6; i++) {
    if (i > 0) {
      const sep = text.charCodeAt(p++);
      if (sep !== 58 && (syntax === 'ovs' || sep !== 45)) return false; // ':' or '-'
    }
    const a = hexDigit(text.charCodeAt(p));
    if (a < 0) return false;
    const b = hexDigit(text.charCodeAt(p + 1));
    if (b < 0 && syntax === 'strict') return false;
    out[off + i] = b >= 0 ? a * 16 + b : a;
    p += b >= 0 ? 2 : 1;
  }
  return p === text.length;
}

/** Parses a dotted quad into out[off..off+4). */
export function writeIpv4(text: string, out: Uint8Array, off: number, syntax: AddressSyntax = 'strict'): void {
  if (typeof text !== 'string' || !scanIpv4(text, 0, text.length, out, off, syntax)) throw ipv4Error(String(text));
}

/** Parses IPv6 text (also with a dotted-quad tail such as ::ffff:192.0.2.1) into out[off..off+16). */
export function writeIpv6(text: string, out: Uint8Array, off: number, syntax: AddressSyntax = 'strict'): void {
  if (typeof text !== 'string' || !scanIpv6(text, out, off, syntax)) throw ipv6Error(String(text));
}

/** Parses a MAC into out[off..off+6). */
export function writeMac(text: string, out: Uint8Array, off: number, syntax: AddressSyntax = 'strict'): void {
  if (typeof text !== 'string' || !scanMac(text, out, off, syntax)) throw macError(String(text));
}

export function ipv4ToBytes(text: string, syntax: AddressSyntax = 'strict'): Buffer {
  const out = Buffer.alloc(4);
  writeIpv4(text, out, 0, syntax);
  return out;
}

export function ipv6ToBytes(text: string, syntax: AddressSyntax = 'strict'): Buffer {
  const out = Buffer.alloc(16);
  writeIpv6(text, out, 0, syntax);
  return out;
}

/** Either family: 4 bytes for IPv4, 16 for IPv6 (text with a ':' is IPv6). */
export function ipToBytes(text: string, syntax: AddressSyntax = 'strict'): Buffer {
  const bytes = tryIpToBytes(text, syntax);
  if (bytes === null) throw ipError(String(text));
  return bytes;
}

function tryIpToBytes(text: string, syntax: AddressSyntax = 'strict'): Buffer | null {
  if (typeof text !== 'string') return null;
  if (text.includes(':')) {
    const out = Buffer.alloc(16);
    return scanIpv6(text, out, 0, syntax) ? out : null;
  }
  const out = Buffer.alloc(4);
  return scanIpv4(text, 0, text.length, out, 0, syntax) ? out : null;
}

export function macToBytes(text: string, syntax: AddressSyntax = 'strict'): Buffer {
  const out = Buffer.alloc(6);
  writeMac(text, out, 0, syntax);
  return out;
}

// ---- bytes -> text ------------------------------------------------------------------------------

export function bytesToIpv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/**
 * RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups as "::"
 * (the leftmost on a tie), a single zero group left as "0".
 */
export function bytesToIpv6(bytes: Uint8Array, mapped: MappedIpv4Form = 'hex'): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((bytes[i] << 8) | bytes[i + 1]);
  if (mapped === 'dotted' && g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${bytesToIpv4(bytes.subarray(12, 16))}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** 4 bytes as IPv4, 16 as IPv6; any other length is an AddressError. */
export function bytesToIp(bytes: Uint8Array, mapped: MappedIpv4Form = 'hex'): string {
  if (bytes.length === 4) return bytesToIpv4(bytes);
  if (bytes.length === 16) return bytesToIpv6(bytes, mapped);
  throw lengthError(bytes);
}

const lengthError = (bytes: Uint8Array): AddressError =>
  new AddressError(`${bytes.length} bytes`, '4 bytes (IPv4) or 16 (IPv6)', `address of ${bytes.length} bytes is neither IPv4 nor IPv6`);

/** Link-layer address bytes as lower-case hex pairs joined by ':' (any length: 6 for Ethernet). */
export function bytesToMac(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (i > 0 ? ':' : '') + (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return s;
}

// ---- bigint view --------------------------------------------------------------------------------

function toBigint(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function fromBigint(value: bigint, length: number): Buffer {
  const out = Buffer.alloc(length);
  let v = value;
  for (let i = length - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** The bigint view of 4 or 16 address bytes. */
export function ipFromBytes(bytes: Uint8Array): IpAddr {
  if (bytes.length !== 4 && bytes.length !== 16) throw lengthError(bytes);
  return { family: bytes.length === 4 ? 4 : 6, value: toBigint(bytes) };
}

/** The wire bytes of an address: 4 or 16. */
export function ipAddrToBytes(ip: IpAddr): Buffer {
  return fromBigint(ip.value, BITS[ip.family] / 8);
}

/** Parses a bare IPv4 or IPv6 address; null when it is not one. */
export function tryParseIp(text: string): IpAddr | null {
  const bytes = tryIpToBytes(text);
  return bytes === null ? null : ipFromBytes(bytes);
}

/** Parses a bare address or throws AddressError. */
export function parseIp(text: string): IpAddr {
  return ipFromBytes(ipToBytes(text));
}

/** Formats an address: dotted quad, or RFC 5952 IPv6 (see bytesToIpv6). */
export function formatIp(family: Family, value: bigint, mapped: MappedIpv4Form = 'hex'): string {
  return bytesToIp(fromBigint(value, BITS[family] / 8), mapped);
}

/** Formats a parsed address. */
export function ipToString(ip: IpAddr): string {
  return formatIp(ip.family, ip.value);
}

/** Canonical form of an address string, or null when unparsable. */
export function canonicalIp(text: string): string | null {
  const bytes = tryIpToBytes(text);
  return bytes === null ? null : bytesToIp(bytes);
}

// ---- prefixes -----------------------------------------------------------------------------------

/** Splits "addr/len" (or a bare address when `bareIsHost`, meaning /32 or /128); null when malformed. */
function splitPrefix(text: string, bareIsHost: boolean): { bytes: Buffer; prefix: number } | 'length' | null {
  if (typeof text !== 'string') return null;
  const slash = text.indexOf('/');
  if (slash < 0 && !bareIsHost) return null;
  const bytes = tryIpToBytes(slash < 0 ? text : text.slice(0, slash));
  if (bytes === null) return null;
  const max = bytes.length * 8;
  if (slash < 0) return { bytes, prefix: max };
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) return 'length';
  return { bytes, prefix: Number(lenText) };
}

/**
 * Parses "addr/len" keeping the host bits (an interface address such as 10.0.0.5/24); a bare
 * address is a host prefix (/32 or /128).
 */
export function parseIpWithPrefix(text: string): { bytes: Buffer; prefix: number } {
  const r = splitPrefix(text, true);
  if (r === null) {
    throw new AddressError(String(text), EXPECT_CIDR, `invalid prefix "${String(text)}": expected an address or ${EXPECT_CIDR}`);
  }
  if (r === 'length') {
    const max = text.includes(':') ? 128 : 32;
    throw new AddressError(text, `a length 0..${max}`, `invalid prefix "${text}": expected a length 0..${max} after the '/'`);
  }
  return r;
}

/**
 * Parses "addr/len". With `strict`, host bits must be zero ("10.0.0.1/24" is rejected, as an
 * operator most likely mistyped it).
 */
export function tryParseCidr(text: string, strict = true): Cidr | null {
  const r = splitPrefix(text, false);
  if (r === null || r === 'length') return null;
  const ip = ipFromBytes(r.bytes);
  const base = ip.value & prefixMask(ip.family, r.prefix);
  if (strict && base !== ip.value) return null;
  return { family: ip.family, base, prefix: r.prefix };
}

/** Parses a CIDR or throws AddressError with the reason. */
export function parseCidr(text: string, strict = true): Cidr {
  const c = tryParseCidr(text, false);
  if (c === null) throw new AddressError(String(text), EXPECT_CIDR, `invalid CIDR prefix "${String(text)}": expected ${EXPECT_CIDR}`);
  if (strict && tryParseCidr(text, true) === null) {
    const fixed = cidrToString(c);
    throw new AddressError(text, `host bits zero (${fixed})`, `invalid CIDR prefix "${text}": host bits set; did you mean ${fixed}?`);
  }
  return c;
}

function checkPrefix(family: Family, prefix: number): void {
  const bits = BITS[family];
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) {
    throw new AddressError(String(prefix), `0..${bits}`, `invalid prefix length ${prefix} for a ${bits}-bit address: expected 0..${bits}`);
  }
}

/** The netmask of a prefix length as a bigint. */
export function prefixMask(family: Family, prefix: number): bigint {
  checkPrefix(family, prefix);
  const bits = BITS[family];
  const all = (1n << BigInt(bits)) - 1n;
  return (all >> BigInt(bits - prefix)) << BigInt(bits - prefix);
}

/** The netmask of a prefix length as 4 or 16 bytes: prefixMaskBytes(4, 20) is 255.255.240.0. */
export function prefixMaskBytes(family: Family, prefix: number): Buffer {
  checkPrefix(family, prefix);
  const out = Buffer.alloc(BITS[family] / 8);
  for (let i = 0; i < out.length; i++) out[i] = (0xff00 >> Math.min(8, Math.max(0, prefix - i * 8))) & 0xff;
  return out;
}

/** The prefix length of a netmask (leading ones, then only zeros), or -1 when it is not one. */
export function maskPrefixLength(mask: Uint8Array): number {
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

/** Number of addresses in a prefix. */
export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(BITS[c.family] - c.prefix);
}

/** Last address of the prefix (the IPv4 broadcast); the first (the network) is `base`. */
export function cidrLast(c: Cidr): bigint {
  return c.base + cidrSize(c) - 1n;
}

/** Whether the address (same family) lies in the prefix. */
export function cidrContains(c: Cidr, family: Family, value: bigint): boolean {
  return family === c.family && value >= c.base && value <= cidrLast(c);
}

/** Whether two prefixes share any address. */
export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  return a.base <= cidrLast(b) && b.base <= cidrLast(a);
}

/** "base/prefix". */
export function cidrToString(c: Cidr): string {
  return `${formatIp(c.family, c.base)}/${c.prefix}`;
}

// ---- MAC ----------------------------------------------------------------------------------------

/** Parses a MAC "aa:bb:cc:dd:ee:ff" (also '-' separated); returns it lower-case with ':' or null. */
export function canonicalMac(text: string): string | null {
  const out = Buffer.alloc(6);
  return typeof text === 'string' && scanMac(text, out, 0, 'strict') ? bytesToMac(out) : null;
}

/** Docker's MAC for an IPv4 address: 02:42 followed by the four address bytes. */
export function macFromIpv4(value: bigint): string {
  return bytesToMac(Buffer.concat([Buffer.from([0x02, 0x42]), fromBigint(value, 4)]));
}
