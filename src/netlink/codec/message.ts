/**
 * nlmsghdr framing and the two control messages every request ends with: NLMSG_ERROR (an ack when
 * error is 0, optionally with extended-ack TLVs) and NLMSG_DONE (end of a dump).
 */
import { NetlinkDecodeError } from './errors.js';
import { align4, Attrs } from './attrs.js';
import {
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
} from './constants.js';

export const NLMSG_HDRLEN = 16;

export interface NetlinkHeader {
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

/** One decoded netlink message: header plus the payload after the 16-byte header. */
export interface NetlinkMessage extends NetlinkHeader {
  payload: Buffer;
}

/** Encodes one message; the payload is padded to 4 bytes and nlmsg_len covers it. */
export function encodeMessage(header: NetlinkHeader, payload: Buffer): Buffer {
  const padded = align4(payload.length);
  const out = Buffer.alloc(NLMSG_HDRLEN + padded);
  out.writeUInt32LE(NLMSG_HDRLEN + padded, 0);
  out.writeUInt16LE(header.type, 4);
  out.writeUInt16LE(header.flags, 6);
  out.writeUInt32LE(header.seq >>> 0, 8);
  out.writeUInt32LE(header.pid >>> 0, 12);
  payload.copy(out, NLMSG_HDRLEN);
  return out;
}

/** Splits a datagram into messages. Throws NetlinkDecodeError on a malformed length. */
export function decodeMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let pos = 0;
  while (pos + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(pos);
    if (len < NLMSG_HDRLEN || pos + len > buf.length) {
      throw new NetlinkDecodeError(`malformed netlink message at offset ${pos}: nlmsg_len ${len}, ${buf.length - pos} bytes left`);
    }
    out.push({
      type: buf.readUInt16LE(pos + 4),
      flags: buf.readUInt16LE(pos + 6),
      seq: buf.readUInt32LE(pos + 8),
      pid: buf.readUInt32LE(pos + 12),
      payload: buf.subarray(pos + NLMSG_HDRLEN, pos + len),
    });
    pos += align4(len);
  }
  return out;
}

/** Result carried by NLMSG_ERROR or NLMSG_DONE: errno 0 means success. */
export interface NetlinkStatus {
  /** Positive errno (the kernel sends it negated); 0 for an ack. */
  errno: number;
  /** Extended ack message (NLMSGERR_ATTR_MSG), when the kernel gave one. */
  extackMessage?: string;
  /** Byte offset in the request of the attribute the kernel blamed (NLMSGERR_ATTR_OFFS). */
  extackOffset?: number;
}

function decodeExtack(payload: Buffer, offset: number, status: NetlinkStatus): NetlinkStatus {
  if (offset >= payload.length) return status;
  const attrs = Attrs.parse(payload, offset);
  const msg = attrs.string(NLMSGERR_ATTR_MSG);
  const offs = attrs.u32(NLMSGERR_ATTR_OFFS);
  if (msg !== undefined && msg !== '') status.extackMessage = msg;
  if (offs !== undefined) status.extackOffset = offs;
  return status;
}

/**
 * Decodes NLMSG_ERROR (struct nlmsgerr: int error, the request's nlmsghdr, its payload unless
 * NLM_F_CAPPED, then TLVs if NLM_F_ACK_TLVS) or NLMSG_DONE (int error, then TLVs).
 * Returns undefined for any other message type.
 */
export function decodeStatus(msg: NetlinkMessage): NetlinkStatus | undefined {
  if (msg.type !== NLMSG_ERROR && msg.type !== NLMSG_DONE) return undefined;
  if (msg.payload.length < 4) {
    // A DONE without payload comes from old kernels and means success.
    if (msg.type === NLMSG_DONE) return { errno: 0 };
    throw new NetlinkDecodeError(`NLMSG_ERROR payload too short: ${msg.payload.length} bytes`);
  }
  const status: NetlinkStatus = { errno: Math.abs(msg.payload.readInt32LE(0)) };
  if (!(msg.flags & NLM_F_ACK_TLVS)) return status;
  if (msg.type === NLMSG_DONE) return decodeExtack(msg.payload, 4, status);
  let offset = 4 + NLMSG_HDRLEN;
  if (!(msg.flags & NLM_F_CAPPED) && msg.payload.length >= 4 + NLMSG_HDRLEN) {
    // The echoed request: its own nlmsg_len, which must lie within this payload.
    const echoed = msg.payload.readUInt32LE(4);
    if (echoed < NLMSG_HDRLEN || echoed > msg.payload.length - 4) {
      throw new NetlinkDecodeError(`NLMSG_ERROR echoes a request of ${echoed} bytes in ${msg.payload.length - 4}`);
    }
    offset = 4 + align4(echoed);
  }
  return decodeExtack(msg.payload, offset, status);
}
