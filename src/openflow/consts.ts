/**
 * Numeric constants of OpenFlow 1.3 (include/openflow/openflow-1.3.h) and the Nicira / ONF
 * extensions (nicira-ext.h) used by the codecs. Only what the codecs need.
 */

/** OpenFlow 1.3 wire version. */
export const OFP13_VERSION = 0x04;

/** Default flow priority; ovs-ofctl omits `priority=` when a flow has it. */
export const OFP_DEFAULT_PRIORITY = 0x8000;

/** Reserved port numbers (ofp_port_no). */
export const OFPP = {
  MAX: 0xffffff00,
  IN_PORT: 0xfffffff8,
  TABLE: 0xfffffff9,
  NORMAL: 0xfffffffa,
  FLOOD: 0xfffffffb,
  ALL: 0xfffffffc,
  CONTROLLER: 0xfffffffd,
  LOCAL: 0xfffffffe,
  ANY: 0xffffffff,
} as const;

/** Nicira 16-bit port numbers (OpenFlow 1.0 style) used by NXAST_RESUBMIT. */
export const OFPP16 = {
  MAX: 0xff00,
  IN_PORT: 0xfff8,
  TABLE: 0xfff9,
  NORMAL: 0xfffa,
  FLOOD: 0xfffb,
  ALL: 0xfffc,
  CONTROLLER: 0xfffd,
  LOCAL: 0xfffe,
  NONE: 0xffff,
} as const;

/** ofp_controller_max_len: send the whole packet to the controller. */
export const OFPCML_NO_BUFFER = 0xffff;

/** ofp_match type. */
export const OFPMT_OXM = 1;

/** OXM classes. */
export const OXM_CLASS = {
  NXM_0: 0x0000,
  NXM_1: 0x0001,
  OPENFLOW_BASIC: 0x8000,
  EXPERIMENTER: 0xffff,
} as const;

/** OpenFlow 1.3 action types (ofp_action_type). */
export const OFPAT = {
  OUTPUT: 0,
  COPY_TTL_OUT: 11,
  COPY_TTL_IN: 12,
  SET_MPLS_TTL: 15,
  DEC_MPLS_TTL: 16,
  PUSH_VLAN: 17,
  POP_VLAN: 18,
  PUSH_MPLS: 19,
  POP_MPLS: 20,
  SET_QUEUE: 21,
  GROUP: 22,
  SET_NW_TTL: 23,
  DEC_NW_TTL: 24,
  SET_FIELD: 25,
  PUSH_PBB: 26,
  POP_PBB: 27,
  EXPERIMENTER: 0xffff,
} as const;

/** OpenFlow 1.3 instruction types (ofp_instruction_type). */
export const OFPIT = {
  GOTO_TABLE: 1,
  WRITE_METADATA: 2,
  WRITE_ACTIONS: 3,
  APPLY_ACTIONS: 4,
  CLEAR_ACTIONS: 5,
  METER: 6,
  EXPERIMENTER: 0xffff,
} as const;

/** Experimenter ids. */
export const NX_VENDOR_ID = 0x00002320;
export const ONF_VENDOR_ID = 0x4f4e4600;

/** Nicira action subtypes (nx_action_subtype). */
export const NXAST = {
  RESUBMIT: 1,
  SET_TUNNEL: 2,
  SET_QUEUE: 4,
  POP_QUEUE: 5,
  REG_MOVE: 6,
  REG_LOAD: 7,
  NOTE: 8,
  SET_TUNNEL64: 9,
  MULTIPATH: 10,
  BUNDLE: 12,
  BUNDLE_LOAD: 13,
  RESUBMIT_TABLE: 14,
  OUTPUT_REG: 15,
  LEARN: 16,
  EXIT: 17,
  DEC_TTL: 18,
  FIN_TIMEOUT: 19,
  CONTROLLER: 20,
  DEC_TTL_CNT_IDS: 21,
  WRITE_METADATA: 22,
  REG_LOAD2: 33,
  CONJUNCTION: 34,
  CT: 35,
  NAT: 36,
  CONTROLLER2: 37,
  OUTPUT_TRUNC: 39,
  CT_CLEAR: 43,
  RESUBMIT_TABLE_CT: 44,
} as const;

/** NXAST_CT flags. */
export const NX_CT_F = { COMMIT: 1, FORCE: 2 } as const;
/** NXAST_CT recirc_table value meaning "do not recirculate". */
export const NX_CT_RECIRC_NONE = 0xff;

/** NXAST_NAT flags and range_present bits. */
export const NX_NAT_F = { SRC: 1, DST: 2, PERSISTENT: 4, PROTO_HASH: 8, PROTO_RANDOM: 16 } as const;
export const NX_NAT_RANGE = {
  IPV4_MIN: 1,
  IPV4_MAX: 2,
  IPV6_MIN: 4,
  IPV6_MAX: 8,
  PROTO_MIN: 16,
  PROTO_MAX: 32,
} as const;

/** NXAST_LEARN flow_mod_spec header bits. */
export const NX_LEARN = {
  N_BITS_MASK: 0x3ff,
  SRC_FIELD: 0 << 13,
  SRC_IMMEDIATE: 1 << 13,
  DST_MATCH: 0 << 11,
  DST_LOAD: 1 << 11,
  DST_OUTPUT: 2 << 11,
  DST_MASK: 3 << 11,
} as const;
/** NXAST_LEARN flags. */
export const NX_LEARN_F = { SEND_FLOW_REM: 1, DELETE_LEARNED: 2, WRITE_RESULT: 4 } as const;

/** ct_state bits (NXM_NX_CT_STATE), in ovs-ofctl order. */
export const CT_STATE_BITS = {
  new: 0x01,
  est: 0x02,
  rel: 0x04,
  rpl: 0x08,
  inv: 0x10,
  trk: 0x20,
  snat: 0x40,
  dnat: 0x80,
} as const;

/** OFPFF_* flow_mod flags. */
export const OFPFF = {
  SEND_FLOW_REM: 1 << 0,
  CHECK_OVERLAP: 1 << 1,
  RESET_COUNTS: 1 << 2,
  NO_PKT_COUNTS: 1 << 3,
  NO_BYT_COUNTS: 1 << 4,
} as const;

/** Ethertypes used by match prerequisites. */
export const ETH_TYPE = { IPV4: 0x0800, ARP: 0x0806, RARP: 0x8035, VLAN: 0x8100, IPV6: 0x86dd } as const;
/** IP protocol numbers used by match prerequisites. */
export const IP_PROTO = { ICMP: 1, TCP: 6, UDP: 17, SCTP: 132, ICMPV6: 58 } as const;
