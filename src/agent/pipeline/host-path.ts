// The host path: one OVS internal port (loom-gw0, like Antrea's antrea-gw0) joins br-int to the
// host's own network stack. The host holds one address per network it serves (from the
// controller's IPAM) and routes each network's CIDR into the port; everything an endpoint sends
// outside every Loom network goes to the host too, whose firewall (host-firewall.ts) decides:
// egress NAT, replies of published ports, or drop. The port belongs to no single network: what
// comes in from it is classified by its destination, so a network's traffic keeps its VNI.
import type { Flow, GatewayPortState, NetworkState, PipelineState } from './state.js';
import { Feature, OutPortReg, Source, Table, classify, cookie, gatewayMac, matchOutPort, matchSource, matchVni } from './fields.js';
import { EthType, goto, inPort, ipMatch } from './match-helpers.js';

/** Below every route (100 + prefix length): only what no route in the network matched. */
export const TO_HOST_PRIORITY = 10;

export function hostPathFlows(state: PipelineState): Flow[] {
  const port = state.gatewayPort;
  if (!port) return [];
  return [...hostPathPortFlows(state), ...state.networks.flatMap((net) => hostPathNetworkFlows(state, net))];
}

/** The gateway port's output flow, whatever networks there are. */
export function hostPathPortFlows(state: Pick<PipelineState, 'generation' | 'gatewayPort'>): Flow[] {
  const port = state.gatewayPort;
  if (!port) return [];
  return [
    {
      table: Table.Output,
      priority: 200,
      cookie: cookie(state.generation, Feature.HostPath),
      match: [matchOutPort(port.ofport)],
      instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: port.ofport }] }],
    },
  ];
}

/** A network's way to and from the host, when this host has an address in it. */
export function hostPathNetworkFlows(state: Pick<PipelineState, 'generation' | 'gatewayPort'>, net: NetworkState): Flow[] {
  if (!state.gatewayPort || !(net.hostAddress4 || net.hostAddress6)) return [];
  return networkFlows(state.generation, state.gatewayPort, net);
}

/** Actions that send a packet of network `vni` to the host through the gateway port (then: Policy, Output). */
export function toHost(port: GatewayPortState, vni: number) {
  return [
    { type: 'set_field' as const, field: { field: 'eth_src' as const, value: gatewayMac(vni) } },
    { type: 'set_field' as const, field: { field: 'eth_dst' as const, value: port.mac } },
    { type: 'load' as const, dst: OutPortReg, value: port.ofport },
  ];
}

function networkFlows(generation: number, port: GatewayPortState, net: NetworkState): Flow[] {
  const c = cookie(generation, Feature.HostPath, net.vni);
  const flows: Flow[] = [];
  const families = [
    { cidr: net.ipv4Cidr, host: net.hostAddress4, ethType: EthType.IPv4 },
    { cidr: net.ipv6Cidr, host: net.hostAddress6, ethType: EthType.IPv6 },
  ];
  for (const f of families) {
    if (!f.cidr || !f.host) continue;
    // From the host into the network: its own traffic (source = its address in the network) and
    // what it forwards (replies of egress NAT, published ports after DNAT).
    flows.push({
      table: Table.Classifier,
      priority: 200,
      cookie: c,
      match: [...inPort(port.ofport), ...ipMatch('dst', f.cidr)],
      instructions: classify(Source.GatewayPort, net.vni, Table.L3Forwarding),
    });
    // To the host's address in the network, from an endpoint here or over a tunnel.
    flows.push({
      table: Table.L3Forwarding,
      priority: 300,
      cookie: c,
      match: [matchVni(net.vni), ...ipMatch('dst', f.host)],
      instructions: [{ type: 'apply_actions', actions: toHost(port, net.vni) }, goto(Table.Policy)],
    });
    // Anything else a local endpoint sends leaves through its host (never what came from a
    // tunnel or from the host itself: no loops, no relaying).
    flows.push({
      table: Table.L3Forwarding,
      priority: TO_HOST_PRIORITY,
      cookie: c,
      match: [matchVni(net.vni), matchSource(Source.LocalEndpoint), { field: 'eth_type', value: f.ethType }],
      instructions: [{ type: 'apply_actions', actions: toHost(port, net.vni) }, goto(Table.Policy)],
    });
  }
  return flows;
}
