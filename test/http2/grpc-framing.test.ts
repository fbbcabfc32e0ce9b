import { describe, expect, it } from 'vitest';
import { GrpcMessageSplitter, encodeGrpcMessage, type GrpcFramingProblem } from '../../src/http2/grpc-framing.js';

function collect(max?: number): { s: GrpcMessageSplitter; messages: string[]; problems: GrpcFramingProblem[] } {
  const s = new GrpcMessageSplitter(max);
  const messages: string[] = [];
  const problems: GrpcFramingProblem[] = [];
  s.onMessage = (m) => messages.push(m.toString());
  s.onProblem = (p) => problems.push(p);
  return { s, messages, problems };
}

describe('GrpcMessageSplitter', () => {
  const stream = Buffer.concat(['', 'a', 'hello', 'x'.repeat(300)].map((m) => encodeGrpcMessage(Buffer.from(m))));

  it('splits messages arriving whole, and at every cut into two payloads', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const { s, messages, problems } = collect();
      s.push(stream.subarray(0, cut));
      s.push(stream, cut, stream.length);
      expect(messages).toEqual(['', 'a', 'hello', 'x'.repeat(300)]);
      expect(problems).toEqual([]);
      expect(s.partial).toBe(false);
    }
  });

  it('splits a stream fed one octet at a time, and reports a partial message in between', () => {
    const { s, messages } = collect();
    for (let i = 0; i < stream.length; i++) {
      s.push(stream.subarray(i, i + 1));
      if (i === 2) expect(s.partial).toBe(true);
    }
    expect(messages).toHaveLength(4);
  });

  it('stops at a compressed flag and at a length above the limit, in one payload or split', () => {
    const compressed = Buffer.from([1, 0, 0, 0, 1, 0x41]);
    const { s, problems } = collect();
    s.push(compressed.subarray(0, 3));
    s.push(compressed.subarray(3));
    expect(problems).toEqual([{ kind: 'compressed', flag: 1 }]);
    expect(s.isStopped).toBe(true);
    const big = collect(10);
    big.s.push(encodeGrpcMessage(Buffer.alloc(11)));
    expect(big.problems).toEqual([{ kind: 'too-large', length: 11 }]);
    expect(big.messages).toEqual([]);
  });

  it('delivers nothing after stop() from onMessage', () => {
    const { s, messages } = collect();
    s.onMessage = (m) => {
      messages.push(m.toString());
      s.stop();
    };
    s.push(stream);
    expect(messages).toEqual(['']);
  });

  it('leaves headroom before the prefix', () => {
    const b = encodeGrpcMessage(Buffer.from('hi'), 9);
    expect([...b.subarray(9)]).toEqual([0, 0, 0, 0, 2, 0x68, 0x69]);
  });
});
