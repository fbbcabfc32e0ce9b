import { describe, expect, it } from 'vitest';
import { codecs } from '../../src/api/proto.js';
import { ackRevision } from '../../src/controller/watch-call.js';

describe('ack fast path', () => {
  it('reads the revision of exactly an ack, as the generic decoder would', () => {
    for (const revision of [0, 1, 127, 128, 300, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
      const bytes = codecs.watchRequest.encode({ ack: { revision } });
      expect(ackRevision(bytes)).toBe(revision);
      expect(codecs.watchRequest.decode(bytes).ack?.revision).toBe(revision);
    }
  });

  it('leaves everything else to the generic decoder', () => {
    expect(ackRevision(codecs.watchRequest.encode({ start: { host: 'h1', fromRevision: 3 } }))).toBeNull();
    expect(ackRevision(Buffer.from([0x12, 0x03, 0x08, 0x01]))).toBeNull(); // length disagrees
    expect(ackRevision(Buffer.from([0x12, 0x02, 0x10, 0x01]))).toBeNull(); // another field
    expect(ackRevision(Buffer.from([0x12, 0x02, 0x08, 0x81]))).toBeNull(); // truncated varint
    expect(ackRevision(Buffer.from([0x12, 0x04, 0x08, 0x01, 0x08, 0x02]))).toBeNull(); // trailing field
    expect(ackRevision(Buffer.from([]))).toBeNull();
  });
});
