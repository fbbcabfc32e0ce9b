import { describe, expect, it } from 'vitest';
import { AddressError } from '../../src/common/ip.js';
import {
  MatchPrerequisiteError,
  addPrerequisites,
  ctState,
  decodeMatch,
  decodeOxmEntry,
  encodeMatch,
  encodeOxmEntry,
  ipv4PrefixMask,
  ipv6PrefixMask,
} from '../../src/openflow/match.js';
import { OpenFlowCodecError, type Match, type MatchField } from '../../src/openflow/types.js';

const ip: MatchField = { field: 'eth_type', value: 0x0800 };
const ip6: MatchField = { field: 'eth_type', value: 0x86dd };
const arp: MatchField = { field: 'eth_type', value: 0x0806 };

// Every supported field, with the context its prerequisites need; each must round trip.
const EVERY_FIELD: [string, Match][] = [
  ['in_port', [{ field: 'in_port', value: 3 }]],
  ['eth_src', [{ field: 'eth_src', value: '02:00:00:00:00:01' }]],
  ['eth_dst masked', [{ field: 'eth_dst', value: '02:00:00:00:00:00', mask: 'ff:ff:ff:00:00:00' }]],
  ['eth_type', [{ field: 'eth_type', value: 0x88cc }]],
  ['vlan_vid masked', [{ field: 'vlan_vid', value: 0x1000, mask: 0x1000 }]],
  ['ip_proto', [ip, { field: 'ip_proto', value: 47 }]],
  ['ipv4_src', [ip, { field: 'ipv4_src', value: '10.0.0.1' }]],
  ['ipv4_dst masked', [ip, { field: 'ipv4_dst', value: '10.0.0.0', mask: '255.255.255.0' }]],
  ['ipv6_src', [ip6, { field: 'ipv6_src', value: 'fd00::1' }]],
  ['ipv6_dst masked', [ip6, { field: 'ipv6_dst', value: 'fd00::', mask: 'ffff:ffff::' }]],
  ['tcp ports', [ip, { field: 'ip_proto', value: 6 }, { field: 'tcp_src', value: 1 }, { field: 'tcp_dst', value: 65535 }]],
  ['udp ports', [ip6, { field: 'ip_proto', value: 17 }, { field: 'udp_src', value: 53 }, { field: 'udp_dst', value: 4789 }]],
  ['icmpv4', [ip, { field: 'ip_proto', value: 1 }, { field: 'icmpv4_type', value: 3 }, { field: 'icmpv4_code', value: 4 }]],
  ['icmpv6', [ip6, { field: 'ip_proto', value: 58 }, { field: 'icmpv6_type', value: 1 }, { field: 'icmpv6_code', value: 2 }]],
  [
    'arp',
    [
      arp,
      { field: 'arp_op', value: 2 },
      { field: 'arp_spa', value: '10.0.0.1' },
      { field: 'arp_tpa', value: '10.0.0.0', mask: '255.0.0.0' },
      { field: 'arp_sha', value: '02:00:00:00:00:01' },
      { field: 'arp_tha', value: '02:00:00:00:00:00', mask: 'ff:00:00:00:00:00' },
    ],
  ],
  [
    'nd neighbour solicitation',
    [ip6, { field: 'ip_proto', value: 58 }, { field: 'icmpv6_type', value: 135 }, { field: 'ipv6_nd_target', value: 'fe80::1' }, { field: 'ipv6_nd_sll', value: '02:00:00:00:00:09' }],
  ],
  ['nd advertisement', [ip6, { field: 'ip_proto', value: 58 }, { field: 'icmpv6_type', value: 136 }, { field: 'ipv6_nd_tll', value: '02:00:00:00:00:0a' }]],
  ['tunnel_id', [{ field: 'tunnel_id', value: 0xffffffffffffffffn }]],
  ['tunnel_id masked', [{ field: 'tunnel_id', value: 0x100n, mask: 0xf00n }]],
  ['metadata masked', [{ field: 'metadata', value: 0x8000000000000000n, mask: 0x8000000000000000n }]],
  ['tun_ipv4_src', [{ field: 'tun_ipv4_src', value: '192.0.2.1' }]],
  ['tun_ipv4_dst masked', [{ field: 'tun_ipv4_dst', value: '192.0.2.0', mask: '255.255.255.0' }]],
  [
    'reg0..reg15, odd ones masked',
    Array.from({ length: 16 }, (_, i): MatchField =>
      i % 2 ? { field: 'reg', index: i, value: i * 1000, mask: 0xffff } : { field: 'reg', index: i, value: i * 1000 },
    ),
  ],
  ['ct_state', [ctState('+trk+new-est')]],
  ['ct_zone', [{ field: 'ct_zone', value: 65535 }]],
  ['ct_mark masked', [{ field: 'ct_mark', value: 0x10, mask: 0xf0 }]],
  ['ct_label masked', [{ field: 'ct_label', value: 0xaabbccddeeffn, mask: 0xffffffffffffn }]],
  ['tcp_flags masked (SYN without ACK)', [{ field: 'eth_type', value: 0x0800 }, { field: 'ip_proto', value: 6 }, { field: 'tcp_flags', value: 0x002, mask: 0x012 }]],
];

describe('match: round trip', () => {
  it.each(EVERY_FIELD)('%s', (_name, match) => {
    const bytes = encodeMatch(match);
    expect(bytes.length % 8).toBe(0);
    const { match: decoded, length } = decodeMatch(bytes);
    expect(length).toBe(bytes.length);
    expect(decoded).toEqual(match);
  });

  it('decodes at an offset and reports the padded length', () => {
    const m: Match = [ip, { field: 'ipv4_dst', value: '10.1.2.3' }];
    const bytes = Buffer.concat([Buffer.alloc(5, 0xaa), encodeMatch(m), Buffer.alloc(3, 0xbb)]);
    expect(decodeMatch(bytes, 5)).toEqual({ match: m, length: 24 });
  });

  it('an empty match is 8 bytes: type OXM, length 4, padding', () => {
    expect(encodeMatch([]).toString('hex')).toBe('0001000400000000');
    expect(decodeMatch(encodeMatch([]))).toEqual({ match: [], length: 8 });
  });
});

describe('match: wire layout (OXM headers from openflow-1.3.h / nicira-ext.h)', () => {
  const entry = (f: MatchField): string => encodeOxmEntry(f).toString('hex');
  it.each([
    ['OXM_OF_IN_PORT', { field: 'in_port', value: 1 } as MatchField, '80000004' + '00000001'],
    ['OXM_OF_ETH_DST_W', { field: 'eth_dst', value: '01:00:00:00:00:00', mask: '01:00:00:00:00:00' } as MatchField, '8000070c' + '010000000000' + '010000000000'],
    ['OXM_OF_ETH_TYPE', ip, '80000a02' + '0800'],
    ['OXM_OF_IPV4_DST', { field: 'ipv4_dst', value: '10.0.0.1' } as MatchField, '80001804' + '0a000001'],
    ['OXM_OF_TUNNEL_ID', { field: 'tunnel_id', value: 5n } as MatchField, '80004c08' + '0000000000000005'],
    ['NXM_NX_REG3_W', { field: 'reg', index: 3, value: 1, mask: 0xff } as MatchField, '00010708' + '00000001' + '000000ff'],
    ['NXM_NX_TUN_IPV4_DST', { field: 'tun_ipv4_dst', value: '1.2.3.4' } as MatchField, '00014004' + '01020304'],
    ['NXM_NX_CT_STATE_W', ctState('+trk'), '0001d308' + '00000020' + '00000020'],
    ['NXM_NX_CT_ZONE', { field: 'ct_zone', value: 1 } as MatchField, '0001d402' + '0001'],
    ['NXM_NX_CT_MARK', { field: 'ct_mark', value: 0xf009 } as MatchField, '0001d604' + '0000f009'],
  ])('%s', (_name, field, expected) => {
    expect(entry(field)).toBe(expected);
  });

  it('clears value bits outside the mask and drops an all-ones mask, as OVS stores them', () => {
    expect(entry({ field: 'ipv4_dst', value: '10.0.0.77', mask: '255.255.255.0' })).toBe('80001908' + '0a000000' + 'ffffff00');
    expect(entry({ field: 'reg', index: 0, value: 7, mask: 0xffffffff })).toBe('00010004' + '00000007');
  });

  it('puts prerequisites before the fields that need them, whatever the input order', () => {
    const bytes = encodeMatch([{ field: 'tcp_dst', value: 80 }, { field: 'ip_proto', value: 6 }, ip]);
    const order = decodeMatch(bytes).match.map((f) => f.field);
    expect(order).toEqual(['eth_type', 'ip_proto', 'tcp_dst']);
  });

  it('reads the 16-bit NXM_OF_IN_PORT too, mapping reserved ports to OpenFlow 1.3 numbers', () => {
    expect(decodeOxmEntry(Buffer.from('00000002' + '0005', 'hex'), 0).field).toEqual({ field: 'in_port', value: 5 });
    expect(decodeOxmEntry(Buffer.from('00000002' + 'fffe', 'hex'), 0).field).toEqual({ field: 'in_port', value: 0xfffffffe });
  });

  it('keeps a known field with the wrong length as a raw entry instead of misreading it', () => {
    const { field } = decodeOxmEntry(Buffer.from('80000a03' + '080000', 'hex'), 0);
    expect(field).toEqual({ field: 'raw', header: 0x80000a03, value: Buffer.from('080000', 'hex') });
  });

  it('keeps an experimenter OXM entry (ONF tcp_flags, masked) byte for byte', () => {
    const tcpFlags = Buffer.from('ffff5508' + '4f4e4600' + '0002' + '0fff', 'hex');
    const { field } = decodeOxmEntry(tcpFlags, 0);
    expect(field).toEqual({ field: 'raw', header: 0xffff5508, value: tcpFlags.subarray(4) });
    expect(encodeOxmEntry(field)).toEqual(tcpFlags);
  });

  it('keeps unknown OXM entries as raw bytes and re-encodes them unchanged', () => {
    const ipEcn = Buffer.from('80001201' + '02', 'hex'); // OXM_OF_IP_ECN, not modelled
    const { field, length } = decodeOxmEntry(ipEcn, 0);
    expect(length).toBe(5);
    expect(field).toEqual({ field: 'raw', header: 0x80001201, value: Buffer.from([0x02]) });
    expect(encodeOxmEntry(field)).toEqual(ipEcn);
    // OXM_OF_IP_DSCP is modelled (live traces mark packets with it).
    const ipDscp = Buffer.from('80001001' + '2e', 'hex');
    expect(decodeOxmEntry(ipDscp, 0).field).toEqual({ field: 'ip_dscp', value: 0x2e });
    expect(encodeOxmEntry({ field: 'ip_dscp', value: 0x2e })).toEqual(ipDscp);
  });
});

describe('match: prerequisites and bad input', () => {
  it.each([
    ['ipv4_dst without eth_type', [{ field: 'ipv4_dst', value: '10.0.0.1' }], /ipv4_dst requires eth_type=0x0800/],
    ['ipv6_src under IPv4', [ip, { field: 'ipv6_src', value: '::1' }], /ipv6_src requires eth_type=0x86dd/],
    ['tcp_dst without ip_proto', [ip, { field: 'tcp_dst', value: 80 }], /tcp_dst requires .*ip_proto=6/],
    ['udp_src with tcp', [ip, { field: 'ip_proto', value: 6 }, { field: 'udp_src', value: 1 }], /udp_src requires .*ip_proto=17/],
    ['icmpv4_type under IPv6', [ip6, { field: 'ip_proto', value: 1 }, { field: 'icmpv4_type', value: 8 }], /icmpv4_type requires eth_type=0x0800 and ip_proto=1/],
    ['arp_tpa without arp', [{ field: 'arp_tpa', value: '10.0.0.1' }], /arp_tpa requires eth_type=0x0806/],
    ['nd_tll on a solicitation', [ip6, { field: 'ip_proto', value: 58 }, { field: 'icmpv6_type', value: 135 }, { field: 'ipv6_nd_tll', value: '02:00:00:00:00:01' }], /ipv6_nd_tll requires icmpv6_type=136/],
    ['duplicate field', [ip, ip], /eth_type more than once/],
  ] as [string, Match, RegExp][])('%s', (_n, match, message) => {
    expect(() => encodeMatch(match)).toThrow(MatchPrerequisiteError);
    expect(() => encodeMatch(match)).toThrow(message);
  });

  it.each([
    ['masking an unmaskable field', [{ field: 'ct_zone', value: 1, mask: 1 } as unknown as MatchField], /ct_zone cannot be masked/],
    ['a value too wide', [{ field: 'ct_zone', value: 70000 }], /ct_zone value 70000 is not an integer in 0\.\.65535/],
    ['a bad IPv6 address', [ip6, { field: 'ipv6_dst', value: 'fd00:::1' }], /invalid IPv6 address "fd00:::1"/],
    ['register 16', [{ field: 'reg', index: 16, value: 1 }], /register index must be 0\.\.15/],
  ] as [string, Match, RegExp][])('rejects %s', (_n, match, message) => {
    expect(() => encodeMatch(match)).toThrow(OpenFlowCodecError);
    expect(() => encodeMatch(match)).toThrow(message);
  });

  it('rejects a match that is not OXM or runs past its buffer', () => {
    expect(() => decodeMatch(Buffer.from('0000000400000000', 'hex'))).toThrow(/unsupported ofp_match type 0/);
    expect(() => decodeMatch(Buffer.from('0001002000000000', 'hex'))).toThrow(/ofp_match length 32 invalid/);
    expect(() => decodeMatch(Buffer.from('0001000c80000a0800000000', 'hex'))).toThrow(/runs past the end/);
  });
});

describe('address text', () => {
  const enc = (f: MatchField): string => encodeOxmEntry(f).subarray(4).toString('hex');
  it('accepts one- or two-digit MAC bytes in either case', () => {
    expect(enc({ field: 'eth_src', value: '0:1:A:bc:DE:f' })).toBe('00010abcde0f');
  });
  it.each(['00:11:22:33:44', '00:11:22:33:44:55:66', '00-11-22-33-44-55', '00:11:22:33:44:5g', ''])('rejects MAC "%s"', (mac) => {
    expect(() => enc({ field: 'eth_src', value: mac })).toThrow(`invalid Ethernet address "${mac}"`);
  });
  it.each(['1.2.3', '1.2.3.4.5', '1.2.3.256', '1..3.4', '1.2.3.4 ', 'a.b.c.d', '1234.1.1.1'])('rejects IPv4 "%s"', (ip4) => {
    expect(() => enc({ field: 'ipv4_src', value: ip4 })).toThrow(`invalid IPv4 address "${ip4}"`);
  });
  it('parses IPv6 with embedded IPv4 and full forms', () => {
    expect(enc({ field: 'ipv6_src', value: '::ffff:10.0.0.1' })).toBe('00000000000000000000ffff0a000001');
    expect(enc({ field: 'ipv6_src', value: '1:2:3:4:5:6:7:8' })).toBe('00010002000300040005000600070008');
  });
  it.each(['1:2:3:4:5:6:7', '1::2::3', '12345::', 'fd00::1:2:3:4:5:6:7'])('rejects IPv6 "%s"', (ip6) => {
    expect(() => enc({ field: 'ipv6_src', value: ip6 })).toThrow(`invalid IPv6 address "${ip6}"`);
  });
  it("reads addresses in ovs-ofctl's grammar and keeps the AddressError as the codec error's cause", () => {
    expect(enc({ field: 'ipv4_src', value: '010.000.000.001' })).toBe('0a000001');
    const err = (() => {
      try {
        enc({ field: 'ipv4_src', value: '10.0.0' });
      } catch (e) {
        return e as OpenFlowCodecError;
      }
    })();
    expect(err).toBeInstanceOf(OpenFlowCodecError);
    expect(err?.cause).toBeInstanceOf(AddressError);
    expect((err?.cause as AddressError).input).toBe('10.0.0');
  });
});

describe('match helpers', () => {
  it('addPrerequisites fills in the eth_type and ip_proto that fields imply', () => {
    expect(addPrerequisites([{ field: 'ipv4_dst', value: '10.0.0.1' }])).toEqual([
      { field: 'eth_type', value: 0x0800 },
      { field: 'ipv4_dst', value: '10.0.0.1' },
    ]);
    expect(addPrerequisites([{ field: 'ipv6_src', value: '::1' }, { field: 'udp_dst', value: 53 }])).toEqual([
      { field: 'eth_type', value: 0x86dd },
      { field: 'ip_proto', value: 17 },
      { field: 'ipv6_src', value: '::1' },
      { field: 'udp_dst', value: 53 },
    ]);
    expect(addPrerequisites([{ field: 'ipv6_nd_tll', value: '02:00:00:00:00:01' }])).toEqual([
      { field: 'eth_type', value: 0x86dd },
      { field: 'ip_proto', value: 58 },
      { field: 'icmpv6_type', value: 136 },
      { field: 'ipv6_nd_tll', value: '02:00:00:00:00:01' },
    ]);
    const complete: Match = [{ field: 'eth_type', value: 0x0806 }, { field: 'arp_tpa', value: '10.0.0.1' }];
    expect(addPrerequisites(complete)).toBe(complete);
    // The completed matches pass validation and encode.
    expect(() => encodeMatch(addPrerequisites([{ field: 'tcp_dst', value: 80 }, { field: 'ipv4_src', value: '1.1.1.1' }]))).not.toThrow();
  });

  it('addPrerequisites leaves conflicts for validateMatch to report', () => {
    const m = addPrerequisites([{ field: 'eth_type', value: 0x86dd }, { field: 'ipv4_dst', value: '10.0.0.1' }]);
    expect(() => encodeMatch(m)).toThrow(/ipv4_dst requires eth_type=0x0800/);
  });

  it('ctState parses ovs-ofctl flag syntax', () => {
    expect(ctState('+trk+est')).toEqual({ field: 'ct_state', value: 0x22, mask: 0x22 });
    expect(ctState('-trk')).toEqual({ field: 'ct_state', value: 0, mask: 0x20 });
    expect(ctState('+new+est+rel+rpl+inv+trk+snat+dnat')).toEqual({ field: 'ct_state', value: 0xff, mask: 0xff });
    expect(() => ctState('+trk+bogus')).toThrow(/unknown ct_state flag "bogus"/);
    expect(() => ctState('trk')).toThrow(/invalid ct_state "trk"/);
  });

  it('prefix masks', () => {
    expect(ipv4PrefixMask(0)).toBe('0.0.0.0');
    expect(ipv4PrefixMask(20)).toBe('255.255.240.0');
    expect(ipv4PrefixMask(32)).toBe('255.255.255.255');
    expect(ipv6PrefixMask(64)).toBe('ffff:ffff:ffff:ffff::');
    expect(ipv6PrefixMask(65)).toBe('ffff:ffff:ffff:ffff:8000::');
    expect(() => ipv4PrefixMask(33)).toThrow(/invalid prefix length 33/);
  });
});
