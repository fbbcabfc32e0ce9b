/**
 * OpenFlow 1.3 message serializer and parser (pure; no I/O), plus the ONF bundle extension for
 * OpenFlow 1.3 (experimenter 0x4f4e4600, exp_type 2300 bundle_ctrl / 2301 bundle_add) as Open
 * vSwitch accepts it. Matches, actions and instructions are carried here as already-encoded bytes
 * (see match.ts, actions.ts, instructions.ts), so this layer stays a plain framing codec.
 *
 * Encoders come in two forms: `encodeX(...)` returns a Buffer holding one message, and `writeX(w, ...)`
 * appends to a ByteWriter, for building many messages in one buffer without copies.
 */
import { bytesToMac, macToBytes } from '../common/ip.js';
import { OFP13_VERSION, OFPCML_NO_BUFFER, OFPP, OFP_DEFAULT_PRIORITY, ONF_VENDOR_ID as ONF_EXPERIMENTER } from './consts.js';
import { OFPET_EXPERIMENTER, ERROR_TYPE_NAMES, errorName, type OfErrorInfo } from './errors.js';

export const OFP_HEADER_LEN = 8;

/** OpenFlow 1.3 message types (ofp_header.type). */
export const OFPT = {
  HELLO: 0,
  ERROR: 1,
  ECHO_REQUEST: 2,
  ECHO_REPLY: 3,
  EXPERIMENTER: 4,
  FEATURES_REQUEST: 5,
  FEATURES_REPLY: 6,
  GET_CONFIG_REQUEST: 7,
  GET_CONFIG_REPLY: 8,
  SET_CONFIG: 9,
  PACKET_IN: 10,
  FLOW_REMOVED: 11,
  PORT_STATUS: 12,
  PACKET_OUT: 13,
  FLOW_MOD: 14,
  GROUP_MOD: 15,
  PORT_MOD: 16,
  TABLE_MOD: 17,
  MULTIPART_REQUEST: 18,
  MULTIPART_REPLY: 19,
  BARRIER_REQUEST: 20,
  BARRIER_REPLY: 21,
  QUEUE_GET_CONFIG_REQUEST: 22,
  QUEUE_GET_CONFIG_REPLY: 23,
  ROLE_REQUEST: 24,
  ROLE_REPLY: 25,
  GET_ASYNC_REQUEST: 26,
  GET_ASYNC_REPLY: 27,
  SET_ASYNC: 28,
  METER_MOD: 29,
} as const;

const OFPT_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(OFPT).map(([name, value]) => [value, name]),
);

/** Readable name of a message type, e.g. 14 -> 'FLOW_MOD'. */
export function messageTypeName(type: number): string {
  return OFPT_NAMES[type] ?? `TYPE_${type}`;
}

/** Multipart types (ofp_multipart_request.type). */
export const OFPMP = {
  DESC: 0,
  FLOW: 1,
  AGGREGATE: 2,
  TABLE: 3,
  PORT_STATS: 4,
  QUEUE: 5,
  GROUP: 6,
  GROUP_DESC: 7,
  GROUP_FEATURES: 8,
  METER: 9,
  METER_CONFIG: 10,
  METER_FEATURES: 11,
  TABLE_FEATURES: 12,
  PORT_DESC: 13,
  EXPERIMENTER: 0xffff,
} as const;
/** Multipart reply flag: more replies follow with the same xid. */
export const OFPMPF_REPLY_MORE = 1;

export const OFPG_ANY = 0xffffffff;
export const OFPG_ALL = 0xfffffffc;
export const OFP_NO_BUFFER = 0xffffffff;
/** table_id meaning "all tables" (flow stats, delete). */
export const OFPTT_ALL = 0xff;

export const FLOW_MOD_COMMANDS = {
  add: 0,
  modify: 1,
  modify_strict: 2,
  delete: 3,
  delete_strict: 4,
} as const;
export type FlowModCommand = keyof typeof FLOW_MOD_COMMANDS;
const FLOW_MOD_COMMAND_NAMES = Object.keys(FLOW_MOD_COMMANDS) as FlowModCommand[];

export const GROUP_MOD_COMMANDS = { add: 0, modify: 1, delete: 2 } as const;
export type GroupModCommand = keyof typeof GROUP_MOD_COMMANDS;
export const GROUP_TYPES = { all: 0, select: 1, indirect: 2, ff: 3 } as const;
export type GroupType = keyof typeof GROUP_TYPES;

/** ONF bundle extension for OpenFlow 1.3. */
export const ONF_ET_BUNDLE_CONTROL = 2300;
export const ONF_ET_BUNDLE_ADD_MESSAGE = 2301;
export const BUNDLE_CTRL_TYPES = {
  open_request: 0,
  open_reply: 1,
  close_request: 2,
  close_reply: 3,
  commit_request: 4,
  commit_reply: 5,
  discard_request: 6,
  discard_reply: 7,
} as const;
export type BundleCtrlType = keyof typeof BUNDLE_CTRL_TYPES;
const BUNDLE_CTRL_TYPE_NAMES = Object.keys(BUNDLE_CTRL_TYPES) as BundleCtrlType[];
export const OFPBF_ATOMIC = 1;
export const OFPBF_ORDERED = 2;

/** An empty OXM ofp_match (matches everything): type=OXM, length=4, 4 bytes of padding. */
export const EMPTY_MATCH: Buffer = Buffer.from([0, 1, 0, 4, 0, 0, 0, 0]);

/** Thrown for bytes that are not a well-formed OpenFlow 1.3 message of the expected kind. */
export class OpenFlowDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OpenFlowDecodeError';
  }
}

// ---------------------------------------------------------------------------------------------
// Byte writer

/** Growable output buffer for building many messages back to back (big-endian). */
export class ByteWriter {
  buf: Buffer;
  pos = 0;

  constructor(initialSize = 4096) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
  }

  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.pos);
    this.pos += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
  }

  u64(v: bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64BE(BigInt.asUintN(64, v), this.pos);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }

  /** Starts a message: writes an OpenFlow 1.3 header with a length to be patched by endMessage. */
  startMessage(type: number, xid: number): number {
    const start = this.pos;
    this.ensure(OFP_HEADER_LEN);
    this.buf[this.pos] = OFP13_VERSION;
    this.buf[this.pos + 1] = type;
    this.buf.writeUInt16BE(0, this.pos + 2);
    this.buf.writeUInt32BE(xid >>> 0, this.pos + 4);
    this.pos += OFP_HEADER_LEN;
    return start;
  }

  /** Patches the length of the message begun at `start`. */
  endMessage(start: number): void {
    const len = this.pos - start;
    if (len > 0xffff) throw new RangeError(`OpenFlow message too long: ${len} bytes (max 65535)`);
    this.buf.writeUInt16BE(len, start + 2);
  }

  /** The bytes written so far (a view, not a copy). */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  reset(): void {
    this.pos = 0;
  }
}

function oneMessage(build: (w: ByteWriter) => void, size = 64): Buffer {
  const w = new ByteWriter(size);
  build(w);
  return Buffer.from(w.view());
}

// ---------------------------------------------------------------------------------------------
// Header

export interface OfHeader {
  version: number;
  type: number;
  length: number;
  xid: number;
}

export function decodeHeader(buf: Uint8Array, offset = 0): OfHeader {
  if (buf.length - offset < OFP_HEADER_LEN) {
    throw new OpenFlowDecodeError(`truncated OpenFlow header: ${buf.length - offset} bytes`);
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return { version: b[offset], type: b[offset + 1], length: b.readUInt16BE(offset + 2), xid: b.readUInt32BE(offset + 4) };
}

function expect(buf: Buffer, type: number, minLen: number): OfHeader {
  const h = decodeHeader(buf);
  if (h.type !== type) {
    throw new OpenFlowDecodeError(`expected ${messageTypeName(type)}, got ${messageTypeName(h.type)}`);
  }
  if (h.length > buf.length || h.length < minLen) {
    throw new OpenFlowDecodeError(`${messageTypeName(type)}: bad length ${h.length} (have ${buf.length} bytes, need >= ${minLen})`);
  }
  return h;
}

/** Length of an ofp_match at `offset` including its padding to 8 bytes. */
export function matchWireLength(buf: Buffer, offset: number): number {
  if (offset + 4 > buf.length) throw new OpenFlowDecodeError('truncated ofp_match');
  const len = buf.readUInt16BE(offset + 2);
  if (len < 4) throw new OpenFlowDecodeError(`bad ofp_match length ${len}`);
  const padded = (len + 7) & ~7;
  if (offset + padded > buf.length) throw new OpenFlowDecodeError(`ofp_match of ${len} bytes overruns message`);
  return padded;
}

// ---------------------------------------------------------------------------------------------
// HELLO, ECHO, FEATURES, BARRIER, SET_CONFIG

/** HELLO with a version bitmap element announcing the given versions (default: only 1.3). */
export function encodeHello(xid: number, versions: number[] = [OFP13_VERSION]): Buffer {
  return oneMessage((w) => {
    const start = w.startMessage(OFPT.HELLO, xid);
    w.buf[start] = Math.max(...versions);
    const words = Math.floor(Math.max(...versions) / 32) + 1;
    w.u16(1); // OFPHET_VERSIONBITMAP
    w.u16(4 + 4 * words);
    for (let i = 0; i < words; i++) {
      let bits = 0;
      for (const v of versions) if (Math.floor(v / 32) === i) bits |= 1 << (v % 32);
      w.u32(bits);
    }
    const pad = (8 - ((4 + 4 * words) % 8)) % 8;
    w.zeros(pad);
    w.endMessage(start);
  });
}

export interface Hello {
  xid: number;
  /** ofp_header.version: the highest version the peer supports. */
  version: number;
  /** Versions from the bitmap element; without one, every version up to `version`. */
  versions: number[];
}

export function decodeHello(buf: Buffer): Hello {
  const h = expect(buf, OFPT.HELLO, OFP_HEADER_LEN);
  let versions: number[] | undefined;
  let off = OFP_HEADER_LEN;
  while (off + 4 <= h.length) {
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    if (len < 4 || off + len > h.length) break;
    if (type === 1) {
      versions = [];
      for (let i = 0; (i + 1) * 4 <= len - 4; i++) {
        const bits = buf.readUInt32BE(off + 4 + i * 4);
        for (let b = 0; b < 32; b++) if (bits & (1 << b)) versions.push(i * 32 + b);
      }
    }
    off += (len + 7) & ~7;
  }
  if (!versions) {
    versions = [];
    for (let v = 1; v <= h.version; v++) versions.push(v);
  }
  return { xid: h.xid, version: h.version, versions };
}

/** Readable OpenFlow version, e.g. 4 -> 'OpenFlow13'. */
export function versionName(v: number): string {
  return v >= 1 && v <= 6 ? `OpenFlow1${v - 1}` : `0x${v.toString(16)}`;
}

function headerOnly(type: number, xid: number, body?: Uint8Array): Buffer {
  return oneMessage((w) => {
    const start = w.startMessage(type, xid);
    if (body) w.bytes(body);
    w.endMessage(start);
  }, 8 + (body?.length ?? 0));
}

export const encodeEchoRequest = (xid: number, data?: Uint8Array): Buffer => headerOnly(OFPT.ECHO_REQUEST, xid, data);
export const encodeEchoReply = (xid: number, data?: Uint8Array): Buffer => headerOnly(OFPT.ECHO_REPLY, xid, data);
export const encodeFeaturesRequest = (xid: number): Buffer => headerOnly(OFPT.FEATURES_REQUEST, xid);
export const encodeBarrierRequest = (xid: number): Buffer => headerOnly(OFPT.BARRIER_REQUEST, xid);
export const encodeBarrierReply = (xid: number): Buffer => headerOnly(OFPT.BARRIER_REPLY, xid);

/** Payload of an echo request/reply. */
export function echoData(buf: Buffer): Buffer {
  const h = decodeHeader(buf);
  return buf.subarray(OFP_HEADER_LEN, h.length);
}

/** SET_CONFIG: flags (fragment handling) and miss_send_len (bytes of packet sent in packet_in). */
export function encodeSetConfig(xid: number, missSendLen = OFPCML_NO_BUFFER, flags = 0): Buffer {
  return oneMessage((w) => {
    const start = w.startMessage(OFPT.SET_CONFIG, xid);
    w.u16(flags);
    w.u16(missSendLen);
    w.endMessage(start);
  });
}

export interface Features {
  xid: number;
  datapathId: bigint;
  nBuffers: number;
  nTables: number;
  auxiliaryId: number;
  capabilities: number;
}

export function encodeFeaturesReply(f: Features): Buffer {
  return oneMessage((w) => {
    const start = w.startMessage(OFPT.FEATURES_REPLY, f.xid);
    w.u64(f.datapathId);
    w.u32(f.nBuffers);
    w.u8(f.nTables);
    w.u8(f.auxiliaryId);
    w.zeros(2);
    w.u32(f.capabilities);
    w.u32(0);
    w.endMessage(start);
  });
}

export function decodeFeaturesReply(buf: Buffer): Features {
  const h = expect(buf, OFPT.FEATURES_REPLY, 32);
  return {
    xid: h.xid,
    datapathId: buf.readBigUInt64BE(8),
    nBuffers: buf.readUInt32BE(16),
    nTables: buf[20],
    auxiliaryId: buf[21],
    capabilities: buf.readUInt32BE(24),
  };
}

// ---------------------------------------------------------------------------------------------
// FLOW_MOD

/** A flow_mod with its match and instructions already encoded. */
export interface FlowMod {
  command: FlowModCommand;
  /** Default 0 for add/modify, OFPTT_ALL (0xff) for delete. */
  tableId?: number;
  /** Default 0x8000. */
  priority?: number;
  cookie?: bigint;
  /** For modify/delete: only flows whose cookie & mask equals cookie & mask. */
  cookieMask?: bigint;
  idleTimeout?: number;
  hardTimeout?: number;
  /** OFPFF_* bits (consts.ts). */
  flags?: number;
  bufferId?: number;
  /** For delete: only flows that output to this port (default OFPP_ANY). */
  outPort?: number;
  /** For delete: only flows that output to this group (default OFPG_ANY). */
  outGroup?: number;
  /** Encoded ofp_match including its padding (default: match everything). */
  match?: Uint8Array;
  /** Encoded instructions (default: none = drop). */
  instructions?: Uint8Array;
}

/** A decoded flow_mod, all fields present. */
export type DecodedFlowMod = Required<FlowMod> & { xid: number; match: Buffer; instructions: Buffer };

const FLOW_MOD_FIXED_LEN = 48;

export function writeFlowMod(w: ByteWriter, xid: number, fm: FlowMod): void {
  const start = w.startMessage(OFPT.FLOW_MOD, xid);
  const isDelete = fm.command === 'delete' || fm.command === 'delete_strict';
  const command = FLOW_MOD_COMMANDS[fm.command];
  if (command === undefined) throw new TypeError(`unknown flow_mod command '${String(fm.command)}'`);
  w.u64(fm.cookie ?? 0n);
  w.u64(fm.cookieMask ?? 0n);
  w.u8(fm.tableId ?? (isDelete ? OFPTT_ALL : 0));
  w.u8(command);
  w.u16(fm.idleTimeout ?? 0);
  w.u16(fm.hardTimeout ?? 0);
  w.u16(fm.priority ?? OFP_DEFAULT_PRIORITY);
  w.u32(fm.bufferId ?? OFP_NO_BUFFER);
  w.u32(fm.outPort ?? OFPP.ANY);
  w.u32(fm.outGroup ?? OFPG_ANY);
  w.u16(fm.flags ?? 0);
  w.zeros(2);
  w.bytes(fm.match ?? EMPTY_MATCH);
  if (fm.instructions) w.bytes(fm.instructions);
  w.endMessage(start);
}

export function encodeFlowMod(xid: number, fm: FlowMod): Buffer {
  return oneMessage((w) => writeFlowMod(w, xid, fm), 256);
}

export function decodeFlowMod(buf: Buffer): DecodedFlowMod {
  const h = expect(buf, OFPT.FLOW_MOD, FLOW_MOD_FIXED_LEN + 8);
  const command = FLOW_MOD_COMMAND_NAMES[buf[25]];
  if (!command) throw new OpenFlowDecodeError(`flow_mod: unknown command ${buf[25]}`);
  const mlen = matchWireLength(buf, FLOW_MOD_FIXED_LEN);
  return {
    xid: h.xid,
    command,
    cookie: buf.readBigUInt64BE(8),
    cookieMask: buf.readBigUInt64BE(16),
    tableId: buf[24],
    idleTimeout: buf.readUInt16BE(26),
    hardTimeout: buf.readUInt16BE(28),
    priority: buf.readUInt16BE(30),
    bufferId: buf.readUInt32BE(32),
    outPort: buf.readUInt32BE(36),
    outGroup: buf.readUInt32BE(40),
    flags: buf.readUInt16BE(44),
    match: buf.subarray(FLOW_MOD_FIXED_LEN, FLOW_MOD_FIXED_LEN + mlen),
    instructions: buf.subarray(FLOW_MOD_FIXED_LEN + mlen, h.length),
  };
}

// ---------------------------------------------------------------------------------------------
// GROUP_MOD

export interface Bucket {
  /** Relative weight for select groups (default 1 for select, 0 otherwise). */
  weight?: number;
  watchPort?: number;
  watchGroup?: number;
  /** Encoded action list. */
  actions: Uint8Array;
}

export interface GroupMod {
  command: GroupModCommand;
  type: GroupType;
  groupId: number;
  buckets: Bucket[];
}

export function writeGroupMod(w: ByteWriter, xid: number, gm: GroupMod): void {
  const start = w.startMessage(OFPT.GROUP_MOD, xid);
  const command = GROUP_MOD_COMMANDS[gm.command];
  const type = GROUP_TYPES[gm.type];
  if (command === undefined) throw new TypeError(`unknown group_mod command '${String(gm.command)}'`);
  if (type === undefined) throw new TypeError(`unknown group type '${String(gm.type)}'`);
  w.u16(command);
  w.u8(type);
  w.u8(0);
  w.u32(gm.groupId);
  for (const b of gm.buckets) {
    w.u16(16 + b.actions.length);
    w.u16(b.weight ?? (gm.type === 'select' ? 1 : 0));
    w.u32(b.watchPort ?? OFPP.ANY);
    w.u32(b.watchGroup ?? OFPG_ANY);
    w.zeros(4);
    w.bytes(b.actions);
  }
  w.endMessage(start);
}

// METER_MOD (OF1.3 7.3.4.4): one meter with drop bands.
export const METER_MOD_COMMANDS = { add: 0, modify: 1, delete: 2 } as const;
export type MeterModCommand = keyof typeof METER_MOD_COMMANDS;
/** OFPMF_*: rates in packets per second, bands with a burst size. */
export const METER_FLAGS = { kbps: 1, pktps: 2, burst: 4, stats: 8 } as const;

export interface MeterMod {
  command: MeterModCommand;
  /** OR of METER_FLAGS. */
  flags: number;
  meterId: number;
  /** Drop bands (OFPMBT_DROP): above `rate` (and `burstSize`) packets are dropped. */
  bands: { rate: number; burstSize: number }[];
}

export function encodeMeterMod(xid: number, mm: MeterMod): Buffer {
  return oneMessage((w) => {
    const start = w.startMessage(OFPT.METER_MOD, xid);
    const command = METER_MOD_COMMANDS[mm.command];
    if (command === undefined) throw new TypeError(`unknown meter_mod command '${String(mm.command)}'`);
    w.u16(command);
    w.u16(mm.flags);
    w.u32(mm.meterId);
    for (const b of mm.bands) {
      w.u16(1); // OFPMBT_DROP
      w.u16(16);
      w.u32(b.rate);
      w.u32(b.burstSize);
      w.zeros(4);
    }
    w.endMessage(start);
  }, 64);
}

export function decodeMeterMod(buf: Buffer): MeterMod & { xid: number } {
  const h = expect(buf, OFPT.METER_MOD, 16);
  const command = (Object.keys(METER_MOD_COMMANDS) as MeterModCommand[])[buf.readUInt16BE(8)];
  if (!command) throw new OpenFlowDecodeError(`meter_mod: bad command ${buf.readUInt16BE(8)}`);
  const bands: MeterMod['bands'] = [];
  for (let off = 16; off < h.length; off += 16) {
    if (off + 16 > h.length || buf.readUInt16BE(off) !== 1 || buf.readUInt16BE(off + 2) !== 16) throw new OpenFlowDecodeError(`meter_mod: band at ${off} is not a 16-byte drop band`);
    bands.push({ rate: buf.readUInt32BE(off + 4), burstSize: buf.readUInt32BE(off + 8) });
  }
  return { xid: h.xid, command, flags: buf.readUInt16BE(10), meterId: buf.readUInt32BE(12), bands };
}

export function encodeGroupMod(xid: number, gm: GroupMod): Buffer {
  return oneMessage((w) => writeGroupMod(w, xid, gm), 128);
}

export function decodeGroupMod(buf: Buffer): GroupMod & { xid: number } {
  const h = expect(buf, OFPT.GROUP_MOD, 16);
  const cmd = (Object.keys(GROUP_MOD_COMMANDS) as GroupModCommand[])[buf.readUInt16BE(8)];
  const type = (Object.keys(GROUP_TYPES) as GroupType[])[buf[10]];
  if (!cmd || !type) throw new OpenFlowDecodeError(`group_mod: bad command ${buf.readUInt16BE(8)} or type ${buf[10]}`);
  const buckets: Bucket[] = [];
  let off = 16;
  while (off < h.length) {
    const len = buf.readUInt16BE(off);
    if (len < 16 || off + len > h.length) throw new OpenFlowDecodeError(`group_mod: bad bucket length ${len}`);
    buckets.push({
      weight: buf.readUInt16BE(off + 2),
      watchPort: buf.readUInt32BE(off + 4),
      watchGroup: buf.readUInt32BE(off + 8),
      actions: buf.subarray(off + 16, off + len),
    });
    off += len;
  }
  return { xid: h.xid, command: cmd, type, groupId: buf.readUInt32BE(12), buckets };
}

// ---------------------------------------------------------------------------------------------
// PACKET_OUT / PACKET_IN

export interface PacketOut {
  /** Default OFP_NO_BUFFER (the packet is in `data`). */
  bufferId?: number;
  /** Default OFPP_CONTROLLER. */
  inPort?: number;
  /** Encoded action list. */
  actions: Uint8Array;
  data: Uint8Array;
}

export function writePacketOut(w: ByteWriter, xid: number, po: PacketOut): void {
  const start = w.startMessage(OFPT.PACKET_OUT, xid);
  w.u32(po.bufferId ?? OFP_NO_BUFFER);
  w.u32(po.inPort ?? OFPP.CONTROLLER);
  w.u16(po.actions.length);
  w.zeros(6);
  w.bytes(po.actions);
  w.bytes(po.data);
  w.endMessage(start);
}

export function encodePacketOut(xid: number, po: PacketOut): Buffer {
  return oneMessage((w) => writePacketOut(w, xid, po), 64 + po.data.length + po.actions.length);
}

export function decodePacketOut(buf: Buffer): Required<PacketOut> & { xid: number } {
  const h = expect(buf, OFPT.PACKET_OUT, 24);
  const alen = buf.readUInt16BE(16);
  if (24 + alen > h.length) throw new OpenFlowDecodeError(`packet_out: actions_len ${alen} overruns message`);
  return {
    xid: h.xid,
    bufferId: buf.readUInt32BE(8),
    inPort: buf.readUInt32BE(12),
    actions: buf.subarray(24, 24 + alen),
    data: buf.subarray(24 + alen, h.length),
  };
}

export const PACKET_IN_REASONS = ['no_match', 'action', 'invalid_ttl'] as const;

export interface PacketIn {
  xid: number;
  bufferId: number;
  totalLen: number;
  /** 0 = no_match (table miss), 1 = action (output:CONTROLLER), 2 = invalid_ttl. */
  reason: number;
  reasonName: string;
  tableId: number;
  cookie: bigint;
  /** Encoded ofp_match with the packet's metadata (in_port, tunnel fields, registers...). */
  match: Buffer;
  data: Buffer;
}

export function encodePacketIn(p: Omit<PacketIn, 'reasonName'>): Buffer {
  return oneMessage((w) => {
    const start = w.startMessage(OFPT.PACKET_IN, p.xid);
    w.u32(p.bufferId);
    w.u16(p.totalLen);
    w.u8(p.reason);
    w.u8(p.tableId);
    w.u64(p.cookie);
    w.bytes(p.match);
    w.zeros(2);
    w.bytes(p.data);
    w.endMessage(start);
  }, 64 + p.data.length + p.match.length);
}

export function decodePacketIn(buf: Buffer): PacketIn {
  const h = expect(buf, OFPT.PACKET_IN, 24 + 8 + 2);
  const mlen = matchWireLength(buf, 24);
  const reason = buf[14];
  return {
    xid: h.xid,
    bufferId: buf.readUInt32BE(8),
    totalLen: buf.readUInt16BE(12),
    reason,
    reasonName: PACKET_IN_REASONS[reason] ?? `reason_${reason}`,
    tableId: buf[15],
    cookie: buf.readBigUInt64BE(16),
    match: buf.subarray(24, 24 + mlen),
    data: buf.subarray(24 + mlen + 2, h.length),
  };
}

// ---------------------------------------------------------------------------------------------
// MULTIPART: flow stats, port description

export interface FlowStatsFilter {
  /** Default OFPTT_ALL. */
  tableId?: number;
  outPort?: number;
  outGroup?: number;
  cookie?: bigint;
  cookieMask?: bigint;
  /** Encoded ofp_match (non-strict: flows at least as specific). Default: all flows. */
  match?: Uint8Array;
}

function startMultipartRequest(w: ByteWriter, xid: number, mpType: number): number {
  const start = w.startMessage(OFPT.MULTIPART_REQUEST, xid);
  w.u16(mpType);
  w.u16(0);
  w.zeros(4);
  return start;
}

export function encodeFlowStatsRequest(xid: number, f: FlowStatsFilter = {}): Buffer {
  return oneMessage((w) => {
    const start = startMultipartRequest(w, xid, OFPMP.FLOW);
    w.u8(f.tableId ?? OFPTT_ALL);
    w.zeros(3);
    w.u32(f.outPort ?? OFPP.ANY);
    w.u32(f.outGroup ?? OFPG_ANY);
    w.zeros(4);
    w.u64(f.cookie ?? 0n);
    w.u64(f.cookieMask ?? 0n);
    w.bytes(f.match ?? EMPTY_MATCH);
    w.endMessage(start);
  }, 128);
}

export function decodeFlowStatsRequest(buf: Buffer): Required<FlowStatsFilter> & { xid: number } {
  const h = expect(buf, OFPT.MULTIPART_REQUEST, 16 + 32 + 8);
  if (buf.readUInt16BE(8) !== OFPMP.FLOW) throw new OpenFlowDecodeError('not a flow stats request');
  const mlen = matchWireLength(buf, 48);
  return {
    xid: h.xid,
    tableId: buf[16],
    outPort: buf.readUInt32BE(20),
    outGroup: buf.readUInt32BE(24),
    cookie: buf.readBigUInt64BE(32),
    cookieMask: buf.readBigUInt64BE(40),
    match: buf.subarray(48, 48 + mlen),
  };
}

export function encodePortDescRequest(xid: number): Buffer {
  return oneMessage((w) => {
    const start = startMultipartRequest(w, xid, OFPMP.PORT_DESC);
    w.endMessage(start);
  });
}

export interface MultipartReply {
  xid: number;
  mpType: number;
  flags: number;
  /** True when more replies with this xid follow (OFPMPF_REPLY_MORE). */
  more: boolean;
  body: Buffer;
}

export function encodeMultipartReply(r: Omit<MultipartReply, 'more'>): Buffer {
  return oneMessage((w) => {
    const start = w.startMessage(OFPT.MULTIPART_REPLY, r.xid);
    w.u16(r.mpType);
    w.u16(r.flags);
    w.zeros(4);
    w.bytes(r.body);
    w.endMessage(start);
  }, 16 + r.body.length);
}

export function decodeMultipartReply(buf: Buffer): MultipartReply {
  const h = expect(buf, OFPT.MULTIPART_REPLY, 16);
  const flags = buf.readUInt16BE(10);
  return {
    xid: h.xid,
    mpType: buf.readUInt16BE(8),
    flags,
    more: (flags & OFPMPF_REPLY_MORE) !== 0,
    body: buf.subarray(16, h.length),
  };
}

/**
 * Collects the parts of multipart replies (same xid, OFPMPF_REPLY_MORE on all but the last) and
 * hands back the whole body once the last part arrives.
 */
export class MultipartAssembler {
  private readonly parts = new Map<number, { mpType: number; bodies: Buffer[] }>();

  /** Adds one reply; returns the complete body when this was the last part, else undefined. */
  add(reply: MultipartReply): { mpType: number; body: Buffer } | undefined {
    let entry = this.parts.get(reply.xid);
    if (!entry) {
      entry = { mpType: reply.mpType, bodies: [] };
      this.parts.set(reply.xid, entry);
    } else if (entry.mpType !== reply.mpType) {
      this.parts.delete(reply.xid);
      throw new OpenFlowDecodeError(`multipart reply xid ${reply.xid}: type changed from ${entry.mpType} to ${reply.mpType}`);
    }
    entry.bodies.push(Buffer.from(reply.body));
    if (reply.more) return undefined;
    this.parts.delete(reply.xid);
    return { mpType: entry.mpType, body: entry.bodies.length === 1 ? entry.bodies[0] : Buffer.concat(entry.bodies) };
  }

  /** Drops a partial reply (e.g. its request timed out). */
  discard(xid: number): void {
    this.parts.delete(xid);
  }

  get pending(): number {
    return this.parts.size;
  }
}

/** One entry of a flow stats reply; match and instructions still encoded. */
export interface FlowStats {
  tableId: number;
  durationSec: number;
  durationNsec: number;
  priority: number;
  idleTimeout: number;
  hardTimeout: number;
  flags: number;
  cookie: bigint;
  packetCount: bigint;
  byteCount: bigint;
  match: Buffer;
  instructions: Buffer;
}

export function writeFlowStats(w: ByteWriter, s: FlowStats): void {
  const start = w.pos;
  w.u16(0);
  w.u8(s.tableId);
  w.u8(0);
  w.u32(s.durationSec);
  w.u32(s.durationNsec);
  w.u16(s.priority);
  w.u16(s.idleTimeout);
  w.u16(s.hardTimeout);
  w.u16(s.flags);
  w.zeros(4);
  w.u64(s.cookie);
  w.u64(s.packetCount);
  w.u64(s.byteCount);
  w.bytes(s.match);
  w.bytes(s.instructions);
  w.buf.writeUInt16BE(w.pos - start, start);
}

/** Decodes the (reassembled) body of a flow stats reply. */
export function decodeFlowStatsBody(body: Buffer): FlowStats[] {
  const out: FlowStats[] = [];
  let off = 0;
  while (off < body.length) {
    if (off + 56 > body.length) throw new OpenFlowDecodeError(`truncated flow stats entry at offset ${off}`);
    const len = body.readUInt16BE(off);
    if (len < 56 || off + len > body.length) throw new OpenFlowDecodeError(`bad flow stats entry length ${len} at offset ${off}`);
    const entry = body.subarray(off, off + len);
    const mlen = matchWireLength(entry, 48);
    out.push({
      tableId: entry[2],
      durationSec: entry.readUInt32BE(4),
      durationNsec: entry.readUInt32BE(8),
      priority: entry.readUInt16BE(12),
      idleTimeout: entry.readUInt16BE(14),
      hardTimeout: entry.readUInt16BE(16),
      flags: entry.readUInt16BE(18),
      cookie: entry.readBigUInt64BE(24),
      packetCount: entry.readBigUInt64BE(32),
      byteCount: entry.readBigUInt64BE(40),
      match: entry.subarray(48, 48 + mlen),
      instructions: entry.subarray(48 + mlen, len),
    });
    off += len;
  }
  return out;
}

export interface PortDesc {
  portNo: number;
  hwAddr: string;
  name: string;
  config: number;
  state: number;
  curr: number;
  advertised: number;
  supported: number;
  peer: number;
  currSpeed: number;
  maxSpeed: number;
}

const PORT_LEN = 64;

export function writePortDesc(w: ByteWriter, p: PortDesc): void {
  w.u32(p.portNo);
  w.zeros(4);
  w.bytes(macToBytes(p.hwAddr, 'ovs'));
  w.zeros(2);
  const name = Buffer.alloc(16);
  name.write(p.name.slice(0, 15), 'utf8');
  w.bytes(name);
  for (const v of [p.config, p.state, p.curr, p.advertised, p.supported, p.peer, p.currSpeed, p.maxSpeed]) w.u32(v);
}

export function decodePortDescBody(body: Buffer): PortDesc[] {
  if (body.length % PORT_LEN !== 0) throw new OpenFlowDecodeError(`port desc body of ${body.length} bytes is not a multiple of 64`);
  const out: PortDesc[] = [];
  for (let off = 0; off < body.length; off += PORT_LEN) {
    const p = body.subarray(off, off + PORT_LEN);
    const nameBytes = p.subarray(16, 32);
    const nul = nameBytes.indexOf(0);
    out.push({
      portNo: p.readUInt32BE(0),
      hwAddr: bytesToMac(p.subarray(8, 14)),
      name: nameBytes.subarray(0, nul < 0 ? 16 : nul).toString('utf8'),
      config: p.readUInt32BE(32),
      state: p.readUInt32BE(36),
      curr: p.readUInt32BE(40),
      advertised: p.readUInt32BE(44),
      supported: p.readUInt32BE(48),
      peer: p.readUInt32BE(52),
      currSpeed: p.readUInt32BE(56),
      maxSpeed: p.readUInt32BE(60),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ONF bundles for OpenFlow 1.3 (experimenter messages)

export interface BundleCtrl {
  bundleId: number;
  type: BundleCtrlType;
  /** OFPBF_ATOMIC | OFPBF_ORDERED. */
  flags: number;
}

function startOnfExperimenter(w: ByteWriter, xid: number, expType: number): number {
  const start = w.startMessage(OFPT.EXPERIMENTER, xid);
  w.u32(ONF_EXPERIMENTER);
  w.u32(expType);
  return start;
}

export function encodeBundleCtrl(xid: number, bc: BundleCtrl): Buffer {
  return oneMessage((w) => {
    const start = startOnfExperimenter(w, xid, ONF_ET_BUNDLE_CONTROL);
    const type = BUNDLE_CTRL_TYPES[bc.type];
    if (type === undefined) throw new TypeError(`unknown bundle control type '${String(bc.type)}'`);
    w.u32(bc.bundleId);
    w.u16(type);
    w.u16(bc.flags);
    w.endMessage(start);
  });
}

/** Experimenter id and type of an OFPT_EXPERIMENTER message. */
export function decodeExperimenterHeader(buf: Buffer): { xid: number; experimenter: number; expType: number } {
  const h = expect(buf, OFPT.EXPERIMENTER, 16);
  return { xid: h.xid, experimenter: buf.readUInt32BE(8), expType: buf.readUInt32BE(12) };
}

export function decodeBundleCtrl(buf: Buffer): BundleCtrl & { xid: number } {
  const e = decodeExperimenterHeader(buf);
  if (e.experimenter !== ONF_EXPERIMENTER || e.expType !== ONF_ET_BUNDLE_CONTROL || buf.length < 24) {
    throw new OpenFlowDecodeError('not an ONF bundle_ctrl message');
  }
  const type = BUNDLE_CTRL_TYPE_NAMES[buf.readUInt16BE(20)];
  if (!type) throw new OpenFlowDecodeError(`bundle_ctrl: unknown type ${buf.readUInt16BE(20)}`);
  return { xid: e.xid, bundleId: buf.readUInt32BE(16), type, flags: buf.readUInt16BE(22) };
}

/**
 * Appends a bundle_add message whose inner message is written by `writeInner` (which must write
 * one whole message with the same xid: OVS rejects a differing inner xid).
 */
export function writeBundleAdd(
  w: ByteWriter,
  xid: number,
  bundleId: number,
  flags: number,
  writeInner: (w: ByteWriter) => void,
): void {
  const start = startOnfExperimenter(w, xid, ONF_ET_BUNDLE_ADD_MESSAGE);
  w.u32(bundleId);
  w.u16(0);
  w.u16(flags);
  writeInner(w);
  w.endMessage(start);
}

/** bundle_add carrying a flow_mod: the common case, without an intermediate buffer. */
export function writeBundleAddFlowMod(w: ByteWriter, xid: number, bundleId: number, flags: number, fm: FlowMod): void {
  writeBundleAdd(w, xid, bundleId, flags, (inner) => writeFlowMod(inner, xid, fm));
}

export function encodeBundleAdd(xid: number, bundleId: number, flags: number, inner: Uint8Array): Buffer {
  return oneMessage((w) => writeBundleAdd(w, xid, bundleId, flags, (i) => i.bytes(inner)), 24 + inner.length);
}

export function decodeBundleAdd(buf: Buffer): { xid: number; bundleId: number; flags: number; message: Buffer } {
  const e = decodeExperimenterHeader(buf);
  if (e.experimenter !== ONF_EXPERIMENTER || e.expType !== ONF_ET_BUNDLE_ADD_MESSAGE || buf.length < 24 + OFP_HEADER_LEN) {
    throw new OpenFlowDecodeError('not an ONF bundle_add message');
  }
  const inner = decodeHeader(buf, 24);
  if (24 + inner.length > buf.length) throw new OpenFlowDecodeError('bundle_add: inner message overruns');
  return { xid: e.xid, bundleId: buf.readUInt32BE(16), flags: buf.readUInt16BE(22), message: buf.subarray(24, 24 + inner.length) };
}

// ---------------------------------------------------------------------------------------------
// ERROR

export function encodeError(xid: number, type: number, code: number, data: Uint8Array, experimenter?: number): Buffer {
  return oneMessage((w) => {
    const start = w.startMessage(OFPT.ERROR, xid);
    w.u16(type);
    w.u16(code);
    if (type === OFPET_EXPERIMENTER) w.u32(experimenter ?? 0);
    w.bytes(data.subarray(0, Math.min(data.length, 0xffff - 16)));
    w.endMessage(start);
  }, 16 + data.length);
}

/**
 * Decodes an OFPT_ERROR into readable names plus the type of the request that failed (OVS copies
 * the failing request into the error data; for a message inside a bundle it copies the bundle_add,
 * and the inner message type is reported as well).
 */
export function decodeError(buf: Buffer): OfErrorInfo {
  const h = expect(buf, OFPT.ERROR, 12);
  const type = buf.readUInt16BE(8);
  const code = buf.readUInt16BE(10);
  let experimenter: number | undefined;
  let dataOff = 12;
  if (type === OFPET_EXPERIMENTER && h.length >= 16) {
    experimenter = buf.readUInt32BE(12);
    dataOff = 16;
  }
  const data = buf.subarray(dataOff, h.length);
  const { name, description } = errorName(type, code, experimenter);
  const info: OfErrorInfo = {
    xid: h.xid,
    type,
    code,
    name,
    typeName: ERROR_TYPE_NAMES[type] ?? `TYPE_${type}`,
    description,
    data,
  };
  if (experimenter !== undefined) info.experimenter = experimenter;
  if (type === 0 /* HELLO_FAILED: data is ASCII text */) {
    info.description = `${description} ${data.toString('utf8').replace(/\0+$/, '')}`.trim();
  } else if (data.length >= OFP_HEADER_LEN) {
    info.failedType = data[1];
    info.failedTypeName = messageTypeName(data[1]);
    if (data[1] === OFPT.EXPERIMENTER && data.length >= 16 && data.readUInt32BE(8) === ONF_EXPERIMENTER) {
      const expType = data.readUInt32BE(12);
      if (expType === ONF_ET_BUNDLE_ADD_MESSAGE && data.length >= 24 + 2) {
        info.failedTypeName = 'BUNDLE_ADD_MESSAGE';
        info.failedInnerType = data[25];
        info.failedInnerTypeName = messageTypeName(data[25]);
      } else if (expType === ONF_ET_BUNDLE_CONTROL) {
        info.failedTypeName = 'BUNDLE_CONTROL';
      }
    }
  }
  return info;
}
