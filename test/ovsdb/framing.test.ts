import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FramingError, JsonStreamParser } from '../../src/ovsdb/jsonrpc/parser.js';
import { classifyMessage } from '../../src/ovsdb/jsonrpc/messages.js';
import { encodeNotification, encodeRequest, encodeResult } from '../../src/ovsdb/jsonrpc/serializer.js';
import { OvsMap, namedUuid, set, uuid, type NamedUuid, type Uuid } from '../../src/ovsdb/values.js';

// Bytes a real ovsdb-server 3.1 sent (see fixtures/capture-traffic.ts): UTF-8 multi-byte text,
// braces, brackets, quotes and backslashes inside strings, notifications between responses.
const traffic = readFileSync(new URL('./fixtures/server-traffic.bin', import.meta.url));

/** Independent oracle: cut the text where a prefix first parses as JSON. Slow, but obviously right. */
function oracleSplit(bytes: Buffer): unknown[] {
  const text = bytes.toString('utf8');
  const out: unknown[] = [];
  let start = 0;
  for (let end = start + 1; end <= text.length; end++) {
    if (text[end - 1] !== '}') continue;
    try {
      out.push(JSON.parse(text.slice(start, end)));
      start = end;
    } catch {
      // not complete yet
    }
  }
  expect(start).toBe(text.length);
  return out;
}

function feed(parser: JsonStreamParser, pieces: Buffer[]): unknown[] {
  return pieces.flatMap((p) => parser.push(p));
}

describe('JsonStreamParser on real ovsdb-server traffic', () => {
  const expected = oracleSplit(traffic);

  it('the fixture holds the messages the framing must separate', () => {
    expect(expected.length).toBeGreaterThanOrEqual(10);
    const text = traffic.toString('utf8');
    expect(text).toContain('🚀');
    expect(text).toContain('{\\"a\\":[1,}]}');
  });

  it('yields every message when the stream is split at each byte boundary', () => {
    for (let i = 0; i <= traffic.length; i++) {
      const parser = new JsonStreamParser();
      const got = feed(parser, [traffic.subarray(0, i), traffic.subarray(i)]);
      expect(got, `split at byte ${i}`).toEqual(expected);
      expect(parser.pendingBytes).toBe(0);
    }
  });

  it('yields every message when fed one byte at a time', () => {
    const parser = new JsonStreamParser();
    const pieces = [...traffic].map((b) => Buffer.from([b]));
    expect(feed(parser, pieces)).toEqual(expected);
  });

  it('yields every message from one chunk holding all of them', () => {
    expect(new JsonStreamParser().push(traffic)).toEqual(expected);
  });

  it('decodes a multi-byte character split across three chunks', () => {
    const msg = Buffer.from(JSON.stringify({ id: 1, result: ['🚀'], error: null }));
    const rocket = msg.indexOf(Buffer.from('🚀'));
    const parser = new JsonStreamParser();
    const got = feed(parser, [msg.subarray(0, rocket + 1), msg.subarray(rocket + 1, rocket + 3), msg.subarray(rocket + 3)]);
    expect(got).toEqual([{ id: 1, result: ['🚀'], error: null }]);
  });

  it('classifies responses, errors and notifications from the server', () => {
    const kinds = expected.map((m) => classifyMessage(m).kind);
    expect(kinds).toContain('notification');
    expect(kinds.filter((k) => k === 'response').length).toBe(expected.length - 2);
    const unknown = expected.map(classifyMessage).find((m) => m.kind === 'response' && m.id === 7);
    expect(unknown).toMatchObject({ error: 'unknown method' });
  });
});

describe('JsonStreamParser edge cases', () => {
  it('skips whitespace between messages and keeps a partial one', () => {
    const parser = new JsonStreamParser();
    expect(parser.push(Buffer.from('  {"a":1}\n\n {"b":'))).toEqual([{ a: 1 }]);
    expect(parser.pendingBytes).toBeGreaterThan(0);
    expect(parser.push(Buffer.from('"\\\\"}\r\n'))).toEqual([{ b: '\\' }]);
  });

  it('rejects a stray top-level token with a readable error', () => {
    expect(() => new JsonStreamParser().push(Buffer.from('{"a":1} x'))).toThrow(FramingError);
    expect(() => new JsonStreamParser().push(Buffer.from('{"a":1} x'))).toThrow(/got "x" at top level/);
  });

  it('rejects a top-level string, unbalanced closers and malformed JSON', () => {
    expect(() => new JsonStreamParser().push(Buffer.from('"{"'))).toThrow(/got "\\"" at top level/);
    expect(() => new JsonStreamParser().push(Buffer.from('{"a":1}}'))).toThrow(/got "}" at top level/);
    expect(() => new JsonStreamParser().push(Buffer.from('{"a":}'))).toThrow(/invalid JSON message/);
  });

  it('enforces the message size limit', () => {
    const parser = new JsonStreamParser(16);
    expect(() => parser.push(Buffer.from('{"a":"0123456789012345"'))).toThrow(/exceeds 16 bytes/);
  });
});

describe('serializer', () => {
  it('encodes requests with OVSDB values in wire form', () => {
    const text = encodeRequest(3, 'transact', [
      'db',
      { op: 'insert', table: 'T', row: { s: set<Uuid | NamedUuid>(uuid('3c12f491-7146-42d3-b309-e77279ab198f'), namedUuid('x')), m: OvsMap.fromRecord({ k: 'v' }) } },
    ]);
    expect(JSON.parse(text)).toEqual({
      id: 3,
      method: 'transact',
      params: [
        'db',
        {
          op: 'insert',
          table: 'T',
          row: {
            s: ['set', [['uuid', '3c12f491-7146-42d3-b309-e77279ab198f'], ['named-uuid', 'x']]],
            m: ['map', [['k', 'v']]],
          },
        },
      ],
    });
  });

  it('encodes notifications with a null id and responses with a null error', () => {
    expect(JSON.parse(encodeNotification('cancel', [4]))).toEqual({ id: null, method: 'cancel', params: [4] });
    expect(JSON.parse(encodeResult('echo', []))).toEqual({ id: 'echo', result: [], error: null });
    expect(classifyMessage(JSON.parse(encodeNotification('update', [1, {}])))).toMatchObject({ kind: 'notification' });
  });
});
