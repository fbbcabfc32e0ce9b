// Property-based: the OpenFlow decoders, given random bytes or real encodings that were
// truncated, flipped or re-lengthed, return or throw the codec's own errors and nothing else; and
// a connection fed such messages by its switch stays up and keeps answering.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeActions, encodeActions } from '../../src/openflow/actions.js';
import { OpenFlowConnection } from '../../src/openflow/connection.js';
import { Framer } from '../../src/openflow/framer.js';
import { decodeInstructions, encodeInstructions } from '../../src/openflow/instructions.js';
import { decodeMatch, encodeMatch } from '../../src/openflow/match.js';
import {
  MultipartAssembler, OFPT, OpenFlowDecodeError, decodeBundleAdd, decodeBundleCtrl, decodeError, decodeFeaturesReply,
  decodeFlowMod, decodeFlowStatsBody, decodeFlowStatsRequest, decodeGroupMod, decodeHeader, decodeHello, decodeMultipartReply,
  decodePacketIn, decodePacketOut, decodePortDescBody, echoData, encodeBarrierReply, encodeBundleAdd, encodeBundleCtrl,
  encodeEchoReply, encodeError, encodeFeaturesReply, encodeFlowMod, encodeFlowStatsRequest, encodeGroupMod, encodeHello,
  encodeMultipartReply, encodePacketIn, encodePacketOut,
} from '../../src/openflow/messages.js';
import { OpenFlowCodecError, type Action, type Match } from '../../src/openflow/types.js';
import { mutated, mutatedAny, onlyThrows } from '../common/mutate.js';

const CODEC_ERRORS = [OpenFlowDecodeError, OpenFlowCodecError];

const match: Match = [
  { field: 'in_port', value: 3 },
  { field: 'eth_type', value: 0x86dd },
  { field: 'ipv6_dst', value: 'fd00::7' },
  { field: 'reg', index: 9, value: 123 },
  { field: 'tunnel_id', value: 5000n },
];
const actions: Action[] = [
  { type: 'output', port: 7 },
  { type: 'set_field', field: { field: 'tun_ipv4_dst', value: '192.0.2.10' } },
  { type: 'load', dst: { field: 'reg', index: 0, ofs: 8, nBits: 8 }, value: 0xabn },
  { type: 'move', src: { field: 'ipv4_src' }, dst: { field: 'reg', index: 2 } },
  { type: 'ct', commit: true, zone: 9, table: 4, actions: [{ type: 'nat', kind: 'dst', ipMin: '10.0.0.1', portMin: 80 }] },
  { type: 'resubmit', port: 'local', table: 0 },
  { type: 'note', bytes: Buffer.from([1, 2, 3]) },
];
const matchBytes = encodeMatch(match);
const actionBytes = encodeActions(actions);
const instructionBytes = encodeInstructions([{ type: 'apply_actions', actions }, { type: 'goto_table', table: 3 }]);
const flowMod = encodeFlowMod(7, { command: 'add', match: matchBytes, instructions: instructionBytes });

const MESSAGES: Buffer[] = [
  encodeHello(1),
  encodeEchoReply(2, Buffer.from('ping')),
  encodeFeaturesReply({ xid: 3, datapathId: 0xabcn, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0 }),
  flowMod,
  encodeGroupMod(4, { command: 'add', type: 'select', groupId: 9, buckets: [{ weight: 1, actions: actionBytes }] }),
  encodePacketOut(5, { inPort: 3, actions: actionBytes, data: Buffer.alloc(60, 1) }),
  encodePacketIn({ xid: 0, bufferId: 0xffffffff, totalLen: 60, reason: 1, tableId: 2, cookie: 9n, match: matchBytes, data: Buffer.alloc(60, 2) }),
  encodeFlowStatsRequest(6, { match: matchBytes }),
  encodeMultipartReply({ xid: 8, mpType: 1, flags: 0, body: Buffer.alloc(56 + 8) }),
  encodeBundleCtrl(9, { bundleId: 1, type: 'open_request', flags: 3 }),
  encodeBundleAdd(10, 1, 3, flowMod),
  encodeError(11, 5, 1, flowMod),
  encodeError(12, 0xffff, 2300, encodeBundleAdd(12, 1, 3, flowMod), 0x4f4e4600),
  encodeError(13, 0, 0, Buffer.from('no common version')),
];

const MESSAGE_DECODERS: Array<[string, (b: Buffer) => unknown]> = [
  ['decodeHeader', decodeHeader], ['decodeHello', decodeHello], ['decodeFeaturesReply', decodeFeaturesReply],
  ['decodeFlowMod', decodeFlowMod], ['decodeGroupMod', decodeGroupMod], ['decodePacketOut', decodePacketOut],
  ['decodePacketIn', decodePacketIn], ['decodeFlowStatsRequest', decodeFlowStatsRequest],
  ['decodeMultipartReply', decodeMultipartReply], ['decodeBundleCtrl', decodeBundleCtrl], ['decodeBundleAdd', decodeBundleAdd],
  ['decodeError', decodeError], ['echoData', echoData],
  ['decodeFlowStatsBody', (b) => decodeFlowStatsBody(b.subarray(Math.min(16, b.length)))],
  ['decodePortDescBody', (b) => decodePortDescBody(b.subarray(Math.min(16, b.length)))],
];

const RUNS = { numRuns: 250, seed: 18 };

describe('OpenFlow decoders (property-based)', () => {
  it.each(MESSAGE_DECODERS)('%s throws only codec errors on random and mutated messages', (_name, decode) => {
    fc.assert(fc.property(mutatedAny(MESSAGES), (buf) => onlyThrows(CODEC_ERRORS, () => decode(buf))), RUNS);
  });

  it('decodeMatch throws only codec errors', () => {
    fc.assert(fc.property(mutatedAny([matchBytes]), (buf) => onlyThrows(CODEC_ERRORS, () => decodeMatch(buf))), RUNS);
  });

  it('decodeActions throws only codec errors', () => {
    fc.assert(fc.property(mutatedAny([actionBytes]), (buf) => onlyThrows(CODEC_ERRORS, () => decodeActions(buf))), RUNS);
  });

  it('decodeInstructions throws only codec errors', () => {
    fc.assert(fc.property(mutatedAny([instructionBytes]), (buf) => onlyThrows(CODEC_ERRORS, () => decodeInstructions(buf))), RUNS);
  });

  it('a flow read back (stats entry) decodes or fails with codec errors only, match and instructions included', () => {
    fc.assert(
      fc.property(mutated(flowMod), (buf) =>
        onlyThrows(CODEC_ERRORS, () => {
          const fm = decodeFlowMod(buf);
          decodeMatch(fm.match);
          decodeInstructions(fm.instructions);
        })),
      RUNS,
    );
  });

  it('the framer and the multipart assembler throw only codec errors on any byte stream', () => {
    fc.assert(
      fc.property(fc.array(mutatedAny(MESSAGES), { maxLength: 6 }), (chunks) => {
        const framer = new Framer();
        const assembler = new MultipartAssembler();
        onlyThrows(CODEC_ERRORS, () => {
          for (const c of chunks) {
            for (const m of framer.push(c)) if (m[1] === OFPT.MULTIPART_REPLY) onlyThrows(CODEC_ERRORS, () => assembler.add(decodeMultipartReply(m)));
          }
        });
      }),
      RUNS,
    );
  });
});

describe('OpenFlow connection fed mutated messages (property-based)', () => {
  let dir: string;
  let server: Server;
  let peer: Socket | undefined;
  let conn: OpenFlowConnection;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'offuzz-'));
    const path = join(dir, 'br0.mgmt');
    server = createServer((sock) => {
      peer = sock;
      sock.on('error', () => undefined);
      sock.write(encodeHello(1));
      const framer = new Framer();
      sock.on('data', (chunk) => {
        for (const m of framer.push(chunk)) {
          const { type, xid } = decodeHeader(m);
          if (type === OFPT.FEATURES_REQUEST) sock.write(encodeFeaturesReply({ xid, datapathId: 1n, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0 }));
          else if (type === OFPT.ECHO_REQUEST) sock.write(encodeEchoReply(xid));
          else if (type === OFPT.BARRIER_REQUEST) sock.write(encodeBarrierReply(xid));
        }
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    conn = await OpenFlowConnection.connect(`unix:${path}`, { reconnect: false });
    conn.on('message_error', () => undefined);
  });

  afterAll(async () => {
    await conn.close();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Keeps framing intact (header length = bytes, version 1.3) so that the stream stays in sync. */
  const framed = (b: Buffer): Buffer => {
    const m = Buffer.concat([b, Buffer.alloc(Math.max(0, 8 - b.length))]).subarray(0, 0xffff);
    m[0] = 4;
    if (m[1] === OFPT.ECHO_REPLY || m[1] === OFPT.BARRIER_REPLY) m[1] = OFPT.PACKET_IN; // not answers to our probes
    m.writeUInt16BE(m.length, 2);
    return m;
  };

  it('stays connected and answering whatever well-framed messages the switch sends', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutatedAny(MESSAGES).map(framed), { minLength: 1, maxLength: 10 }), async (msgs) => {
        peer!.write(Buffer.concat(msgs));
        await conn.barrier(2000);
        expect(conn.connected).toBe(true);
      }),
      { numRuns: 60, seed: 18 },
    );
  });
});
