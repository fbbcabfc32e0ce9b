// Answers IPv6 neighbour solicitations for a network's gateway, which the ArpNd table sends to
// the agent as packet-ins: a neighbour advertisement needs a rebuilt ICMPv6 body and checksum,
// which OpenFlow actions cannot do. Pure packet code plus the small glue the agent calls.
import type { Logger } from 'pino';
import { ipv6ToBytes, bytesToIpv6, macToBytes, bytesToMac } from '../common/ip.js';
import { internetChecksum, pseudoHeader } from '../common/checksum.js';
import type { Action, Match } from '../openflow/types.js';
import type { PacketIn } from '../openflow/messages.js';
import { gatewayMac, VniReg } from './pipeline/fields.js';

/** The OpenFlow calls the responder makes (OpenFlowClient implements them). */
export interface PacketIo {
  onPacketIn(handler: (p: PacketIn & { fields: Match }) => void): () => void;
  packetOut(p: { inPort?: number; actions: Action[]; data: Uint8Array }): Promise<void>;
}

/**
 * Answers solicitations for the IPv6 gateway of the network whose VNI the packet-in carries;
 * `gateway6(vni)` gives that address, if the network has one. Returns the unsubscribe function.
 */
export function answerGatewaySolicitations(io: PacketIo, gateway6: (vni: number) => string | undefined, log: Logger): () => void {
  return io.onPacketIn((p) => {
    const inPort = p.fields.find((f) => f.field === 'in_port')?.value;
    const vni = p.fields.find((f) => f.field === 'reg' && f.index === VniReg.index)?.value;
    const ns = parseNeighborSolicitation(p.data);
    if (typeof inPort !== 'number' || typeof vni !== 'number' || !ns) return;
    const gateway = gateway6(vni);
    if (!gateway || gateway !== ns.target) return;
    const reply = buildNeighborAdvertisement(ns, gateway, gatewayMac(vni));
    io.packetOut({ inPort, actions: [{ type: 'output', port: 'in_port' }], data: reply }).catch((err: unknown) => log.warn({ err, inPort }, 'sending a neighbour advertisement failed'));
  });
}

const ETH_IPV6 = 0x86dd;
const ICMPV6 = 58;
const NS = 135;
const NA = 136;
const OPT_TARGET_LL = 2;
const FLAG_ROUTER = 0x80;
const FLAG_SOLICITED = 0x40;
const FLAG_OVERRIDE = 0x20;

export interface NeighborSolicitation {
  srcMac: string;
  srcIp: string;
  target: string;
}

/** Parses an untagged Ethernet frame carrying an ICMPv6 neighbour solicitation; else undefined. */
export function parseNeighborSolicitation(frame: Buffer): NeighborSolicitation | undefined {
  if (frame.length < 14 + 40 + 24 || frame.readUInt16BE(12) !== ETH_IPV6) return undefined;
  const ip = 14;
  if (frame[ip + 6] !== ICMPV6 || frame[ip + 7] !== 255) return undefined; // RFC 4861: hop limit 255
  const icmp = ip + 40;
  if (frame[icmp] !== NS || frame[icmp + 1] !== 0) return undefined;
  return {
    srcMac: bytesToMac(frame.subarray(6, 12)),
    srcIp: bytesToIpv6(frame.subarray(ip + 8, ip + 24)),
    target: bytesToIpv6(frame.subarray(icmp + 8, icmp + 24)),
  };
}

/** Builds the neighbour advertisement `routerMac` sends for `target` in answer to `ns`. */
export function buildNeighborAdvertisement(ns: NeighborSolicitation, target: string, routerMac: string): Buffer {
  // A solicitation from the unspecified address (DAD) is answered to all nodes, unsolicited.
  const dad = ns.srcIp === '::';
  const dstIp = dad ? 'ff02::1' : ns.srcIp;
  const dstMac = dad ? '33:33:00:00:00:01' : ns.srcMac;
  const icmpLen = 24 + 8;
  const frame = Buffer.alloc(14 + 40 + icmpLen);
  macToBytes(dstMac).copy(frame, 0);
  macToBytes(routerMac).copy(frame, 6);
  frame.writeUInt16BE(ETH_IPV6, 12);
  const ip = 14;
  frame.writeUInt32BE(0x60000000, ip);
  frame.writeUInt16BE(icmpLen, ip + 4);
  frame[ip + 6] = ICMPV6;
  frame[ip + 7] = 255;
  ipv6ToBytes(target).copy(frame, ip + 8);
  ipv6ToBytes(dstIp).copy(frame, ip + 24);
  const icmp = ip + 40;
  frame[icmp] = NA;
  frame[icmp + 4] = FLAG_ROUTER | FLAG_OVERRIDE | (dad ? 0 : FLAG_SOLICITED);
  ipv6ToBytes(target).copy(frame, icmp + 8);
  frame[icmp + 24] = OPT_TARGET_LL;
  frame[icmp + 25] = 1; // length in units of 8 bytes
  macToBytes(routerMac).copy(frame, icmp + 26);
  frame.writeUInt16BE(icmpv6Checksum(frame.subarray(ip + 8, ip + 24), frame.subarray(ip + 24, ip + 40), frame.subarray(icmp)), icmp + 2);
  return frame;
}

/** RFC 4443 checksum over the IPv6 pseudo-header and the ICMPv6 message (checksum field zero). */
export function icmpv6Checksum(src: Buffer, dst: Buffer, message: Buffer): number {
  return internetChecksum(pseudoHeader(src, dst, ICMPV6, message.length), message);
}

