import { describe, expect, it } from 'vitest';
import {
  ByteWriter, EMPTY_MATCH, MultipartAssembler, OFPMP, OFPMPF_REPLY_MORE, OFPT, OFPTT_ALL, OFPBF_ATOMIC, OFPBF_ORDERED,
  OpenFlowDecodeError, decodeBundleAdd, decodeBundleCtrl, decodeError, decodeFeaturesReply, decodeFlowMod,
  decodeFlowStatsBody, decodeFlowStatsRequest, decodeGroupMod, decodeHeader, decodeHello, decodeMultipartReply,
  decodePacketIn, decodePacketOut, decodePortDescBody, encodeBundleAdd, encodeBundleCtrl, encodeError,
  encodeFeaturesReply, encodeFlowMod, encodeFlowStatsRequest, encodeGroupMod, encodeHello, encodeMultipartReply,
  encodePacketIn, encodePacketOut, writeBundleAddFlowMod, writeFlowStats, writePortDesc, type FlowStats, type PortDesc,
} from '../../src/openflow/messages.js';
import { OpenFlowError } from '../../src/openflow/errors.js';
import { NX_VENDOR_ID as NX_EXPERIMENTER, ONF_VENDOR_ID as ONF_EXPERIMENTER, OFPP } from '../../src/openflow/consts.js';

// A match on eth_type=0x0800 (OXM class 0x8000, field 5, length 2), padded to 8 bytes.
const IP_MATCH = Buffer.from('0001000a80000a020800000000000000', 'hex');
// apply_actions(output:1)
const OUTPUT_1 = Buffer.from('000400180000000000000010000000010000000000000000', 'hex');

describe('header and hello', () => {
  it('announces only OpenFlow 1.3 in the version bitmap', () => {
    const hello = encodeHello(42);
    expect(decodeHeader(hello)).toEqual({ version: 4, type: OFPT.HELLO, length: 16, xid: 42 });
    expect(decodeHello(hello).versions).toEqual([4]);
  });

  it('reads a peer bitmap with several versions (OVS offers 1.0, 1.3, 1.4)', () => {
    const hello = encodeHello(1, [1, 4, 5]);
    const h = decodeHello(hello);
    expect(h.version).toBe(5);
    expect(h.versions).toEqual([1, 4, 5]);
  });

  it('without a bitmap, assumes every version up to the header version', () => {
    const bare = Buffer.from('0300000800000001', 'hex');
    expect(decodeHello(bare).versions).toEqual([1, 2, 3]);
  });

  it('rejects a truncated header', () => {
    expect(() => decodeHeader(Buffer.from([4, 0, 0]))).toThrow(OpenFlowDecodeError);
  });

  it('round-trips features_reply', () => {
    const f = { xid: 3, datapathId: 0xfedcba9876543210n, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0x4f };
    expect(decodeFeaturesReply(encodeFeaturesReply(f))).toEqual(f);
  });
});

describe('flow_mod', () => {
  it('round-trips every field', () => {
    const fm = {
      command: 'modify_strict' as const, tableId: 7, priority: 1234, cookie: 0x1122334455667788n,
      cookieMask: 0xffff0000ffff0000n, idleTimeout: 30, hardTimeout: 300, flags: 5, bufferId: 0xffffffff,
      outPort: 9, outGroup: 4, match: IP_MATCH, instructions: OUTPUT_1,
    };
    const d = decodeFlowMod(encodeFlowMod(99, fm));
    expect(d).toEqual({ ...fm, xid: 99, match: IP_MATCH, instructions: OUTPUT_1 });
  });

  it('defaults delete to all tables and add to table 0, priority 0x8000, match-all', () => {
    const del = decodeFlowMod(encodeFlowMod(1, { command: 'delete', cookie: 5n, cookieMask: 0xffn }));
    expect(del.tableId).toBe(OFPTT_ALL);
    expect(del.outPort).toBe(OFPP.ANY);
    expect(del.match).toEqual(EMPTY_MATCH);
    const add = decodeFlowMod(encodeFlowMod(1, { command: 'add' }));
    expect([add.tableId, add.priority, add.instructions.length]).toEqual([0, 0x8000, 0]);
  });

  it('rejects an unknown command', () => {
    expect(() => encodeFlowMod(1, { command: 'replace' as never })).toThrow(/unknown flow_mod command 'replace'/);
  });
});

describe('group_mod, packet_out, packet_in', () => {
  it('round-trips a select group with weighted buckets', () => {
    const gm = {
      command: 'add' as const, type: 'select' as const, groupId: 17,
      buckets: [
        { weight: 3, watchPort: OFPP.ANY, watchGroup: 0xffffffff, actions: OUTPUT_1.subarray(8) },
        { weight: 1, watchPort: OFPP.ANY, watchGroup: 0xffffffff, actions: Buffer.alloc(0) },
      ],
    };
    expect(decodeGroupMod(encodeGroupMod(5, gm))).toEqual({ ...gm, xid: 5 });
  });

  it('round-trips packet_out', () => {
    const po = { bufferId: 0xffffffff, inPort: OFPP.CONTROLLER, actions: OUTPUT_1.subarray(8), data: Buffer.from('abcdef', 'hex') };
    expect(decodePacketOut(encodePacketOut(8, po))).toEqual({ ...po, xid: 8 });
  });

  it('decodes packet_in with its match and data after the 2 pad bytes', () => {
    const pin = { xid: 0, bufferId: 0xffffffff, totalLen: 3, reason: 1, tableId: 2, cookie: 9n, match: IP_MATCH, data: Buffer.from([1, 2, 3]) };
    const d = decodePacketIn(encodePacketIn(pin));
    expect(d).toEqual({ ...pin, reasonName: 'action' });
  });
});

describe('multipart', () => {
  const stats = (i: number): FlowStats => ({
    tableId: i % 3, durationSec: i, durationNsec: 5, priority: 100 + i, idleTimeout: 0, hardTimeout: 0, flags: 0,
    cookie: BigInt(i), packetCount: 10n, byteCount: 600n, match: i % 2 ? IP_MATCH : EMPTY_MATCH, instructions: OUTPUT_1,
  });

  it('round-trips a flow stats request filtered by table and cookie/mask', () => {
    const f = { tableId: 4, outPort: OFPP.ANY, outGroup: 0xffffffff, cookie: 0xab00n, cookieMask: 0xff00n, match: IP_MATCH };
    expect(decodeFlowStatsRequest(encodeFlowStatsRequest(6, f))).toEqual({ ...f, xid: 6 });
  });

  it('reassembles a flow stats reply split over several messages with REPLY_MORE', () => {
    const bodies = [0, 1, 2].map((part) => {
      const w = new ByteWriter(16);
      for (let i = part * 10; i < part * 10 + 10; i++) writeFlowStats(w, stats(i));
      return Buffer.from(w.view());
    });
    const asm = new MultipartAssembler();
    const msgs = bodies.map((body, i) =>
      encodeMultipartReply({ xid: 77, mpType: OFPMP.FLOW, flags: i < 2 ? OFPMPF_REPLY_MORE : 0, body }));
    expect(asm.add(decodeMultipartReply(msgs[0]))).toBeUndefined();
    expect(asm.add(decodeMultipartReply(msgs[1]))).toBeUndefined();
    expect(asm.pending).toBe(1);
    const done = asm.add(decodeMultipartReply(msgs[2]));
    expect(done?.mpType).toBe(OFPMP.FLOW);
    const flows = decodeFlowStatsBody(done!.body);
    expect(flows).toHaveLength(30);
    expect(flows.map((f) => f.cookie)).toEqual([...Array(30).keys()].map(BigInt));
    expect(flows[7]).toEqual(stats(7));
    expect(asm.pending).toBe(0);
  });

  it('keeps replies of different xids apart', () => {
    const asm = new MultipartAssembler();
    const part = (xid: number, more: boolean) =>
      decodeMultipartReply(encodeMultipartReply({ xid, mpType: OFPMP.FLOW, flags: more ? 1 : 0, body: Buffer.from([xid]) }));
    asm.add(part(1, true));
    asm.add(part(2, true));
    expect(asm.add(part(1, false))?.body).toEqual(Buffer.from([1, 1]));
    expect(asm.add(part(2, false))?.body).toEqual(Buffer.from([2, 2]));
  });

  it('rejects a flow stats entry whose length overruns the body', () => {
    const w = new ByteWriter();
    writeFlowStats(w, stats(1));
    const body = Buffer.from(w.view());
    expect(() => decodeFlowStatsBody(body.subarray(0, body.length - 8))).toThrow(/bad flow stats entry length/);
  });

  it('round-trips port descriptions', () => {
    const ports: PortDesc[] = [
      { portNo: 1, hwAddr: '0a:00:00:00:00:01', name: 'veth-c1', config: 0, state: 4, curr: 0x840, advertised: 0, supported: 0, peer: 0, currSpeed: 10000000, maxSpeed: 0 },
      { portNo: OFPP.LOCAL, hwAddr: 'aa:bb:cc:dd:ee:ff', name: 'br0', config: 1, state: 1, curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 },
    ];
    const w = new ByteWriter();
    for (const p of ports) writePortDesc(w, p);
    expect(decodePortDescBody(Buffer.from(w.view()))).toEqual(ports);
  });
});

describe('ONF bundles for OpenFlow 1.3', () => {
  it('round-trips bundle_ctrl', () => {
    const bc = { xid: 11, bundleId: 0x77, type: 'commit_request' as const, flags: OFPBF_ATOMIC | OFPBF_ORDERED };
    const buf = encodeBundleCtrl(11, bc);
    expect(buf.readUInt32BE(8)).toBe(ONF_EXPERIMENTER);
    expect(buf.readUInt32BE(12)).toBe(2300);
    expect(decodeBundleCtrl(buf)).toEqual(bc);
  });

  it('wraps a flow_mod in bundle_add with the same xid inside and out', () => {
    const w = new ByteWriter(8);
    writeBundleAddFlowMod(w, 1234, 9, 3, { command: 'add', match: IP_MATCH, instructions: OUTPUT_1 });
    const buf = Buffer.from(w.view());
    const d = decodeBundleAdd(buf);
    expect(d).toMatchObject({ xid: 1234, bundleId: 9, flags: 3 });
    expect(decodeFlowMod(d.message)).toMatchObject({ xid: 1234, match: IP_MATCH, instructions: OUTPUT_1 });
    expect(encodeBundleAdd(1234, 9, 3, d.message)).toEqual(buf);
  });
});

describe('error decoding', () => {
  const flowMod = encodeFlowMod(21, { command: 'add', match: IP_MATCH });

  it('names a standard error and the request that failed', () => {
    const info = decodeError(encodeError(21, 4, 9, flowMod));
    expect(info).toMatchObject({ xid: 21, typeName: 'BAD_MATCH', name: 'OFPBMC_BAD_PREREQ', failedTypeName: 'FLOW_MOD' });
    expect(new OpenFlowError(info).message).toBe(
      'OpenFlow error BAD_MATCH/OFPBMC_BAD_PREREQ: A prerequisite was not met. (failed request: FLOW_MOD, xid 21)');
  });

  it('names ONF bundle errors and the message inside a failed bundle_add', () => {
    const add = encodeBundleAdd(21, 1, 3, flowMod);
    const inner = decodeError(encodeError(21, 2, 9, add));
    expect(inner).toMatchObject({ name: 'OFPBAC_BAD_OUT_GROUP', failedTypeName: 'BUNDLE_ADD_MESSAGE', failedInnerTypeName: 'FLOW_MOD' });
    const commit = encodeBundleCtrl(30, { bundleId: 1, type: 'commit_request', flags: 3 });
    const failed = decodeError(encodeError(30, 0xffff, 2313, commit, ONF_EXPERIMENTER));
    expect(failed).toMatchObject({ experimenter: ONF_EXPERIMENTER, name: 'OFPBFC_MSG_FAILED', failedTypeName: 'BUNDLE_CONTROL' });
  });

  it('names Nicira experimenter errors', () => {
    expect(decodeError(encodeError(1, 0xffff, 15, flowMod, NX_EXPERIMENTER)).name).toBe('NXBAC_BAD_CONJUNCTION');
  });

  it('gives unknown codes a numeric name rather than failing', () => {
    expect(decodeError(encodeError(1, 5, 99, flowMod)).name).toBe('FLOW_MOD_FAILED(99)');
    expect(decodeError(encodeError(1, 0xffff, 7, flowMod, 0x1234)).name).toBe('EXPERIMENTER(0x00001234,7)');
  });

  it('keeps the text of a hello failure', () => {
    const info = decodeError(encodeError(0, 0, 0, Buffer.from('We support versions 0x04 to 0x04')));
    expect(info.name).toBe('OFPHFC_INCOMPATIBLE');
    expect(info.description).toContain('We support versions 0x04');
  });
});

describe('ByteWriter', () => {
  it('grows past its initial size and refuses messages over 64 KiB', () => {
    const w = new ByteWriter(4);
    const start = w.startMessage(OFPT.ECHO_REQUEST, 1);
    w.zeros(70_000);
    expect(w.pos).toBe(70_008);
    expect(() => w.endMessage(start)).toThrow(/too long/);
  });
});
