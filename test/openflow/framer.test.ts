import { describe, expect, it } from 'vitest';
import { Framer } from '../../src/openflow/framer.js';
import { encodeEchoRequest, encodeFlowMod, encodeHello, OpenFlowDecodeError } from '../../src/openflow/messages.js';

const messages = [encodeHello(1), encodeEchoRequest(2, Buffer.from('ping')), encodeFlowMod(3, { command: 'add', cookie: 7n })];
const stream = Buffer.concat(messages);

describe('Framer', () => {
  it('returns every message of a chunk holding several', () => {
    expect(new Framer().push(stream)).toEqual(messages);
  });

  it('reassembles messages fed one byte at a time', () => {
    const f = new Framer();
    const out: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...f.push(stream.subarray(i, i + 1)));
    expect(out).toEqual(messages);
    expect(f.buffered).toBe(0);
  });

  it('holds a partial message until the rest arrives, across every split point', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const f = new Framer();
      const out = [...f.push(stream.subarray(0, cut)), ...f.push(stream.subarray(cut))];
      expect(out).toEqual(messages);
    }
  });

  it('reports a stream out of sync (length below a header)', () => {
    const bad = Buffer.from('0400000300000001', 'hex');
    expect(() => new Framer().push(bad)).toThrow(OpenFlowDecodeError);
  });
});
