// Answers containers' DNS queries that the pipeline's Dns flows (pipeline/dns.ts) send to the
// agent as packet-ins: UDP to the network's gateway, port 53. The frame is parsed here (Ethernet,
// IPv4 or IPv6, UDP), the query answered by the resolver in the asker's scope, and the answer
// sent back to the port it came from as a packet-out, with the gateway as its source. Everything a
// container controls is bounded: queries per second per port, queries in flight per port and in
// all, the answer's size (what the client's EDNS0 size and its MTU allow, 512 without EDNS0; cut
// with TC set, as a UDP server does).
import { fitUdp } from './dns/resolver.js';
import type { Logger } from 'pino';
import { bytesToIpv4, bytesToIpv6, bytesToMac, ipv4ToBytes, ipv6ToBytes, macToBytes } from '../common/ip.js';
import type { PacketIo } from './nd-responder.js';
import { TokenBucket } from '../common/token-bucket.js';
import { internetChecksum, pseudoHeader } from '../common/checksum.js';
import { Feature, VniReg, cookieFeature, gatewayMac } from './pipeline/fields.js';
import { DNS_PORT } from './pipeline/dns.js';
import type { DnsResolver, DnsScope } from './dns/resolver.js';

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const UDP = 17;

export interface UdpDatagram {
  family: 4 | 6;
  srcMac: string;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

/** Parses an untagged Ethernet frame carrying one unfragmented UDP datagram; else undefined. */
export function parseUdpFrame(frame: Buffer): UdpDatagram | undefined {
  if (frame.length < 14) return undefined;
  const ethType = frame.readUInt16BE(12);
  const ip = 14;
  let udp: number;
  let family: 4 | 6;
  let srcIp: string;
  let dstIp: string;
  let ipEnd: number;
  if (ethType === ETH_IPV4) {
    if (frame.length < ip + 20 || frame[ip]! >> 4 !== 4) return undefined;
    const ihl = (frame[ip]! & 0x0f) * 4;
    const total = frame.readUInt16BE(ip + 2);
    // More fragments, or an offset: not a whole datagram.
    if (ihl < 20 || frame[ip + 9] !== UDP || (frame.readUInt16BE(ip + 6) & 0x3fff) !== 0) return undefined;
    family = 4;
    srcIp = bytesToIpv4(frame.subarray(ip + 12, ip + 16));
    dstIp = bytesToIpv4(frame.subarray(ip + 16, ip + 20));
    udp = ip + ihl;
    ipEnd = ip + total;
  } else if (ethType === ETH_IPV6) {
    // Extension headers (fragments among them) are not followed: a DNS query carries none.
    if (frame.length < ip + 40 || frame[ip]! >> 4 !== 6 || frame[ip + 6] !== UDP) return undefined;
    family = 6;
    srcIp = bytesToIpv6(frame.subarray(ip + 8, ip + 24));
    dstIp = bytesToIpv6(frame.subarray(ip + 24, ip + 40));
    udp = ip + 40;
    ipEnd = udp + frame.readUInt16BE(ip + 4);
  } else {
    return undefined;
  }
  if (ipEnd > frame.length || udp + 8 > ipEnd) return undefined;
  const udpLen = frame.readUInt16BE(udp + 4);
  if (udpLen < 8 || udp + udpLen > ipEnd) return undefined;
  return {
    family,
    srcMac: bytesToMac(frame.subarray(6, 12)),
    srcIp,
    dstIp,
    srcPort: frame.readUInt16BE(udp),
    dstPort: frame.readUInt16BE(udp + 2),
    payload: frame.subarray(udp + 8, udp + udpLen),
  };
}

/** The frame answering `q` with `payload`: addresses and ports swapped, `fromMac` as the sender. */
export function buildUdpReply(q: UdpDatagram, payload: Buffer, fromMac: string): Buffer {
  const ipLen = q.family === 4 ? 20 : 40;
  const udpLen = 8 + payload.length;
  const frame = Buffer.alloc(14 + ipLen + udpLen);
  macToBytes(q.srcMac).copy(frame, 0);
  macToBytes(fromMac).copy(frame, 6);
  frame.writeUInt16BE(q.family === 4 ? ETH_IPV4 : ETH_IPV6, 12);
  const ip = 14;
  const src = q.family === 4 ? ipv4ToBytes(q.dstIp) : ipv6ToBytes(q.dstIp);
  const dst = q.family === 4 ? ipv4ToBytes(q.srcIp) : ipv6ToBytes(q.srcIp);
  if (q.family === 4) {
    frame[ip] = 0x45;
    frame.writeUInt16BE(ipLen + udpLen, ip + 2);
    frame.writeUInt16BE(0x4000, ip + 6); // don't fragment
    frame[ip + 8] = 64;
    frame[ip + 9] = UDP;
    src.copy(frame, ip + 12);
    dst.copy(frame, ip + 16);
    frame.writeUInt16BE(internetChecksum(frame.subarray(ip, ip + 20)), ip + 10);
  } else {
    frame.writeUInt32BE(0x60000000, ip);
    frame.writeUInt16BE(udpLen, ip + 4);
    frame[ip + 6] = UDP;
    frame[ip + 7] = 64;
    src.copy(frame, ip + 8);
    dst.copy(frame, ip + 24);
  }
  const udp = ip + ipLen;
  frame.writeUInt16BE(q.dstPort, udp);
  frame.writeUInt16BE(q.srcPort, udp + 2);
  frame.writeUInt16BE(udpLen, udp + 4);
  payload.copy(frame, udp + 8);
  frame.writeUInt16BE(udpChecksum(src, dst, frame.subarray(udp)), udp + 6);
  return frame;
}

/**
 * RFC 768 / RFC 8200 8.1 checksum over the pseudo-header and the UDP datagram (checksum field
 * zero); 0 is sent as 0xffff (an IPv6 UDP checksum is mandatory, zero means "none" in IPv4).
 */
export function udpChecksum(src: Uint8Array, dst: Uint8Array, datagram: Buffer): number {
  const c = internetChecksum(pseudoHeader(src, dst, UDP, datagram.length), datagram);
  return c === 0 ? 0xffff : c;
}


export interface DnsResponderLimits {
  /** Sustained queries per second one port may ask (token bucket). */
  perPortQps: number;
  /** Bucket size: a burst a port may ask at once. */
  perPortBurst: number;
  /** Queries of one port being answered at once (forwarding waits on upstreams). */
  perPortInFlight: number;
  /** Queries of all ports being answered at once. */
  totalInFlight: number;
}

export const DEFAULT_RESPONDER_LIMITS: DnsResponderLimits = { perPortQps: 500, perPortBurst: 200, perPortInFlight: 64, totalInFlight: 1024 };

export interface DnsResponderMetrics {
  /** A query arrived; `outcome` is answered, rate_limited, overloaded, no_scope or malformed. */
  query(outcome: string): void;
}

interface Bucket {
  rate: TokenBucket;
  inFlight: number;
}

/**
 * Subscribes to packet-ins of the Dns feature and answers them. `scopeOf(inPort, vni)` gives the
 * asker's networks and upstreams (undefined: not a local endpoint, dropped).
 */
export class DnsResponder {
  private readonly buckets = new Map<number, Bucket>();
  private inFlight = 0;
  private readonly off: () => void;

  constructor(
    io: PacketIo,
    private readonly resolver: DnsResolver,
    private readonly scopeOf: (inPort: number, vni: number) => DnsScope | undefined,
    private readonly log: Logger,
    private readonly limits: DnsResponderLimits = DEFAULT_RESPONDER_LIMITS,
    private readonly metrics?: DnsResponderMetrics,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.off = io.onPacketIn((p) => {
      if (cookieFeature(p.cookie) !== Feature.Dns) return;
      const inPort = p.fields.find((f) => f.field === 'in_port')?.value;
      const vni = p.fields.find((f) => f.field === 'reg' && f.index === VniReg.index)?.value;
      if (typeof inPort !== 'number' || typeof vni !== 'number') return;
      this.handle(p.data, inPort, vni, (reply) =>
        io.packetOut({ inPort, actions: [{ type: 'output', port: 'in_port' }], data: reply }).catch((err: unknown) => log.warn({ err, inPort }, 'sending a DNS answer failed')),
      );
    });
  }

  stop(): void {
    this.off();
  }

  /** Forgets the buckets of ports that are no longer endpoints (ofports are not reused soon; the map stays bounded). */
  retain(ports: ReadonlySet<number>): void {
    for (const port of this.buckets.keys()) if (!ports.has(port)) this.buckets.delete(port);
  }

  /** One frame from `inPort` in the network `vni`; `send` gets the answer frame. */
  handle(frame: Buffer, inPort: number, vni: number, send: (reply: Buffer) => void): void {
    const q = parseUdpFrame(frame);
    if (!q || q.dstPort !== DNS_PORT) return this.metrics?.query('malformed');
    const scope = this.scopeOf(inPort, vni);
    if (!scope) return this.metrics?.query('no_scope');
    const bucket = this.take(inPort);
    if (!bucket) return this.metrics?.query('rate_limited');
    const reply = (answer: Buffer | undefined) => {
      if (!answer) return;
      send(buildUdpReply(q, fitUdp(q.payload, answer, (scope.mtu ?? 1500) - (q.family === 4 ? 28 : 48)), gatewayMac(vni)));
    };
    const cached = this.resolver.answerFromCache(q.payload, scope);
    if (cached) {
      this.metrics?.query('answered');
      return reply(cached);
    }
    if (bucket.inFlight >= this.limits.perPortInFlight || this.inFlight >= this.limits.totalInFlight) return this.metrics?.query('overloaded');
    bucket.inFlight++;
    this.inFlight++;
    this.metrics?.query('answered');
    this.resolver
      .handle(Buffer.from(q.payload), scope)
      .then(reply)
      .catch((err: unknown) => this.log.warn({ err, inPort }, 'answering a DNS query failed'))
      .finally(() => {
        bucket.inFlight--;
        this.inFlight--;
      });
  }

  /** A token from the port's bucket, or undefined when it asks faster than allowed. */
  private take(port: number): Bucket | undefined {
    let b = this.buckets.get(port);
    if (!b) {
      b = { rate: new TokenBucket(this.limits.perPortQps, this.limits.perPortBurst, this.now), inFlight: 0 };
      this.buckets.set(port, b);
    }
    return b.rate.take() ? b : undefined;
  }
}
