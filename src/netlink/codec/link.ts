/** Links: struct ifinfomsg + IFLA_* attributes (RTM_NEWLINK / RTM_SETLINK / RTM_GETLINK / RTM_DELLINK). */
import { NetlinkDecodeError } from './errors.js';
import { Attrs, AttrWriter } from './attrs.js';
import {
  AF_UNSPEC,
  IFF_LOWER_UP,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINK,
  IFLA_LINK_NETNSID,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_OPERSTATE,
  IFLA_TXQLEN,
  OPERSTATES,
  VETH_INFO_PEER,
} from './constants.js';
import { formatMac } from './ip.js';

export const IFINFOMSG_LEN = 16;
/** IFNAMSIZ - 1: the longest interface name the kernel accepts. */
export const MAX_IFNAME_LEN = 15;

/** What a link request selects and changes. Select by index, or by name when index is 0/absent. */
export interface LinkRequest {
  index?: number;
  /** IFLA_IFNAME: selects the link when no index is given; renames it when an index is given. */
  name?: string;
  /** Set (true) or clear (false) IFF_UP. */
  up?: boolean;
  mtu?: number;
  mac?: Buffer;
  /** Move the link into the network namespace behind this file descriptor. */
  netnsFd?: number;
}

/** One side of a veth pair being created. */
export interface VethEnd {
  name: string;
  mtu?: number;
  mac?: Buffer;
  up?: boolean;
  /** Create this end directly in the network namespace behind this file descriptor. */
  netnsFd?: number;
}

export interface VethRequest extends VethEnd {
  peer: VethEnd;
}

/** A decoded link. */
export interface Link {
  index: number;
  name: string;
  /** ARPHRD_* hardware type (1 = ether, 772 = loopback). */
  hwType: number;
  flags: number;
  up: boolean;
  lowerUp: boolean;
  operstate: string;
  mtu?: number;
  mac?: string;
  txqlen?: number;
  /** IFLA_INFO_KIND, e.g. 'veth', 'bridge'. */
  kind?: string;
  /** IFLA_LINK: index of the peer/parent link, in the namespace named by linkNetnsId if set. */
  parentIndex?: number;
  linkNetnsId?: number;
  masterIndex?: number;
}

function ifinfomsg(index: number, flags: number, change: number): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(AF_UNSPEC, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  b.writeUInt32LE(change >>> 0, 12);
  return b;
}

/** Throws TypeError for names the kernel would reject (empty, too long, '/', ':', whitespace). */
export function checkIfname(name: string): void {
  if (name.length === 0 || Buffer.byteLength(name) > MAX_IFNAME_LEN || /[/:\s]/.test(name) || name === '.' || name === '..') {
    throw new TypeError(`invalid interface name '${name}' (1-${MAX_IFNAME_LEN} bytes, no '/', ':' or spaces)`);
  }
}

function upFlags(up: boolean | undefined): [number, number] {
  if (up === undefined) return [0, 0];
  return [up ? IFF_UP : 0, IFF_UP];
}

function writeEnd(w: AttrWriter, end: Omit<VethEnd, 'name' | 'up'> & { name?: string }): void {
  if (end.name !== undefined) { checkIfname(end.name); w.string(IFLA_IFNAME, end.name); }
  if (end.mtu !== undefined) w.u32(IFLA_MTU, end.mtu);
  if (end.mac !== undefined) w.bytes(IFLA_ADDRESS, end.mac);
  if (end.netnsFd !== undefined) w.u32(IFLA_NET_NS_FD, end.netnsFd);
}

/** Payload for RTM_NEWLINK/RTM_SETLINK on an existing link, or RTM_GETLINK/RTM_DELLINK. */
export function encodeLinkRequest(req: LinkRequest): Buffer {
  const [flags, change] = upFlags(req.up);
  const w = new AttrWriter().raw(ifinfomsg(req.index ?? 0, flags, change));
  writeEnd(w, req);
  return w.toBuffer();
}

/** Payload for RTM_NEWLINK creating a veth pair (peer in IFLA_LINKINFO/IFLA_INFO_DATA/VETH_INFO_PEER). */
export function encodeVethCreate(req: VethRequest): Buffer {
  const [flags, change] = upFlags(req.up);
  const [peerFlags, peerChange] = upFlags(req.peer.up);
  const w = new AttrWriter().raw(ifinfomsg(0, flags, change));
  writeEnd(w, req);
  w.nested(IFLA_LINKINFO, (info) => {
    info.string(IFLA_INFO_KIND, 'veth');
    info.nested(IFLA_INFO_DATA, (data) => {
      data.nested(VETH_INFO_PEER, (peer) => {
        peer.raw(ifinfomsg(0, peerFlags, peerChange));
        writeEnd(peer, req.peer);
      });
    });
  });
  return w.toBuffer();
}

/** Decodes an RTM_NEWLINK payload. */
export function decodeLink(payload: Buffer): Link {
  if (payload.length < IFINFOMSG_LEN) throw new NetlinkDecodeError(`ifinfomsg too short: ${payload.length} bytes`);
  const flags = payload.readUInt32LE(8);
  const attrs = Attrs.parse(payload, IFINFOMSG_LEN);
  const link: Link = {
    index: payload.readInt32LE(4),
    name: attrs.string(IFLA_IFNAME) ?? '',
    hwType: payload.readUInt16LE(2),
    flags,
    up: (flags & IFF_UP) !== 0,
    lowerUp: (flags & IFF_LOWER_UP) !== 0,
    operstate: OPERSTATES[attrs.u8(IFLA_OPERSTATE) ?? 0] ?? 'unknown',
  };
  const mtu = attrs.u32(IFLA_MTU);
  if (mtu !== undefined) link.mtu = mtu;
  const mac = attrs.bytes(IFLA_ADDRESS);
  if (mac !== undefined && mac.length > 0) link.mac = formatMac(mac);
  const txqlen = attrs.u32(IFLA_TXQLEN);
  if (txqlen !== undefined) link.txqlen = txqlen;
  const kind = attrs.nested(IFLA_LINKINFO)?.string(IFLA_INFO_KIND);
  if (kind !== undefined) link.kind = kind;
  const parent = attrs.u32(IFLA_LINK);
  if (parent !== undefined && parent !== link.index) link.parentIndex = parent;
  const netnsId = attrs.s32(IFLA_LINK_NETNSID);
  if (netnsId !== undefined) link.linkNetnsId = netnsId;
  const master = attrs.u32(IFLA_MASTER);
  if (master !== undefined && master !== 0) link.masterIndex = master;
  return link;
}
