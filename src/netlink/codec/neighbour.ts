/** Neighbours (ARP / NDP entries): struct ndmsg + NDA_* attributes (RTM_NEWNEIGH / RTM_DELNEIGH / RTM_GETNEIGH). */
import { NetlinkDecodeError } from './errors.js';
import { Attrs, AttrWriter } from './attrs.js';
import { NDA_DST, NDA_LLADDR, NUD_PERMANENT } from './constants.js';
import { decodeIpAttr, type Family, formatMac, type IpAddress } from './ip.js';

export const NDMSG_LEN = 12;

export interface NeighbourRequest {
  index: number;
  address: IpAddress;
  /** Link-layer address; required to add, ignored on delete. */
  mac?: Buffer;
  /** NUD_* state; defaults to NUD_PERMANENT (a static entry). */
  state?: number;
}

export interface Neighbour {
  family: Family;
  index: number;
  address: string;
  mac?: string;
  /** NUD_* bit mask. */
  state: number;
  permanent: boolean;
  flags: number;
}

function ndmsg(family: number, index: number, state: number): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt16LE(state, 8);
  return b;
}

/** Payload for RTM_NEWNEIGH / RTM_DELNEIGH. */
export function encodeNeighbourRequest(req: NeighbourRequest): Buffer {
  const w = new AttrWriter().raw(ndmsg(req.address.family, req.index, req.state ?? NUD_PERMANENT));
  w.bytes(NDA_DST, req.address.bytes);
  if (req.mac) w.bytes(NDA_LLADDR, req.mac);
  return w.toBuffer();
}

/** Payload for an RTM_GETNEIGH dump of one family. */
export function encodeNeighbourDump(family: number): Buffer {
  return ndmsg(family, 0, 0);
}

/** Decodes an RTM_NEWNEIGH payload. */
export function decodeNeighbour(payload: Buffer): Neighbour {
  if (payload.length < NDMSG_LEN) throw new NetlinkDecodeError(`ndmsg too short: ${payload.length} bytes`);
  const attrs = Attrs.parse(payload, NDMSG_LEN);
  const dst = attrs.bytes(NDA_DST);
  const state = payload.readUInt16LE(8);
  const out: Neighbour = {
    family: payload.readUInt8(0) as Family,
    index: payload.readInt32LE(4),
    address: dst ? decodeIpAttr(dst, 'NDA_DST') : '',
    state,
    permanent: (state & NUD_PERMANENT) !== 0,
    flags: payload.readUInt8(10),
  };
  const ll = attrs.bytes(NDA_LLADDR);
  if (ll) out.mac = formatMac(ll);
  return out;
}
