/** Addresses: struct ifaddrmsg + IFA_* attributes (RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR). */
import { NetlinkDecodeError } from './errors.js';
import { Attrs, AttrWriter } from './attrs.js';
import {
  AF_INET,
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_F_NODAD,
  IFA_F_NOPREFIXROUTE,
  IFA_F_PERMANENT,
  IFA_F_TENTATIVE,
  IFA_FLAGS,
  IFA_LABEL,
  IFA_LOCAL,
  RT_SCOPE_HOST,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
} from './constants.js';
import { type Family, decodeIpAttr, type IpPrefix } from './ip.js';

export const IFADDRMSG_LEN = 8;

export interface AddressRequest {
  index: number;
  prefix: IpPrefix;
  /** IPv6: skip duplicate address detection (IFA_F_NODAD), so the address is usable at once. */
  noDad?: boolean;
  /** Do not create the prefix route for the subnet (IFA_F_NOPREFIXROUTE). */
  noPrefixRoute?: boolean;
  /** IPv4 broadcast address bytes (IFA_BROADCAST). */
  broadcast?: Buffer;
  /** rt scope; defaults to universe (global). */
  scope?: number;
}

export interface Address {
  family: Family;
  index: number;
  address: string;
  prefixLen: number;
  /** Text form 'address/prefixLen'. */
  cidr: string;
  scope: 'global' | 'link' | 'host' | number;
  flags: number;
  tentative: boolean;
  permanent: boolean;
  label?: string;
  broadcast?: string;
}

/** Payload for RTM_NEWADDR / RTM_DELADDR. */
export function encodeAddressRequest(req: AddressRequest): Buffer {
  let flags = 0;
  if (req.noDad) flags |= IFA_F_NODAD;
  if (req.noPrefixRoute) flags |= IFA_F_NOPREFIXROUTE;
  const head = Buffer.alloc(IFADDRMSG_LEN);
  head.writeUInt8(req.prefix.family, 0);
  head.writeUInt8(req.prefix.prefixLen, 1);
  head.writeUInt8(flags & 0xff, 2);
  head.writeUInt8(req.scope ?? RT_SCOPE_UNIVERSE, 3);
  head.writeUInt32LE(req.index, 4);
  const w = new AttrWriter().raw(head);
  // Like iproute2: IFA_LOCAL is the address, IFA_ADDRESS the same unless point-to-point.
  w.bytes(IFA_LOCAL, req.prefix.bytes).bytes(IFA_ADDRESS, req.prefix.bytes);
  if (req.broadcast) w.bytes(IFA_BROADCAST, req.broadcast);
  if (flags > 0xff) w.u32(IFA_FLAGS, flags);
  return w.toBuffer();
}

/** Payload for an RTM_GETADDR dump of one family (0 = all). */
export function encodeAddressDump(family: number): Buffer {
  const head = Buffer.alloc(IFADDRMSG_LEN);
  head.writeUInt8(family, 0);
  return head;
}

function scopeName(scope: number): Address['scope'] {
  if (scope === RT_SCOPE_UNIVERSE) return 'global';
  if (scope === RT_SCOPE_LINK) return 'link';
  if (scope === RT_SCOPE_HOST) return 'host';
  return scope;
}

/** Decodes an RTM_NEWADDR payload. */
export function decodeAddress(payload: Buffer): Address {
  if (payload.length < IFADDRMSG_LEN) throw new NetlinkDecodeError(`ifaddrmsg too short: ${payload.length} bytes`);
  const family = payload.readUInt8(0) as Family;
  const prefixLen = payload.readUInt8(1);
  const attrs = Attrs.parse(payload, IFADDRMSG_LEN);
  // IFA_FLAGS (u32) supersedes the 8-bit ifa_flags when present.
  const flags = attrs.u32(IFA_FLAGS) ?? payload.readUInt8(2);
  const raw = attrs.bytes(family === AF_INET ? IFA_LOCAL : IFA_ADDRESS) ?? attrs.bytes(IFA_ADDRESS) ?? attrs.bytes(IFA_LOCAL);
  if (!raw) throw new NetlinkDecodeError('address message without IFA_ADDRESS/IFA_LOCAL');
  const address = decodeIpAttr(raw, 'IFA_ADDRESS');
  const out: Address = {
    family,
    index: payload.readUInt32LE(4),
    address,
    prefixLen,
    cidr: `${address}/${prefixLen}`,
    scope: scopeName(payload.readUInt8(3)),
    flags,
    tentative: (flags & IFA_F_TENTATIVE) !== 0,
    permanent: (flags & IFA_F_PERMANENT) !== 0,
  };
  const label = attrs.string(IFA_LABEL);
  if (label !== undefined) out.label = label;
  const brd = attrs.bytes(IFA_BROADCAST);
  if (brd) out.broadcast = decodeIpAttr(brd, 'IFA_BROADCAST');
  return out;
}
