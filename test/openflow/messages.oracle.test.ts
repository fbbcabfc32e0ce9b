// ovs-ofctl ofp-print as the oracle: it decodes the bytes we encode into the text we expect.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  encodeBarrierRequest, encodeBundleAdd, encodeBundleCtrl, encodeEchoRequest, encodeFeaturesRequest, encodeFlowMod,
  encodeFlowStatsRequest, encodeGroupMod, encodeHello, encodePacketOut, encodePortDescRequest, encodeSetConfig,
  OFPBF_ATOMIC, OFPBF_ORDERED,
} from '../../src/openflow/messages.js';
import { OFPP } from '../../src/openflow/consts.js';

function ofpPrint(buf: Buffer): string {
  return execFileSync('ovs-ofctl', ['ofp-print', buf.toString('hex')], { encoding: 'utf8' }).trim();
}

// output:2 as an encoded action, and apply_actions(output:2) as an instruction.
const OUTPUT_2 = Buffer.from('00000010000000020000000000000000', 'hex');
const APPLY_OUTPUT_2 = Buffer.concat([Buffer.from('0004001800000000', 'hex'), OUTPUT_2]);

describe('ovs-ofctl ofp-print decodes what we encode', () => {
  it('hello with only OpenFlow 1.3 in its bitmap', () => {
    expect(ofpPrint(encodeHello(1))).toBe('OFPT_HELLO (OF1.3) (xid=0x1):\n version bitmap: 0x04');
  });

  it('echo, features, barrier, set_config, port_desc', () => {
    expect(ofpPrint(encodeEchoRequest(2))).toBe('OFPT_ECHO_REQUEST (OF1.3) (xid=0x2): 0 bytes of payload');
    expect(ofpPrint(encodeFeaturesRequest(3))).toBe('OFPT_FEATURES_REQUEST (OF1.3) (xid=0x3):');
    expect(ofpPrint(encodeBarrierRequest(4))).toBe('OFPT_BARRIER_REQUEST (OF1.3) (xid=0x4):');
    expect(ofpPrint(encodeSetConfig(5))).toBe('OFPT_SET_CONFIG (OF1.3) (xid=0x5): frags=normal miss_send_len=65535');
    expect(ofpPrint(encodePortDescRequest(6))).toBe('OFPST_PORT_DESC request (OF1.3) (xid=0x6): port=ANY');
  });

  it('flow_mod add with table, priority, cookie, timeouts, flags and instructions', () => {
    const buf = encodeFlowMod(7, {
      command: 'add', tableId: 3, priority: 100, cookie: 0x1234n, idleTimeout: 10, hardTimeout: 20, flags: 1,
      instructions: APPLY_OUTPUT_2,
    });
    expect(ofpPrint(buf)).toBe(
      'OFPT_FLOW_MOD (OF1.3) (xid=0x7): ADD table:3 priority=100 cookie:0x1234 idle:10 hard:20 send_flow_rem actions=output:2');
  });

  it('flow_mod delete (all tables) by cookie/mask, delete_strict and modify', () => {
    expect(ofpPrint(encodeFlowMod(8, { command: 'delete', cookie: 0x100n, cookieMask: 0xff00n }))).toBe(
      'OFPT_FLOW_MOD (OF1.3) (xid=0x8): DEL table:255 cookie:0x100/0xff00 actions=drop');
    expect(ofpPrint(encodeFlowMod(9, { command: 'delete_strict', tableId: 2, priority: 5, outPort: 3 }))).toBe(
      'OFPT_FLOW_MOD (OF1.3) (xid=0x9): DEL_STRICT table:2 priority=5 out_port:3 actions=drop');
    expect(ofpPrint(encodeFlowMod(10, { command: 'modify', tableId: 1, instructions: APPLY_OUTPUT_2 }))).toBe(
      'OFPT_FLOW_MOD (OF1.3) (xid=0xa): MOD table:1 actions=output:2');
  });

  it('flow stats request filtered by table', () => {
    expect(ofpPrint(encodeFlowStatsRequest(11, { tableId: 1, cookie: 5n, cookieMask: 0xffn }))).toBe(
      'OFPST_FLOW request (OF1.3) (xid=0xb): table=1');
  });

  it('group_mod select with weighted buckets', () => {
    const buf = encodeGroupMod(12, {
      command: 'add', type: 'select', groupId: 7, buckets: [{ weight: 5, actions: OUTPUT_2 }, { actions: OUTPUT_2 }],
    });
    expect(ofpPrint(buf)).toBe(
      'OFPT_GROUP_MOD (OF1.3) (xid=0xc):\n ADD group_id=7,type=select,bucket=weight:5,actions=output:2,bucket=actions=output:2');
  });

  it('packet_out from the controller port', () => {
    const buf = encodePacketOut(13, { inPort: OFPP.CONTROLLER, actions: OUTPUT_2, data: Buffer.alloc(60) });
    expect(ofpPrint(buf).split('\n')[0]).toBe('OFPT_PACKET_OUT (OF1.3) (xid=0xd): in_port=CONTROLLER actions=output:2 data_len=60');
  });

  it('ONF bundle control and bundle add (OpenFlow 1.3 experimenter messages)', () => {
    expect(ofpPrint(encodeBundleCtrl(14, { bundleId: 5, type: 'open_request', flags: OFPBF_ATOMIC | OFPBF_ORDERED }))).toBe(
      'ONFT_BUNDLE_CONTROL (OF1.3) (xid=0xe):\n bundle_id=0x5 type=OPEN_REQUEST flags=atomic ordered');
    expect(ofpPrint(encodeBundleCtrl(15, { bundleId: 5, type: 'discard_request', flags: 0 }))).toBe(
      'ONFT_BUNDLE_CONTROL (OF1.3) (xid=0xf):\n bundle_id=0x5 type=DISCARD_REQUEST flags=0');
    const fm = encodeFlowMod(16, { command: 'add', priority: 9, instructions: APPLY_OUTPUT_2 });
    expect(ofpPrint(encodeBundleAdd(16, 5, 3, fm))).toBe(
      'ONFT_BUNDLE_ADD_MESSAGE (OF1.3) (xid=0x10):\n bundle_id=0x5 flags=atomic ordered\n' +
      'OFPT_FLOW_MOD (OF1.3) (xid=0x10): ADD priority=9 actions=output:2');
  });
});
