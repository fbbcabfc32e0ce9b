// Small builders that keep the feature files readable: protocol matches with their prerequisites.
import { parseIpWithPrefix } from '../../common/ip.js';
import type { Instruction, Match, MatchField } from '../../openflow/types.js';
import { ipv4PrefixMask, ipv6PrefixMask } from '../../openflow/match.js';

export const EthType = { IPv4: 0x0800, ARP: 0x0806, IPv6: 0x86dd } as const;
export const IpProto = { UDP: 17, ICMPv6: 58 } as const;
export const Icmpv6Type = { RouterSolicit: 133, NeighborSolicit: 135, NeighborAdvert: 136 } as const;

/** Destination (or source) address match for a CIDR or a bare address, with its eth_type. */
export function ipMatch(dir: 'src' | 'dst', cidrOrAddress: string): MatchField[] {
  const { bytes, prefix } = parseIpWithPrefix(cidrOrAddress);
  const address = cidrOrAddress.split('/')[0];
  if (bytes.length === 16) {
    const f: MatchField = { field: dir === 'src' ? 'ipv6_src' : 'ipv6_dst', value: address };
    if (prefix < 128) f.mask = ipv6PrefixMask(prefix);
    return [{ field: 'eth_type', value: EthType.IPv6 }, f];
  }
  const f: MatchField = { field: dir === 'src' ? 'ipv4_src' : 'ipv4_dst', value: address };
  if (prefix < 32) f.mask = ipv4PrefixMask(prefix);
  return [{ field: 'eth_type', value: EthType.IPv4 }, f];
}

/** Prefix length of a CIDR or bare address. */
export function prefixLength(cidrOrAddress: string): number {
  return parseIpWithPrefix(cidrOrAddress).prefix;
}

export const goto = (table: number): Instruction => ({ type: 'goto_table', table });

export function inPort(port: number): Match {
  return [{ field: 'in_port', value: port }];
}
