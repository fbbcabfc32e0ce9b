import { describe, expect, it } from 'vitest';
import {
  CLIENT_PREFACE, ErrorCode, Flag, FrameReader, FrameType, Http2Error, SettingsId, decodeSettings, encodeFrame,
  encodeGoaway, encodeSettings, encodeU32Frame, errorCodeName, writeFrameHeader,
} from '../../src/http2/frames.js';

interface Seen {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

function collect(opts?: ConstructorParameters<typeof FrameReader>[1]): { reader: FrameReader; seen: Seen[] } {
  const seen: Seen[] = [];
  const reader = new FrameReader((type, flags, id, payload) => seen.push({ type, flags, id, payload: Buffer.from(payload) }), opts);
  return { reader, seen };
}

const frames = [
  encodeFrame(FrameType.SETTINGS, 0, 0, encodeSettings([[SettingsId.INITIAL_WINDOW_SIZE, 1 << 20]])),
  encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from('82868441', 'hex')),
  encodeFrame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.alloc(300, 7)),
  encodeFrame(FrameType.SETTINGS, Flag.ACK, 0),
  encodeU32Frame(FrameType.WINDOW_UPDATE, 0, 12345),
];
const stream = Buffer.concat(frames);
const expected: Seen[] = [
  { type: FrameType.SETTINGS, flags: 0, id: 0, payload: encodeSettings([[SettingsId.INITIAL_WINDOW_SIZE, 1 << 20]]) },
  { type: FrameType.HEADERS, flags: Flag.END_HEADERS, id: 1, payload: Buffer.from('82868441', 'hex') },
  { type: FrameType.DATA, flags: Flag.END_STREAM, id: 1, payload: Buffer.alloc(300, 7) },
  { type: FrameType.SETTINGS, flags: Flag.ACK, id: 0, payload: Buffer.alloc(0) },
  { type: FrameType.WINDOW_UPDATE, flags: 0, id: 0, payload: Buffer.from('00003039', 'hex') },
];

describe('frame encoding', () => {
  it('writes the 9-octet header: 24-bit length, type, flags, 31-bit stream id', () => {
    const buf = Buffer.alloc(9);
    writeFrameHeader(buf, 0, 0x012345, FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 0x80000003);
    expect(buf.toString('hex')).toBe('012345' + '01' + '05' + '00000003'); // reserved bit cleared
  });

  it('encodes whole frames, U32 frames and GOAWAY', () => {
    expect(encodeFrame(FrameType.PING, Flag.ACK, 0, Buffer.from('0102030405060708', 'hex')).toString('hex')).toBe(
      '000008060100000000' + '0102030405060708',
    );
    expect(encodeU32Frame(FrameType.RST_STREAM, 5, ErrorCode.CANCEL).toString('hex')).toBe('000004030000000005' + '00000008');
    expect(encodeGoaway(7, ErrorCode.PROTOCOL_ERROR, 'bad').toString('hex')).toBe(
      '00000b070000000000' + '00000007' + '00000001' + Buffer.from('bad').toString('hex'),
    );
  });

  it('names error codes, including unknown ones', () => {
    expect(errorCodeName(ErrorCode.FLOW_CONTROL_ERROR)).toBe('FLOW_CONTROL_ERROR');
    expect(errorCodeName(0x1f)).toBe('0x1f');
  });
});

describe('SETTINGS payloads', () => {
  it('round-trips entries in order, unknown ids included', () => {
    const entries = [
      [SettingsId.MAX_CONCURRENT_STREAMS, 100],
      [SettingsId.INITIAL_WINDOW_SIZE, 0x7fffffff],
      [0x99, 5],
    ] as const;
    const payload = encodeSettings(entries);
    expect(payload.toString('hex')).toBe('000300000064' + '00047fffffff' + '009900000005');
    expect(decodeSettings(payload)).toEqual(entries);
    expect(decodeSettings(new Uint8Array(payload))).toEqual(entries); // any Uint8Array view
  });

  it('rejects what RFC 9113 6.5.2 forbids, with the right error code', () => {
    const bad = (id: number, value: number): Http2Error => {
      try {
        decodeSettings(encodeSettings([[id, value]]));
      } catch (err) {
        return err as Http2Error;
      }
      throw new Error('accepted');
    };
    expect(bad(SettingsId.ENABLE_PUSH, 2).code).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(bad(SettingsId.INITIAL_WINDOW_SIZE, 0x80000000).code).toBe(ErrorCode.FLOW_CONTROL_ERROR);
    expect(bad(SettingsId.MAX_FRAME_SIZE, 16383).code).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(bad(SettingsId.MAX_FRAME_SIZE, 1 << 24).code).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(() => decodeSettings(Buffer.alloc(7))).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_SIZE_ERROR }));
  });
});

describe('FrameReader', () => {
  it('yields every frame of a chunk holding several', () => {
    const { reader, seen } = collect();
    reader.push(stream);
    expect(seen).toEqual(expected);
    expect(reader.buffered).toBe(0);
  });

  it('hands over frames that arrived whole as views of the chunk (no copy)', () => {
    const views: Buffer[] = [];
    const reader = new FrameReader((_t, _f, _id, payload) => views.push(payload));
    reader.push(stream);
    expect(views).toHaveLength(frames.length);
    for (const v of views) expect(v.buffer).toBe(stream.buffer);
    expect(views[2].byteOffset).toBe(stream.byteOffset + frames[0].length + frames[1].length + 9);
  });

  it('reassembles frames split at every possible point', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const { reader, seen } = collect();
      reader.push(stream.subarray(0, cut));
      reader.push(stream.subarray(cut));
      expect(seen, `cut at ${cut}`).toEqual(expected);
    }
  });

  it('reassembles frames fed one octet at a time', () => {
    const { reader, seen } = collect();
    for (let i = 0; i < stream.length; i++) reader.push(stream.subarray(i, i + 1));
    expect(seen).toEqual(expected);
  });

  it('reports how much of an incomplete frame it holds', () => {
    const { reader } = collect();
    reader.push(frames[2].subarray(0, 4));
    expect(reader.buffered).toBe(4);
    reader.push(frames[2].subarray(4, 100));
    expect(reader.buffered).toBe(100);
  });

  it('masks the reserved bit of the stream id', () => {
    const f = encodeFrame(FrameType.DATA, 0, 3, Buffer.from('x'));
    f[5] |= 0x80;
    const { reader, seen } = collect();
    reader.push(f);
    expect(seen[0].id).toBe(3);
  });

  it('refuses a frame above the maximum size (FRAME_SIZE_ERROR), whole or split', () => {
    const big = encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(16385));
    expect(() => collect().reader.push(big)).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_SIZE_ERROR }));
    const { reader } = collect();
    reader.push(big.subarray(0, 5));
    expect(() => reader.push(big.subarray(5, 20))).toThrow(Http2Error);
    // A larger limit admits it.
    const roomy = collect({ maxFrameSize: 1 << 20 });
    roomy.reader.push(big);
    expect(roomy.seen[0].payload.length).toBe(16385);
  });

  it('checks the client preface first, also when it arrives in pieces', () => {
    const input = Buffer.concat([CLIENT_PREFACE, stream]);
    for (const cut of [1, 10, 24, 25, 40]) {
      const { reader, seen } = collect({ expectPreface: true });
      reader.push(input.subarray(0, cut));
      expect(reader.prefaceReceived).toBe(cut >= 24);
      reader.push(input.subarray(cut));
      expect(seen, `cut at ${cut}`).toEqual(expected);
    }
  });

  it('refuses anything but the preface, and then ignores further input', () => {
    const { reader, seen } = collect({ expectPreface: true });
    reader.push(Buffer.from('PRI * HTTP/2'));
    expect(() => reader.push(Buffer.from('.1\r\n'))).toThrow(expect.objectContaining({ code: ErrorCode.PROTOCOL_ERROR }));
    expect(reader.prefaceReceived).toBe(false);
    reader.push(stream);
    expect(seen).toEqual([]);
    expect(() => collect({ expectPreface: true }).reader.push(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toThrow(Http2Error);
  });

  it('stops at the current frame when the handler calls stop()', () => {
    const seen: number[] = [];
    const reader: FrameReader = new FrameReader((type) => {
      seen.push(type);
      if (type === FrameType.HEADERS) reader.stop();
    });
    reader.push(stream);
    reader.push(stream);
    expect(seen).toEqual([FrameType.SETTINGS, FrameType.HEADERS]);
  });
});
