// Security: the spoof guard (an endpoint sends only with its own MAC and addresses) and the policy
// table between routing and output. Networks are isolated by construction: every routing flow
// matches the VNI, so a packet of network A can never match a destination of network B.
import type { Flow, LocalEndpoint, PipelineState } from './state.js';
import { Feature, Table, cookie } from './fields.js';
import { EthType, Icmpv6Type, IpProto, goto, inPort, ipMatch } from './match-helpers.js';

export function policyFlows(state: PipelineState): Flow[] {
  const flows: Flow[] = [
    {
      // No policy rules yet: everything routed within a network is allowed.
      table: Table.Policy,
      priority: 0,
      cookie: cookie(state.generation, Feature.Policy),
      match: [],
      instructions: [goto(Table.Output)],
    },
  ];
  for (const net of state.networks) {
    for (const ep of net.endpoints) flows.push(...spoofGuardFlows(state.generation, ep));
  }
  return flows;
}

function spoofGuardFlows(generation: number, ep: LocalEndpoint): Flow[] {
  const c = cookie(generation, Feature.SpoofGuard, ep.ofport);
  const from = [...inPort(ep.ofport), { field: 'eth_src' as const, value: ep.mac }];
  const flows: Flow[] = [];
  if (ep.ipv4) {
    flows.push({
      table: Table.SpoofGuard,
      priority: 200,
      cookie: c,
      match: [
        ...from,
        { field: 'eth_type', value: EthType.ARP },
        { field: 'arp_spa', value: ep.ipv4 },
        { field: 'arp_sha', value: ep.mac },
      ],
      instructions: [goto(Table.ArpNd)],
    });
    flows.push({ table: Table.SpoofGuard, priority: 200, cookie: c, match: [...from, ...ipMatch('src', ep.ipv4)], instructions: [goto(Table.L3Forwarding)] });
  }
  if (ep.ipv6) {
    // Solicitations may come from the link-local address, so they are checked on MAC only.
    flows.push({
      table: Table.SpoofGuard,
      priority: 210,
      cookie: c,
      match: [
        ...from,
        { field: 'eth_type', value: EthType.IPv6 },
        { field: 'ip_proto', value: IpProto.ICMPv6 },
        { field: 'icmpv6_type', value: Icmpv6Type.NeighborSolicit },
      ],
      instructions: [goto(Table.ArpNd)],
    });
    flows.push({ table: Table.SpoofGuard, priority: 200, cookie: c, match: [...from, ...ipMatch('src', ep.ipv6)], instructions: [goto(Table.L3Forwarding)] });
  }
  return flows;
}
