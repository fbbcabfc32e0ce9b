/**
 * Addresses as rtnetlink carries them: an AF_* family and the raw bytes. Reading and printing the
 * text is common/ip's; this maps its result onto the kernel's families.
 */
import { bytesToIp, ipToBytes, parseIpWithPrefix } from '../../common/ip.js';
import { AF_INET, AF_INET6 } from './constants.js';

export { bytesToMac as formatMac, macToBytes as parseMac } from '../../common/ip.js';
import { NetlinkDecodeError } from './errors.js';

export type Family = typeof AF_INET | typeof AF_INET6;

export interface IpAddress {
  family: Family;
  bytes: Buffer;
}

export interface IpPrefix extends IpAddress {
  prefixLen: number;
}

const familyOf = (bytes: Buffer): Family => (bytes.length === 4 ? AF_INET : AF_INET6);

/** Parses an IPv4 or IPv6 address; throws AddressError naming the input. */
export function parseIp(text: string): IpAddress {
  const bytes = ipToBytes(text);
  return { family: familyOf(bytes), bytes };
}

/** Parses 'addr/len' (host bits kept) or a bare address, meaning a host prefix. */
export function parsePrefix(text: string): IpPrefix {
  const { bytes, prefix } = parseIpWithPrefix(text);
  return { family: familyOf(bytes), bytes, prefixLen: prefix };
}

/** Address bytes as iproute2 prints them (inet_ntop: IPv4-mapped IPv6 in dotted form). */
export function formatIp(bytes: Uint8Array): string {
  return bytesToIp(bytes, 'dotted');
}

/** An address attribute from the kernel: 4 or 16 bytes, else a NetlinkDecodeError naming it. */
export function decodeIpAttr(bytes: Buffer, what: string): string {
  if (bytes.length !== 4 && bytes.length !== 16) throw new NetlinkDecodeError(`${what} of ${bytes.length} bytes is neither IPv4 nor IPv6`);
  return formatIp(bytes);
}
