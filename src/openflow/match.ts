/**
 * OXM / Nicira NXM match fields: the field table, single TLV entries (also used by set_field and
 * the Nicira field references of move/load/learn/ct), and the whole OpenFlow 1.3 `ofp_match`.
 */
import { AddressError, bytesToIpv4, bytesToIpv6, bytesToMac, prefixMaskBytes, writeIpv4, writeIpv6, writeMac } from '../common/ip.js';
import { CT_STATE_BITS, ETH_TYPE, IP_PROTO, OFPMT_OXM, OXM_CLASS } from './consts.js';
import {
  OpenFlowCodecError,
  type FieldName,
  type FieldRef,
  type Match,
  type MatchField,
} from './types.js';

/** How a field's value is written as text and held in MatchField. */
export type FieldKind = 'uint' | 'mac' | 'ipv4' | 'ipv6';

interface Header {
  cls: number;
  field: number;
  bytes: number;
}

/** Static description of one match field. */
export interface FieldDef {
  /** `eth_src`, or `reg3` for registers. */
  key: string;
  field: FieldName;
  index?: number;
  kind: FieldKind;
  /** Header used in matches and set_field: OXM where OpenFlow 1.3 has one, else NXM. */
  header: Header;
  /** Header used in Nicira field references (move, load, learn, ct zone): NXM where one exists. */
  refHeader: Header;
  /** Width of the field as a reference (refHeader), in bits. */
  nBits: number;
  maskable: boolean;
  /** Name Open vSwitch prints for a field reference, e.g. NXM_NX_REG0. */
  nxmName: string;
  /** Name Open vSwitch prints in set_field and learn, e.g. tun_dst. */
  mfName: string;
}

const OXM = OXM_CLASS.OPENFLOW_BASIC;
const NX0 = OXM_CLASS.NXM_0;
const NX1 = OXM_CLASS.NXM_1;

const h = (cls: number, field: number, bytes: number): Header => ({ cls, field, bytes });

function def(
  field: FieldName,
  kind: FieldKind,
  header: Header,
  ref: Header | null,
  maskable: boolean,
  nxmName: string,
  mfName: string,
  nBits?: number,
): FieldDef {
  const refHeader = ref ?? header;
  return { key: field, field, kind, header, refHeader, nBits: nBits ?? refHeader.bytes * 8, maskable, nxmName, mfName };
}

const FIELD_LIST: FieldDef[] = [
  def('in_port', 'uint', h(OXM, 0, 4), h(NX0, 0, 2), false, 'NXM_OF_IN_PORT', 'in_port'),
  def('metadata', 'uint', h(OXM, 2, 8), null, true, 'OXM_OF_METADATA', 'metadata'),
  def('eth_dst', 'mac', h(OXM, 3, 6), h(NX0, 1, 6), true, 'NXM_OF_ETH_DST', 'eth_dst'),
  def('eth_src', 'mac', h(OXM, 4, 6), h(NX0, 2, 6), true, 'NXM_OF_ETH_SRC', 'eth_src'),
  def('eth_type', 'uint', h(OXM, 5, 2), h(NX0, 3, 2), false, 'NXM_OF_ETH_TYPE', 'eth_type'),
  def('vlan_vid', 'uint', h(OXM, 6, 2), null, true, 'OXM_OF_VLAN_VID', 'vlan_vid', 13),
  def('ip_dscp', 'uint', h(OXM, 8, 1), null, false, 'OXM_OF_IP_DSCP', 'ip_dscp', 6),
  def('ip_proto', 'uint', h(OXM, 10, 1), h(NX0, 6, 1), false, 'NXM_OF_IP_PROTO', 'nw_proto'),
  def('ipv4_src', 'ipv4', h(OXM, 11, 4), h(NX0, 7, 4), true, 'NXM_OF_IP_SRC', 'ip_src'),
  def('ipv4_dst', 'ipv4', h(OXM, 12, 4), h(NX0, 8, 4), true, 'NXM_OF_IP_DST', 'ip_dst'),
  def('tcp_src', 'uint', h(OXM, 13, 2), h(NX0, 9, 2), true, 'NXM_OF_TCP_SRC', 'tcp_src'),
  def('tcp_dst', 'uint', h(OXM, 14, 2), h(NX0, 10, 2), true, 'NXM_OF_TCP_DST', 'tcp_dst'),
  def('udp_src', 'uint', h(OXM, 15, 2), h(NX0, 11, 2), true, 'NXM_OF_UDP_SRC', 'udp_src'),
  def('udp_dst', 'uint', h(OXM, 16, 2), h(NX0, 12, 2), true, 'NXM_OF_UDP_DST', 'udp_dst'),
  def('icmpv4_type', 'uint', h(OXM, 19, 1), h(NX0, 13, 1), false, 'NXM_OF_ICMP_TYPE', 'icmp_type'),
  def('icmpv4_code', 'uint', h(OXM, 20, 1), h(NX0, 14, 1), false, 'NXM_OF_ICMP_CODE', 'icmp_code'),
  def('arp_op', 'uint', h(OXM, 21, 2), h(NX0, 15, 2), false, 'NXM_OF_ARP_OP', 'arp_op'),
  def('arp_spa', 'ipv4', h(OXM, 22, 4), h(NX0, 16, 4), true, 'NXM_OF_ARP_SPA', 'arp_spa'),
  def('arp_tpa', 'ipv4', h(OXM, 23, 4), h(NX0, 17, 4), true, 'NXM_OF_ARP_TPA', 'arp_tpa'),
  def('arp_sha', 'mac', h(OXM, 24, 6), h(NX1, 17, 6), true, 'NXM_NX_ARP_SHA', 'arp_sha'),
  def('arp_tha', 'mac', h(OXM, 25, 6), h(NX1, 18, 6), true, 'NXM_NX_ARP_THA', 'arp_tha'),
  def('ipv6_src', 'ipv6', h(OXM, 26, 16), h(NX1, 19, 16), true, 'NXM_NX_IPV6_SRC', 'ipv6_src'),
  def('ipv6_dst', 'ipv6', h(OXM, 27, 16), h(NX1, 20, 16), true, 'NXM_NX_IPV6_DST', 'ipv6_dst'),
  def('icmpv6_type', 'uint', h(OXM, 29, 1), h(NX1, 21, 1), false, 'NXM_NX_ICMPV6_TYPE', 'icmpv6_type'),
  def('icmpv6_code', 'uint', h(OXM, 30, 1), h(NX1, 22, 1), false, 'NXM_NX_ICMPV6_CODE', 'icmpv6_code'),
  def('ipv6_nd_target', 'ipv6', h(OXM, 31, 16), h(NX1, 23, 16), true, 'NXM_NX_ND_TARGET', 'nd_target'),
  def('ipv6_nd_sll', 'mac', h(OXM, 32, 6), h(NX1, 24, 6), true, 'NXM_NX_ND_SLL', 'nd_sll'),
  def('ipv6_nd_tll', 'mac', h(OXM, 33, 6), h(NX1, 25, 6), true, 'NXM_NX_ND_TLL', 'nd_tll'),
  def('tunnel_id', 'uint', h(OXM, 38, 8), h(NX1, 16, 8), true, 'NXM_NX_TUN_ID', 'tun_id'),
  def('tun_ipv4_src', 'ipv4', h(NX1, 31, 4), null, true, 'NXM_NX_TUN_IPV4_SRC', 'tun_src'),
  def('tun_ipv4_dst', 'ipv4', h(NX1, 32, 4), null, true, 'NXM_NX_TUN_IPV4_DST', 'tun_dst'),
  def('ct_state', 'uint', h(NX1, 105, 4), null, true, 'NXM_NX_CT_STATE', 'ct_state'),
  def('ct_zone', 'uint', h(NX1, 106, 2), null, false, 'NXM_NX_CT_ZONE', 'ct_zone'),
  def('ct_mark', 'uint', h(NX1, 107, 4), null, true, 'NXM_NX_CT_MARK', 'ct_mark'),
  def('ct_label', 'uint', h(NX1, 108, 16), null, true, 'NXM_NX_CT_LABEL', 'ct_label'),
  def('tcp_flags', 'uint', h(NX1, 34, 2), null, true, 'NXM_NX_TCP_FLAGS', 'tcp_flags'),
  def('conj_id', 'uint', h(NX1, 37, 4), null, false, 'NXM_NX_CONJ_ID', 'conj_id'),
];
for (let i = 0; i < 16; i++) {
  FIELD_LIST.push({
    ...def('reg', 'uint', h(NX1, i, 4), null, true, `NXM_NX_REG${i}`, `reg${i}`),
    key: `reg${i}`,
    index: i,
  });
}

const BY_KEY = new Map<string, FieldDef>(FIELD_LIST.map((d) => [d.key, d]));
const BY_HEADER = new Map<number, FieldDef>();
for (const d of FIELD_LIST) {
  BY_HEADER.set(d.header.cls * 128 + d.header.field, d);
  BY_HEADER.set(d.refHeader.cls * 128 + d.refHeader.field, d);
}

/** All supported fields (one entry per register). */
export const FIELDS: readonly FieldDef[] = FIELD_LIST;

/** The definition of a field, by name (and register index). Throws on unknown fields. */
export function fieldDef(field: FieldName | string, index?: number): FieldDef {
  const key = field === 'reg' ? `reg${index ?? ''}` : field;
  const d = BY_KEY.get(key);
  if (!d) {
    throw new OpenFlowCodecError(
      field === 'reg' ? `register index must be 0..15, got ${String(index)}` : `unknown match field "${field}"`,
    );
  }
  return d;
}

/** Field definition for an OXM/NXM header (class + field number), or undefined. */
export function fieldDefByHeader(header: number): FieldDef | undefined {
  return BY_HEADER.get((header >>> 16) * 128 + ((header >>> 9) & 0x7f));
}

/** 32-bit OXM header: class(16) field(7) hasmask(1) length(8). */
export function oxmHeader(hd: Header, hasMask: boolean): number {
  return ((hd.cls << 16) | (hd.field << 9) | (hasMask ? 0x100 : 0) | (hasMask ? hd.bytes * 2 : hd.bytes)) >>> 0;
}

/** Header of a field without mask, as used in Nicira field references. */
export function refHeader(def: FieldDef): number {
  return oxmHeader(def.refHeader, false);
}

// ---- values ------------------------------------------------------------------------------------

type Value = number | bigint | string;

/**
 * Runs an address conversion; a bad address becomes the OpenFlowCodecError every encoder throws
 * (same message, the AddressError as its cause).
 */
export function codecAddress<T>(convert: () => T): T {
  try {
    return convert();
  } catch (err) {
    if (err instanceof AddressError) throw new OpenFlowCodecError(err.message, { cause: err });
    throw err;
  }
}

/** Writes a field value (or mask) of `bytes` bytes into out[off..). Throws on malformed input. */
function writeValue(d: FieldDef, v: Value, bytes: number, what: string, out: Buffer, off: number): void {
  switch (d.kind) {
    case 'mac':
      codecAddress(() => writeMac(String(v), out, off, 'ovs'));
      return;
    case 'ipv4':
      codecAddress(() => writeIpv4(String(v), out, off, 'ovs'));
      return;
    case 'ipv6':
      codecAddress(() => writeIpv6(String(v), out, off, 'ovs'));
      return;
    case 'uint': {
      if (typeof v === 'number' && bytes <= 4 && Number.isInteger(v) && v >= 0 && v < 2 ** (bytes * 8)) {
        out.writeUIntBE(v, off, bytes);
        return;
      }
      const n = typeof v === 'bigint' ? v : typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : null;
      const max = (1n << BigInt(bytes * 8)) - 1n;
      if (n === null || n < 0n || n > max) {
        throw new OpenFlowCodecError(`${d.key} ${what} ${String(v)} is not an integer in 0..${max}`);
      }
      let x = n;
      for (let i = bytes - 1; i >= 0; i--) {
        out[off + i] = Number(x & 0xffn);
        x >>= 8n;
      }
    }
  }
}

function valueToBytes(d: FieldDef, v: Value, bytes: number, what: string): Buffer {
  const out = Buffer.alloc(bytes);
  writeValue(d, v, bytes, what, out, 0);
  return out;
}

/** A field value held in `buf`, in the representation MatchField uses for this field. */
export function fieldValueFromBytes(d: FieldDef, buf: Buffer): Value {
  switch (d.kind) {
    case 'mac':
      return bytesToMac(buf);
    case 'ipv4':
      return bytesToIpv4(buf);
    case 'ipv6':
      return bytesToIpv6(buf);
    case 'uint':
      return buf.length > 4 ? bytesToBigInt(buf) : buf.length === 0 ? 0 : buf.readUIntBE(0, buf.length);
  }
}

export function bytesToBigInt(buf: Buffer): bigint {
  let n = 0n;
  for (const b of buf) n = (n << 8n) | BigInt(b);
  return n;
}

/** Bytes of a field's value (and mask), sized for the given header. */
export function fieldBytes(f: MatchField, bytes?: number): { def: FieldDef; value: Buffer; mask?: Buffer } {
  if (f.field === 'raw') throw new OpenFlowCodecError('raw fields have no definition');
  const d = fieldDef(f.field, f.field === 'reg' ? f.index : undefined);
  const size = bytes ?? d.header.bytes;
  const value = valueToBytes(d, f.value, size, 'value');
  const maskV = 'mask' in f ? f.mask : undefined;
  if (maskV === undefined) return { def: d, value };
  if (!d.maskable) throw new OpenFlowCodecError(`${d.key} cannot be masked`);
  const mask = valueToBytes(d, maskV, size, 'mask');
  return { def: d, value, mask };
}

function makeField(d: FieldDef, value: Buffer, mask?: Buffer): MatchField {
  const v = fieldValueFromBytes(d, value);
  const m = mask && !mask.every((b) => b === 0xff) ? fieldValueFromBytes(d, mask) : undefined;
  const out: Record<string, unknown> = { field: d.field };
  if (d.index !== undefined) out.index = d.index;
  out.value = v;
  if (m !== undefined) out.mask = m;
  return out as MatchField;
}

// ---- single entries ----------------------------------------------------------------------------

/**
 * One OXM/NXM TLV entry (header, value, optional mask) for a field, as in a match or set_field.
 * Value bits outside the mask are cleared and an all-ones mask is dropped, as OVS does.
 */
export function encodeOxmEntry(f: MatchField): Buffer {
  if (f.field === 'raw') {
    // Without a separate mask the header's hasmask bit is kept (experimenter entries carry
    // experimenter id, value and mask all in `value`).
    const len = f.value.length + (f.mask?.length ?? 0);
    const header = ((f.header & 0xffffff00) | (f.mask !== undefined ? 0x100 : 0) | len) >>> 0;
    const out = Buffer.alloc(4 + len);
    out.writeUInt32BE(header, 0);
    f.value.copy(out, 4);
    f.mask?.copy(out, 4 + f.value.length);
    return out;
  }
  const { def: d, value, mask } = fieldBytes(f);
  const useMask = mask !== undefined && !mask.every((b) => b === 0xff);
  const out = Buffer.alloc(4 + (useMask ? d.header.bytes * 2 : d.header.bytes));
  out.writeUInt32BE(oxmHeader(d.header, useMask), 0);
  if (useMask && mask) {
    for (let i = 0; i < value.length; i++) out[4 + i] = value[i] & mask[i];
    mask.copy(out, 4 + value.length);
  } else {
    value.copy(out, 4);
  }
  return out;
}

/** Decodes one OXM/NXM TLV entry at `offset`. Unknown fields come back as `{ field: 'raw' }`. */
export function decodeOxmEntry(buf: Buffer, offset: number): { field: MatchField; length: number } {
  if (offset + 4 > buf.length) throw new OpenFlowCodecError(`truncated OXM header at offset ${offset}`);
  const header = buf.readUInt32BE(offset);
  const len = header & 0xff;
  const hasMask = (header & 0x100) !== 0;
  if (offset + 4 + len > buf.length) {
    throw new OpenFlowCodecError(`OXM entry 0x${header.toString(16)} (length ${len}) runs past the end of its buffer`);
  }
  const body = buf.subarray(offset + 4, offset + 4 + len);
  const d = fieldDefByHeader(header);
  const half = hasMask ? len / 2 : len;
  const sizeOk =
    d !== undefined && (half === d.header.bytes || half === d.refHeader.bytes) && (!hasMask || len % 2 === 0);
  if (!d || !sizeOk || header >>> 16 === OXM_CLASS.EXPERIMENTER) {
    const split = hasMask && len % 2 === 0 && header >>> 16 !== OXM_CLASS.EXPERIMENTER;
    const raw: MatchField = split
      ? { field: 'raw', header, value: Buffer.from(body.subarray(0, half)), mask: Buffer.from(body.subarray(half)) }
      : { field: 'raw', header, value: Buffer.from(body) };
    return { field: raw, length: 4 + len };
  }
  const value = body.subarray(0, half);
  const mask = hasMask ? body.subarray(half) : undefined;
  const field = makeField(d, value, mask);
  // NXM_OF_IN_PORT is 16 bits: map its reserved ports (0xff00..) to the OpenFlow 1.3 numbers.
  if (field.field === 'in_port' && half === 2 && field.value >= 0xff00) field.value += 0xffff0000;
  return { field, length: 4 + len };
}

// ---- field references (Nicira) ----------------------------------------------------------------

/** Resolved field reference: the header to put on the wire and the bit range. */
export interface ResolvedRef {
  def: FieldDef;
  header: number;
  ofs: number;
  nBits: number;
}

/** Checks a FieldRef and fills in its defaults (whole field). */
export function resolveRef(ref: FieldRef): ResolvedRef {
  const d = fieldDef(ref.field, ref.index);
  const ofs = ref.ofs ?? 0;
  const nBits = ref.nBits ?? d.nBits - ofs;
  if (!Number.isInteger(ofs) || !Number.isInteger(nBits) || ofs < 0 || nBits < 1 || ofs + nBits > d.nBits) {
    throw new OpenFlowCodecError(`bit range [${ofs}, +${nBits}) does not fit ${d.nxmName} (${d.nBits} bits)`);
  }
  return { def: d, header: refHeader(d), ofs, nBits };
}

/** FieldRef for a header read off the wire; ofs/nBits omitted when they cover the whole field. */
export function decodeRef(header: number, ofs: number, nBits: number): FieldRef {
  const d = fieldDefByHeader(header);
  if (!d) {
    const hex = header.toString(16).padStart(8, '0');
    throw new OpenFlowCodecError(`unsupported field 0x${hex} in field reference`);
  }
  const width = (header & 0xff) * 8;
  const ref: FieldRef = { field: d.field };
  if (d.index !== undefined) ref.index = d.index;
  const whole = ofs === 0 && (nBits === d.nBits || nBits === width);
  if (!whole) {
    ref.ofs = ofs;
    ref.nBits = nBits;
  }
  return ref;
}

// ---- whole match --------------------------------------------------------------------------------

const RANK: Partial<Record<FieldName, number>> = {
  ip_dscp: 1,
  ip_proto: 1,
  ipv4_src: 1,
  ipv4_dst: 1,
  ipv6_src: 1,
  ipv6_dst: 1,
  arp_op: 1,
  arp_spa: 1,
  arp_tpa: 1,
  arp_sha: 1,
  arp_tha: 1,
  tcp_src: 2,
  tcp_dst: 2,
  tcp_flags: 2,
  udp_src: 2,
  udp_dst: 2,
  icmpv4_type: 2,
  icmpv4_code: 2,
  icmpv6_type: 2,
  icmpv6_code: 2,
  ipv6_nd_target: 3,
  ipv6_nd_sll: 3,
  ipv6_nd_tll: 3,
};

/** Thrown when a match lacks a field another field depends on (OVS answers OFPBMC_BAD_PREREQ). */
export class MatchPrerequisiteError extends OpenFlowCodecError {
  override name = 'MatchPrerequisiteError';
}

function find(m: Match, field: FieldName): MatchField | undefined {
  return m.find((f) => f.field === field);
}

/**
 * Checks OpenFlow prerequisites (e.g. ipv4_dst needs eth_type=0x0800, tcp_dst needs ip_proto=6)
 * and duplicates. Throws MatchPrerequisiteError naming the field and what it needs.
 */
export function validateMatch(m: Match): void {
  const seen = new Set<string>();
  for (const f of m) {
    const key = f.field === 'reg' ? `reg${f.index}` : f.field === 'raw' ? `raw${f.header >>> 9}` : f.field;
    if (seen.has(key)) throw new MatchPrerequisiteError(`match has ${key} more than once`);
    seen.add(key);
  }
  const ethType = find(m, 'eth_type')?.value as number | undefined;
  const ipProto = find(m, 'ip_proto')?.value as number | undefined;
  const need = (f: MatchField, ok: boolean, what: string): void => {
    if (!ok) throw new MatchPrerequisiteError(`match field ${f.field} requires ${what} in the match`);
  };
  const isIp = ethType === ETH_TYPE.IPV4 || ethType === ETH_TYPE.IPV6;
  for (const f of m) {
    switch (f.field) {
      case 'ip_dscp':
      case 'ip_proto':
        need(f, isIp, 'eth_type=0x0800 or eth_type=0x86dd');
        break;
      case 'ipv4_src':
      case 'ipv4_dst':
        need(f, ethType === ETH_TYPE.IPV4, 'eth_type=0x0800');
        break;
      case 'ipv6_src':
      case 'ipv6_dst':
        need(f, ethType === ETH_TYPE.IPV6, 'eth_type=0x86dd');
        break;
      case 'arp_op':
      case 'arp_spa':
      case 'arp_tpa':
      case 'arp_sha':
      case 'arp_tha':
        need(f, ethType === ETH_TYPE.ARP || ethType === ETH_TYPE.RARP, 'eth_type=0x0806');
        break;
      case 'tcp_src':
      case 'tcp_dst':
      case 'tcp_flags':
        need(f, isIp && ipProto === IP_PROTO.TCP, 'eth_type=0x0800 or 0x86dd and ip_proto=6');
        break;
      case 'udp_src':
      case 'udp_dst':
        need(f, isIp && ipProto === IP_PROTO.UDP, 'eth_type=0x0800 or 0x86dd and ip_proto=17');
        break;
      case 'icmpv4_type':
      case 'icmpv4_code':
        need(f, ethType === ETH_TYPE.IPV4 && ipProto === IP_PROTO.ICMP, 'eth_type=0x0800 and ip_proto=1');
        break;
      case 'icmpv6_type':
      case 'icmpv6_code':
        need(f, ethType === ETH_TYPE.IPV6 && ipProto === IP_PROTO.ICMPV6, 'eth_type=0x86dd and ip_proto=58');
        break;
      case 'ipv6_nd_target':
      case 'ipv6_nd_sll':
      case 'ipv6_nd_tll': {
        const t = find(m, 'icmpv6_type')?.value;
        const ok =
          f.field === 'ipv6_nd_target' ? t === 135 || t === 136 : f.field === 'ipv6_nd_sll' ? t === 135 : t === 136;
        const what = f.field === 'ipv6_nd_target' ? '135 or 136' : f.field === 'ipv6_nd_sll' ? '135' : '136';
        need(f, ok && ethType === ETH_TYPE.IPV6 && ipProto === IP_PROTO.ICMPV6, `icmpv6_type=${what} (ICMPv6 ND)`);
        break;
      }
      default:
        break;
    }
  }
}

const rankOf = (f: MatchField): number => (f.field === 'raw' ? 4 : (RANK[f.field] ?? 0));

/** Match entries in an order where every prerequisite comes before the fields that need it. */
function ordered(m: Match): Match {
  let sorted = true;
  for (let i = 1; i < m.length && sorted; i++) sorted = rankOf(m[i - 1]) <= rankOf(m[i]);
  if (sorted) return m;
  return m
    .map((f, i) => ({ f, i, r: rankOf(f) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.f);
}

/** A complete OpenFlow 1.3 `ofp_match` (type OXM, length, TLVs, zero padding to 8 bytes). */
export function encodeMatch(m: Match): Buffer {
  validateMatch(m);
  const list = ordered(m);
  // Pass 1: sizes (and masks, which are rare); pass 2: write values straight into the output.
  const defs: (FieldDef | undefined)[] = [];
  const masks: (Buffer | undefined)[] = [];
  const raws: (Buffer | undefined)[] = [];
  let len = 4;
  for (const f of list) {
    if (f.field === 'raw') {
      const raw = encodeOxmEntry(f);
      raws.push(raw);
      defs.push(undefined);
      masks.push(undefined);
      len += raw.length;
      continue;
    }
    const d = fieldDef(f.field, f.field === 'reg' ? f.index : undefined);
    const maskV = 'mask' in f ? f.mask : undefined;
    let mask: Buffer | undefined;
    if (maskV !== undefined) {
      if (!d.maskable) throw new OpenFlowCodecError(`${d.key} cannot be masked`);
      mask = valueToBytes(d, maskV, d.header.bytes, 'mask');
      if (mask.every((b) => b === 0xff)) mask = undefined;
    }
    defs.push(d);
    masks.push(mask);
    raws.push(undefined);
    len += 4 + (mask ? 2 : 1) * d.header.bytes;
  }
  const out = Buffer.alloc((len + 7) & ~7);
  out.writeUInt16BE(OFPMT_OXM, 0);
  out.writeUInt16BE(len, 2);
  let p = 4;
  for (let i = 0; i < list.length; i++) {
    const d = defs[i];
    const raw = raws[i];
    if (!d) {
      p += (raw as Buffer).copy(out, p);
      continue;
    }
    const f = list[i] as Exclude<MatchField, { field: 'raw' }>;
    const mask = masks[i];
    const size = d.header.bytes;
    out.writeUInt32BE(oxmHeader(d.header, mask !== undefined), p);
    writeValue(d, f.value, size, 'value', out, p + 4);
    if (mask) {
      for (let j = 0; j < size; j++) out[p + 4 + j] &= mask[j];
      mask.copy(out, p + 4 + size);
    }
    p += 4 + (mask ? 2 : 1) * size;
  }
  return out;
}

/** Decodes an `ofp_match` at `offset`; `length` includes the padding. */
export function decodeMatch(buf: Buffer, offset = 0): { match: Match; length: number } {
  if (offset + 4 > buf.length) throw new OpenFlowCodecError(`truncated ofp_match at offset ${offset}`);
  const type = buf.readUInt16BE(offset);
  const len = buf.readUInt16BE(offset + 2);
  if (type !== OFPMT_OXM) throw new OpenFlowCodecError(`unsupported ofp_match type ${type} (expected OXM = 1)`);
  if (len < 4 || offset + len > buf.length) {
    throw new OpenFlowCodecError(`ofp_match length ${len} invalid for ${buf.length - offset} bytes`);
  }
  const match: Match = [];
  let p = offset + 4;
  const end = offset + len;
  const region = buf.subarray(0, end);
  while (p < end) {
    const { field, length } = decodeOxmEntry(region, p);
    match.push(field);
    p += length;
  }
  return { match, length: (len + 7) & ~7 };
}

// ---- helpers for building matches ---------------------------------------------------------------

/** eth_type / ip_proto that each field implies, for addPrerequisites(). */
const IMPLIES: Partial<Record<FieldName, { ethType: number; ipProto?: number }>> = {
  ipv4_src: { ethType: ETH_TYPE.IPV4 },
  ipv4_dst: { ethType: ETH_TYPE.IPV4 },
  ipv6_src: { ethType: ETH_TYPE.IPV6 },
  ipv6_dst: { ethType: ETH_TYPE.IPV6 },
  arp_op: { ethType: ETH_TYPE.ARP },
  arp_spa: { ethType: ETH_TYPE.ARP },
  arp_tpa: { ethType: ETH_TYPE.ARP },
  arp_sha: { ethType: ETH_TYPE.ARP },
  arp_tha: { ethType: ETH_TYPE.ARP },
  icmpv4_type: { ethType: ETH_TYPE.IPV4, ipProto: IP_PROTO.ICMP },
  icmpv4_code: { ethType: ETH_TYPE.IPV4, ipProto: IP_PROTO.ICMP },
  icmpv6_type: { ethType: ETH_TYPE.IPV6, ipProto: IP_PROTO.ICMPV6 },
  icmpv6_code: { ethType: ETH_TYPE.IPV6, ipProto: IP_PROTO.ICMPV6 },
  ipv6_nd_target: { ethType: ETH_TYPE.IPV6, ipProto: IP_PROTO.ICMPV6 },
  ipv6_nd_sll: { ethType: ETH_TYPE.IPV6, ipProto: IP_PROTO.ICMPV6 },
  ipv6_nd_tll: { ethType: ETH_TYPE.IPV6, ipProto: IP_PROTO.ICMPV6 },
};

/**
 * A copy of `m` with the eth_type and ip_proto its fields imply added when missing (ipv4_dst adds
 * eth_type=0x0800; tcp_dst adds ip_proto=6, and eth_type=0x0800 unless IPv6 fields say otherwise;
 * nd_sll/nd_tll add icmpv6_type 135/136). Conflicts are left for validateMatch to report.
 */
export function addPrerequisites(m: Match): Match {
  const has = (n: FieldName): boolean => m.some((f) => f.field === n);
  const add: MatchField[] = [];
  let ethType = m.find((f) => f.field === 'eth_type')?.value as number | undefined;
  let ipProto = m.find((f) => f.field === 'ip_proto')?.value as number | undefined;
  const l3 = has('ipv6_src') || has('ipv6_dst') ? ETH_TYPE.IPV6 : ETH_TYPE.IPV4;
  for (const f of m) {
    if (f.field === 'raw') continue;
    const l4 = f.field.startsWith('tcp_') ? IP_PROTO.TCP : f.field.startsWith('udp_') ? IP_PROTO.UDP : undefined;
    const imp = IMPLIES[f.field] ?? (l4 !== undefined ? { ethType: l3, ipProto: l4 } : undefined);
    if (!imp) continue;
    if (ethType === undefined) {
      ethType = imp.ethType;
      add.push({ field: 'eth_type', value: ethType });
    }
    if (imp.ipProto !== undefined && ipProto === undefined) {
      ipProto = imp.ipProto;
      add.push({ field: 'ip_proto', value: ipProto });
    }
  }
  const nd = m.find((f) => f.field === 'ipv6_nd_sll' || f.field === 'ipv6_nd_tll');
  if (nd && !has('icmpv6_type')) add.push({ field: 'icmpv6_type', value: nd.field === 'ipv6_nd_sll' ? 135 : 136 });
  return add.length ? [...add, ...m] : m;
}

/** Dotted IPv4 netmask for a prefix length: ipv4PrefixMask(24) = '255.255.255.0'. */
export function ipv4PrefixMask(prefix: number): string {
  return bytesToIpv4(prefixMaskBytes(4, prefix));
}

/** IPv6 netmask for a prefix length: ipv6PrefixMask(64) = 'ffff:ffff:ffff:ffff::'. */
export function ipv6PrefixMask(prefix: number): string {
  return bytesToIpv6(prefixMaskBytes(6, prefix));
}

/**
 * ct_state match from ovs-ofctl flag syntax: ctState('+trk+est-rpl') sets value and mask bits.
 * Flags: new, est, rel, rpl, inv, trk, snat, dnat.
 */
export function ctState(spec: string): Extract<MatchField, { field: 'ct_state' }> {
  let value = 0;
  let mask = 0;
  const re = /([+-])([a-z]+)/gy;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(spec)) !== null) {
    const bit = (CT_STATE_BITS as Record<string, number>)[m[2]];
    if (bit === undefined) throw new OpenFlowCodecError(`unknown ct_state flag "${m[2]}" in "${spec}"`);
    mask |= bit;
    if (m[1] === '+') value |= bit;
    consumed = re.lastIndex;
  }
  if (consumed !== spec.length || spec.length === 0) {
    throw new OpenFlowCodecError(`invalid ct_state "${spec}" (expected e.g. "+trk+new" or "+trk-est")`);
  }
  return { field: 'ct_state', value, mask };
}
