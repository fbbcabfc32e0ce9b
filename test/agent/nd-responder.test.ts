import { describe, expect, it } from 'vitest';
import { buildNeighborAdvertisement, icmpv6Checksum, parseNeighborSolicitation } from '../../src/agent/nd-responder.js';

// A neighbour solicitation from fd00:b::2 (02:42:00:00:00:02) for fd00:b::1, as Linux sends it.
function solicitation(src = 'fd00:b::2'): Buffer {
  const hex =
    '3333ff000001' + '024200000002' + '86dd' +
    '6000000000203aff' + (src === '::' ? '0'.repeat(32) : 'fd00000b000000000000000000000002') + 'ff0200000000000000000001ff000001' +
    '87000000' + '00000000' + 'fd00000b000000000000000000000001' + '0101024200000002';
  const frame = Buffer.from(hex, 'hex');
  const ip = 14;
  frame.writeUInt16BE(icmpv6Checksum(frame.subarray(ip + 8, ip + 24), frame.subarray(ip + 24, ip + 40), frame.subarray(ip + 40)), ip + 42);
  return frame;
}

describe('neighbour discovery responder', () => {
  it('parses a solicitation and ignores anything else', () => {
    expect(parseNeighborSolicitation(solicitation())).toEqual({ srcMac: '02:42:00:00:00:02', srcIp: 'fd00:b::2', target: 'fd00:b::1' });
    const notNs = solicitation();
    notNs[54] = 128; // echo request
    expect(parseNeighborSolicitation(notNs)).toBeUndefined();
    const forwarded = solicitation();
    forwarded[21] = 64; // hop limit below 255: not from the link
    expect(parseNeighborSolicitation(forwarded)).toBeUndefined();
    expect(parseNeighborSolicitation(Buffer.alloc(20))).toBeUndefined();
  });

  it('answers with a solicited, overriding router advertisement carrying the gateway MAC', () => {
    const na = buildNeighborAdvertisement(parseNeighborSolicitation(solicitation())!, 'fd00:b::1', '02:4c:00:00:13:89');
    expect(na.subarray(0, 6).toString('hex')).toBe('024200000002');
    expect(na.subarray(6, 12).toString('hex')).toBe('024c00001389');
    expect(na[14 + 7]).toBe(255);
    expect(na[54]).toBe(136);
    expect(na[58]).toBe(0xe0);
    expect(na.subarray(62, 78).toString('hex')).toBe('fd00000b000000000000000000000001');
    expect(na.subarray(78, 86).toString('hex')).toBe('0201024c00001389');
    // A valid checksum sums, with the pseudo-header, to zero.
    expect(icmpv6Checksum(na.subarray(22, 38), na.subarray(38, 54), na.subarray(54))).toBe(0);
  });

  it('answers duplicate address detection to all nodes, unsolicited', () => {
    const na = buildNeighborAdvertisement(parseNeighborSolicitation(solicitation('::'))!, 'fd00:b::1', '02:4c:00:00:13:89');
    expect(na.subarray(0, 6).toString('hex')).toBe('333300000001');
    expect(na.subarray(38, 54).toString('hex')).toBe('ff020000000000000000000000000001');
    expect(na[58]).toBe(0xa0);
  });
});
