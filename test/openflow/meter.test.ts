// Meters (OF1.3): meter_mod with drop bands, and the meter instruction in flows.
import { describe, expect, it } from 'vitest';
import { decodeMeterMod, encodeMeterMod, METER_FLAGS } from '../../src/openflow/messages.js';
import { decodeInstructions, encodeInstructions } from '../../src/openflow/instructions.js';
import { FlowModEncoder } from '../../src/openflow/flowenc.js';
import { formatInstructions } from '../../src/openflow/printer.js';
import type { Instruction } from '../../src/openflow/types.js';

describe('meters', () => {
  it('encodes a meter_mod with a drop band as OF1.3 lays it out, and decodes it back', () => {
    const buf = encodeMeterMod(7, { command: 'add', flags: METER_FLAGS.pktps | METER_FLAGS.burst, meterId: 1, bands: [{ rate: 40, burstSize: 40 }] });
    // header (version 4, type 29, length 32), command 0, flags 6, meter 1, band: drop, 16 bytes, rate 40, burst 40.
    expect(buf.toString('hex')).toBe('041d002000000007' + '0000' + '0006' + '00000001' + '0001' + '0010' + '00000028' + '00000028' + '00000000');
    expect(decodeMeterMod(buf)).toEqual({ xid: 7, command: 'add', flags: 6, meterId: 1, bands: [{ rate: 40, burstSize: 40 }] });
  });

  it('puts the meter instruction first, in both encoders, and prints it as ovs-ofctl does', () => {
    const list: Instruction[] = [{ type: 'apply_actions', actions: [{ type: 'output', port: 'controller', maxLen: 128 }] }, { type: 'meter', meterId: 1 }];
    const bytes = encodeInstructions(list);
    expect(bytes.subarray(0, 8).toString('hex')).toBe('0006000800000001');
    expect(new FlowModEncoder().instructions(list).equals(bytes)).toBe(true);
    const back = decodeInstructions(bytes);
    expect(back[0]).toEqual({ type: 'meter', meterId: 1 });
    expect(formatInstructions(back)).toBe('meter:1,CONTROLLER:128');
    expect(() => encodeInstructions([{ type: 'meter', meterId: 0 }])).toThrow(/meter id/);
  });
});
