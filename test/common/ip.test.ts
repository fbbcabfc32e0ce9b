import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  AddressError,
  bitsOf,
  bytesToIp,
  bytesToIpv4,
  bytesToIpv6,
  bytesToMac,
  canonicalIp,
  canonicalMac,
  cidrContains,
  cidrLast,
  cidrOverlaps,
  cidrSize,
  cidrToString,
  formatIp,
  ipAddrToBytes,
  ipFromBytes,
  ipToBytes,
  ipToString,
  ipv4ToBytes,
  ipv6ToBytes,
  macFromIpv4,
  macToBytes,
  maskPrefixLength,
  parseCidr,
  parseIp,
  parseIpWithPrefix,
  prefixMask,
  prefixMaskBytes,
  tryParseCidr,
  tryParseIp,
  writeIpv4,
  writeIpv6,
  writeMac,
} from '../../src/common/ip.js';

describe('IP parsing and formatting', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1'],
    ['255.255.255.255', '255.255.255.255'],
    ['fd00::1', 'fd00::1'],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::', '::'],
    ['::ffff:10.1.2.3', '::ffff:a01:203'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('canonicalises %s as %s', (input, out) => {
    expect(canonicalIp(input)).toBe(out);
  });

  it.each(['10.0.0', '10.0.0.256', '010.0.0.1', '1.2.3.4.5', 'fd00:::1', '1:2:3:4:5:6:7:8:9', 'fd00::1::2', 'g::1', '', 'abc'])(
    'rejects %s',
    (input) => {
      expect(tryParseIp(input)).toBeNull();
    },
  );

  it('round-trips values', () => {
    const v6 = parseIp('2001:db8::ff00:42:8329');
    expect(formatIp(6, v6.value)).toBe('2001:db8::ff00:42:8329');
    expect(parseIp('10.1.2.3').value).toBe(0x0a010203n);
  });
});

describe('CIDR math', () => {
  it('parses strictly and explains host bits', () => {
    expect(parseCidr('10.1.0.0/16')).toEqual({ family: 4, base: 0x0a010000n, prefix: 16 });
    expect(() => parseCidr('10.1.0.1/16')).toThrow(/did you mean 10\.1\.0\.0\/16/);
    expect(tryParseCidr('10.1.0.1/16', false)?.base).toBe(0x0a010000n);
    expect(tryParseCidr('10.0.0.0/33')).toBeNull();
    expect(tryParseCidr('fd00::/129')).toBeNull();
  });

  it('detects containment and overlap within a family only', () => {
    const a = parseCidr('10.0.0.0/8');
    const b = parseCidr('10.200.0.0/16');
    const c = parseCidr('11.0.0.0/8');
    expect(cidrOverlaps(a, b)).toBe(true);
    expect(cidrOverlaps(b, a)).toBe(true);
    expect(cidrOverlaps(a, c)).toBe(false);
    expect(cidrOverlaps(parseCidr('::/0'), a)).toBe(false);
    expect(cidrContains(a, 4, parseIp('10.255.255.255').value)).toBe(true);
    expect(cidrContains(a, 4, parseIp('11.0.0.0').value)).toBe(false);
  });
});

describe('MACs', () => {
  it('normalises and derives Docker-style MACs from IPv4', () => {
    expect(canonicalMac('02-42-AC-11-00-02')).toBe('02:42:ac:11:00:02');
    expect(canonicalMac('02:42:ac:11:00')).toBeNull();
    expect(macFromIpv4(parseIp('172.17.0.2').value)).toBe('02:42:ac:11:00:02');
  });
});

// ---- the one address module: every layer's text, bytes and errors ----------------------------

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** What an AddressError thrown by `fn` says; fails the test when `fn` throws anything else. */
function addressErrorOf(fn: () => unknown): AddressError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AddressError);
    return err as AddressError;
  }
  throw new Error('expected an AddressError, nothing was thrown');
}

describe('RFC 5952 text for IPv6', () => {
  it.each([
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1', 'the zero run becomes ::'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1', 'the longest run is compressed, not the first'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 'the leftmost of two equal runs'],
    ['1:0:0:2:3:4:0:0', '1::2:3:4:0:0', 'the leftmost of two equal runs, one at the end'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1', 'a single zero group is not compressed'],
    ['0:1:2:3:4:5:6:7', '0:1:2:3:4:5:6:7', 'a single leading zero group stays'],
    ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0', 'a single trailing zero group stays'],
    ['2001:DB8::ABCD:Ef', '2001:db8::abcd:ef', 'lower case'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1', 'leading zeros dropped'],
    ['0:0:0:0:0:0:0:0', '::', 'all zero'],
    ['0:0:0:0:0:0:0:1', '::1', 'loopback'],
    ['1:0:0:0:0:0:0:0', '1::', 'zeros at the end'],
    ['fe80::', 'fe80::', 'already canonical'],
  ])('%s prints as %s (%s)', (input, printed) => {
    expect(canonicalIp(input)).toBe(printed);
    expect(bytesToIpv6(ipv6ToBytes(input))).toBe(printed);
    expect(bytesToIp(ipToBytes(input), 'dotted')).toBe(printed);
  });

  it('agrees with the WHATWG URL serializer (RFC 5952) on 2,000 seeded random addresses', () => {
    let seed = 0x5eed;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      // Zero groups are likely so that runs, ties and single zeros all occur.
      const groups = Array.from({ length: 8 }, () => (rand(2) === 0 ? 0 : rand(3) === 0 ? rand(16) : rand(0x10000)));
      // Written out in full, with leading zeros and random case, for the parser to normalise.
      const text = groups.map((g) => (rand(2) ? g.toString(16).padStart(4, '0') : g.toString(16))).join(':');
      const mixedCase = [...text].map((c) => (rand(2) ? c.toUpperCase() : c)).join('');
      const expected = new URL(`http://[${mixedCase}]/`).hostname.slice(1, -1);
      const bytes = ipv6ToBytes(mixedCase);
      expect(bytesToIpv6(bytes)).toBe(expected);
      expect(hexOf(ipv6ToBytes(expected))).toBe(hexOf(bytes));
      expect(formatIp(6, parseIp(mixedCase).value)).toBe(expected);
    }
  });
});

describe('IPv4-mapped and embedded IPv4', () => {
  it('parses a dotted quad tail wherever the last 32 bits are', () => {
    expect(hexOf(ipv6ToBytes('::ffff:192.0.2.1'))).toBe('00000000000000000000ffffc0000201');
    expect(hexOf(ipv6ToBytes('64:ff9b::192.0.2.33'))).toBe('0064ff9b0000000000000000c0000221');
    expect(hexOf(ipv6ToBytes('1:2:3:4:5:6:1.2.3.4'))).toBe('00010002000300040005000601020304');
    expect(hexOf(ipv6ToBytes('::1.2.3.4'))).toBe('00000000000000000000000001020304');
  });

  it('prints ::ffff:0:0/96 in hex (RFC 5952 section 4) or dotted (section 5, as iproute2 does)', () => {
    const mapped = ipv6ToBytes('::FFFF:10.1.2.3');
    expect(bytesToIpv6(mapped)).toBe('::ffff:a01:203');
    expect(bytesToIpv6(mapped, 'hex')).toBe('::ffff:a01:203');
    expect(bytesToIpv6(mapped, 'dotted')).toBe('::ffff:10.1.2.3');
    expect(bytesToIp(ipv6ToBytes('::ffff:0.0.0.0'), 'dotted')).toBe('::ffff:0.0.0.0');
    expect(formatIp(6, parseIp('::ffff:192.0.2.1').value, 'dotted')).toBe('::ffff:192.0.2.1');
  });

  it('uses the dotted form only for exactly ::ffff:0:0/96', () => {
    for (const [text, printed] of [
      ['::1.2.3.4', '::102:304'], // IPv4-compatible (deprecated), not mapped
      ['::fffe:1.2.3.4', '::fffe:102:304'],
      ['1::ffff:1.2.3.4', '1::ffff:102:304'],
      ['::ffff:0:1:2', '::ffff:0:1:2'],
    ]) {
      expect(bytesToIpv6(ipv6ToBytes(text), 'dotted')).toBe(printed);
    }
  });
});

describe('bytes and text both ways', () => {
  it('reads and writes IPv4, IPv6 and MAC bytes, in place at an offset', () => {
    const out = new Uint8Array(24).fill(0xee);
    writeIpv4('192.0.2.1', out, 2);
    writeMac('02:42:AC:11:00:02', out, 6);
    expect(hexOf(out.subarray(0, 14))).toBe('eeeec00002010242ac110002eeee');
    writeIpv6('fd00::1', out, 4);
    expect(hexOf(out.subarray(0, 4))).toBe('eeeec000');
    expect(hexOf(out.subarray(4, 20))).toBe('fd000000000000000000000000000001');
    expect(hexOf(out.subarray(20))).toBe('eeeeeeee');
    expect(hexOf(ipv4ToBytes('10.0.0.1'))).toBe('0a000001');
    expect(hexOf(macToBytes('02-42-ac-11-00-02'))).toBe('0242ac110002');
    expect(bytesToIpv4(Uint8Array.of(10, 1, 2, 3))).toBe('10.1.2.3');
    expect(bytesToMac(Uint8Array.of(2, 0x42, 0xac, 0x11, 0, 2))).toBe('02:42:ac:11:00:02');
    expect(bytesToMac(Uint8Array.of(10, 0, 0, 1))).toBe('0a:00:00:01'); // a tunnel's 4-byte link address
    expect(bytesToIp(ipToBytes('198.18.0.1'))).toBe('198.18.0.1');
    expect(ipToBytes('fd00::1')).toHaveLength(16);
  });

  it('converts between the bigint and byte views', () => {
    expect(ipFromBytes(Uint8Array.of(10, 1, 2, 3))).toEqual({ family: 4, value: 0x0a010203n });
    expect(hexOf(ipAddrToBytes(parseIp('fd00::ff')))).toBe('fd0000000000000000000000000000ff');
    expect(ipToString(ipFromBytes(ipToBytes('2001:db8::1')))).toBe('2001:db8::1');
    expect(formatIp(4, 0xc0000201n)).toBe('192.0.2.1');
  });
});

describe('syntax: strict for operators, ovs for what ovs-ofctl accepts', () => {
  it('IPv4 parts with leading zeros are decimal under ovs and rejected under strict', () => {
    expect(hexOf(ipv4ToBytes('010.0.0.01', 'ovs'))).toBe('0a000001');
    expect(hexOf(ipv6ToBytes('::ffff:010.0.0.1', 'ovs'))).toBe('00000000000000000000ffff0a000001');
    expect(addressErrorOf(() => ipv4ToBytes('010.0.0.1')).input).toBe('010.0.0.1');
    expect(addressErrorOf(() => ipv6ToBytes('::ffff:010.0.0.1')).input).toBe('::ffff:010.0.0.1');
    expect(addressErrorOf(() => ipv4ToBytes('0010.0.0.1', 'ovs')).input).toBe('0010.0.0.1');
  });

  it("MAC bytes of one digit only under ovs, '-' separators only under strict", () => {
    expect(hexOf(macToBytes('0:1:A:bc:DE:f', 'ovs'))).toBe('00010abcde0f');
    expect(() => macToBytes('0:1:A:bc:DE:f')).toThrow(AddressError);
    expect(hexOf(macToBytes('02-42-ac-11-00-02'))).toBe('0242ac110002');
    expect(() => macToBytes('02-42-ac-11-00-02', 'ovs')).toThrow(AddressError);
    expect(canonicalMac('0:1:a:b:c:d')).toBeNull();
  });
});

describe('CIDR math for IPAM', () => {
  it('network, broadcast and size', () => {
    const c = parseCidr('192.0.2.0/24');
    expect(formatIp(4, c.base)).toBe('192.0.2.0');
    expect(formatIp(4, cidrLast(c))).toBe('192.0.2.255');
    expect(cidrSize(c)).toBe(256n);
    expect(cidrSize(parseCidr('10.0.0.0/31'))).toBe(2n);
    expect(formatIp(4, cidrLast(parseCidr('10.0.0.7/32')))).toBe('10.0.0.7');
    expect(formatIp(4, cidrLast(parseCidr('0.0.0.0/0')))).toBe('255.255.255.255');
    expect(formatIp(6, cidrLast(parseCidr('fd00:1::/64')))).toBe('fd00:1::ffff:ffff:ffff:ffff');
    expect(cidrToString(parseCidr('FD00:0001::/48'))).toBe('fd00:1::/48');
  });

  it('containment and overlap at the edges', () => {
    const low = parseCidr('10.0.0.0/25');
    const high = parseCidr('10.0.0.128/25');
    expect(cidrOverlaps(low, high)).toBe(false);
    expect(cidrOverlaps(low, parseCidr('10.0.0.127/32'))).toBe(true);
    expect(cidrContains(low, 4, parseIp('10.0.0.127').value)).toBe(true);
    expect(cidrContains(low, 4, parseIp('10.0.0.128').value)).toBe(false);
    expect(cidrContains(parseCidr('::/0'), 4, parseIp('10.0.0.1').value)).toBe(false);
    expect(cidrContains(parseCidr('fd00::/8'), 6, parseIp('fdff:ffff::1').value)).toBe(true);
  });

  it('interface addresses keep their host bits; a bare address is a host prefix', () => {
    const a = parseIpWithPrefix('10.0.0.5/24');
    expect([hexOf(a.bytes), a.prefix]).toEqual(['0a000005', 24]);
    expect(parseIpWithPrefix('fd00::5').prefix).toBe(128);
    expect(parseIpWithPrefix('10.0.0.5').prefix).toBe(32);
    expect(tryParseCidr('10.0.0.5')).toBeNull();
  });

  it('masks and prefix lengths agree for every length', () => {
    for (const family of [4, 6] as const) {
      for (let p = 0; p <= bitsOf(family); p++) {
        const bytes = prefixMaskBytes(family, p);
        expect(maskPrefixLength(bytes)).toBe(p);
        expect(ipFromBytes(bytes).value).toBe(prefixMask(family, p));
      }
    }
    expect(bytesToIpv4(prefixMaskBytes(4, 20))).toBe('255.255.240.0');
    expect(maskPrefixLength(Uint8Array.of(255, 0, 255, 0))).toBe(-1);
    expect(maskPrefixLength(Uint8Array.of(255, 255, 0b11110001, 0))).toBe(-1);
  });
});

describe('one error type for every bad input', () => {
  it.each([
    ['IPv4', '10.0.0.256', () => ipv4ToBytes('10.0.0.256'), /invalid IPv4 address "10\.0\.0\.256": expected four decimal/],
    ['IPv4', '1.2.3', () => ipv4ToBytes('1.2.3'), /"1\.2\.3"/],
    ['IPv4', '1.2.3.4 ', () => ipv4ToBytes('1.2.3.4 '), /"1\.2\.3\.4 "/],
    ['IPv4', '', () => ipv4ToBytes(''), /invalid IPv4 address ""/],
    ['IPv6', 'fd00:::1', () => ipv6ToBytes('fd00:::1'), /invalid IPv6 address "fd00:::1": expected eight hex groups/],
    ['IPv6', '1::2::3', () => ipv6ToBytes('1::2::3'), /"1::2::3"/],
    ['IPv6', '12345::', () => ipv6ToBytes('12345::'), /"12345::"/],
    ['IPv6', '1:2:3:4:5:6:7', () => ipv6ToBytes('1:2:3:4:5:6:7'), /"1:2:3:4:5:6:7"/],
    ['IPv6', '1:2:3:4:5:6:7:8:9', () => ipv6ToBytes('1:2:3:4:5:6:7:8:9'), /"1:2:3:4:5:6:7:8:9"/],
    ['IPv6', 'fd00::1:2:3:4:5:6:7', () => ipv6ToBytes('fd00::1:2:3:4:5:6:7'), /"fd00::1:2:3:4:5:6:7"/],
    ['IPv6', 'fd00:', () => ipv6ToBytes('fd00:'), /"fd00:"/],
    ['IPv6', ':1::', () => ipv6ToBytes(':1::'), /":1::"/],
    ['IPv6', 'fe80::1%eth0', () => ipv6ToBytes('fe80::1%eth0'), /"fe80::1%eth0"/],
    ['IPv6', '1.2.3.4::', () => ipv6ToBytes('1.2.3.4::'), /"1\.2\.3\.4::"/],
    ['IPv6', '::1.2.3.4:5', () => ipv6ToBytes('::1.2.3.4:5'), /"::1\.2\.3\.4:5"/],
    ['IPv6', '1:2:3:4:5:6:7:1.2.3.4', () => ipv6ToBytes('1:2:3:4:5:6:7:1.2.3.4'), /"1:2:3:4:5:6:7:1\.2\.3\.4"/],
    ['IP', 'eth0', () => parseIp('eth0'), /invalid IP address "eth0": not an IPv4 or IPv6 address/],
    ['IP', 'g::1', () => ipToBytes('g::1'), /"g::1"/],
    ['MAC', '02:42:ac:11:00', () => macToBytes('02:42:ac:11:00'), /invalid Ethernet address "02:42:ac:11:00": not a MAC address/],
    ['MAC', '02:42:ac:11:00:02:03', () => macToBytes('02:42:ac:11:00:02:03'), /"02:42:ac:11:00:02:03"/],
    ['MAC', '02:42:ac:11:00:0g', () => macToBytes('02:42:ac:11:00:0g', 'ovs'), /"02:42:ac:11:00:0g"/],
    ['CIDR', '10.0.0.0/33', () => parseCidr('10.0.0.0/33'), /invalid CIDR prefix "10\.0\.0\.0\/33": expected address\/length/],
    ['CIDR', '10.1.0.1/16', () => parseCidr('10.1.0.1/16'), /host bits set; did you mean 10\.1\.0\.0\/16\?/],
    ['CIDR', '10.0.0.0', () => parseCidr('10.0.0.0'), /"10\.0\.0\.0"/],
    ['prefix', '198.18.0.1/x', () => parseIpWithPrefix('198.18.0.1/x'), /invalid prefix "198\.18\.0\.1\/x": expected a length 0\.\.32/],
    ['prefix', 'fd00::/129', () => parseIpWithPrefix('fd00::/129'), /expected a length 0\.\.128/],
    ['prefix', 'eth0/24', () => parseIpWithPrefix('eth0/24'), /"eth0\/24"/],
    ['prefix length', '33', () => prefixMaskBytes(4, 33), /invalid prefix length 33 for a 32-bit address/],
    ['prefix length', '-1', () => prefixMask(6, -1), /invalid prefix length -1 for a 128-bit address/],
    ['bytes', '5 bytes', () => bytesToIp(new Uint8Array(5)), /address of 5 bytes is neither IPv4 nor IPv6/],
    ['bytes', '0 bytes', () => ipFromBytes(new Uint8Array(0)), /0 bytes/],
  ])('%s %j is an AddressError naming it and what was expected', (_kind, input, fn, message) => {
    const err = addressErrorOf(fn);
    expect(err.name).toBe('AddressError');
    expect(err.input).toBe(input);
    expect(err.expected.length).toBeGreaterThan(0);
    expect(err.message).toMatch(message);
  });

  it('the try- forms answer null instead of throwing', () => {
    expect(tryParseIp('fd00:::1')).toBeNull();
    expect(tryParseCidr('10.1.0.1/16')).toBeNull();
    expect(canonicalIp('1.2.3.4.5')).toBeNull();
    expect(canonicalMac('02:42:ac:11:00')).toBeNull();
    expect(tryParseIp(undefined as unknown as string)).toBeNull();
  });

  it('accepts exactly what node:net accepts, on 20,000 seeded mutations of valid addresses', () => {
    let seed = 0xadd7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const valid = ['10.0.0.1', '192.0.2.255', '0.0.0.0', 'fd00::1', '::', '::ffff:192.0.2.1', '1:2:3:4:5:6:7:8', '2001:db8::1:0:0:1', '64:ff9b::1.2.3.4', 'fe80::'];
    const alphabet = '0123456789abcdefABCDEFg:.';
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      let s = valid[rand(valid.length)]!;
      for (let m = rand(3); m >= 0; m--) {
        const at = rand(s.length + 1);
        const c = alphabet[rand(alphabet.length)]!;
        const op = rand(3);
        s = op === 0 ? s.slice(0, at) + c + s.slice(at) : op === 1 ? s.slice(0, at) + s.slice(at + 1) : s.slice(0, at) + c + s.slice(at + 1);
      }
      const ours = tryParseIp(s);
      expect(ours === null ? 0 : ours.family, s).toBe(isIP(s));
      if (ours !== null) accepted++;
    }
    expect(accepted).toBeGreaterThan(1000); // the mutations reach both sides of the grammar
  });
});
