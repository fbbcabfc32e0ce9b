/**
 * Batch flow_mod encoding: turns FlowChange objects into flow_mod fields for the message writer,
 * memoizing the codec's bytes of actions that repeat across flows (output ports, set_field of a
 * tunnel id or VTEP address, goto_table...). Large batches mostly repeat a few actions, and this
 * halves the encoding cost. The codec modules stay the only source of wire formats.
 */
import { encodeAction } from './actions.js';
import { encodeInstruction } from './instructions.js';
import { encodeMatch } from './match.js';
import { OFPIT } from './consts.js';
import type { FlowChange } from './client.js';
import type { FlowMod } from './messages.js';
import type { Action, Instruction } from './types.js';

const MAX_CACHE = 65_536;

// OpenFlow's fixed instruction execution order, in which OVS (and instructions.ts) encode them.
const EXECUTION_ORDER: Record<Instruction['type'], number> = {
  meter: -1,
  apply_actions: 0,
  clear_actions: 1,
  write_actions: 2,
  write_metadata: 3,
  goto_table: 4,
};

/** Cache key of an action whose bytes depend only on a few scalar properties, else undefined. */
function actionKey(a: Action): string | undefined {
  switch (a.type) {
    case 'output':
      return `o${String(a.port)}/${a.maxLen ?? ''}`;
    case 'set_field': {
      const f = a.field;
      if (f.field === 'raw') return undefined;
      const mask = 'mask' in f && f.mask !== undefined ? `/${String(f.mask)}` : '';
      return `s${f.field}${'index' in f ? f.index : ''}=${String(f.value)}${mask}`;
    }
    case 'group':
      return `g${a.groupId}`;
    case 'resubmit':
      return `r${String(a.port ?? '')}/${a.table ?? ''}`;
    case 'dec_ttl':
    case 'pop_vlan':
      return a.type;
    default:
      return undefined;
  }
}

export class FlowModEncoder {
  private readonly actions = new Map<string, Buffer>();
  private readonly outputs = new Map<string | number, Buffer>();
  private readonly setFields = new Map<string, Map<string | number | bigint, Buffer>>();

  /** flow_mod fields with match and instructions encoded (throws the codec's error on bad input). */
  toFlowMod(c: FlowChange): FlowMod {
    return {
      command: c.command,
      tableId: c.table,
      priority: c.priority,
      cookie: c.cookie,
      cookieMask: c.cookieMask,
      idleTimeout: c.idleTimeout,
      hardTimeout: c.hardTimeout,
      flags: c.flags,
      outPort: c.outPort,
      outGroup: c.outGroup,
      match: c.match ? encodeMatch(c.match) : undefined,
      instructions: c.instructions ? this.instructions(c.instructions) : undefined,
    };
  }

  /** Wire bytes of an instruction list; same bytes as encodeInstructions() (execution order). */
  instructions(list: Instruction[]): Buffer {
    if (list.length === 1) return this.instruction(list[0]);
    const sorted = [...list].sort((a, b) => EXECUTION_ORDER[a.type] - EXECUTION_ORDER[b.type]);
    return Buffer.concat(sorted.map((i) => this.instruction(i)));
  }

  private instruction(i: Instruction): Buffer {
    if (i.type !== 'apply_actions' && i.type !== 'write_actions') return encodeInstruction(i);
    const parts = i.actions.map((a) => this.action(a));
    let len = 8;
    for (const p of parts) len += p.length;
    const out = Buffer.allocUnsafe(len);
    out.writeUInt16BE(i.type === 'apply_actions' ? OFPIT.APPLY_ACTIONS : OFPIT.WRITE_ACTIONS, 0);
    out.writeUInt16BE(len, 2);
    out.writeUInt32BE(0, 4);
    let off = 8;
    for (const p of parts) {
      p.copy(out, off);
      off += p.length;
    }
    return out;
  }

  private action(a: Action): Buffer {
    // Fast paths without building a string key: output to a port, set_field of an unmasked field.
    if (a.type === 'output' && a.maxLen === undefined) return this.memo(this.outputs, a.port, a);
    if (a.type === 'set_field' && a.field.field !== 'raw' && !('mask' in a.field && a.field.mask !== undefined)) {
      const f = a.field;
      const name = f.field === 'reg' ? `reg${f.index}` : f.field;
      let byValue = this.setFields.get(name);
      if (!byValue) {
        byValue = new Map();
        this.setFields.set(name, byValue);
      }
      return this.memo(byValue, f.value, a);
    }
    const key = actionKey(a);
    return key === undefined ? encodeAction(a) : this.memo(this.actions, key, a);
  }

  private memo<K>(cache: Map<K, Buffer>, key: K, a: Action): Buffer {
    let bytes = cache.get(key);
    if (!bytes) {
      bytes = encodeAction(a);
      if (cache.size >= MAX_CACHE) cache.clear();
      cache.set(key, bytes);
    }
    return bytes;
  }
}
