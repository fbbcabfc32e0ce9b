// Local endpoints: classify their traffic, deliver routed packets to them, and the output table.
import type { Flow, NetworkState, PipelineState } from './state.js';
import { Feature, OutPortReg, Source, Table, classify, cookie, gatewayMac, matchOutPort, matchVni } from './fields.js';
import { goto, inPort, ipMatch } from './match-helpers.js';

export function connectivityFlows(state: PipelineState): Flow[] {
  const flows: Flow[] = [];
  for (const net of state.networks) {
    for (const ep of net.endpoints) flows.push(...endpointFlows(state.generation, net, ep));
  }
  return flows;
}

/** One endpoint's flows: they depend on its network's VNI and nothing else of the state. */
export function endpointFlows(generation: number, net: Pick<NetworkState, 'vni'>, ep: NetworkState['endpoints'][number]): Flow[] {
  const c = cookie(generation, Feature.Connectivity, ep.ofport);
  const flows: Flow[] = [
    {
      // Everything from this port belongs to the endpoint's network.
      table: Table.Classifier,
      priority: 200,
      cookie: c,
      match: inPort(ep.ofport),
      instructions: classify(Source.LocalEndpoint, net.vni, Table.SpoofGuard),
    },
    {
      table: Table.Output,
      priority: 200,
      cookie: c,
      match: [matchOutPort(ep.ofport)],
      instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: ep.ofport }] }],
    },
  ];
  // Local delivery: the gateway routes the packet to the endpoint, so it rewrites both MACs.
  for (const address of [ep.ipv4, ep.ipv6]) {
    if (!address) continue;
    flows.push({
      table: Table.L3Forwarding,
      priority: 300,
      cookie: c,
      match: [matchVni(net.vni), ...ipMatch('dst', address)],
      instructions: [
        {
          type: 'apply_actions',
          actions: [
            { type: 'set_field', field: { field: 'eth_src', value: gatewayMac(net.vni) } },
            { type: 'set_field', field: { field: 'eth_dst', value: ep.mac } },
            { type: 'load', dst: OutPortReg, value: ep.ofport },
          ],
        },
        goto(Table.Policy),
      ],
    });
  }
  return flows;
}
