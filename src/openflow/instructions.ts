/** OpenFlow 1.3 instructions (ofp_instruction_*): encode and decode. */
import { decodeActions, encodeActions } from './actions.js';
import { OFPIT } from './consts.js';
import { OpenFlowCodecError, type Instruction } from './types.js';

/** Wire bytes of one instruction. */
export function encodeInstruction(i: Instruction): Buffer {
  switch (i.type) {
    case 'goto_table': {
      if (!Number.isInteger(i.table) || i.table < 0 || i.table > 254) {
        throw new OpenFlowCodecError(`goto_table table must be 0..254, got ${i.table}`);
      }
      const b = Buffer.alloc(8);
      b.writeUInt16BE(OFPIT.GOTO_TABLE, 0);
      b.writeUInt16BE(8, 2);
      b.writeUInt8(i.table, 4);
      return b;
    }
    case 'write_metadata': {
      const b = Buffer.alloc(24);
      b.writeUInt16BE(OFPIT.WRITE_METADATA, 0);
      b.writeUInt16BE(24, 2);
      b.writeBigUInt64BE(BigInt.asUintN(64, i.metadata), 8);
      b.writeBigUInt64BE(BigInt.asUintN(64, i.mask), 16);
      return b;
    }
    case 'apply_actions':
    case 'write_actions': {
      const actions = encodeActions(i.actions);
      const b = Buffer.alloc(8 + actions.length);
      b.writeUInt16BE(i.type === 'apply_actions' ? OFPIT.APPLY_ACTIONS : OFPIT.WRITE_ACTIONS, 0);
      b.writeUInt16BE(b.length, 2);
      actions.copy(b, 8);
      return b;
    }
    case 'meter': {
      if (!Number.isInteger(i.meterId) || i.meterId < 1 || i.meterId > 0xffff0000) throw new OpenFlowCodecError(`meter id must be 1..0xffff0000, got ${i.meterId}`);
      const b = Buffer.alloc(8);
      b.writeUInt16BE(OFPIT.METER, 0);
      b.writeUInt16BE(8, 2);
      b.writeUInt32BE(i.meterId, 4);
      return b;
    }
    case 'clear_actions': {
      const b = Buffer.alloc(8);
      b.writeUInt16BE(OFPIT.CLEAR_ACTIONS, 0);
      b.writeUInt16BE(8, 2);
      return b;
    }
    default: {
      const t: never = i;
      throw new OpenFlowCodecError(`unknown instruction ${JSON.stringify(t)}`);
    }
  }
}

/** Position of each instruction in OpenFlow's fixed execution order, which OVS also encodes in. */
const ORDER: Record<Instruction['type'], number> = {
  meter: -1,
  apply_actions: 0,
  clear_actions: 1,
  write_actions: 2,
  write_metadata: 3,
  goto_table: 4,
};

/** Wire bytes of an instruction list, in execution order (the order OVS itself encodes). */
export function encodeInstructions(list: Instruction[]): Buffer {
  const sorted = list.length > 1 ? [...list].sort((a, b) => ORDER[a.type] - ORDER[b.type]) : list;
  return Buffer.concat(sorted.map(encodeInstruction));
}

/** Decodes an instruction list occupying all of `buf`. Unknown instruction types throw. */
export function decodeInstructions(buf: Buffer): Instruction[] {
  const out: Instruction[] = [];
  let p = 0;
  while (p < buf.length) {
    if (p + 4 > buf.length) throw new OpenFlowCodecError(`truncated instruction header at offset ${p}`);
    const type = buf.readUInt16BE(p);
    const len = buf.readUInt16BE(p + 2);
    if (len < 8 || len % 8 !== 0 || p + len > buf.length) {
      throw new OpenFlowCodecError(`instruction at offset ${p} (type ${type}) has invalid length ${len}`);
    }
    const b = buf.subarray(p, p + len);
    switch (type) {
      case OFPIT.GOTO_TABLE:
        out.push({ type: 'goto_table', table: b.readUInt8(4) });
        break;
      case OFPIT.WRITE_METADATA:
        out.push({ type: 'write_metadata', metadata: b.readBigUInt64BE(8), mask: b.readBigUInt64BE(16) });
        break;
      case OFPIT.APPLY_ACTIONS:
        out.push({ type: 'apply_actions', actions: decodeActions(b.subarray(8)) });
        break;
      case OFPIT.WRITE_ACTIONS:
        out.push({ type: 'write_actions', actions: decodeActions(b.subarray(8)) });
        break;
      case OFPIT.CLEAR_ACTIONS:
        out.push({ type: 'clear_actions' });
        break;
      case OFPIT.METER:
        out.push({ type: 'meter', meterId: b.readUInt32BE(4) });
        break;
      default:
        throw new OpenFlowCodecError(`unsupported instruction type ${type} at offset ${p}`);
    }
    p += len;
  }
  return out;
}
