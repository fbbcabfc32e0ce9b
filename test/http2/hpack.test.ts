import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { CLIENT_PREFACE, Flag, FrameReader, FrameType } from '../../src/http2/frames.js';
import {
  HeaderListSizeError, HpackDecoder, HpackError, encodeHeaderBlock, huffmanCode, huffmanDecodeInto, huffmanEncode,
  type HeaderField,
} from '../../src/http2/hpack.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function huffmanDecode(data: Buffer): Buffer {
  const out = Buffer.alloc(Math.ceil((data.length * 8) / 5));
  return out.subarray(0, huffmanDecodeInto(data, 0, data.length, out));
}

// ---------------------------------------------------------------- RFC 7541 Appendix C

describe('RFC 7541 C.1 integers (through the decoder)', () => {
  it('decodes 10 and 1337 with 5-bit prefixes (as table size updates) and 42 in a full octet', () => {
    const d = new HpackDecoder({ maxTableSize: 4096 });
    d.decode(hex('2a')); // 001 01010: size update to 10 (C.1.1)
    expect(d.maxTableSize).toBe(10);
    d.decode(hex('3f9a0a')); // 001 11111, 10011010, 00001010: 1337 (C.1.2)
    expect(d.maxTableSize).toBe(1337);
    // C.1.3: 42 starting at an octet boundary: a 7-bit length prefix of a plain string.
    const block = Buffer.concat([hex('00 01 78 2a'), Buffer.alloc(42, 0x61)]);
    expect(d.decode(block)).toEqual([['x', 'a'.repeat(42)]]);
  });
});

describe('RFC 7541 C.2 header field representations', () => {
  it('C.2.1 literal with indexing', () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('400a637573746f6d2d6b65790d637573746f6d2d686561646572'))).toEqual([['custom-key', 'custom-header']]);
    expect(d.dynamicTable()).toEqual([['custom-key', 'custom-header']]);
    expect(d.tableSize).toBe(55);
  });

  it('C.2.2 literal without indexing', () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('040c2f73616d706c652f70617468'))).toEqual([[':path', '/sample/path']]);
    expect(d.tableSize).toBe(0);
  });

  it('C.2.3 literal never indexed', () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('100870617373776f726406736563726574'))).toEqual([['password', 'secret']]);
    expect(d.tableSize).toBe(0);
  });

  it('C.2.4 indexed', () => {
    const d = new HpackDecoder();
    expect(d.decode(hex('82'))).toEqual([[':method', 'GET']]);
    expect(d.tableSize).toBe(0);
  });
});

const REQ1: HeaderField[] = [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']];
const REQ2: HeaderField[] = [...REQ1, ['cache-control', 'no-cache']];
const REQ3: HeaderField[] = [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']];
const REQ_TABLES: HeaderField[][] = [
  [[':authority', 'www.example.com']],
  [['cache-control', 'no-cache'], [':authority', 'www.example.com']],
  [['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']],
];

const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOC = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESP1: HeaderField[] = [[':status', '302'], ['cache-control', 'private'], ['date', DATE1], ['location', LOC]];
const RESP2: HeaderField[] = [[':status', '307'], ['cache-control', 'private'], ['date', DATE1], ['location', LOC]];
const RESP3: HeaderField[] = [
  [':status', '200'], ['cache-control', 'private'], ['date', DATE2], ['location', LOC], ['content-encoding', 'gzip'], ['set-cookie', COOKIE],
];
// After each response; the 256-octet table evicts the oldest entries (C.5.2: ':status 302', C.5.3: three more).
const RESP_TABLES: HeaderField[][] = [
  [['location', LOC], ['date', DATE1], ['cache-control', 'private'], [':status', '302']],
  [[':status', '307'], ['location', LOC], ['date', DATE1], ['cache-control', 'private']],
  [['set-cookie', COOKIE], ['content-encoding', 'gzip'], ['date', DATE2]],
];

interface Sequence {
  name: string;
  maxTableSize: number;
  blocks: string[];
  lists: HeaderField[][];
  tables: HeaderField[][];
  sizes: number[];
}

const SEQUENCES: Sequence[] = [
  {
    name: 'C.3 requests without Huffman',
    maxTableSize: 4096,
    blocks: [
      '828684410f7777772e6578616d706c652e636f6d',
      '828684be58086e6f2d6361636865',
      '828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565',
    ],
    lists: [REQ1, REQ2, REQ3],
    tables: REQ_TABLES,
    sizes: [57, 110, 164],
  },
  {
    name: 'C.4 requests with Huffman',
    maxTableSize: 4096,
    blocks: ['828684418cf1e3c2e5f23a6ba0ab90f4ff', '828684be5886a8eb10649cbf', '828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf'],
    lists: [REQ1, REQ2, REQ3],
    tables: REQ_TABLES,
    sizes: [57, 110, 164],
  },
  {
    name: 'C.5 responses without Huffman (256-octet table, evictions)',
    maxTableSize: 256,
    blocks: [
      '4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d54' +
        '6e1768747470733a2f2f7777772e6578616d706c652e636f6d',
      '4803333037c1c0bf',
      '88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f' +
        '3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076' +
        '657273696f6e3d31',
    ],
    lists: [RESP1, RESP2, RESP3],
    tables: RESP_TABLES,
    sizes: [222, 222, 215],
  },
  {
    name: 'C.6 responses with Huffman (256-octet table, evictions)',
    maxTableSize: 256,
    blocks: [
      '488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f' +
        '0b97c8e9ae82ae43d3',
      '4883640effc1c0bf',
      '88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335df' +
        'dfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007',
    ],
    lists: [RESP1, RESP2, RESP3],
    tables: RESP_TABLES,
    sizes: [222, 222, 215],
  },
];

describe('RFC 7541 C.3-C.6 sequences on one decoder', () => {
  for (const seq of SEQUENCES) {
    it(seq.name, () => {
      // The C.5/C.6 table limit of 256 is the decoder's SETTINGS_HEADER_TABLE_SIZE.
      const d = new HpackDecoder({ maxTableSize: seq.maxTableSize });
      seq.blocks.forEach((block, i) => {
        expect(d.decode(hex(block)), `block ${i + 1}`).toEqual(seq.lists[i]);
        expect(d.dynamicTable(), `table after block ${i + 1}`).toEqual(seq.tables[i]);
        expect(d.tableSize, `table size after block ${i + 1}`).toBe(seq.sizes[i]);
      });
    });
  }
});

// ---------------------------------------------------------------- Huffman code

describe('Huffman code (Appendix B)', () => {
  it('rebuilds the codes the RFC prints', () => {
    // [symbol, code, bits] samples from Appendix B, across lengths 5 to 30.
    const samples: Array<[number, number, number]> = [
      [0, 0x1ff8, 13], [1, 0x7fffd8, 23], [9, 0xffffea, 24], [10, 0x3ffffffc, 30], [32, 0x14, 6], [33, 0x3f8, 10],
      [48, 0x0, 5], [58, 0x5c, 7], [65, 0x21, 6], [97, 0x3, 5], [116, 0x9, 5], [123, 0x7ffe, 15], [127, 0xffffffc, 28],
      [128, 0xfffe6, 20], [200, 0x3ffffe2, 26], [255, 0x3ffffee, 26], [256, 0x3fffffff, 30],
    ];
    for (const [sym, code, bits] of samples) expect(huffmanCode(sym), `symbol ${sym}`).toEqual([code, bits]);
  });

  it('is a complete prefix code (Kraft sum 1), so every bit string decodes or is padding', () => {
    let sum = 0;
    for (let s = 0; s <= 256; s++) sum += 2 ** -huffmanCode(s)[1];
    expect(sum).toBe(1);
  });

  it('round-trips every octet value', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(huffmanDecode(huffmanEncode(all))).toEqual(all);
    expect(huffmanEncode(Buffer.from('www.example.com')).toString('hex')).toBe('f1e3c2e5f23a6ba0ab90f4ff'); // C.4.1
  });

  it('refuses EOS in the data and padding that is too long or not ones (RFC 7541 5.2)', () => {
    expect(huffmanDecode(hex('1f')).toString()).toBe('a'); // 00011 + 111 padding
    expect(() => huffmanDecode(hex('18'))).toThrow(HpackError); // padded with zeros
    expect(() => huffmanDecode(hex('1fff'))).toThrow(/longer than 7 bits/);
    expect(() => huffmanDecode(hex('ffffffff'))).toThrow(/EOS/);
  });
});

// ---------------------------------------------------------------- decoder errors and limits

describe('HpackDecoder errors', () => {
  const refused = (block: string, d = new HpackDecoder()): void => {
    expect(() => d.decode(hex(block)), block).toThrow(HpackError);
  };

  it('refuses malformed blocks', () => {
    refused('80'); // index 0
    refused('be'); // dynamic index 62 on an empty table
    refused('ffffffffffffff7f'); // integer overflow
    refused('ff'); // truncated integer
    refused('400a637573746f6d2d6b6579'); // literal cut before its value
    refused('0085'); // string length beyond the block
    refused('3fe21f'); // size update to 4097, above the limit of 4096
    refused('823f00'); // size update after a field
  });

  it('applies table size updates at the start of a block: shrinking evicts, 0 empties', () => {
    const d = new HpackDecoder();
    d.decode(hex('400a637573746f6d2d6b65790d637573746f6d2d686561646572'));
    d.decode(hex('4001610162' + '4001630164')); // a: b, c: d (34 octets each)
    expect(d.tableSize).toBe(55 + 34 + 34);
    expect(d.decode(hex('3f2d'))).toEqual([]); // size update to 76: keeps the newest two entries
    expect(d.maxTableSize).toBe(76);
    expect(d.tableSize).toBe(68);
    d.decode(hex('20'));
    expect(d.tableSize).toBe(0);
    expect(d.dynamicTable()).toEqual([]);
    refused('be', d);
    // Two updates in a row, then a field: allowed.
    expect(d.decode(hex('203fe11f82'))).toEqual([[':method', 'GET']]);
    expect(d.maxTableSize).toBe(4096);
  });

  it('empties the table for an entry larger than the table, without adding it (4.4)', () => {
    const d = new HpackDecoder({ maxTableSize: 64 });
    d.decode(hex('4001610162')); // a: b, 34 octets
    expect(d.tableSize).toBe(34);
    d.decode(Buffer.concat([hex('40 01 78 20'), Buffer.alloc(32, 0x61)])); // 1 + 32 + 32 = 65 > 64
    expect(d.tableSize).toBe(0);
    expect(d.dynamicTable()).toEqual([]);
  });

  it('keeps the table in step through a header list above the limit, then reports it', () => {
    const d = new HpackDecoder({ maxHeaderListSize: 50 });
    const block = hex('400a637573746f6d2d6b65790d637573746f6d2d686561646572' + '82'); // 55 + 42 > 50
    expect(() => d.decode(block)).toThrow(HeaderListSizeError);
    expect(d.dynamicTable()).toEqual([['custom-key', 'custom-header']]);
    expect(d.decode(hex('82'))).toEqual([[':method', 'GET']]); // 42 octets
  });

  it('survives many insertions (compaction of the table arrays)', () => {
    const d = new HpackDecoder({ maxTableSize: 200 });
    for (let i = 0; i < 1000; i++) {
      const name = `k${i % 10}`;
      const value = `v${i}`;
      const out = d.decode(encodeIncremental(name, value));
      expect(out).toEqual([[name, value]]);
    }
    // Index 62 is the newest entry.
    expect(d.decode(hex('be'))).toEqual([['k9', 'v999']]);
    expect(d.tableSize).toBeLessThanOrEqual(200);
  });
});

function encodeIncremental(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x40, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

// ---------------------------------------------------------------- encoder

describe('encodeHeaderBlock', () => {
  it('writes literals without indexing, static name indexes, no Huffman', () => {
    const block = encodeHeaderBlock([[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '0']]);
    expect(block.toString('hex')).toBe(
      '08' + '03' + Buffer.from('200').toString('hex') + // :status = static 8
        '0f10' + '10' + Buffer.from('application/grpc').toString('hex') + // content-type = static 31 (15 + 16)
        '00' + '0b' + Buffer.from('grpc-status').toString('hex') + '01' + '30',
    );
    const d = new HpackDecoder();
    expect(d.decode(block)).toEqual([[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '0']]);
    expect(d.tableSize).toBe(0);
  });

  it('round-trips long values (multi-octet lengths) and leads with a table size update on request', () => {
    const fields: HeaderField[] = [['grpc-message', 'x'.repeat(5000)], ['x-any', 'é%\t']];
    const block = encodeHeaderBlock(fields, 0);
    expect(block[0]).toBe(0x20);
    expect(new HpackDecoder().decode(block)).toEqual(fields);
  });

  it('refuses names that are not lowercase tokens and values with CR, LF or NUL', () => {
    expect(() => encodeHeaderBlock([['Content-Type', 'x']])).toThrow(TypeError);
    expect(() => encodeHeaderBlock([['x', 'a\r\nb']])).toThrow(TypeError);
    expect(() => encodeHeaderBlock([['', 'a']])).toThrow(TypeError);
  });
});

// ---------------------------------------------------------------- against node:http2 (nghttp2)

/** The header blocks a node:http2 client sends for `requests`, captured on a raw TCP server. */
async function captureNodeRequests(requests: http2.OutgoingHttpHeaders[]): Promise<Buffer[]> {
  const blocks: Buffer[] = [];
  let fragments: Buffer[] = [];
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const reader = new FrameReader(
    (type, flags, _id, payload) => {
      if (type !== FrameType.HEADERS && type !== FrameType.CONTINUATION) return;
      let p = payload;
      if (type === FrameType.HEADERS) {
        let start = 0;
        let end = p.length;
        if (flags & Flag.PADDED) {
          start = 1;
          end -= p[0];
        }
        if (flags & Flag.PRIORITY) start += 5;
        p = p.subarray(start, end);
      }
      fragments.push(Buffer.from(p));
      if (flags & Flag.END_HEADERS) {
        blocks.push(Buffer.concat(fragments));
        fragments = [];
        if (blocks.length === requests.length) done();
      }
    },
    { expectPreface: true },
  );
  const server = net.createServer((socket) => {
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  for (const headers of requests) session.request(headers).on('error', () => undefined);
  await finished;
  session.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  expect(CLIENT_PREFACE.length).toBe(24);
  return blocks;
}

describe('decoding what node:http2 sends', () => {
  it('decodes request header blocks of a real client, dynamic-table references and Huffman included', async () => {
    const common = {
      ':method': 'POST',
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'grpc-node-js/1.14.7',
      'grpc-accept-encoding': 'identity,deflate,gzip',
      'x-loom-host': 'host-0042.example.internal',
      'x-odd': 'Ünïcödé? ~!@#$%^&*()_+`-={}[]|:;"<>,./',
    };
    const requests: http2.OutgoingHttpHeaders[] = [
      { ...common, ':path': '/loom.v1.Host/Watch', 'grpc-timeout': '5S' },
      { ...common, ':path': '/loom.v1.Host/Watch' },
      { ...common, ':path': '/loom.v1.Host/Heartbeat', 'x-loom-host': 'host-0043.example.internal' },
    ];
    const blocks = await captureNodeRequests(requests);
    const d = new HpackDecoder();
    const decoded = blocks.map((b) => d.decode(b));
    decoded.forEach((fields, i) => {
      const map = new Map(fields);
      expect(map.get(':method')).toBe('POST');
      expect(map.get(':scheme')).toBe('http');
      expect(map.get(':authority')).toMatch(/^127\.0\.0\.1:\d+$/);
      for (const [name, value] of Object.entries(requests[i])) {
        // node sends header values as latin1 octets; the decoder maps octets back to latin1 chars.
        expect(map.get(name), name).toBe(Buffer.from(String(value), 'latin1').toString('latin1'));
      }
      expect(fields.length).toBe(Object.keys(requests[i]).length + 2);
    });
    // nghttp2 Huffman-codes strings when that is shorter: the value is not in the block as such.
    expect(blocks[0].includes(Buffer.from('host-0042'))).toBe(false);
    // nghttp2 indexes what it sends, so the later blocks are mostly dynamic-table references.
    expect(blocks[1].length).toBeLessThan(blocks[0].length / 3);
    expect(d.tableSize).toBeGreaterThan(0);
  });
});
