// ARP and IPv6 neighbour discovery. Endpoints route everything through their network's gateway
// (the agent gives them a permanent neighbour entry for it), so the only address anyone resolves
// is the gateway's. It is answered right here; every other ARP or ND packet is dropped, so no
// broadcast ever reaches a tunnel.
import type { Flow, PipelineState } from './state.js';
import { Feature, Table, cookie, gatewayMac, matchVni } from './fields.js';
import { EthType, Icmpv6Type, IpProto } from './match-helpers.js';

const ARP_REQUEST = 1;
const ARP_REPLY = 2;

export function arpNdFlows(state: PipelineState): Flow[] {
  const flows: Flow[] = [];
  for (const net of state.networks) {
    const c = cookie(state.generation, Feature.ArpNd, net.vni);
    const mac = gatewayMac(net.vni);
    if (net.gateway4) {
      // Turn the request around in place: the reply leaves by the port the request came in.
      flows.push({
        table: Table.ArpNd,
        priority: 200,
        cookie: c,
        match: [
          matchVni(net.vni),
          { field: 'eth_type', value: EthType.ARP },
          { field: 'arp_op', value: ARP_REQUEST },
          { field: 'arp_tpa', value: net.gateway4 },
        ],
        instructions: [
          {
            type: 'apply_actions',
            actions: [
              { type: 'move', src: { field: 'eth_src' }, dst: { field: 'eth_dst' } },
              { type: 'set_field', field: { field: 'eth_src', value: mac } },
              { type: 'set_field', field: { field: 'arp_op', value: ARP_REPLY } },
              { type: 'move', src: { field: 'arp_sha' }, dst: { field: 'arp_tha' } },
              { type: 'move', src: { field: 'arp_spa' }, dst: { field: 'arp_tpa' } },
              { type: 'set_field', field: { field: 'arp_sha', value: mac } },
              { type: 'set_field', field: { field: 'arp_spa', value: net.gateway4 } },
              { type: 'output', port: 'in_port' },
            ],
          },
        ],
      });
    }
    if (net.gateway6) {
      // A neighbour advertisement needs its ICMPv6 body rebuilt, which the agent does from a
      // packet-in; endpoints do not depend on it (their gateway entry is permanent).
      flows.push({
        table: Table.ArpNd,
        priority: 200,
        cookie: c,
        match: [
          matchVni(net.vni),
          { field: 'eth_type', value: EthType.IPv6 },
          { field: 'ip_proto', value: IpProto.ICMPv6 },
          { field: 'icmpv6_type', value: Icmpv6Type.NeighborSolicit },
          { field: 'ipv6_nd_target', value: net.gateway6 },
        ],
        instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: 'controller', maxLen: 0xffff }] }],
      });
    }
  }
  return flows;
}
