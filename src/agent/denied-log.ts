// The opt-in log of denied connection attempts (`--log-denied`): with it, the default-deny flow
// of every isolated network also sends the packet to the agent (packet-in, cut to its headers),
// through an OVS meter that bounds how many a second reach the agent at all; here a token bucket
// bounds the log lines, and what it holds back is counted, not logged.
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { bytesToIpv4, bytesToIpv6 } from '../common/ip.js';
import { DENY_OBJECT, Feature, OBJECT_MASK, cookieFeature } from './pipeline/fields.js';
import type { PacketIo } from './nd-responder.js';
import { TokenBucket } from '../common/token-bucket.js';

export interface DeniedPacket {
  source: string;
  destination: string;
  /** tcp, udp, icmp, icmpv6, or the IP protocol number. */
  protocol: string;
  /** TCP/UDP destination port; ICMP: the type. */
  port?: number;
  sourcePort?: number;
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };

/** Ethernet + IPv4/IPv6 + TCP/UDP/ICMP header fields of a packet, or undefined if it is not IP. */
export function parseDeniedPacket(data: Uint8Array): DeniedPacket | undefined {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < 14) return undefined;
  const ethType = b.readUInt16BE(12);
  let proto: number;
  let l4: number;
  let source: string;
  let destination: string;
  if (ethType === 0x0800) {
    if (b.length < 34 || b[14]! >> 4 !== 4) return undefined;
    l4 = 14 + (b[14]! & 0xf) * 4;
    proto = b[23]!;
    source = bytesToIpv4(b.subarray(26, 30));
    destination = bytesToIpv4(b.subarray(30, 34));
    // A fragment after the first carries no transport header.
    if ((b.readUInt16BE(20) & 0x1fff) !== 0) return { source, destination, protocol: PROTO_NAMES[proto] ?? String(proto) };
  } else if (ethType === 0x86dd) {
    if (b.length < 54) return undefined;
    l4 = 54;
    proto = b[20]!;
    source = bytesToIpv6(b.subarray(22, 38));
    destination = bytesToIpv6(b.subarray(38, 54));
  } else {
    return undefined;
  }
  const protocol = PROTO_NAMES[proto] ?? String(proto);
  if ((proto === 6 || proto === 17) && b.length >= l4 + 4) return { source, destination, protocol, sourcePort: b.readUInt16BE(l4), port: b.readUInt16BE(l4 + 2) };
  if ((proto === 1 || proto === 58) && b.length >= l4 + 1) return { source, destination, protocol, port: b[l4]! };
  return { source, destination, protocol };
}

export interface DeniedLogOptions {
  /** Lines a second (and the burst). */
  rate: number;
  /** The network's name by VNI (the deny flow's cookie carries the VNI). */
  networkOf: (vni: number) => string | undefined;
  log: Logger;
  /** loom_agent_policy_denied_log_lines_total{outcome}: logged, suppressed. */
  lines?: Counter<'outcome'>;
  now?: () => number;
}

/** Logs what the default-deny flows send to the agent; returns the unsubscribe function. */
export function logDeniedAttempts(io: Pick<PacketIo, 'onPacketIn'>, opts: DeniedLogOptions): () => void {
  const bucket = new TokenBucket(opts.rate, opts.rate, opts.now);
  return io.onPacketIn((p) => {
    if (cookieFeature(p.cookie) !== Feature.NetworkPolicy) return;
    const object = p.cookie & OBJECT_MASK;
    if ((object & DENY_OBJECT) === 0n) return;
    if (!bucket.take()) {
      opts.lines?.inc({ outcome: 'suppressed' });
      return;
    }
    const vni = Number(object & 0xff_ffffn);
    const packet = parseDeniedPacket(p.data);
    const inPort = p.fields.find((f) => f.field === 'in_port')?.value;
    opts.lines?.inc({ outcome: 'logged' });
    opts.log.info(
      { network: opts.networkOf(vni) ?? `vni ${vni}`, vni, ...(packet ?? { protocol: 'unparsed' }), inPort, rule: 'default deny' },
      'denied connection attempt',
    );
  });
}
