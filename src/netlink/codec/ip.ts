/** Address conversions between text (as `ip` prints it) and the bytes netlink carries. */
import { isIPv4, isIPv6 } from 'node:net';
import { AF_INET, AF_INET6 } from './constants.js';

import { NetlinkDecodeError } from './errors.js';

export type Family = typeof AF_INET | typeof AF_INET6;

export interface IpAddress {
  family: Family;
  bytes: Buffer;
}

export interface IpPrefix extends IpAddress {
  prefixLen: number;
}

/** Parses an IPv4 or IPv6 address; throws TypeError with the input on anything else. */
export function parseIp(text: string): IpAddress {
  if (isIPv4(text)) return { family: AF_INET, bytes: Buffer.from(text.split('.').map(Number)) };
  if (isIPv6(text)) return { family: AF_INET6, bytes: parseIpv6(text) };
  throw new TypeError(`not an IPv4 or IPv6 address: '${text}'`);
}

/** Parses 'addr/len' (or a bare address, meaning a host prefix). */
export function parsePrefix(text: string): IpPrefix {
  const slash = text.indexOf('/');
  const ip = parseIp(slash === -1 ? text : text.slice(0, slash));
  const max = ip.family === AF_INET ? 32 : 128;
  if (slash === -1) return { ...ip, prefixLen: max };
  const lenText = text.slice(slash + 1);
  const prefixLen = Number(lenText);
  if (!/^\d{1,3}$/.test(lenText) || prefixLen > max) {
    throw new TypeError(`bad prefix length in '${text}' (0..${max})`);
  }
  return { ...ip, prefixLen };
}

function parseIpv6(text: string): Buffer {
  let head = text;
  const tailBytes: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // Embedded IPv4 tail, e.g. ::ffff:192.0.2.1
    tailBytes.push(...text.slice(lastColon + 1).split('.').map(Number));
    head = text.slice(0, lastColon + 1) + '0:0';
  }
  const [left, right] = head.split('::') as [string, string | undefined];
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const l = groups(left);
  const r = right === undefined ? [] : groups(right);
  const all = right === undefined ? l : [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  if (tailBytes.length === 4) Buffer.from(tailBytes).copy(out, 12);
  return out;
}

/** An address attribute from the kernel: 4 or 16 bytes, else a NetlinkDecodeError naming it. */
export function decodeIpAttr(bytes: Buffer, what: string): string {
  if (bytes.length !== 4 && bytes.length !== 16) throw new NetlinkDecodeError(`${what} of ${bytes.length} bytes is neither IPv4 nor IPv6`);
  return formatIp(bytes);
}

/** Formats address bytes the way iproute2 does (RFC 5952 for IPv6). */
export function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new TypeError(`address of ${bytes.length} bytes is neither IPv4 nor IPv6`);
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(bytes.readUInt16BE(i));
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${Array.from(bytes.subarray(12)).join('.')}`;
  }
  // Longest run of at least two zero groups is compressed; the first wins on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (best === -1) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** Parses 'aa:bb:cc:dd:ee:ff'. */
export function parseMac(text: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) {
    throw new TypeError(`not a MAC address (aa:bb:cc:dd:ee:ff): '${text}'`);
  }
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}

export function formatMac(bytes: Buffer): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}
