/**
 * IPv4/IPv6 address and CIDR math on bigints. Both families share one representation so range
 * code (IPAM, overlap checks) is written once.
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

/** Thrown for unparsable addresses or prefixes; the message names the input. */
export class IpParseError extends Error {
  override readonly name = 'IpParseError';
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** Address width in bits. */
export function bitsOf(family: Family): number {
  return BITS[family];
}

function parseV4(text: string): bigint | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p.startsWith('0'))) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(text: string): bigint | null {
  if (text.length === 0 || text.length > 45) return null;
  let s = text;
  // A trailing dotted quad (::ffff:1.2.3.4) is rewritten as two hex groups.
  if (s.includes('.')) {
    const i = s.lastIndexOf(':');
    const v4 = parseV4(s.slice(i + 1));
    if (v4 === null) return null;
    s = `${s.slice(0, i + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const toGroups = (part: string): string[] | null => {
    if (part === '') return [];
    const g = part.split(':');
    return g.every((x) => /^[0-9a-fA-F]{1,4}$/.test(x)) ? g : null;
  };
  const left = toGroups(halves[0]);
  const right = halves.length === 2 ? toGroups(halves[1]) : [];
  if (left === null || right === null) return null;
  let groups = left;
  if (halves.length === 2) {
    const missing = 8 - left.length - right.length;
    if (missing < 1) return null;
    groups = [...left, ...Array<string>(missing).fill('0'), ...right];
  }
  if (groups.length !== 8) return null;
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

/** Parses a bare IPv4 or IPv6 address; null when it is not one. */
export function tryParseIp(text: string): IpAddr | null {
  if (typeof text !== 'string') return null;
  if (text.includes(':')) {
    const v = parseV6(text);
    return v === null ? null : { family: 6, value: v };
  }
  const v = parseV4(text);
  return v === null ? null : { family: 4, value: v };
}

/** Parses a bare address or throws IpParseError. */
export function parseIp(text: string): IpAddr {
  const ip = tryParseIp(text);
  if (ip === null) throw new IpParseError(`"${text}" is not an IPv4 or IPv6 address`);
  return ip;
}

/** Formats an address: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as ::). */
export function formatIp(family: Family, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Formats a parsed address. */
export function ipToString(ip: IpAddr): string {
  return formatIp(ip.family, ip.value);
}

/** Canonical form of an address string, or null when unparsable. */
export function canonicalIp(text: string): string | null {
  const ip = tryParseIp(text);
  return ip === null ? null : ipToString(ip);
}

/**
 * Parses "addr/len". With `strict`, host bits must be zero ("10.0.0.1/24" is rejected, as an
 * operator most likely mistyped it).
 */
export function tryParseCidr(text: string, strict = true): Cidr | null {
  if (typeof text !== 'string') return null;
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = tryParseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (ip === null || !/^\d{1,3}$/.test(lenText)) return null;
  const prefix = Number(lenText);
  if (prefix > BITS[ip.family]) return null;
  const base = ip.value & prefixMask(ip.family, prefix);
  if (strict && base !== ip.value) return null;
  return { family: ip.family, base, prefix };
}

/** Parses a CIDR or throws IpParseError with the reason. */
export function parseCidr(text: string, strict = true): Cidr {
  const c = tryParseCidr(text, false);
  if (c === null) throw new IpParseError(`"${text}" is not a CIDR prefix like 10.0.0.0/24 or fd00::/64`);
  if (strict && tryParseCidr(text, true) === null) {
    throw new IpParseError(`"${text}" has host bits set; did you mean ${cidrToString(c)}?`);
  }
  return c;
}

/** The netmask of a prefix length as a bigint. */
export function prefixMask(family: Family, prefix: number): bigint {
  const bits = BITS[family];
  const all = (1n << BigInt(bits)) - 1n;
  return (all >> BigInt(bits - prefix)) << BigInt(bits - prefix);
}

/** Number of addresses in a prefix. */
export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(BITS[c.family] - c.prefix);
}

/** Last address of the prefix (the IPv4 broadcast). */
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

/** Parses a MAC "aa:bb:cc:dd:ee:ff" (also '-' separated); returns it lower-case with ':' or null. */
export function canonicalMac(text: string): string | null {
  if (typeof text !== 'string' || !/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(text)) return null;
  return text.toLowerCase().replace(/-/g, ':');
}

/** Docker's MAC for an IPv4 address: 02:42 followed by the four address bytes. */
export function macFromIpv4(value: bigint): string {
  const bytes = [0x02, 0x42, ...[24n, 16n, 8n, 0n].map((s) => Number((value >> s) & 0xffn))];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
