/**
 * Shared OpenFlow 1.3 (+ Open vSwitch extension) data model: match fields, field references,
 * actions and instructions. Pure data; encoders live in match.ts, actions.ts, instructions.ts,
 * the text form in printer.ts.
 */

/** Ethernet address as text, `aa:bb:cc:dd:ee:ff` (lower or upper case accepted). */
export type MacAddress = string;
/** IPv4 address as dotted quad, `10.0.0.1`. */
export type Ipv4Address = string;
/** IPv6 address as text, `fd00::1`. */
export type Ipv6Address = string;

/**
 * A single match field (OXM or Nicira NXM). Masks are optional; a mask is given in the same
 * notation as the value (IPv4 masks may also be built with `ipv4PrefixMask(24)` from match.ts).
 */
export type MatchField =
  | { field: 'in_port'; value: number }
  | { field: 'eth_src' | 'eth_dst'; value: MacAddress; mask?: MacAddress }
  | { field: 'eth_type'; value: number }
  /** OXM vlan_vid: 12-bit VID | 0x1000 (OFPVID_PRESENT) for tagged frames. */
  | { field: 'vlan_vid'; value: number; mask?: number }
  | { field: 'ip_proto'; value: number }
  /** OXM ip_dscp: the 6-bit DSCP (the IP TOS byte >> 2). */
  | { field: 'ip_dscp'; value: number }
  | { field: 'ipv4_src' | 'ipv4_dst'; value: Ipv4Address; mask?: Ipv4Address }
  | { field: 'ipv6_src' | 'ipv6_dst'; value: Ipv6Address; mask?: Ipv6Address }
  /** A mask (OVS extension to OXM) matches port ranges in aligned blocks. */
  | { field: 'tcp_src' | 'tcp_dst' | 'udp_src' | 'udp_dst'; value: number; mask?: number }
  | { field: 'icmpv4_type' | 'icmpv4_code' | 'icmpv6_type' | 'icmpv6_code'; value: number }
  | { field: 'arp_op'; value: number }
  | { field: 'arp_spa' | 'arp_tpa'; value: Ipv4Address; mask?: Ipv4Address }
  | { field: 'arp_sha' | 'arp_tha'; value: MacAddress; mask?: MacAddress }
  | { field: 'ipv6_nd_target'; value: Ipv6Address; mask?: Ipv6Address }
  | { field: 'ipv6_nd_sll' | 'ipv6_nd_tll'; value: MacAddress; mask?: MacAddress }
  | { field: 'tunnel_id'; value: bigint; mask?: bigint }
  | { field: 'metadata'; value: bigint; mask?: bigint }
  /** Nicira NXM_NX_TUN_IPV4_SRC / _DST. */
  | { field: 'tun_ipv4_src' | 'tun_ipv4_dst'; value: Ipv4Address; mask?: Ipv4Address }
  /** Nicira NXM_NX_REG0..REG15 (32 bits each). */
  | { field: 'reg'; index: number; value: number; mask?: number }
  /** Nicira NXM_NX_CT_STATE; build with `ctState('+trk+new')` from match.ts. */
  | { field: 'ct_state'; value: number; mask?: number }
  | { field: 'ct_zone'; value: number }
  | { field: 'ct_mark'; value: number; mask?: number }
  /** Nicira NXM_NX_CT_LABEL (128 bits). */
  | { field: 'ct_label'; value: bigint; mask?: bigint }
  /** Nicira NXM_NX_TCP_FLAGS (12 bits used): 0x002/0x012 is a SYN without ACK. */
  | { field: 'tcp_flags'; value: number; mask?: number }
  /** Nicira NXM_NX_CONJ_ID: matches packets that satisfied every clause of `conjunction(id, ...)`. */
  | { field: 'conj_id'; value: number }
  /**
   * Any other OXM/NXM entry, kept as raw bytes so flows read back from a switch survive a decode.
   * `header` is the 32-bit OXM header (class, field, hasmask, length).
   */
  | { field: 'raw'; header: number; value: Buffer; mask?: Buffer };

/** Thrown by the codecs for input that cannot be encoded or bytes that cannot be decoded. */
export class OpenFlowCodecError extends Error {
  override name = 'OpenFlowCodecError';
}

/** Name of a match field (the `field` discriminant of MatchField). */
export type FieldName = MatchField['field'];

/** A whole match: a list of fields, at most one per field (per register index for `reg`). */
export type Match = MatchField[];

/**
 * A bit range of a field, for Nicira move/load/learn: `{ field: 'reg', index: 0, ofs: 0, nBits: 16 }`
 * is `NXM_NX_REG0[0..15]`. `ofs` defaults to 0 and `nBits` to the whole field.
 */
export interface FieldRef {
  field: FieldName;
  /** Register number for `field: 'reg'`. */
  index?: number;
  ofs?: number;
  nBits?: number;
}

/** Output port: a number or a reserved port name. */
export type PortNumber =
  | number
  | 'in_port'
  | 'table'
  | 'normal'
  | 'flood'
  | 'all'
  | 'controller'
  | 'local'
  | 'any';

/** NAT part of a `ct` action (NXAST_NAT). No `kind` = "nat" with no address (reverse only). */
export interface NatSpec {
  kind?: 'src' | 'dst';
  ipMin?: string;
  ipMax?: string;
  portMin?: number;
  portMax?: number;
  persistent?: boolean;
  /** Port/address selection: 'hash' or 'random'. */
  selection?: 'hash' | 'random';
}

/** One flow_mod_spec of a `learn` action. Either `src` (a field range) or `value` is set for match/load. */
export type LearnSpec =
  /** Learned flow matches dst (== src of the current packet, or == value). */
  | { kind: 'match'; dst: FieldRef; src?: FieldRef; value?: bigint }
  /** Learned flow loads src (or value) into dst. */
  | { kind: 'load'; dst: FieldRef; src?: FieldRef; value?: bigint }
  /** Learned flow outputs to the port held in src. */
  | { kind: 'output'; src: FieldRef };

export interface LearnAction {
  type: 'learn';
  table: number;
  priority?: number;
  idleTimeout?: number;
  hardTimeout?: number;
  finIdleTimeout?: number;
  finHardTimeout?: number;
  cookie?: bigint;
  /** NX_LEARN_F_* bits: 1 = send_flow_rem, 2 = delete_learned. */
  flags?: number;
  specs: LearnSpec[];
}

export interface CtAction {
  type: 'ct';
  commit?: boolean;
  /** Force (commit only): tear down an existing connection in the other direction. */
  force?: boolean;
  /** Immediate zone, or a 16-bit field range to take it from. */
  zone?: number | FieldRef;
  /** Recirculate to this table after conntrack; omitted = no recirculation. */
  table?: number;
  /** ALG: 21 = ftp, 69 = tftp. */
  alg?: number;
  /** Nested actions (only nat, set_field/load to ct_mark are valid in OVS). */
  actions?: Action[];
}

/** An OpenFlow action (OF1.3 standard actions and Nicira extensions). */
export type Action =
  | { type: 'output'; port: PortNumber; maxLen?: number }
  /** OF1.3 set_field (OXM), NXM-only fields such as tun_ipv4_dst and reg included. No masks. */
  | { type: 'set_field'; field: MatchField }
  | { type: 'dec_ttl' }
  | { type: 'push_vlan'; ethertype?: number }
  | { type: 'pop_vlan' }
  | { type: 'group'; groupId: number }
  /** NXAST_RESUBMIT(_TABLE); `port` defaults to in_port, `table` to the current table. */
  | { type: 'resubmit'; port?: PortNumber; table?: number }
  /** NXAST_REG_LOAD: load `value` into a field range. */
  | { type: 'load'; dst: FieldRef; value: bigint | number }
  /** NXAST_REG_MOVE: copy a field range into another of equal width. */
  | { type: 'move'; src: FieldRef; dst: FieldRef }
  | CtAction
  /** Only valid nested inside `ct`. */
  | ({ type: 'nat' } & NatSpec)
  | LearnAction
  /** `conjunction(id, clause/nClauses)`; clause is 1-based as in ovs-ofctl syntax. */
  | { type: 'conjunction'; id: number; clause: number; nClauses: number }
  | { type: 'note'; bytes: Buffer }
  /** An action this codec does not model, kept as its wire bytes (whole TLV). */
  | { type: 'unknown'; bytes: Buffer };

export type ActionType = Action['type'];

/** An OpenFlow 1.3 instruction. */
export type Instruction =
  | { type: 'apply_actions'; actions: Action[] }
  | { type: 'write_actions'; actions: Action[] }
  | { type: 'clear_actions' }
  /** OF1.3 meter instruction: the packet first passes meter `meterId` (which may drop it). */
  | { type: 'meter'; meterId: number }
  | { type: 'goto_table'; table: number }
  | { type: 'write_metadata'; metadata: bigint; mask: bigint };

/** What the printer needs to render one flow in `ovs-ofctl dump-flows` syntax. */
export interface FlowDescription {
  table?: number;
  priority?: number;
  cookie?: bigint;
  idleTimeout?: number;
  hardTimeout?: number;
  /** OFPFF_* bits; printed as send_flow_rem, check_overlap, reset_counts, no_packet_counts, no_byte_counts. */
  flags?: number;
  match: Match;
  instructions: Instruction[];
  /** Statistics; printed only when present (dump-flows without --no-stats). */
  durationSec?: number;
  durationNsec?: number;
  packetCount?: bigint;
  byteCount?: bigint;
}
