// The overlay: tunnel ingress (the key names the network) and routes to other hosts' blocks and
// static addresses. One flow per remote prefix: forwarding state grows with hosts, not endpoints.
import type { Flow, NetworkState, PipelineState } from './state.js';
import { Feature, OutPortReg, Source, Table, classify, cookie, gatewayMac, matchFromThisHost, matchOutPort, matchVni } from './fields.js';
import { goto, inPort, ipMatch, prefixLength } from './match-helpers.js';

/** Longer prefixes win: a static /32 exception beats the /26 block it may sit in. */
export const ROUTE_PRIORITY_BASE = 100;

export function tunnelFlows(state: PipelineState): Flow[] {
  return [...tunnelPortFlows(state), ...state.networks.flatMap((net) => tunnelNetworkFlows(state, net))];
}

/** The output flow of each tunnel port, whatever networks there are. */
export function tunnelPortFlows(state: Pick<PipelineState, 'generation' | 'tunnelPorts'>): Flow[] {
  return Object.values(state.tunnelPorts).map((port) => ({
    table: Table.Output,
    priority: 200,
    cookie: cookie(state.generation, Feature.Tunnel, port),
    match: [matchOutPort(port)],
    instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port }] }],
  }));
}

/** A network's tunnel ingress and its routes to other hosts. */
export function tunnelNetworkFlows(state: Pick<PipelineState, 'generation' | 'tunnelPorts'>, net: NetworkState): Flow[] {
  const flows: Flow[] = [];
  const port = state.tunnelPorts[net.tunnel];
  const c = cookie(state.generation, Feature.Tunnel, net.vni);
  // Ingress: only the network's own tunnel type and key are accepted; unknown keys are dropped.
  flows.push({
    table: Table.Classifier,
    priority: 200,
    cookie: c,
    match: [...inPort(port), { field: 'tunnel_id', value: BigInt(net.vni) }],
    instructions: classify(Source.Tunnel, net.vni, Table.L3Forwarding),
  });
  const gw = gatewayMac(net.vni);
  for (const route of net.remote) {
    flows.push({
      table: Table.L3Forwarding,
      priority: ROUTE_PRIORITY_BASE + prefixLength(route.prefix),
      cookie: c,
      // Only what entered on this host (endpoints, the gateway port) enters a tunnel: a host
      // never relays tunnel to tunnel.
      match: [matchVni(net.vni), matchFromThisHost(), ...ipMatch('dst', route.prefix)],
      instructions: [
        {
          type: 'apply_actions',
          actions: [
            { type: 'set_field', field: { field: 'tunnel_id', value: BigInt(net.vni) } },
            { type: 'set_field', field: { field: 'tun_ipv4_dst', value: route.vtep } },
            { type: 'set_field', field: { field: 'eth_src', value: gw } },
            { type: 'set_field', field: { field: 'eth_dst', value: gw } },
            { type: 'load', dst: OutPortReg, value: port },
          ],
        },
        goto(Table.Policy),
      ],
    });
  }
  return flows;
}
