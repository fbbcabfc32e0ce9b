import { describe, expect, it } from 'vitest';
import { AddressError } from '../../src/common/ip.js';
import {
  AF_INET,
  AF_INET6,
  Attrs,
  AttrWriter,
  decodeAddress,
  decodeLink,
  decodeMessages,
  decodeNeighbour,
  decodeRoute,
  decodeStatus,
  encodeAddressRequest,
  encodeLinkRequest,
  encodeMessage,
  encodeNeighbourRequest,
  encodeRouteRequest,
  encodeVethCreate,
  formatIp,
  formatMac,
  IFA_F_NODAD,
  IFF_UP,
  IFINFOMSG_LEN,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_DONE,
  NLMSG_ERROR,
  NUD_PERMANENT,
  parseIp,
  parseMac,
  parsePrefix,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RTM_NEWLINK,
  RTNH_F_ONLINK,
  RTPROT_BOOT,
  VETH_INFO_PEER,
  NetlinkDecodeError,
} from '../../src/netlink/codec/index.js';

describe('attributes', () => {
  it('pads each attribute to 4 bytes and records the unpadded length', () => {
    const buf = new AttrWriter().string(3, 'eth0').u32(4, 1450).toBuffer();
    // "eth0\0" = 5 bytes -> len 9, padded to 12; then u32 -> len 8
    expect(buf.length).toBe(12 + 8);
    expect(buf.readUInt16LE(0)).toBe(9);
    expect(buf.readUInt16LE(2)).toBe(3);
    expect(buf.toString('utf8', 4, 8)).toBe('eth0');
    expect(buf.readUInt16LE(12)).toBe(8);
    expect(buf.readUInt32LE(16)).toBe(1450);
  });

  it('reads back nested attributes', () => {
    const buf = new AttrWriter().nested(18, (w) => w.string(1, 'veth').nested(2, (d) => d.u32(7, 42))).toBuffer();
    const attrs = Attrs.parse(buf);
    const info = attrs.nested(18);
    expect(info?.string(1)).toBe('veth');
    expect(info?.nested(2)?.u32(7)).toBe(42);
  });

  it('rejects an attribute whose length runs past the buffer', () => {
    const buf = new AttrWriter().u32(4, 1).toBuffer();
    buf.writeUInt16LE(40, 0);
    expect(() => Attrs.parse(buf)).toThrow(/malformed netlink attribute at offset 0/);
  });
});

describe('messages', () => {
  it('encodes nlmsghdr fields and splits a datagram holding several messages', () => {
    const a = encodeMessage({ type: 16, flags: 2, seq: 7, pid: 99 }, Buffer.from([1, 2, 3]));
    const b = encodeMessage({ type: NLMSG_DONE, flags: 2, seq: 7, pid: 99 }, Buffer.alloc(4));
    expect(a.readUInt32LE(0)).toBe(20);
    const msgs = decodeMessages(Buffer.concat([a, b]));
    expect(msgs.map((m) => [m.type, m.seq, m.pid])).toEqual([[16, 7, 99], [NLMSG_DONE, 7, 99]]);
    expect([...msgs[0].payload.subarray(0, 3)]).toEqual([1, 2, 3]);
  });

  it('rejects a message whose length runs past the datagram', () => {
    const a = encodeMessage({ type: 16, flags: 0, seq: 1, pid: 0 }, Buffer.alloc(8));
    a.writeUInt32LE(200, 0);
    expect(() => decodeMessages(a)).toThrow(/malformed netlink message/);
  });

  function errorPayload(errno: number, request: Buffer | undefined, tlvs?: Buffer): Buffer {
    const head = Buffer.alloc(4);
    head.writeInt32LE(-errno, 0);
    const reqHdr = request ?? Buffer.alloc(16);
    return Buffer.concat([head, reqHdr, tlvs ?? Buffer.alloc(0)]);
  }

  it('reads errno and extended-ack text from a capped NLMSG_ERROR', () => {
    const tlvs = new AttrWriter().string(1, 'ipv4: Address already assigned').u32(2, 36).toBuffer();
    const msg = { type: NLMSG_ERROR, flags: NLM_F_CAPPED | NLM_F_ACK_TLVS, seq: 1, pid: 0, payload: errorPayload(17, undefined, tlvs) };
    expect(decodeStatus(msg)).toEqual({ errno: 17, extackMessage: 'ipv4: Address already assigned', extackOffset: 36 });
  });

  it('skips the echoed request in an uncapped NLMSG_ERROR before reading TLVs', () => {
    const request = encodeMessage({ type: RTM_NEWLINK, flags: 5, seq: 1, pid: 0 }, Buffer.alloc(24, 0xee));
    const tlvs = new AttrWriter().string(1, 'bad mtu').toBuffer();
    const msg = { type: NLMSG_ERROR, flags: NLM_F_ACK_TLVS, seq: 1, pid: 0, payload: errorPayload(22, request, tlvs) };
    expect(decodeStatus(msg)).toEqual({ errno: 22, extackMessage: 'bad mtu' });
  });

  it('treats error 0 as an ack and ignores data messages', () => {
    expect(decodeStatus({ type: NLMSG_ERROR, flags: NLM_F_CAPPED, seq: 1, pid: 0, payload: errorPayload(0, undefined) })).toEqual({ errno: 0 });
    expect(decodeStatus({ type: 16, flags: 0, seq: 1, pid: 0, payload: Buffer.alloc(16) })).toBeUndefined();
  });

  it('reads the error of a failed dump from NLMSG_DONE', () => {
    const p = Buffer.alloc(4);
    p.writeInt32LE(-95, 0);
    expect(decodeStatus({ type: NLMSG_DONE, flags: 2, seq: 3, pid: 0, payload: p })).toEqual({ errno: 95 });
  });
});

describe('addresses as text', () => {
  it.each([
    ['198.18.0.1', '198.18.0.1'],
    ['fd00::1', 'fd00::1'],
    ['fd00:0:0:1::', 'fd00:0:0:1::'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fd00:1:2:3:4:5:6:7', 'fd00:1:2:3:4:5:6:7'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['FD00::ABCD', 'fd00::abcd'],
  ])('parses %s and formats it as iproute2 prints it (%s)', (input, printed) => {
    expect(formatIp(parseIp(input).bytes)).toBe(printed);
  });

  it('parses prefixes and treats a bare address as a host prefix', () => {
    expect(parsePrefix('198.18.4.0/22')).toMatchObject({ family: AF_INET, prefixLen: 22 });
    expect(parsePrefix('fd00::5')).toMatchObject({ family: AF_INET6, prefixLen: 128 });
  });

  it.each(['198.18.0.1/33', 'fd00::/129', '198.18.0.1/x', '10.0.0.256', 'eth0'])('rejects %s with the input in the message', (bad) => {
    expect(() => parsePrefix(bad)).toThrow(new RegExp(bad.split('/')[0].replace(/\./g, '\\.')));
  });

  it('round-trips MAC addresses and rejects malformed ones', () => {
    expect(formatMac(parseMac('02:AB:cd:00:00:01'))).toBe('02:ab:cd:00:00:01');
    expect(() => parseMac('02:ab:cd:00:00')).toThrow(/not a MAC address/);
  });
});

describe('link requests', () => {
  it('sets IFF_UP in both ifi_flags and ifi_change to bring a link up, only ifi_change to bring it down', () => {
    const up = encodeLinkRequest({ name: 'eth0', up: true });
    expect([up.readUInt32LE(8), up.readUInt32LE(12)]).toEqual([IFF_UP, IFF_UP]);
    const down = encodeLinkRequest({ index: 7, up: false });
    expect([down.readInt32LE(4), down.readUInt32LE(8), down.readUInt32LE(12)]).toEqual([7, 0, IFF_UP]);
  });

  it('decodes what it encodes (name, MTU, MAC)', () => {
    const payload = encodeLinkRequest({ index: 3, name: 'c1', mtu: 1450, mac: parseMac('02:00:00:00:00:01') });
    expect(decodeLink(payload)).toMatchObject({ index: 3, name: 'c1', mtu: 1450, mac: '02:00:00:00:00:01' });
  });

  it('nests the veth peer (ifinfomsg + attrs) under LINKINFO/INFO_DATA/VETH_INFO_PEER with its namespace fd', () => {
    const payload = encodeVethCreate({ name: 'h1', mtu: 1450, peer: { name: 'eth0', netnsFd: 42, up: true } });
    const attrs = Attrs.parse(payload, IFINFOMSG_LEN);
    expect(attrs.string(IFLA_IFNAME)).toBe('h1');
    expect(attrs.u32(IFLA_MTU)).toBe(1450);
    expect(attrs.has(IFLA_NET_NS_FD)).toBe(false);
    const info = attrs.nested(IFLA_LINKINFO);
    expect(info?.string(IFLA_INFO_KIND)).toBe('veth');
    const peer = info?.nested(IFLA_INFO_DATA)?.bytes(VETH_INFO_PEER);
    expect(peer).toBeDefined();
    const peerLink = decodeLink(peer as Buffer);
    expect(peerLink).toMatchObject({ name: 'eth0', up: true });
    expect(Attrs.parse(peer as Buffer, IFINFOMSG_LEN).u32(IFLA_NET_NS_FD)).toBe(42);
  });

  it.each(['', 'this-name-is-too-long', 'a/b', 'a b'])('refuses the interface name %j', (name) => {
    expect(() => encodeLinkRequest({ name })).toThrow(/invalid interface name/);
  });
});

describe('address, route and neighbour requests', () => {
  it('encodes an IPv6 address with IFA_F_NODAD and decodes it back', () => {
    const payload = encodeAddressRequest({ index: 4, prefix: parsePrefix('fd00:1::2/64'), noDad: true });
    expect(payload.readUInt8(2) & IFA_F_NODAD).toBe(IFA_F_NODAD);
    expect(decodeAddress(payload)).toMatchObject({ family: AF_INET6, index: 4, cidr: 'fd00:1::2/64', scope: 'global' });
  });

  it('puts IFA_F_NOPREFIXROUTE (> 8 bits) into IFA_FLAGS', () => {
    const a = decodeAddress(encodeAddressRequest({ index: 1, prefix: parsePrefix('198.18.0.2/24'), noPrefixRoute: true }));
    expect(a.flags).toBe(0x200);
  });

  it('encodes a default route via a gateway with universe scope and boot protocol', () => {
    const payload = encodeRouteRequest({ family: AF_INET, gateway: parseIp('198.18.0.1') });
    const r = decodeRoute(payload);
    expect(r).toMatchObject({ dst: 'default', gateway: '198.18.0.1', table: 254, protocol: RTPROT_BOOT, scope: RT_SCOPE_UNIVERSE });
    expect(r.oif).toBeUndefined();
  });

  it('encodes a device route with link scope and an on-link gateway route with RTNH_F_ONLINK', () => {
    expect(decodeRoute(encodeRouteRequest({ family: AF_INET6, dst: parsePrefix('fd00:2::/64'), oif: 3 }))).toMatchObject({
      dst: 'fd00:2::/64', oif: 3, scope: RT_SCOPE_LINK,
    });
    const onlink = encodeRouteRequest({ family: AF_INET, gateway: parseIp('192.0.2.1'), oif: 3, onLink: true });
    expect(onlink.readUInt32LE(8) & RTNH_F_ONLINK).toBe(RTNH_F_ONLINK);
    expect(decodeRoute(onlink).onLink).toBe(true);
  });

  it('lets a route delete match any protocol, type and scope', () => {
    const del = encodeRouteRequest({ family: AF_INET, dst: parsePrefix('203.0.113.0/24') }, true);
    expect([del.readUInt8(5), del.readUInt8(6), del.readUInt8(7)]).toEqual([0, 255, 0]);
  });

  it('puts tables above 255 in RTA_TABLE', () => {
    expect(decodeRoute(encodeRouteRequest({ family: AF_INET, dst: parsePrefix('198.18.9.0/24'), oif: 2, table: 1000 })).table).toBe(1000);
  });

  it('refuses a gateway of another family', () => {
    expect(() => encodeRouteRequest({ family: AF_INET6, gateway: parseIp('198.18.0.1') })).toThrow(/not of the route's address family/);
  });

  it('encodes a permanent neighbour and decodes it back', () => {
    const n = decodeNeighbour(encodeNeighbourRequest({ index: 5, address: parseIp('198.18.0.9'), mac: parseMac('02:00:00:00:00:09') }));
    expect(n).toMatchObject({ family: AF_INET, index: 5, address: '198.18.0.9', mac: '02:00:00:00:00:09', state: NUD_PERMANENT, permanent: true });
  });
});

describe('addresses come from common/ip', () => {
  it('rejects what the kernel could not take with the one AddressError, naming the input', () => {
    for (const bad of ['fe80::1%eth0', '198.18.0.1/33', '02:ab:cd:00:00']) {
      const parse = bad.includes('/') ? () => parsePrefix(bad) : bad.includes('%') ? () => parseIp(bad) : () => parseMac(bad);
      expect(parse).toThrow(AddressError);
      expect(parse).toThrow(bad);
    }
    expect(parsePrefix('198.18.0.5/24')).toMatchObject({ family: AF_INET, prefixLen: 24, bytes: Buffer.from([198, 18, 0, 5]) });
  });
});

describe('malformed replies (found by fuzzing)', () => {
  it('refuses an NLMSG_ERROR whose echoed request is longer than the message', () => {
    const payload = Buffer.alloc(4 + 16);
    payload.writeInt32LE(-22, 0);
    payload.writeUInt32LE(0x80000010, 4);
    const msg = decodeMessages(encodeMessage({ type: NLMSG_ERROR, flags: NLM_F_ACK_TLVS, seq: 1, pid: 0 }, payload))[0];
    expect(() => decodeStatus(msg)).toThrow(NetlinkDecodeError);
    expect(() => decodeStatus(msg)).toThrow(/echoes a request of 2147483664 bytes in 16/);
  });
  it('refuses an address attribute that is neither 4 nor 16 bytes', () => {
    const payload = Buffer.from([2, 16, 0, 0, 3, 0, 0, 0, 5, 0, 2, 0, 198, 0, 0, 0]);
    expect(() => decodeAddress(payload)).toThrow(NetlinkDecodeError);
    expect(() => decodeAddress(payload)).toThrow(/IFA_ADDRESS of 1 bytes is neither IPv4 nor IPv6/);
  });
});
