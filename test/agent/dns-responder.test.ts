import { describe, expect, it } from 'vitest';
import pino from 'pino';
import * as dnsPacket from 'dns-packet';
import { buildUdpReply, DnsResponder, parseUdpFrame, udpChecksum, type DnsResponderLimits } from '../../src/agent/dns-responder.js';
import { fitUdp, MAX_UDP_ANSWER, truncateAnswer, udpAnswerLimit } from '../../src/agent/dns/resolver.js';
import { DnsResolver } from '../../src/agent/dns/resolver.js';
import { DnsDirectory } from '../../src/agent/dns/directory.js';
import { ipv4ToBytes, ipv6ToBytes, macToBytes } from '../../src/common/ip.js';
import type { PacketIo } from '../../src/agent/nd-responder.js';
import { cookie, Feature, gatewayMac } from '../../src/agent/pipeline/fields.js';

const log = pino({ level: 'silent' });
const MAC = '02:42:c6:12:00:02';

/** A frame from MAC src:5353 to dst:53 carrying `payload`, checksums as Linux computes them. */
function frame(src: string, dst: string, payload: Buffer): Buffer {
  const v6 = src.includes(':');
  const ipLen = v6 ? 40 : 20;
  const f = Buffer.alloc(14 + ipLen + 8 + payload.length);
  macToBytes('02:4c:00:00:00:64').copy(f, 0);
  macToBytes(MAC).copy(f, 6);
  f.writeUInt16BE(v6 ? 0x86dd : 0x0800, 12);
  const s = v6 ? ipv6ToBytes(src) : ipv4ToBytes(src);
  const d = v6 ? ipv6ToBytes(dst) : ipv4ToBytes(dst);
  if (v6) {
    f.writeUInt32BE(0x60000000, 14);
    f.writeUInt16BE(8 + payload.length, 18);
    f[20] = 17;
    f[21] = 64;
    s.copy(f, 22);
    d.copy(f, 38);
  } else {
    f[14] = 0x45;
    f.writeUInt16BE(20 + 8 + payload.length, 16);
    f[23] = 17;
    f[22] = 64;
    s.copy(f, 26);
    d.copy(f, 30);
  }
  const u = 14 + ipLen;
  f.writeUInt16BE(5353, u);
  f.writeUInt16BE(53, u + 2);
  f.writeUInt16BE(8 + payload.length, u + 4);
  payload.copy(f, u + 8);
  f.writeUInt16BE(udpChecksum(s, d, f.subarray(u)), u + 6);
  return f;
}
const query = (name: string, type: dnsPacket.RecordType = 'A', id = 9) => dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });

/** Internet checksum of a whole header or pseudo-header + datagram is 0 when valid. */
function sums(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

describe('DNS responder frames', () => {
  it('parses IPv4 and IPv6 UDP and refuses fragments, other protocols and short frames', () => {
    const q = query('web');
    expect(parseUdpFrame(frame('198.18.0.2', '198.18.0.1', q))).toMatchObject({ family: 4, srcMac: MAC, srcIp: '198.18.0.2', dstIp: '198.18.0.1', srcPort: 5353, dstPort: 53, payload: q });
    expect(parseUdpFrame(frame('fd00:b::2', 'fd00:b::1', q))).toMatchObject({ family: 6, srcIp: 'fd00:b::2', dstIp: 'fd00:b::1', payload: q });
    const frag = frame('198.18.0.2', '198.18.0.1', q);
    frag.writeUInt16BE(0x2000, 20); // more fragments
    expect(parseUdpFrame(frag)).toBeUndefined();
    const tcp = frame('198.18.0.2', '198.18.0.1', q);
    tcp[23] = 6;
    expect(parseUdpFrame(tcp)).toBeUndefined();
    const lying = frame('198.18.0.2', '198.18.0.1', q);
    lying.writeUInt16BE(4000, 38); // UDP length beyond the packet
    expect(parseUdpFrame(lying)).toBeUndefined();
    expect(parseUdpFrame(Buffer.alloc(30))).toBeUndefined();
  });

  it('answers with addresses and ports swapped and valid IPv4 header and UDP checksums', () => {
    const q = parseUdpFrame(frame('198.18.0.2', '198.18.0.1', query('web')))!;
    const r = buildUdpReply(q, Buffer.from('answer'), gatewayMac(100));
    expect(parseUdpFrame(r)).toMatchObject({ srcMac: gatewayMac(100), srcIp: '198.18.0.1', dstIp: '198.18.0.2', srcPort: 53, dstPort: 5353, payload: Buffer.from('answer') });
    expect(r.subarray(0, 6)).toEqual(macToBytes(MAC));
    expect(sums(r.subarray(14, 34))).toBe(0);
    const pseudo = Buffer.concat([r.subarray(26, 34), Buffer.from([0, 17]), r.subarray(38, 40), r.subarray(34)]);
    expect(sums(pseudo)).toBe(0);
  });

  it('always sets the IPv6 UDP checksum (mandatory), and it verifies', () => {
    const q = parseUdpFrame(frame('fd00:b::2', 'fd00:b::1', query('web')))!;
    const r = buildUdpReply(q, Buffer.from('x'), gatewayMac(100));
    const udp = r.subarray(54);
    expect(udp.readUInt16BE(6)).not.toBe(0);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(udp.length);
    expect(sums(Buffer.concat([r.subarray(22, 54), len, Buffer.from([0, 0, 0, 17]), udp]))).toBe(0);
  });

  it('cuts an oversized answer to header and question with TC set', () => {
    const big = dnsPacket.encode({ type: 'response', id: 3, questions: [{ type: 'A', name: 'many' }], answers: Array.from({ length: 200 }, (_, i) => ({ type: 'A', name: 'many', data: `10.0.${i >> 8}.${i & 255}` })) });
    expect(big.length).toBeGreaterThan(MAX_UDP_ANSWER);
    const cut = dnsPacket.decode(truncateAnswer(big));
    expect(cut.flag_tc).toBe(true);
    expect(cut.questions).toEqual([{ type: 'A', name: 'many', class: 'IN' }]);
    expect(cut.answers).toEqual([]);
  });
});

describe('UDP answer size', () => {
  const withEdns = (size: number) =>
    dnsPacket.encode({ type: 'query', id: 4, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'many' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: size } as dnsPacket.Answer] });
  const answer = (n: number) =>
    dnsPacket.encode({ type: 'response', id: 4, questions: [{ type: 'A', name: 'many' }], answers: Array.from({ length: n }, (_, i) => ({ type: 'A', name: 'many', data: `10.0.${i >> 8}.${i & 255}` })) });

  it('is 512 without EDNS0, the advertised size with it (at least 512), never more than the path takes', () => {
    expect(udpAnswerLimit(query('many'), 1422)).toBe(512);
    expect(udpAnswerLimit(withEdns(4096), 1422)).toBe(1422);
    expect(udpAnswerLimit(withEdns(1232), 1422)).toBe(1232);
    expect(udpAnswerLimit(withEdns(100), 1422)).toBe(512);
    expect(udpAnswerLimit(Buffer.from('junk-with-arcount!'), 1422)).toBe(512);
  });

  it('sends an answer whole when it fits what the client asked for, else truncated', () => {
    const big = answer(60); // 60 A records: over 512, under 1232
    expect(big.length).toBeGreaterThan(512);
    expect(big.length).toBeLessThan(1232);
    expect(dnsPacket.decode(fitUdp(query('many'), big, 1422)).flag_tc).toBe(true);
    expect(fitUdp(withEdns(1232), big, 1422)).toBe(big);
    expect(answer(66).length).toBeGreaterThan(1232); // over the flag-day size, within the MTU
    expect(dnsPacket.decode(fitUdp(withEdns(4096), answer(66), 1422)).flag_tc).toBe(false);
    expect(dnsPacket.decode(fitUdp(withEdns(4096), answer(200), 1422)).flag_tc).toBe(true);
  });
});

describe('DnsResponder', () => {
  const setup = (limits: DnsResponderLimits, upstreams: string[] = []) => {
    let handler: Parameters<PacketIo['onPacketIn']>[0] | undefined;
    const sent: Array<{ inPort?: number; data: Uint8Array }> = [];
    const io: PacketIo = {
      onPacketIn: (h) => ((handler = h), () => (handler = undefined)),
      packetOut: async (p) => void sent.push(p),
    };
    const resolver = new DnsResolver(undefined, { attemptTimeoutMs: 50, totalTimeoutMs: 50 });
    resolver.setDirectory(new DnsDirectory([{ network: 'blue', domain: 'blue.loom' }], [{ network: 'blue', names: ['web'], ipv4: '198.18.0.5' }]));
    let now = 0;
    const outcomes: string[] = [];
    const r = new DnsResponder(io, resolver, (port) => (port === 1 ? { networks: ['blue'], upstreams } : undefined), log, limits, { query: (o) => outcomes.push(o) }, () => now);
    const packetIn = (data: Buffer, inPort = 1, feature: number = Feature.Dns) =>
      handler!({ xid: 0, bufferId: 0xffffffff, totalLen: data.length, reason: 1, reasonName: 'action', tableId: 30, cookie: cookie(1, feature as 7, 100), match: Buffer.alloc(0), data, fields: [{ field: 'in_port', value: inPort }, { field: 'reg', index: 1, value: 100 }] });
    return { r, sent, outcomes, packetIn, tick: (ms: number) => (now += ms) };
  };
  const limits: DnsResponderLimits = { perPortQps: 10, perPortBurst: 3, perPortInFlight: 1, totalInFlight: 10 };
  const flush = () => new Promise((r) => setTimeout(r, 10));

  it('answers a local name to the port it came from, and ignores other features and unknown ports', async () => {
    const t = setup(limits);
    t.packetIn(frame('198.18.0.2', '198.18.0.1', query('web.blue.loom')));
    t.packetIn(frame('198.18.0.2', '198.18.0.1', query('web')), 1, Feature.ArpNd);
    t.packetIn(frame('198.18.0.9', '198.18.0.1', query('web')), 2);
    await flush();
    expect(t.sent).toHaveLength(1);
    expect(t.sent[0]!.inPort).toBe(1);
    const answer = dnsPacket.decode(parseUdpFrame(Buffer.from(t.sent[0]!.data))!.payload);
    expect(answer.answers?.map((a) => (a as { data: unknown }).data)).toEqual(['198.18.0.5']);
    expect(t.outcomes).toEqual(['answered', 'no_scope']);
  });

  it('limits each port to its rate, refilling with time', async () => {
    const t = setup(limits);
    for (let i = 0; i < 5; i++) t.packetIn(frame('198.18.0.2', '198.18.0.1', query('web', 'A', i)));
    await flush();
    expect(t.sent).toHaveLength(3); // the burst
    t.tick(100); // one more token at 10/s
    t.packetIn(frame('198.18.0.2', '198.18.0.1', query('web', 'A', 9)));
    await flush();
    expect(t.sent).toHaveLength(4);
    expect(t.outcomes.filter((o) => o === 'rate_limited')).toHaveLength(2);
  });

  it('caps queries in flight per port (forwarding waits on upstreams)', async () => {
    // Nothing listens on loopback port 9: the forward fails (refused, or its 50 ms pass).
    const t = setup(limits, ['127.0.0.1:9']);
    t.packetIn(frame('198.18.0.2', '198.18.0.1', query('example.org', 'A', 1)));
    t.packetIn(frame('198.18.0.2', '198.18.0.1', query('example.org', 'A', 2)));
    expect(t.outcomes).toEqual(['answered', 'overloaded']);
    await new Promise((r) => setTimeout(r, 200));
    expect(t.sent).toHaveLength(1);
    expect((dnsPacket.decode(parseUdpFrame(Buffer.from(t.sent[0]!.data))!.payload) as { rcode?: string }).rcode).toBe('SERVFAIL');
  });
});
