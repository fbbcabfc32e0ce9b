import { describe, expect, it } from 'vitest';
import { internetChecksum, pseudoHeader } from '../../src/common/checksum.js';

describe('internet checksum', () => {
  it('matches RFC 1071 section 3 and pads an odd last byte with zero', () => {
    expect(internetChecksum(Buffer.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(0x220d);
    expect(internetChecksum(Buffer.from([0x00, 0x01]), Buffer.from([0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(0x220d);
    expect(internetChecksum(Buffer.from([0x12]))).toBe(~0x1200 & 0xffff);
  });

  it('builds IPv4 and IPv6 pseudo-headers', () => {
    expect([...pseudoHeader(Uint8Array.of(192, 0, 2, 1), Uint8Array.of(192, 0, 2, 2), 17, 30)]).toEqual([192, 0, 2, 1, 192, 0, 2, 2, 0, 17, 0, 30]);
    const v6 = pseudoHeader(new Uint8Array(16).fill(1), new Uint8Array(16).fill(2), 58, 0x10203);
    expect(v6.length).toBe(40);
    expect([...v6.subarray(14, 18)]).toEqual([1, 1, 2, 2]);
    expect([...v6.subarray(32)]).toEqual([0, 1, 2, 3, 0, 0, 0, 58]);
  });
});
