/**
 * OpenFlow 1.3 actions and the Nicira extension actions Open vSwitch understands: encode a list of
 * Action objects to the wire and back. Layouts follow openflow-1.3.h and nicira-ext.h.
 */
import { bytesToIpv4, bytesToIpv6, ipv4ToBytes, ipv6ToBytes } from '../common/ip.js';
import {
  NX_CT_F,
  NX_CT_RECIRC_NONE,
  NX_LEARN,
  NX_NAT_F,
  NX_NAT_RANGE,
  NX_VENDOR_ID,
  NXAST,
  OFPAT,
  OFPCML_NO_BUFFER,
  OFPP,
  OFPP16,
  ETH_TYPE,
} from './consts.js';
import {
  bytesToBigInt,
  codecAddress,
  decodeOxmEntry,
  decodeRef,
  encodeOxmEntry,
  fieldDefByHeader,
  resolveRef,
  type ResolvedRef,
} from './match.js';
import {
  OpenFlowCodecError,
  type Action,
  type CtAction,
  type FieldRef,
  type LearnAction,
  type LearnSpec,
  type MatchField,
  type NatSpec,
  type PortNumber,
} from './types.js';

// ---- ports --------------------------------------------------------------------------------------

const PORT_NAMES: Record<Exclude<PortNumber, number>, number> = {
  in_port: OFPP.IN_PORT,
  table: OFPP.TABLE,
  normal: OFPP.NORMAL,
  flood: OFPP.FLOOD,
  all: OFPP.ALL,
  controller: OFPP.CONTROLLER,
  local: OFPP.LOCAL,
  any: OFPP.ANY,
};
const PORT_BY_NUMBER = new Map<number, PortNumber>(
  Object.entries(PORT_NAMES).map(([k, v]) => [v, k as PortNumber]),
);

/** 32-bit OpenFlow 1.3 port number for a PortNumber. */
export function portToU32(port: PortNumber): number {
  if (typeof port === 'number') {
    if (!Number.isInteger(port) || port < 0 || port > 0xffffffff) {
      throw new OpenFlowCodecError(`invalid port number ${port}`);
    }
    return port;
  }
  const n = PORT_NAMES[port];
  if (n === undefined) throw new OpenFlowCodecError(`unknown reserved port "${String(port)}"`);
  return n;
}

/** PortNumber for a 32-bit OpenFlow 1.3 port (reserved ports become names). */
export function portFromU32(n: number): PortNumber {
  return PORT_BY_NUMBER.get(n) ?? n;
}

function portToU16(port: PortNumber): number {
  const n = portToU32(port);
  if (n >= OFPP.MAX) return n - 0xffff0000;
  if (n >= OFPP16.MAX) throw new OpenFlowCodecError(`port ${n} does not fit a 16-bit Nicira port field`);
  return n;
}

function portFromU16(n: number): PortNumber {
  return n >= OFPP16.MAX ? portFromU32(n + 0xffff0000) : n;
}

// ---- helpers ------------------------------------------------------------------------------------

const pad8 = (n: number): number => (n + 7) & ~7;

/** Experimenter (Nicira) action buffer of `len` bytes with the 10-byte header filled in. */
function nxAction(subtype: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  b.writeUInt16BE(OFPAT.EXPERIMENTER, 0);
  b.writeUInt16BE(len, 2);
  b.writeUInt32BE(NX_VENDOR_ID, 4);
  b.writeUInt16BE(subtype, 8);
  return b;
}

function ofAction(type: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(len, 2);
  return b;
}

function checkInt(what: string, v: number | undefined, max: number): number {
  const n = v ?? 0;
  if (!Number.isInteger(n) || n < 0 || n > max) {
    throw new OpenFlowCodecError(`${what} must be an integer in 0..${max}, got ${String(v)}`);
  }
  return n;
}

const ofsNbits = (r: ResolvedRef): number => (r.ofs << 6) | (r.nBits - 1);

function toBigInt(v: bigint | number, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v)) throw new OpenFlowCodecError(`${what} must be an integer, got ${v}`);
  return BigInt(v);
}

// ---- encoders -----------------------------------------------------------------------------------

function encodeOutput(port: PortNumber, maxLen: number | undefined): Buffer {
  const b = ofAction(OFPAT.OUTPUT, 16);
  const p = portToU32(port);
  b.writeUInt32BE(p, 4);
  b.writeUInt16BE(checkInt('output maxLen', maxLen ?? (p === OFPP.CONTROLLER ? OFPCML_NO_BUFFER : 0), 0xffff), 8);
  return b;
}

function encodeSetField(f: MatchField): Buffer {
  if ('mask' in f && f.mask !== undefined) {
    throw new OpenFlowCodecError(`set_field ${f.field} cannot carry a mask in OpenFlow 1.3 (use load on a bit range)`);
  }
  const entry = encodeOxmEntry(f);
  const b = ofAction(OFPAT.SET_FIELD, pad8(4 + entry.length));
  entry.copy(b, 4);
  return b;
}

/** Always NXAST_RESUBMIT_TABLE (table 255 = current), as ovs-ofctl 3.1 encodes resubmit. */
function encodeResubmit(port: PortNumber | undefined, table: number | undefined): Buffer {
  const b = nxAction(NXAST.RESUBMIT_TABLE, 16);
  b.writeUInt16BE(portToU16(port ?? 'in_port'), 10);
  b.writeUInt8(table === undefined ? 0xff : checkInt('resubmit table', table, 254), 12);
  return b;
}

function encodeLoad(dst: FieldRef, value: bigint | number): Buffer {
  const r = resolveRef(dst);
  const v = toBigInt(value, 'load value');
  if (v < 0n || v >> BigInt(r.nBits) !== 0n) {
    throw new OpenFlowCodecError(`load value ${v} does not fit ${r.nBits} bits of ${r.def.nxmName}`);
  }
  if (r.nBits <= 64) {
    const b = nxAction(NXAST.REG_LOAD, 24);
    b.writeUInt16BE(ofsNbits(r), 10);
    b.writeUInt32BE(r.header, 12);
    b.writeBigUInt64BE(v, 16);
    return b;
  }
  // Wider than 64 bits (IPv6 fields): NXAST_REG_LOAD2 carries an OXM entry, masked unless the
  // load covers the whole field (as OVS encodes it).
  const bytes = r.def.refHeader.bytes;
  if (r.ofs === 0 && r.nBits === bytes * 8) {
    const entry = Buffer.alloc(4 + bytes);
    entry.writeUInt32BE(r.header, 0);
    for (let i = 0, x = v; i < bytes; i++, x >>= 8n) entry[4 + bytes - 1 - i] = Number(x & 0xffn);
    const b = nxAction(NXAST.REG_LOAD2, pad8(10 + entry.length));
    entry.copy(b, 10);
    return b;
  }
  const val = Buffer.alloc(bytes);
  const mask = Buffer.alloc(bytes);
  const full = v << BigInt(r.ofs);
  const m = ((1n << BigInt(r.nBits)) - 1n) << BigInt(r.ofs);
  for (let i = 0; i < bytes; i++) {
    const shift = BigInt((bytes - 1 - i) * 8);
    val[i] = Number((full >> shift) & 0xffn);
    mask[i] = Number((m >> shift) & 0xffn);
  }
  const header = ((r.header & 0xfffffe00) | 0x100 | (bytes * 2)) >>> 0;
  const entry = Buffer.alloc(4 + bytes * 2);
  entry.writeUInt32BE(header, 0);
  val.copy(entry, 4);
  mask.copy(entry, 4 + bytes);
  const b = nxAction(NXAST.REG_LOAD2, pad8(10 + entry.length));
  entry.copy(b, 10);
  return b;
}

function encodeMove(src: FieldRef, dst: FieldRef): Buffer {
  const s = resolveRef(src);
  const d = resolveRef(dst);
  if (s.nBits !== d.nBits) {
    throw new OpenFlowCodecError(
      `move source (${s.nBits} bits of ${s.def.nxmName}) and destination ` +
        `(${d.nBits} bits of ${d.def.nxmName}) differ in width`,
    );
  }
  const b = nxAction(NXAST.REG_MOVE, 24);
  b.writeUInt16BE(s.nBits, 10);
  b.writeUInt16BE(s.ofs, 12);
  b.writeUInt16BE(d.ofs, 14);
  b.writeUInt32BE(s.header, 16);
  b.writeUInt32BE(d.header, 20);
  return b;
}

function encodeCt(a: CtAction): Buffer {
  const nested = a.actions ? encodeActions(a.actions) : Buffer.alloc(0);
  const b = nxAction(NXAST.CT, 24 + nested.length);
  let flags = 0;
  if (a.commit) flags |= NX_CT_F.COMMIT;
  if (a.force) {
    if (!a.commit) throw new OpenFlowCodecError('ct force requires commit');
    flags |= NX_CT_F.FORCE;
  }
  b.writeUInt16BE(flags, 10);
  if (typeof a.zone === 'object') {
    const r = resolveRef(a.zone);
    if (r.nBits !== 16) {
      throw new OpenFlowCodecError(`ct zone must be read from a 16-bit field range, got ${r.nBits} bits`);
    }
    b.writeUInt32BE(r.header, 12);
    b.writeUInt16BE(ofsNbits(r), 16);
  } else {
    b.writeUInt16BE(checkInt('ct zone', a.zone, 0xffff), 16);
  }
  b.writeUInt8(a.table === undefined ? NX_CT_RECIRC_NONE : checkInt('ct table', a.table, 254), 18);
  b.writeUInt16BE(checkInt('ct alg', a.alg, 0xffff), 22);
  nested.copy(b, 24);
  return b;
}

function encodeNat(n: NatSpec): Buffer {
  let flags = 0;
  let present = 0;
  const parts: Buffer[] = [];
  if (n.kind === 'src') flags |= NX_NAT_F.SRC;
  else if (n.kind === 'dst') flags |= NX_NAT_F.DST;
  else if (n.ipMin || n.portMin) {
    throw new OpenFlowCodecError('nat with an address or port range needs kind "src" or "dst"');
  }
  if (n.persistent) flags |= NX_NAT_F.PERSISTENT;
  if (n.selection === 'hash') flags |= NX_NAT_F.PROTO_HASH;
  if (n.selection === 'random') flags |= NX_NAT_F.PROTO_RANDOM;
  if (n.ipMin !== undefined) {
    const v6 = n.ipMin.includes(':');
    const enc = (text: string): Buffer => codecAddress(() => (v6 ? ipv6ToBytes : ipv4ToBytes)(text, 'ovs'));
    parts.push(enc(n.ipMin));
    present |= v6 ? NX_NAT_RANGE.IPV6_MIN : NX_NAT_RANGE.IPV4_MIN;
    if (n.ipMax !== undefined) {
      if (n.ipMax.includes(':') !== v6) {
        throw new OpenFlowCodecError(`nat range ${n.ipMin}-${n.ipMax} mixes address families`);
      }
      parts.push(enc(n.ipMax));
      present |= v6 ? NX_NAT_RANGE.IPV6_MAX : NX_NAT_RANGE.IPV4_MAX;
    }
  } else if (n.ipMax !== undefined) {
    throw new OpenFlowCodecError('nat ipMax needs ipMin');
  }
  if (n.portMin !== undefined) {
    const p = Buffer.alloc(2);
    p.writeUInt16BE(checkInt('nat portMin', n.portMin, 0xffff));
    parts.push(p);
    present |= NX_NAT_RANGE.PROTO_MIN;
    if (n.portMax !== undefined) {
      const q = Buffer.alloc(2);
      q.writeUInt16BE(checkInt('nat portMax', n.portMax, 0xffff));
      parts.push(q);
      present |= NX_NAT_RANGE.PROTO_MAX;
    }
  }
  const body = Buffer.concat(parts);
  const b = nxAction(NXAST.NAT, pad8(16 + body.length));
  b.writeUInt16BE(flags, 12);
  b.writeUInt16BE(present, 14);
  body.copy(b, 16);
  return b;
}

function encodeLearnSpec(s: LearnSpec): Buffer {
  const parts: Buffer[] = [];
  const hdr = Buffer.alloc(2);
  parts.push(hdr);
  const ref = (r: ResolvedRef): Buffer => {
    const x = Buffer.alloc(6);
    x.writeUInt32BE(r.header, 0);
    x.writeUInt16BE(r.ofs, 4);
    return x;
  };
  if (s.kind === 'output') {
    const src = resolveRef(s.src);
    hdr.writeUInt16BE(NX_LEARN.SRC_FIELD | NX_LEARN.DST_OUTPUT | src.nBits);
    parts.push(ref(src));
    return Buffer.concat(parts);
  }
  const dst = resolveRef(s.dst);
  const dstType = s.kind === 'match' ? NX_LEARN.DST_MATCH : NX_LEARN.DST_LOAD;
  if (s.src !== undefined) {
    const src = resolveRef(s.src);
    if (src.nBits !== dst.nBits) {
      throw new OpenFlowCodecError(`learn spec source and destination widths differ (${src.nBits} vs ${dst.nBits} bits)`);
    }
    hdr.writeUInt16BE(NX_LEARN.SRC_FIELD | dstType | dst.nBits);
    parts.push(ref(src));
  } else if (s.value !== undefined) {
    if (s.value < 0n || s.value >> BigInt(dst.nBits) !== 0n) {
      throw new OpenFlowCodecError(`learn immediate ${s.value} does not fit ${dst.nBits} bits of ${dst.def.nxmName}`);
    }
    hdr.writeUInt16BE(NX_LEARN.SRC_IMMEDIATE | dstType | dst.nBits);
    const n = 2 * Math.ceil(dst.nBits / 16);
    const imm = Buffer.alloc(n);
    let v = s.value;
    for (let i = n - 1; i >= 0; i--) {
      imm[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    parts.push(imm);
  } else {
    throw new OpenFlowCodecError(`learn ${s.kind} spec needs src or value`);
  }
  parts.push(ref(dst));
  return Buffer.concat(parts);
}

function encodeLearn(a: LearnAction): Buffer {
  if ((a.flags ?? 0) & ~3) {
    const flags = (a.flags ?? 0).toString(16);
    throw new OpenFlowCodecError(`learn flags 0x${flags}: only send_flow_rem (1) and delete_learned (2) are supported`);
  }
  const specs = Buffer.concat(a.specs.map(encodeLearnSpec));
  const b = nxAction(NXAST.LEARN, pad8(32 + specs.length));
  b.writeUInt16BE(checkInt('learn idleTimeout', a.idleTimeout, 0xffff), 10);
  b.writeUInt16BE(checkInt('learn hardTimeout', a.hardTimeout, 0xffff), 12);
  b.writeUInt16BE(checkInt('learn priority', a.priority ?? 0x8000, 0xffff), 14);
  b.writeBigUInt64BE(a.cookie ?? 0n, 16);
  b.writeUInt16BE(checkInt('learn flags', a.flags, 0xffff), 24);
  b.writeUInt8(checkInt('learn table', a.table, 254), 26);
  b.writeUInt16BE(checkInt('learn finIdleTimeout', a.finIdleTimeout, 0xffff), 28);
  b.writeUInt16BE(checkInt('learn finHardTimeout', a.finHardTimeout, 0xffff), 30);
  specs.copy(b, 32);
  return b;
}

function encodeConjunction(id: number, clause: number, nClauses: number): Buffer {
  checkInt('conjunction id', id, 0xffffffff);
  if (!Number.isInteger(nClauses) || nClauses < 2 || nClauses > 64) {
    throw new OpenFlowCodecError(`conjunction nClauses must be 2..64, got ${nClauses}`);
  }
  if (!Number.isInteger(clause) || clause < 1 || clause > nClauses) {
    throw new OpenFlowCodecError(`conjunction clause must be 1..${nClauses}, got ${clause}`);
  }
  const b = nxAction(NXAST.CONJUNCTION, 16);
  b.writeUInt8(clause - 1, 10);
  b.writeUInt8(nClauses, 11);
  b.writeUInt32BE(id, 12);
  return b;
}

/** Wire bytes of one action. */
export function encodeAction(a: Action): Buffer {
  switch (a.type) {
    case 'output':
      return encodeOutput(a.port, a.maxLen);
    case 'set_field':
      return encodeSetField(a.field);
    case 'dec_ttl':
      return ofAction(OFPAT.DEC_NW_TTL, 8);
    case 'push_vlan': {
      const b = ofAction(OFPAT.PUSH_VLAN, 8);
      b.writeUInt16BE(checkInt('push_vlan ethertype', a.ethertype ?? ETH_TYPE.VLAN, 0xffff), 4);
      return b;
    }
    case 'pop_vlan':
      return ofAction(OFPAT.POP_VLAN, 8);
    case 'group': {
      const b = ofAction(OFPAT.GROUP, 8);
      b.writeUInt32BE(checkInt('group id', a.groupId, 0xffffffff), 4);
      return b;
    }
    case 'resubmit':
      return encodeResubmit(a.port, a.table);
    case 'load':
      return encodeLoad(a.dst, a.value);
    case 'move':
      return encodeMove(a.src, a.dst);
    case 'ct':
      return encodeCt(a);
    case 'nat':
      return encodeNat(a);
    case 'learn':
      return encodeLearn(a);
    case 'conjunction':
      return encodeConjunction(a.id, a.clause, a.nClauses);
    case 'note': {
      const b = nxAction(NXAST.NOTE, Math.max(16, pad8(10 + a.bytes.length)));
      a.bytes.copy(b, 10);
      return b;
    }
    case 'unknown':
      return Buffer.from(a.bytes);
    default: {
      const t: never = a;
      throw new OpenFlowCodecError(`unknown action type ${JSON.stringify(t)}`);
    }
  }
}

/** Wire bytes of an action list (each action is a multiple of 8 bytes). */
export function encodeActions(actions: Action[]): Buffer {
  return Buffer.concat(actions.map(encodeAction));
}

// ---- decoders -----------------------------------------------------------------------------------

function readRef(header: number, ofsNbitsV: number): FieldRef {
  return decodeRef(header, ofsNbitsV >> 6, (ofsNbitsV & 0x3f) + 1);
}

function decodeNat(b: Buffer): Action {
  const flags = b.readUInt16BE(12);
  const present = b.readUInt16BE(14);
  const n: { type: 'nat' } & NatSpec = { type: 'nat' };
  if (flags & NX_NAT_F.SRC) n.kind = 'src';
  else if (flags & NX_NAT_F.DST) n.kind = 'dst';
  let p = 16;
  const take = (n: number): Buffer => {
    const x = b.subarray(p, p + n);
    p += n;
    return x;
  };
  if (present & NX_NAT_RANGE.IPV4_MIN) n.ipMin = bytesToIpv4(take(4));
  if (present & NX_NAT_RANGE.IPV4_MAX) n.ipMax = bytesToIpv4(take(4));
  if (present & NX_NAT_RANGE.IPV6_MIN) n.ipMin = bytesToIpv6(take(16));
  if (present & NX_NAT_RANGE.IPV6_MAX) n.ipMax = bytesToIpv6(take(16));
  if (present & NX_NAT_RANGE.PROTO_MIN) n.portMin = take(2).readUInt16BE(0);
  if (present & NX_NAT_RANGE.PROTO_MAX) n.portMax = take(2).readUInt16BE(0);
  if (flags & NX_NAT_F.PERSISTENT) n.persistent = true;
  if (flags & NX_NAT_F.PROTO_HASH) n.selection = 'hash';
  if (flags & NX_NAT_F.PROTO_RANDOM) n.selection = 'random';
  return n;
}

function decodeLearn(b: Buffer): LearnAction {
  const a: LearnAction = { type: 'learn', table: b.readUInt8(26), specs: [] };
  const idle = b.readUInt16BE(10);
  const hard = b.readUInt16BE(12);
  const cookie = b.readBigUInt64BE(16);
  const flags = b.readUInt16BE(24);
  const finIdle = b.readUInt16BE(28);
  const finHard = b.readUInt16BE(30);
  a.priority = b.readUInt16BE(14);
  if (idle) a.idleTimeout = idle;
  if (hard) a.hardTimeout = hard;
  if (finIdle) a.finIdleTimeout = finIdle;
  if (finHard) a.finHardTimeout = finHard;
  if (cookie) a.cookie = cookie;
  if (flags) a.flags = flags;
  let p = 32;
  const ref = (nBits: number): FieldRef => {
    const r = decodeRef(b.readUInt32BE(p), b.readUInt16BE(p + 4), nBits);
    p += 6;
    return r;
  };
  while (p + 2 <= b.length) {
    const hdr = b.readUInt16BE(p);
    if (hdr === 0) break;
    p += 2;
    const nBits = hdr & NX_LEARN.N_BITS_MASK;
    const dstType = hdr & NX_LEARN.DST_MASK;
    const immediate = (hdr & NX_LEARN.SRC_IMMEDIATE) !== 0;
    if (dstType === NX_LEARN.DST_OUTPUT) {
      a.specs.push({ kind: 'output', src: ref(nBits) });
      continue;
    }
    const kind = dstType === NX_LEARN.DST_MATCH ? 'match' : 'load';
    if (immediate) {
      const n = 2 * Math.ceil(nBits / 16);
      const value = bytesToBigInt(b.subarray(p, p + n));
      p += n;
      a.specs.push({ kind, dst: ref(nBits), value });
    } else {
      const src = ref(nBits);
      a.specs.push({ kind, dst: ref(nBits), src });
    }
  }
  return a;
}

/** NXAST_REG_LOAD2 (a possibly masked OXM entry) as `load` on the bit range its mask covers. */
function decodeRegLoad2(b: Buffer): Action {
  const unknown: Action = { type: 'unknown', bytes: Buffer.from(b) };
  const header = b.readUInt32BE(10);
  const hasMask = (header & 0x100) !== 0;
  const bytes = hasMask ? (header & 0xff) / 2 : header & 0xff;
  if (!fieldDefByHeader(header) || 14 + (hasMask ? 2 * bytes : bytes) > b.length) return unknown;
  const val = bytesToBigInt(b.subarray(14, 14 + bytes));
  const m = hasMask ? bytesToBigInt(b.subarray(14 + bytes, 14 + 2 * bytes)) : (1n << BigInt(bytes * 8)) - 1n;
  if (m === 0n) return unknown;
  let ofs = 0;
  while (((m >> BigInt(ofs)) & 1n) === 0n) ofs++;
  const run = m >> BigInt(ofs);
  const nBits = run.toString(2).length;
  if (run !== (1n << BigInt(nBits)) - 1n) return unknown; // non-contiguous mask
  return { type: 'load', dst: decodeRef(header, ofs, nBits), value: (val & m) >> BigInt(ofs) };
}

function decodeNx(b: Buffer, subtype: number): Action {
  switch (subtype) {
    case NXAST.RESUBMIT:
      return { type: 'resubmit', port: portFromU16(b.readUInt16BE(10)) };
    case NXAST.RESUBMIT_TABLE: {
      const a: Action = { type: 'resubmit' };
      const port = b.readUInt16BE(10);
      const table = b.readUInt8(12);
      if (port !== OFPP16.IN_PORT) a.port = portFromU16(port);
      if (table !== 0xff) a.table = table;
      return a;
    }
    case NXAST.REG_LOAD: {
      const dst = readRef(b.readUInt32BE(12), b.readUInt16BE(10));
      return { type: 'load', dst, value: b.readBigUInt64BE(16) };
    }
    case NXAST.REG_LOAD2:
      return decodeRegLoad2(b);
    case NXAST.REG_MOVE: {
      const nBits = b.readUInt16BE(10);
      const src = decodeRef(b.readUInt32BE(16), b.readUInt16BE(12), nBits);
      const dst = decodeRef(b.readUInt32BE(20), b.readUInt16BE(14), nBits);
      return { type: 'move', src, dst };
    }
    case NXAST.DEC_TTL:
      return { type: 'dec_ttl' };
    case NXAST.NOTE:
      return { type: 'note', bytes: Buffer.from(b.subarray(10)) };
    case NXAST.CONJUNCTION:
      return { type: 'conjunction', clause: b.readUInt8(10) + 1, nClauses: b.readUInt8(11), id: b.readUInt32BE(12) };
    case NXAST.CT: {
      const a: CtAction = { type: 'ct' };
      const flags = b.readUInt16BE(10);
      if (flags & NX_CT_F.COMMIT) a.commit = true;
      if (flags & NX_CT_F.FORCE) a.force = true;
      const zoneSrc = b.readUInt32BE(12);
      const zone = b.readUInt16BE(16);
      if (zoneSrc) a.zone = readRef(zoneSrc, zone);
      else if (zone) a.zone = zone;
      const table = b.readUInt8(18);
      if (table !== NX_CT_RECIRC_NONE) a.table = table;
      const alg = b.readUInt16BE(22);
      if (alg) a.alg = alg;
      if (b.length > 24) a.actions = decodeActions(b.subarray(24));
      return a;
    }
    case NXAST.NAT:
      return decodeNat(b);
    case NXAST.LEARN:
      return decodeLearn(b);
    default:
      return { type: 'unknown', bytes: Buffer.from(b) };
  }
}

function decodeOne(b: Buffer): Action {
  const type = b.readUInt16BE(0);
  switch (type) {
    case OFPAT.OUTPUT: {
      const port = portFromU32(b.readUInt32BE(4));
      const maxLen = b.readUInt16BE(8);
      return port === 'controller' || maxLen !== 0 ? { type: 'output', port, maxLen } : { type: 'output', port };
    }
    case OFPAT.SET_FIELD:
      return { type: 'set_field', field: decodeOxmEntry(b, 4).field };
    case OFPAT.DEC_NW_TTL:
      return { type: 'dec_ttl' };
    case OFPAT.PUSH_VLAN:
      return { type: 'push_vlan', ethertype: b.readUInt16BE(4) };
    case OFPAT.POP_VLAN:
      return { type: 'pop_vlan' };
    case OFPAT.GROUP:
      return { type: 'group', groupId: b.readUInt32BE(4) };
    case OFPAT.EXPERIMENTER:
      if (b.length >= 10 && b.readUInt32BE(4) === NX_VENDOR_ID) return decodeNx(b, b.readUInt16BE(8));
      return { type: 'unknown', bytes: Buffer.from(b) };
    default:
      return { type: 'unknown', bytes: Buffer.from(b) };
  }
}

/** Decodes an action list occupying all of `buf`. Actions it does not model come back as `unknown`. */
export function decodeActions(buf: Buffer): Action[] {
  const out: Action[] = [];
  let p = 0;
  while (p < buf.length) {
    if (p + 4 > buf.length) throw new OpenFlowCodecError(`truncated action header at offset ${p}`);
    const len = buf.readUInt16BE(p + 2);
    if (len < 8 || len % 8 !== 0 || p + len > buf.length) {
      throw new OpenFlowCodecError(`action at offset ${p} (type ${buf.readUInt16BE(p)}) has invalid length ${len}`);
    }
    out.push(decodeEntry(buf.subarray(p, p + len), p));
    p += len;
  }
  return out;
}

/** One action; an entry too short for the fields its type has is a codec error, not a RangeError. */
function decodeEntry(b: Buffer, offset: number): Action {
  try {
    return decodeOne(b);
  } catch (err) {
    if (err instanceof RangeError && (err as NodeJS.ErrnoException).code?.startsWith('ERR_')) {
      throw new OpenFlowCodecError(`action at offset ${offset} (type ${b.readUInt16BE(0)}) is too short for its type: ${b.length} bytes`);
    }
    throw err;
  }
}
