import { describe, expect, it } from 'vitest';
import {
  canonicalIp,
  canonicalMac,
  cidrContains,
  cidrOverlaps,
  formatIp,
  macFromIpv4,
  parseCidr,
  parseIp,
  tryParseCidr,
  tryParseIp,
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
