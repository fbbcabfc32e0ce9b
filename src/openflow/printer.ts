/**
 * Renders matches, actions, instructions and whole flows in the text syntax `ovs-ofctl` (Open
 * vSwitch 3.1, -O OpenFlow13) prints, so logs read like `ovs-ofctl dump-flows` and the two can be
 * compared line by line. Field order and number formats follow OVS's match_format() and
 * ofpacts_format().
 */
import { bytesToIpv4, bytesToIpv6, bytesToMac, ipv4ToBytes, ipv6ToBytes, macToBytes, maskPrefixLength } from '../common/ip.js';
import { CT_STATE_BITS, ETH_TYPE, IP_PROTO, OFP_DEFAULT_PRIORITY, OFPFF, OFPP } from './consts.js';
import { portFromU32 } from './actions.js';
import { fieldBytes, fieldDef, fieldValueFromBytes, resolveRef } from './match.js';
import type {
  Action,
  FieldRef,
  FlowDescription,
  Instruction,
  LearnAction,
  Match,
  MatchField,
  NatSpec,
  PortNumber,
} from './types.js';

// ---- small formatters ---------------------------------------------------------------------------

/** "0x%04x", as OVS prints vlan_tci. */
const hex4 = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`;

/** C's "%#x": 0 prints as "0". */
const hex0x = (n: number | bigint): string => (n === 0 || n === 0n ? '0' : `0x${n.toString(16)}`);

const PORT_TEXT: Record<string, string> = {
  in_port: 'IN_PORT',
  table: 'TABLE',
  normal: 'NORMAL',
  flood: 'FLOOD',
  all: 'ALL',
  controller: 'CONTROLLER',
  local: 'LOCAL',
  any: 'ANY',
};

/** A port as ovs-ofctl prints it: a number, or IN_PORT, LOCAL, CONTROLLER, ... */
export function formatPort(port: PortNumber): string {
  const p = typeof port === 'number' ? portFromU32(port) : port;
  return typeof p === 'string' ? (PORT_TEXT[p] ?? p.toUpperCase()) : String(p);
}

function ipMasked(value: string, mask: string | undefined): string {
  const v = bytesToIpv4(ipv4ToBytes(value, 'ovs'));
  if (mask === undefined) return v;
  const m = ipv4ToBytes(mask, 'ovs');
  const p = maskPrefixLength(m);
  if (p === 32) return v;
  return p >= 0 ? `${v}/${p}` : `${v}/${bytesToIpv4(m)}`;
}

function ipv6Masked(value: string, mask: string | undefined): string {
  const v = bytesToIpv6(ipv6ToBytes(value, 'ovs'));
  if (mask === undefined) return v;
  const m = ipv6ToBytes(mask, 'ovs');
  const p = maskPrefixLength(m);
  if (p === 128) return v;
  return p >= 0 ? `${v}/${p}` : `${v}/${bytesToIpv6(m)}`;
}

function ethMasked(value: string, mask: string | undefined): string {
  const v = bytesToMac(macToBytes(value, 'ovs'));
  if (mask === undefined) return v;
  const m = bytesToMac(macToBytes(mask, 'ovs'));
  return m === 'ff:ff:ff:ff:ff:ff' ? v : `${v}/${m}`;
}

/** Canonical (masked-off) value of a field, as OVS stores it. */
function canonical(f: MatchField): MatchField {
  if (f.field === 'raw' || !('mask' in f) || f.mask === undefined) return f;
  const { value, mask } = fieldBytes(f);
  if (!mask) return f;
  const d = fieldDef(f.field, f.field === 'reg' ? f.index : undefined);
  const v = Buffer.from(value.map((b, i) => b & mask[i]));
  const full = mask.every((b) => b === 0xff);
  const out = { ...f, value: fieldValueFromBytes(d, v) } as MatchField & { mask?: unknown };
  if (full) delete out.mask;
  return out as MatchField;
}

function ctStateText(value: number, mask: number | undefined): string {
  const names = Object.entries(CT_STATE_BITS);
  if (mask === undefined || (mask & 0xff) === 0xff) {
    const set = names.filter(([, b]) => value & b).map(([n]) => n);
    return set.length ? set.join('|') : '0';
  }
  if (!mask) return '0/0';
  return names
    .filter(([, b]) => mask & b)
    .map(([n, b]) => `${value & b ? '+' : '-'}${n}`)
    .join('');
}

// ---- match ----------------------------------------------------------------------------------------

/** The MatchField variant whose `field` union contains N. */
type FieldOf<N extends MatchField['field'], F = MatchField> = F extends { field: infer K }
  ? N extends K
    ? F
    : never
  : never;

/**
 * A match in ovs-ofctl syntax, e.g. `priority=100,ip,nw_dst=10.0.0.0/24`. `priority` is printed
 * first unless it is the default (32768) or omitted. Raw (unmodeled) fields print as
 * `oxm(0xHEADER=VALUE[/MASK])`, which ovs-ofctl would not print.
 */
export function formatMatch(match: Match, priority?: number): string {
  const byKey = new Map<string, MatchField>();
  for (const f0 of match) {
    const f = canonical(f0);
    byKey.set(f.field === 'reg' ? `reg${f.index}` : f.field, f);
  }
  const get = <N extends MatchField['field']>(n: N): FieldOf<N> | undefined => byKey.get(n) as FieldOf<N> | undefined;
  const out: string[] = [];
  if (priority !== undefined && priority !== OFP_DEFAULT_PRIORITY) out.push(`priority=${priority}`);

  const conj = get('conj_id');
  if (conj) out.push(`conj_id=${conj.value}`);
  const ct = get('ct_state');
  if (ct) out.push(`ct_state=${ctStateText(ct.value, ct.mask)}`);
  const zone = get('ct_zone');
  if (zone) out.push(`ct_zone=${zone.value}`);
  const mark = get('ct_mark');
  if (mark) out.push(`ct_mark=${hex0x(mark.value)}${mark.mask !== undefined ? `/${hex0x(mark.mask)}` : ''}`);
  const label = get('ct_label');
  if (label) out.push(`ct_label=${hex0x(label.value)}${label.mask !== undefined ? `/${hex0x(label.mask)}` : ''}`);

  const ethType = get('eth_type')?.value;
  const proto = get('ip_proto')?.value;
  let skipType = false;
  let skipProto = false;
  if (ethType !== undefined) {
    skipType = true;
    const v6 = ethType === ETH_TYPE.IPV6;
    if (ethType === ETH_TYPE.IPV4 || v6) {
      const names: Record<number, string> = v6
        ? { [IP_PROTO.ICMPV6]: 'icmp6', [IP_PROTO.TCP]: 'tcp6', [IP_PROTO.UDP]: 'udp6', [IP_PROTO.SCTP]: 'sctp6' }
        : { [IP_PROTO.ICMP]: 'icmp', [IP_PROTO.TCP]: 'tcp', [IP_PROTO.UDP]: 'udp', [IP_PROTO.SCTP]: 'sctp' };
      const n = proto !== undefined ? names[proto] : undefined;
      out.push(n ?? (v6 ? 'ipv6' : 'ip'));
      skipProto = n !== undefined;
    } else if (ethType === ETH_TYPE.ARP) out.push('arp');
    else if (ethType === ETH_TYPE.RARP) out.push('rarp');
    else if (ethType === 0x8847) out.push('mpls');
    else if (ethType === 0x8848) out.push('mplsm');
    else skipType = false;
  }
  for (let i = 0; i < 16; i++) {
    const r = byKey.get(`reg${i}`) as FieldOf<'reg'> | undefined;
    if (r) out.push(`reg${i}=${hex0x(r.value)}${r.mask !== undefined ? `/${hex0x(r.mask)}` : ''}`);
  }
  const tun = get('tunnel_id');
  if (tun) out.push(`tun_id=${hex0x(tun.value)}${tun.mask !== undefined ? `/${hex0x(tun.mask)}` : ''}`);
  const ts = get('tun_ipv4_src');
  if (ts) out.push(`tun_src=${ipMasked(ts.value, ts.mask)}`);
  const td = get('tun_ipv4_dst');
  if (td) out.push(`tun_dst=${ipMasked(td.value, td.mask)}`);
  const md = get('metadata');
  if (md) out.push(`metadata=${hex0x(md.value)}${md.mask !== undefined ? `/${hex0x(md.mask)}` : ''}`);
  const inPort = get('in_port');
  if (inPort) out.push(`in_port=${formatPort(inPort.value)}`);
  const vlan = get('vlan_vid');
  if (vlan) {
    const m = vlan.mask ?? 0x1fff;
    if (vlan.value & 0x1000 && (m & 0x1fff) === 0x1fff) out.push(`dl_vlan=${vlan.value & 0xfff}`);
    else if (m === 0x1fff) out.push(`vlan_tci=${hex4(vlan.value & 0x1fff)}`);
    else out.push(`vlan_tci=${hex4(vlan.value & 0x1fff)}/${hex4(m & 0x1fff)}`);
  }
  const src = get('eth_src');
  if (src) out.push(`dl_src=${ethMasked(src.value, src.mask)}`);
  const dst = get('eth_dst');
  if (dst) out.push(`dl_dst=${ethMasked(dst.value, dst.mask)}`);
  if (!skipType && ethType !== undefined) out.push(`dl_type=0x${ethType.toString(16).padStart(4, '0')}`);

  const isArp = ethType === ETH_TYPE.ARP || ethType === ETH_TYPE.RARP;
  if (ethType === ETH_TYPE.IPV6) {
    const a = get('ipv6_src');
    if (a) out.push(`ipv6_src=${ipv6Masked(a.value, a.mask)}`);
    const b = get('ipv6_dst');
    if (b) out.push(`ipv6_dst=${ipv6Masked(b.value, b.mask)}`);
  } else if (isArp) {
    const a = get('arp_spa');
    if (a) out.push(`arp_spa=${ipMasked(a.value, a.mask)}`);
    const b = get('arp_tpa');
    if (b) out.push(`arp_tpa=${ipMasked(b.value, b.mask)}`);
  } else {
    const a = get('ipv4_src');
    if (a) out.push(`nw_src=${ipMasked(a.value, a.mask)}`);
    const b = get('ipv4_dst');
    if (b) out.push(`nw_dst=${ipMasked(b.value, b.mask)}`);
  }
  if (isArp) {
    const op = get('arp_op');
    if (op) out.push(`arp_op=${op.value}`);
    const sha = get('arp_sha');
    if (sha) out.push(`arp_sha=${ethMasked(sha.value, sha.mask)}`);
    const tha = get('arp_tha');
    if (tha) out.push(`arp_tha=${ethMasked(tha.value, tha.mask)}`);
  } else if (!skipProto && proto !== undefined) {
    out.push(`nw_proto=${proto}`);
  }
  const dscp = get('ip_dscp');
  if (dscp) out.push(`nw_tos=${(dscp.value as number) << 2}`);
  if (ethType === ETH_TYPE.IPV4 && proto === IP_PROTO.ICMP) {
    const t = get('icmpv4_type');
    if (t) out.push(`icmp_type=${t.value}`);
    const c = get('icmpv4_code');
    if (c) out.push(`icmp_code=${c.value}`);
  } else if (ethType === ETH_TYPE.IPV6 && proto === IP_PROTO.ICMPV6) {
    const t = get('icmpv6_type');
    if (t) out.push(`icmp_type=${t.value}`);
    const c = get('icmpv6_code');
    if (c) out.push(`icmp_code=${c.value}`);
    const nt = get('ipv6_nd_target');
    if (nt) out.push(`nd_target=${ipv6Masked(nt.value, nt.mask)}`);
    const sll = get('ipv6_nd_sll');
    if (sll) out.push(`nd_sll=${ethMasked(sll.value, sll.mask)}`);
    const tll = get('ipv6_nd_tll');
    if (tll) out.push(`nd_tll=${ethMasked(tll.value, tll.mask)}`);
  } else {
    const tp = proto === IP_PROTO.UDP ? ['udp_src', 'udp_dst'] as const : ['tcp_src', 'tcp_dst'] as const;
    // As OVS's format_be16_masked(): decimal when exact, hex value/mask otherwise.
    const port = (f: { value: number; mask?: number }): string =>
      f.mask === undefined || f.mask === 0xffff ? String(f.value) : `0x${f.value.toString(16)}/0x${f.mask.toString(16)}`;
    const a = get(tp[0]);
    if (a) out.push(`tp_src=${port(a)}`);
    const b = get(tp[1]);
    if (b) out.push(`tp_dst=${port(b)}`);
    const flags = get('tcp_flags');
    if (flags) out.push(`tcp_flags=${port(flags)}`);
  }
  for (const f of match) {
    if (f.field === 'raw') {
      const mask = f.mask ? `/${f.mask.toString('hex')}` : '';
      out.push(`oxm(0x${f.header.toString(16).padStart(8, '0')}=${f.value.toString('hex')}${mask})`);
    }
  }
  return out.join(',');
}

// ---- actions --------------------------------------------------------------------------------------

/** A field reference as OVS prints it: NXM_NX_REG0[], NXM_NX_REG0[0..15], NXM_NX_REG0[3]. */
export function formatFieldRef(ref: FieldRef): string {
  const r = resolveRef(ref);
  const name = r.def.nxmName;
  if (r.ofs === 0 && r.nBits === r.def.nBits) return `${name}[]`;
  if (r.nBits === 1) return `${name}[${r.ofs}]`;
  return `${name}[${r.ofs}..${r.ofs + r.nBits - 1}]`;
}

const HEX_FIELDS = new Set(['metadata', 'eth_type', 'tunnel_id', 'reg', 'ct_zone', 'ct_mark', 'ct_label', 'tcp_flags']);

/** A field value the way OVS's mf_format() prints it (used by set_field and learn). */
function formatFieldValue(f: MatchField): string {
  switch (f.field) {
    case 'raw':
      return f.value.toString('hex');
    case 'in_port':
      return formatPort(f.value);
    case 'ct_state':
      return ctStateText(f.value, f.mask);
    default: {
      const d = fieldDef(f.field, f.field === 'reg' ? f.index : undefined);
      const mask = 'mask' in f ? f.mask : undefined;
      if (d.kind === 'mac') return ethMasked(String(f.value), mask as string | undefined);
      if (d.kind === 'ipv4') return ipMasked(String(f.value), mask as string | undefined);
      if (d.kind === 'ipv6') return ipv6Masked(String(f.value), mask as string | undefined);
      const v = f.value as number | bigint;
      const text = HEX_FIELDS.has(f.field) ? hex0x(v) : String(v);
      return mask === undefined ? text : `${text}/${hex0x(mask as number | bigint)}`;
    }
  }
}

function formatNat(n: NatSpec): string {
  if (!n.kind) return 'nat';
  let s = `nat(${n.kind}`;
  if (n.ipMin !== undefined) {
    const v6 = n.ipMin.includes(':');
    const withPort = n.portMin !== undefined && n.portMin !== 0;
    const addr = (a: string): string => {
      const t = v6 ? bytesToIpv6(ipv6ToBytes(a, 'ovs')) : a;
      return v6 && withPort ? `[${t}]` : t;
    };
    s += `=${addr(n.ipMin)}`;
    if (n.ipMax !== undefined && n.ipMax !== n.ipMin) s += `-${addr(n.ipMax)}`;
    if (withPort) {
      s += `:${n.portMin}`;
      if (n.portMax && n.portMax !== n.portMin) s += `-${n.portMax}`;
    }
    if (n.persistent) s += ',persistent';
    if (n.selection) s += `,${n.selection}`;
  }
  return `${s})`;
}

function formatLearn(a: LearnAction): string {
  const parts = [`table=${a.table}`];
  if (a.idleTimeout) parts.push(`idle_timeout=${a.idleTimeout}`);
  if (a.hardTimeout) parts.push(`hard_timeout=${a.hardTimeout}`);
  if (a.finIdleTimeout) parts.push(`fin_idle_timeout=${a.finIdleTimeout}`);
  if (a.finHardTimeout) parts.push(`fin_hard_timeout=${a.finHardTimeout}`);
  const prio = a.priority ?? OFP_DEFAULT_PRIORITY;
  if (prio !== OFP_DEFAULT_PRIORITY) parts.push(`priority=${prio}`);
  const flags = a.flags ?? 0;
  if (flags & 1) parts.push('send_flow_rem');
  if (flags & 2) parts.push('delete_learned');
  if (a.cookie) parts.push(`cookie=${hex0x(a.cookie)}`);
  for (const s of a.specs) {
    if (s.kind === 'output') {
      parts.push(`output:${formatFieldRef(s.src)}`);
      continue;
    }
    const dst = resolveRef(s.dst);
    if (s.kind === 'match') {
      if (s.src) {
        const src = resolveRef(s.src);
        const same = src.def === dst.def && src.ofs === dst.ofs;
        parts.push(same ? formatFieldRef(s.dst) : `${formatFieldRef(s.dst)}=${formatFieldRef(s.src)}`);
      } else if (dst.ofs === 0 && dst.nBits === dst.def.nBits) {
        const f = valueAsField(s.dst, s.value ?? 0n);
        parts.push(`${dst.def.mfName}=${formatFieldValue(f)}`);
      } else {
        parts.push(`${formatFieldRef(s.dst)}=${hex0x(s.value ?? 0n)}`);
      }
    } else {
      const from = s.src ? formatFieldRef(s.src) : hex0x(s.value ?? 0n);
      parts.push(`load:${from}->${formatFieldRef(s.dst)}`);
    }
  }
  return `learn(${parts.join(',')})`;
}

/** A whole-field immediate as a MatchField, for printing with the field's own format. */
function valueAsField(ref: FieldRef, value: bigint): MatchField {
  const r = resolveRef(ref);
  const bytes = r.def.refHeader.bytes;
  const buf = Buffer.alloc(bytes);
  let v = value;
  for (let i = bytes - 1; i >= 0; i--) {
    buf[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  const val = fieldValueFromBytes(r.def, buf);
  const f = r.def.index !== undefined ? { field: 'reg', index: r.def.index, value: val } : { field: r.def.field, value: val };
  return f as MatchField;
}

/** One action in ovs-ofctl syntax. */
export function formatAction(a: Action): string {
  switch (a.type) {
    case 'output': {
      const p = typeof a.port === 'number' ? a.port : null;
      const isController = a.port === 'controller' || p === OFPP.CONTROLLER;
      const text = formatPort(a.port);
      const base = p !== null && p < OFPP.MAX ? `output:${text}` : text;
      return isController ? `${base}:${a.maxLen ?? 0xffff}` : base;
    }
    case 'set_field': {
      const f = a.field;
      const name =
        f.field === 'raw' ? `oxm(0x${f.header.toString(16)})` : fieldDef(f.field, f.field === 'reg' ? f.index : undefined).mfName;
      return `set_field:${formatFieldValue(f)}->${name}`;
    }
    case 'dec_ttl':
      return 'dec_ttl';
    case 'push_vlan':
      return `push_vlan:${hex0x(a.ethertype ?? ETH_TYPE.VLAN)}`;
    case 'pop_vlan':
      return 'pop_vlan';
    case 'group':
      return `group:${a.groupId}`;
    case 'resubmit': {
      const port = a.port ?? 'in_port';
      const isInPort = port === 'in_port' || port === 0xfffffff8;
      if (!isInPort && a.table === undefined) return `resubmit:${formatPort(port)}`;
      return `resubmit(${isInPort ? '' : formatPort(port)},${a.table ?? ''})`;
    }
    case 'load': {
      const r = resolveRef(a.dst);
      if (r.nBits <= 64) return `load:${hex0x(BigInt(a.value))}->${formatFieldRef(a.dst)}`;
      // Encoded as NXAST_REG_LOAD2, which OVS prints as a (masked) set_field.
      const width = BigInt(r.def.nBits);
      const mask = ((1n << BigInt(r.nBits)) - 1n) << BigInt(r.ofs);
      const f = valueAsField(a.dst, BigInt(a.value) << BigInt(r.ofs));
      const m = mask === (1n << width) - 1n ? undefined : (valueAsField(a.dst, mask) as { value: unknown }).value;
      return `set_field:${formatFieldValue(m === undefined ? f : ({ ...f, mask: m } as MatchField))}->${r.def.mfName}`;
    }
    case 'move':
      return `move:${formatFieldRef(a.src)}->${formatFieldRef(a.dst)}`;
    case 'ct': {
      const parts: string[] = [];
      if (a.commit) parts.push('commit');
      if (a.force) parts.push('force');
      if (a.table !== undefined) parts.push(`table=${a.table}`);
      if (typeof a.zone === 'object') parts.push(`zone=${formatFieldRef(a.zone)}`);
      else if (a.zone) parts.push(`zone=${a.zone}`);
      let nested = a.actions ?? [];
      const first = nested[0];
      if (first && first.type === 'nat') {
        parts.push(formatNat(first));
        nested = nested.slice(1);
      }
      if (nested.length) parts.push(`exec(${formatActions(nested)})`);
      if (a.alg === 21) parts.push('alg=ftp');
      else if (a.alg === 69) parts.push('alg=tftp');
      else if (a.alg) parts.push(`alg=${a.alg}`);
      return `ct(${parts.join(',')})`;
    }
    case 'nat':
      return formatNat(a);
    case 'learn':
      return formatLearn(a);
    case 'conjunction':
      return `conjunction(${a.id},${a.clause}/${a.nClauses})`;
    case 'note':
      return `note:${Array.from(a.bytes, (b) => b.toString(16).padStart(2, '0')).join('.')}`;
    case 'unknown':
      return `unknown(${a.bytes.toString('hex')})`;
    default: {
      const t: never = a;
      return String(t);
    }
  }
}

/** Actions joined by commas; an empty list is `drop`. */
export function formatActions(actions: Action[]): string {
  return actions.length ? actions.map(formatAction).join(',') : 'drop';
}

/**
 * Instructions as OVS prints them after `actions=`: meter:N, apply_actions' actions inline, then
 * clear_actions, write_actions(...), write_metadata:..., goto_table:N (OVS's fixed order).
 */
export function formatInstructions(list: Instruction[]): string {
  const parts: string[] = [];
  const of = <T extends Instruction['type']>(t: T): Extract<Instruction, { type: T }>[] =>
    list.filter((i): i is Extract<Instruction, { type: T }> => i.type === t);
  for (const i of of('meter')) parts.push(`meter:${i.meterId}`);
  for (const i of of('apply_actions')) parts.push(...i.actions.map(formatAction));
  if (of('clear_actions').length) parts.push('clear_actions');
  for (const i of of('write_actions')) parts.push(`write_actions(${formatActions(i.actions)})`);
  for (const i of of('write_metadata')) {
    const mask = BigInt.asUintN(64, i.mask);
    parts.push(`write_metadata:${hex0x(i.metadata)}${mask === 0xffffffffffffffffn ? '' : `/${hex0x(mask)}`}`);
  }
  for (const i of of('goto_table')) parts.push(`goto_table:${i.table}`);
  return parts.length ? parts.join(',') : 'drop';
}

function duration(sec: number, nsec: number): string {
  if (!nsec) return `${sec}s`;
  if (nsec % 1_000_000 === 0) return `${sec}.${String(nsec / 1_000_000).padStart(3, '0')}s`;
  return `${sec}.${String(nsec).padStart(9, '0').replace(/0+$/, '')}s`;
}

/**
 * One flow as a line of `ovs-ofctl -O OpenFlow13 dump-flows` prints it (without the leading
 * space). Statistics are printed when `durationSec` is set, as dump-flows does without --no-stats;
 * otherwise the line equals `dump-flows --no-stats` output.
 */
export function formatFlow(flow: FlowDescription): string {
  const stats = flow.durationSec !== undefined;
  let s = '';
  const cookie = flow.cookie ?? 0n;
  if (stats || cookie) s += `cookie=0x${cookie.toString(16)}, `;
  if (stats) s += `duration=${duration(flow.durationSec ?? 0, flow.durationNsec ?? 0)}, `;
  const table = flow.table ?? 0;
  if (stats || table) s += `table=${table}, `;
  if (stats) s += `n_packets=${flow.packetCount ?? 0n}, n_bytes=${flow.byteCount ?? 0n}, `;
  if (flow.idleTimeout) s += `idle_timeout=${flow.idleTimeout}, `;
  if (flow.hardTimeout) s += `hard_timeout=${flow.hardTimeout}, `;
  const flags = flow.flags ?? 0;
  if (flags & OFPFF.SEND_FLOW_REM) s += 'send_flow_rem ';
  if (flags & OFPFF.CHECK_OVERLAP) s += 'check_overlap ';
  if (flags & OFPFF.RESET_COUNTS) s += 'reset_counts ';
  if (flags & OFPFF.NO_PKT_COUNTS) s += 'no_packet_counts ';
  if (flags & OFPFF.NO_BYT_COUNTS) s += 'no_byte_counts ';
  const m = formatMatch(flow.match, flow.priority ?? OFP_DEFAULT_PRIORITY);
  if (m) s += `${m} `;
  return `${s}actions=${formatInstructions(flow.instructions)}`;
}
