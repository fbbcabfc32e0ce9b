/**
 * OpenFlow 1.3 error names, as Open vSwitch reports them (include/openvswitch/ofp-errors.h):
 * standard (type, code) pairs plus the experimenter errors OVS sends in OpenFlow 1.3 for Nicira
 * extensions (NX, experimenter 0x00002320) and for ONF extensions such as bundles (ONF,
 * experimenter 0x4f4e4600). Pure tables and a typed error class; no I/O.
 */

import { NX_VENDOR_ID as NX_EXPERIMENTER, ONF_VENDOR_ID as ONF_EXPERIMENTER } from './consts.js';

/** ofp_error_msg.type for experimenter errors (code = exp_type, then a 32-bit experimenter id). */
export const OFPET_EXPERIMENTER = 0xffff;

/** OpenFlow 1.3 error type names (ofp_error_msg.type). */
export const ERROR_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'HELLO_FAILED',
  1: 'BAD_REQUEST',
  2: 'BAD_ACTION',
  3: 'BAD_INSTRUCTION',
  4: 'BAD_MATCH',
  5: 'FLOW_MOD_FAILED',
  6: 'GROUP_MOD_FAILED',
  7: 'PORT_MOD_FAILED',
  8: 'TABLE_MOD_FAILED',
  9: 'QUEUE_OP_FAILED',
  10: 'SWITCH_CONFIG_FAILED',
  11: 'ROLE_REQUEST_FAILED',
  12: 'METER_MOD_FAILED',
  13: 'TABLE_FEATURES_FAILED',
  0xffff: 'EXPERIMENTER',
};

// [type, code, name, description] of every error OVS can send in OpenFlow 1.3.
const STD: Array<[number, number, string, string]> = [
  [0, 0, 'OFPHFC_INCOMPATIBLE', 'No compatible version.'],
  [0, 1, 'OFPHFC_EPERM', 'Permissions error.'],
  [1, 0, 'OFPBRC_BAD_VERSION', 'ofp_header.version not supported.'],
  [1, 1, 'OFPBRC_BAD_TYPE', 'ofp_header.type not supported.'],
  [1, 2, 'OFPBRC_BAD_STAT', 'ofp_stats_msg.type not supported.'],
  [1, 3, 'OFPBRC_BAD_VENDOR', 'Vendor not supported.'],
  [1, 4, 'OFPBRC_BAD_SUBTYPE', 'Vendor subtype not supported.'],
  [1, 5, 'OFPBRC_EPERM', 'Permissions error.'],
  [1, 6, 'OFPBRC_BAD_LEN', 'Wrong request length for type.'],
  [1, 7, 'OFPBRC_BUFFER_EMPTY', 'Specified buffer has already been used.'],
  [1, 8, 'OFPBRC_BUFFER_UNKNOWN', 'Specified buffer does not exist.'],
  [1, 9, 'OFPBRC_BAD_TABLE_ID', 'Specified table-id invalid or does not exist.'],
  [1, 10, 'OFPBRC_IS_SECONDARY', 'Denied because controller has secondary role.'],
  [1, 11, 'OFPBRC_BAD_PORT', 'Invalid or missing port.'],
  [1, 12, 'OFPBRC_BAD_PACKET', 'Invalid packet in packet-out.'],
  [1, 13, 'OFPBRC_MULTIPART_BUFFER_OVERFLOW', 'Multipart request overflowed the assigned buffer.'],
  [2, 0, 'OFPBAC_BAD_TYPE', 'Unknown or unsupported action type.'],
  [2, 1, 'OFPBAC_BAD_LEN', 'Length problem in actions.'],
  [2, 2, 'OFPBAC_BAD_VENDOR', 'Unknown experimenter id specified.'],
  [2, 3, 'OFPBAC_BAD_VENDOR_TYPE', 'Unknown action type for experimenter id.'],
  [2, 4, 'OFPBAC_BAD_OUT_PORT', 'Problem validating output port.'],
  [2, 5, 'OFPBAC_BAD_ARGUMENT', 'Bad action argument.'],
  [2, 6, 'OFPBAC_EPERM', 'Permissions error.'],
  [2, 7, 'OFPBAC_TOO_MANY', "Can't handle this many actions."],
  [2, 8, 'OFPBAC_BAD_QUEUE', 'Problem validating output queue.'],
  [2, 9, 'OFPBAC_BAD_OUT_GROUP', 'Invalid group id in output action.'],
  [2, 10, 'OFPBAC_MATCH_INCONSISTENT', "Action can't apply for this match or a prerequisite for use of this field is unmet."],
  [2, 11, 'OFPBAC_UNSUPPORTED_ORDER', 'Action order is unsupported for the action list in an Apply-Actions instruction.'],
  [2, 12, 'OFPBAC_BAD_TAG', 'Actions uses an unsupported tag/encap.'],
  [2, 13, 'OFPBAC_BAD_SET_TYPE', 'Action uses unknown or unsupported OXM or NXM field.'],
  [2, 14, 'OFPBAC_BAD_SET_LEN', 'Action references past the end of an OXM or NXM field, or uses a length of zero.'],
  [2, 15, 'OFPBAC_BAD_SET_ARGUMENT', 'Action sets a field to an invalid or unsupported value, or modifies a read-only field.'],
  [3, 0, 'OFPBIC_UNKNOWN_INST', 'Unknown instruction.'],
  [3, 1, 'OFPBIC_UNSUP_INST', 'Switch or table does not support the instruction.'],
  [3, 2, 'OFPBIC_BAD_TABLE_ID', 'Invalid Table-ID specified.'],
  [3, 3, 'OFPBIC_UNSUP_METADATA', 'Metadata value unsupported by datapath.'],
  [3, 4, 'OFPBIC_UNSUP_METADATA_MASK', 'Metadata mask value unsupported by datapath.'],
  [3, 5, 'OFPBIC_BAD_EXPERIMENTER', 'Unknown experimenter id specified.'],
  [3, 6, 'OFPBIC_BAD_EXP_TYPE', 'Unknown instruction for experimenter id.'],
  [3, 7, 'OFPBIC_BAD_LEN', 'Length problem in instructions.'],
  [3, 8, 'OFPBIC_EPERM', 'Permissions error.'],
  [4, 0, 'OFPBMC_BAD_TYPE', 'Unsupported match type specified by the match.'],
  [4, 1, 'OFPBMC_BAD_LEN', 'Length problem in match.'],
  [4, 2, 'OFPBMC_BAD_TAG', 'Match uses an unsupported tag/encap.'],
  [4, 3, 'OFPBMC_BAD_DL_ADDR_MASK', 'Unsupported datalink addr mask.'],
  [4, 4, 'OFPBMC_BAD_NW_ADDR_MASK', 'Unsupported network addr mask.'],
  [4, 5, 'OFPBMC_BAD_WILDCARDS', 'Unsupported wildcard specified in the match.'],
  [4, 6, 'OFPBMC_BAD_FIELD', 'Unsupported field in the match.'],
  [4, 7, 'OFPBMC_BAD_VALUE', 'Unsupported value in a match field.'],
  [4, 8, 'OFPBMC_BAD_MASK', 'Unsupported mask specified in the match.'],
  [4, 9, 'OFPBMC_BAD_PREREQ', 'A prerequisite was not met.'],
  [4, 10, 'OFPBMC_DUP_FIELD', 'A field type was duplicated.'],
  [4, 11, 'OFPBMC_EPERM', 'Permissions error.'],
  [5, 0, 'OFPFMFC_UNKNOWN', 'Unspecified error.'],
  [5, 1, 'OFPFMFC_TABLE_FULL', 'Flow not added because of full table(s).'],
  [5, 2, 'OFPFMFC_BAD_TABLE_ID', 'Table does not exist.'],
  [5, 3, 'OFPFMFC_OVERLAP', 'Attempted to add overlapping flow with CHECK_OVERLAP flag set.'],
  [5, 4, 'OFPFMFC_EPERM', 'Permissions error.'],
  [5, 5, 'OFPFMFC_BAD_TIMEOUT', 'Flow not added because of unsupported idle/hard timeout.'],
  [5, 6, 'OFPFMFC_BAD_COMMAND', 'Unsupported or unknown command.'],
  [5, 7, 'OFPFMFC_BAD_FLAGS', 'Unsupported or unknown flags.'],
  [6, 0, 'OFPGMFC_GROUP_EXISTS', 'Group not added because a group ADD attempted to replace an already-present group.'],
  [6, 1, 'OFPGMFC_INVALID_GROUP', 'Group not added because Group specified is invalid.'],
  [6, 2, 'OFPGMFC_WEIGHT_UNSUPPORTED', 'Switch does not support unequal load sharing with select groups.'],
  [6, 3, 'OFPGMFC_OUT_OF_GROUPS', 'The group table is full.'],
  [6, 4, 'OFPGMFC_OUT_OF_BUCKETS', 'The maximum number of action buckets for a group has been exceeded.'],
  [6, 5, 'OFPGMFC_CHAINING_UNSUPPORTED', 'Switch does not support groups that forward to groups.'],
  [6, 6, 'OFPGMFC_WATCH_UNSUPPORTED', 'This group cannot watch the watch_port or watch_group specified.'],
  [6, 7, 'OFPGMFC_LOOP', 'Group entry would cause a loop.'],
  [6, 8, 'OFPGMFC_UNKNOWN_GROUP', 'Group not modified because a group MODIFY attempted to modify a non-existent group.'],
  [6, 9, 'OFPGMFC_CHAINED_GROUP', 'Group not deleted because another group is forwarding to it.'],
  [6, 10, 'OFPGMFC_BAD_TYPE', 'Unsupported or unknown group type.'],
  [6, 11, 'OFPGMFC_BAD_COMMAND', 'Unsupported or unknown command.'],
  [6, 12, 'OFPGMFC_BAD_BUCKET', 'Error in bucket.'],
  [6, 13, 'OFPGMFC_BAD_WATCH', 'Error in watch port/group.'],
  [6, 14, 'OFPGMFC_EPERM', 'Permissions error.'],
  [7, 0, 'OFPPMFC_BAD_PORT', 'Specified port does not exist.'],
  [7, 1, 'OFPPMFC_BAD_HW_ADDR', 'Specified hardware address does not match the port number.'],
  [7, 2, 'OFPPMFC_BAD_CONFIG', 'Specified config is invalid.'],
  [7, 3, 'OFPPMFC_BAD_ADVERTISE', 'Specified advertise is invalid.'],
  [7, 4, 'OFPPMFC_EPERM', 'Permissions error.'],
  [8, 0, 'OFPTMFC_BAD_TABLE', 'Specified table does not exist.'],
  [8, 1, 'OFPTMFC_BAD_CONFIG', 'Specified config is invalid.'],
  [8, 2, 'OFPTMFC_EPERM', 'Permissions error.'],
  [9, 0, 'OFPQOFC_BAD_PORT', 'Invalid port (or port does not exist).'],
  [9, 1, 'OFPQOFC_BAD_QUEUE', 'Queue does not exist.'],
  [9, 2, 'OFPQOFC_EPERM', 'Permissions error.'],
  [10, 0, 'OFPSCFC_BAD_FLAGS', 'Specified flags is invalid.'],
  [10, 1, 'OFPSCFC_BAD_LEN', 'Specified len is invalid.'],
  [10, 2, 'OFPSCFC_EPERM', 'Permissions error.'],
  [11, 0, 'OFPRRFC_STALE', 'Stale Message: old generation_id.'],
  [11, 1, 'OFPRRFC_UNSUP', 'Controller role change unsupported.'],
  [11, 2, 'OFPRRFC_BAD_ROLE', 'Invalid role.'],
  [12, 0, 'OFPMMFC_UNKNOWN', 'Unspecified error.'],
  [12, 1, 'OFPMMFC_METER_EXISTS', 'Meter not added because a Meter ADD attempted to replace an existing Meter.'],
  [12, 2, 'OFPMMFC_INVALID_METER', 'Meter not added because meter specified is invalid.'],
  [12, 3, 'OFPMMFC_UNKNOWN_METER', 'Meter not modified because a Meter MODIFY attempted to modify a non-existent Meter.'],
  [12, 4, 'OFPMMFC_BAD_COMMAND', 'Unsupported or unknown command.'],
  [12, 5, 'OFPMMFC_BAD_FLAGS', 'Flag configuration unsupported.'],
  [12, 6, 'OFPMMFC_BAD_RATE', 'Rate unsupported.'],
  [12, 7, 'OFPMMFC_BAD_BURST', 'Burst size unsupported.'],
  [12, 8, 'OFPMMFC_BAD_BAND', 'Band unsupported.'],
  [12, 9, 'OFPMMFC_BAD_BAND_VALUE', 'Band value unsupported.'],
  [12, 10, 'OFPMMFC_OUT_OF_METERS', 'No more meters available.'],
  [12, 11, 'OFPMMFC_OUT_OF_BANDS', 'The maximum number of properties for a meter has been exceeded.'],
  [13, 0, 'OFPTFFC_BAD_TABLE', 'Specified table does not exist.'],
  [13, 1, 'OFPTFFC_BAD_METADATA', 'Invalid metadata mask.'],
  [13, 2, 'OFPBPC_BAD_TYPE', 'Unknown or unsupported property type.'],
  [13, 3, 'OFPBPC_BAD_LEN', 'Length problem in property.'],
  [13, 4, 'OFPBPC_BAD_VALUE', 'Unsupported property value.'],
  [13, 5, 'OFPTFFC_EPERM', 'Permissions error.'],
];

// [experimenter, exp_type, name, description].
const EXP: Array<['NX' | 'ONF', number, string, string]> = [
  ['NX', 2, 'NXBRC_NXM_INVALID', 'Invalid NXM flow match.'],
  ['NX', 3, 'NXBRC_NXM_BAD_TYPE', 'The nxm_type, or its combination with hasmask or length, is invalid or not implemented.'],
  ['NX', 4, 'NXBRC_MUST_BE_ZERO', 'Must-be-zero field had nonzero value.'],
  ['NX', 5, 'NXBRC_BAD_REASON', 'The reason in an ofp_port_status message is not valid.'],
  ['NX', 6, 'OFPMOFC_MONITOR_EXISTS', 'Monitor not added because a Monitor ADD attempted to replace an existing Monitor.'],
  ['NX', 7, 'OFPMOFC_BAD_FLAGS', 'Flag configuration unsupported.'],
  ['NX', 8, 'OFPMOFC_UNKNOWN_MONITOR', 'Monitor not modified because a Monitor MODIFY attempted to modify a non-existent Monitor.'],
  ['NX', 9, 'NXBRC_FM_BAD_EVENT', 'Bad event in an NXST_FLOW_MONITOR reply.'],
  ['NX', 10, 'NXBRC_UNENCODABLE_ERROR', 'The error that occurred cannot be represented in this OpenFlow version.'],
  ['NX', 11, 'NXBAC_MUST_BE_ZERO', 'Must-be-zero action argument had nonzero value.'],
  ['NX', 12, 'NXFMFC_HARDWARE', 'Generic hardware error.'],
  ['NX', 13, 'NXFMFC_BAD_TABLE_ID', 'A nonexistent table ID was specified in the flow_mod command field.'],
  ['NX', 15, 'NXBAC_BAD_CONJUNCTION', 'Conjunction action must be the only action present; conjunction(id, k/n) needs 1 <= k <= n and 2 <= n <= 64.'],
  ['NX', 16, 'NXTTMFC_BAD_COMMAND', 'The TLV table mod command is not recognized.'],
  ['NX', 17, 'NXTTMFC_BAD_OPT_LEN', 'The option length is not a valid option size for TLVs.'],
  ['NX', 18, 'NXTTMFC_BAD_FIELD_IDX', 'The field index is out of range for tun_metadata.'],
  ['NX', 19, 'NXTTMFC_TABLE_FULL', 'The total set of configured options exceeds the maximum supported.'],
  ['NX', 20, 'NXTTMFC_ALREADY_MAPPED', 'The field index is already mapped.'],
  ['NX', 21, 'NXTTMFC_DUP_ENTRY', 'The option TLV is already assigned to a different field.'],
  ['NX', 34, 'NXR_NOT_SUPPORTED', "This datapath doesn't support NXT_RESUME."],
  ['NX', 35, 'NXR_STALE', 'Continuation is stale.'],
  ['NX', 36, 'NXST_NOT_CONFIGURED', 'Protocol is not configured on this Open vSwitch instance.'],
  ['NX', 37, 'NXFMFC_INVALID_TLV_FIELD', 'Attempted to add a flow with an invalid variable length meta-flow field.'],
  ['NX', 38, 'NXTTMFC_INVALID_TLV_DEL', 'Attempted to delete a TLV mapping that is used by an active flow.'],
  ['NX', 39, 'NXBAC_BAD_HEADER_TYPE', 'Unsupported packet type in encap or decap.'],
  ['NX', 40, 'NXBAC_UNKNOWN_ED_PROP', 'Unrecognized encap or decap property.'],
  ['NX', 41, 'NXBAC_BAD_ED_PROP', 'Error in encap or decap property.'],
  ['NX', 42, 'NXBAC_CT_DATAPATH_SUPPORT', 'Action requires connection tracking support the datapath lacks.'],
  ['NX', 43, 'NXBMC_CT_DATAPATH_SUPPORT', 'Flow match requires connection tracking support the datapath lacks.'],
  ['NX', 44, 'NXTFFC_DUP_TABLE', 'Table specified multiple times.'],
  ['ONF', 2300, 'OFPBFC_UNKNOWN', 'Unspecified bundle error.'],
  ['ONF', 2301, 'OFPBFC_EPERM', 'Permissions error.'],
  ['ONF', 2302, 'OFPBFC_BAD_ID', "Bundle ID doesn't exist."],
  ['ONF', 2303, 'OFPBFC_BUNDLE_EXIST', 'Bundle ID already exists.'],
  ['ONF', 2304, 'OFPBFC_BUNDLE_CLOSED', 'Bundle ID is closed.'],
  ['ONF', 2305, 'OFPBFC_OUT_OF_BUNDLES', 'Too many bundle IDs.'],
  ['ONF', 2306, 'OFPBFC_BAD_TYPE', 'Unsupported or unknown message control type.'],
  ['ONF', 2307, 'OFPBFC_BAD_FLAGS', 'Unsupported, unknown, or inconsistent flags.'],
  ['ONF', 2308, 'OFPBFC_MSG_BAD_LEN', 'Length problem in included message.'],
  ['ONF', 2309, 'OFPBFC_MSG_BAD_XID', 'Inconsistent or duplicate XID.'],
  ['ONF', 2310, 'OFPBFC_MSG_UNSUP', 'Unsupported message in this bundle.'],
  ['ONF', 2311, 'OFPBFC_MSG_CONFLICT', 'Unsupported message combination in this bundle.'],
  ['ONF', 2312, 'OFPBFC_MSG_TOO_MANY', "Can't handle this many messages in bundle."],
  ['ONF', 2313, 'OFPBFC_MSG_FAILED', 'One message in bundle failed.'],
  ['ONF', 2314, 'OFPBFC_TIMEOUT', 'Bundle is taking too long.'],
  ['ONF', 2315, 'OFPBFC_BUNDLE_IN_PROGRESS', 'Bundle is locking the resource.'],
  ['ONF', 2360, 'OFPFMFC_BAD_PRIORITY', 'Unsupported priority value.'],
  ['ONF', 2370, 'OFPACFC_INVALID', 'One mask is invalid.'],
  ['ONF', 2371, 'OFPACFC_UNSUPPORTED', 'Requested configuration not supported.'],
  ['ONF', 2372, 'OFPACFC_EPERM', 'Permissions error.'],
  ['ONF', 2600, 'OFPBIC_DUP_INST', 'Duplicate instruction.'],
  ['ONF', 2640, 'OFPBRC_MULTIPART_REQUEST_TIMEOUT', 'Timeout during multipart request.'],
  ['ONF', 2641, 'OFPBRC_MULTIPART_REPLY_TIMEOUT', 'Timeout during multipart reply.'],
  ['ONF', 4250, 'OFPBAC_BAD_SET_MASK', 'Field in Set-Field action has Has-Mask bit set to 1.'],
  ['ONF', 4443, 'OFPBPC_TOO_MANY', "Can't handle this many properties."],
  ['ONF', 4444, 'OFPBPC_DUP_TYPE', 'A property type was duplicated.'],
  ['ONF', 4445, 'OFPBPC_BAD_EXPERIMENTER', 'Unknown experimenter id specified.'],
  ['ONF', 4446, 'OFPBPC_BAD_EXP_TYPE', 'Unknown exp_type for experimenter id.'],
  ['ONF', 4447, 'OFPBPC_BAD_EXP_VALUE', 'Unknown value for experimenter id.'],
  ['ONF', 4448, 'OFPBPC_EPERM', 'Permissions error.'],
];

const stdByKey = new Map(STD.map(([t, c, n, d]) => [t * 0x10000 + c, { name: n, description: d }]));
const expByKey = new Map(
  EXP.map(([v, t, n, d]) => [`${v === 'NX' ? NX_EXPERIMENTER : ONF_EXPERIMENTER}:${t}`, { name: n, description: d }]),
);

/** Readable name and description of an error; unknown codes get a numeric name. */
export function errorName(
  type: number,
  code: number,
  experimenter?: number,
): { name: string; description: string } {
  if (type === OFPET_EXPERIMENTER) {
    const hit = expByKey.get(`${experimenter ?? 0}:${code}`);
    if (hit) return hit;
    const vendor = `0x${(experimenter ?? 0).toString(16).padStart(8, '0')}`;
    return { name: `EXPERIMENTER(${vendor},${code})`, description: 'Unknown experimenter error.' };
  }
  const hit = stdByKey.get(type * 0x10000 + code);
  if (hit) return hit;
  return { name: `${ERROR_TYPE_NAMES[type] ?? `TYPE_${type}`}(${code})`, description: 'Unknown error code.' };
}

/** Details of an OFPT_ERROR message, decoded (see decodeError in messages.ts). */
export interface OfErrorInfo {
  /** xid of the error message: the xid of the request that failed. */
  xid: number;
  type: number;
  code: number;
  /** Set for experimenter errors (type 0xffff). */
  experimenter?: number;
  /** e.g. 'OFPBMC_BAD_PREREQ', 'OFPBFC_MSG_FAILED'. */
  name: string;
  typeName: string;
  description: string;
  /** Type of the message that failed (from the copy of it in the error data), if present. */
  failedType?: number;
  failedTypeName?: string;
  /** For a failure inside a bundle: the type of the message the bundle_add carried. */
  failedInnerType?: number;
  failedInnerTypeName?: string;
  /** Bytes of the failed request (OVS sends it whole). */
  data: Buffer;
}

/** An OpenFlow error reply from the switch, with readable names. Callers branch on `name`. */
export class OpenFlowError extends Error {
  readonly info: OfErrorInfo;
  constructor(info: OfErrorInfo, context?: string) {
    const failed = info.failedInnerType !== undefined
      ? ` (failed request: bundle_add of ${info.failedInnerTypeName ?? info.failedInnerType}, xid ${info.xid})`
      : info.failedTypeName !== undefined
        ? ` (failed request: ${info.failedTypeName}, xid ${info.xid})`
        : ` (xid ${info.xid})`;
    super(`${context ? `${context}: ` : ''}OpenFlow error ${info.typeName}/${info.name}: ${info.description}${failed}`);
    this.name = 'OpenFlowError';
    this.info = info;
  }
  /** Error code name, e.g. 'OFPBAC_BAD_OUT_GROUP'. */
  get code(): string {
    return this.info.name;
  }
}
