// DNS: a local endpoint's UDP query to its network's gateway (port 53) goes to the agent as a
// packet-in; the agent answers it from the endpoint directory (or forwards it upstream) and sends
// the answer back to the port it came from (src/agent/dns-responder.ts). The match sits in
// L3Forwarding above every route, after the spoof guard, so only a container's own address can ask.
// TCP to the gateway's port 53 (a client retrying a truncated answer) goes through the host path
// instead, when the host has one: the destination becomes the host's address in the network, where
// the agent listens (dns/server.ts), and the answer's source the gateway again, by stateless 1:1
// rewrites (a TCP stack is the host's, not the agent's); both directions skip the Policy table.
import type { Flow, LocalEndpoint, NetworkState, PipelineState } from './state.js';
import { Feature, OutPortReg, Source, Table, cookie, gatewayMac, matchSource, matchVni } from './fields.js';
import { EthType, IpProto, goto, ipMatch } from './match-helpers.js';
import { toHost } from './host-path.js';

const TCP = 6;

export const DNS_PORT = 53;
/** Above local delivery (300) and remote routes (100 + prefix length). */
const PRIORITY = 400;

export function dnsFlows(state: PipelineState): Flow[] {
  const flows: Flow[] = [];
  for (const net of state.networks) {
    const c = cookie(state.generation, Feature.Dns, net.vni);
    const toAgent = [{ type: 'apply_actions' as const, actions: [{ type: 'output' as const, port: 'controller' as const, maxLen: 0xffff }] }];
    const base = [matchSource(Source.LocalEndpoint), matchVni(net.vni)];
    if (net.gateway4) {
      flows.push({
        table: Table.L3Forwarding,
        priority: PRIORITY,
        cookie: c,
        match: [...base, { field: 'eth_type', value: EthType.IPv4 }, { field: 'ipv4_dst', value: net.gateway4 }, { field: 'ip_proto', value: IpProto.UDP }, { field: 'udp_dst', value: DNS_PORT }],
        instructions: toAgent,
      });
    }
    if (net.gateway6) {
      flows.push({
        table: Table.L3Forwarding,
        priority: PRIORITY,
        cookie: c,
        match: [...base, { field: 'eth_type', value: EthType.IPv6 }, { field: 'ipv6_dst', value: net.gateway6 }, { field: 'ip_proto', value: IpProto.UDP }, { field: 'udp_dst', value: DNS_PORT }],
        instructions: toAgent,
      });
    }
    const port = state.gatewayPort;
    if (!port) continue;
    const families = [
      { gateway: net.gateway4, host: net.hostAddress4, cidr: net.ipv4Cidr, v6: false },
      { gateway: net.gateway6, host: net.hostAddress6, cidr: net.ipv6Cidr, v6: true },
    ];
    for (const f of families) {
      if (!f.gateway || !f.host || !f.cidr) continue;
      const dstField = f.v6 ? ('ipv6_dst' as const) : ('ipv4_dst' as const);
      // A container's TCP to gateway:53 -> the host's address in the network, port 53. Like the
      // UDP queries (answered before Policy), it bypasses network policy: an isolated network's
      // containers resolve names too, and conntrack never sees the rewritten connection.
      flows.push({
        table: Table.L3Forwarding,
        priority: PRIORITY,
        cookie: c,
        match: [...base, ...ipMatch('dst', f.gateway), { field: 'ip_proto', value: TCP }, { field: 'tcp_dst', value: DNS_PORT }],
        instructions: [{ type: 'apply_actions', actions: [{ type: 'set_field', field: { field: dstField, value: f.host } }, ...toHost(port, net.vni)] }, goto(Table.Output)],
      });
    }
  }
  for (const net of state.networks) for (const ep of net.endpoints) flows.push(...dnsEndpointFlows(state, net, ep));
  return flows;
}

/** TCP answers to one local endpoint: from the host's address, port 53 -> from the gateway. */
export function dnsEndpointFlows(state: Pick<PipelineState, 'generation' | 'gatewayPort'>, net: NetworkState, ep: LocalEndpoint): Flow[] {
  if (!state.gatewayPort) return [];
  const c = cookie(state.generation, Feature.Dns, net.vni);
  const flows: Flow[] = [];
  const families = [
    { gateway: net.gateway4, host: net.hostAddress4, cidr: net.ipv4Cidr, address: ep.ipv4, v6: false },
    { gateway: net.gateway6, host: net.hostAddress6, cidr: net.ipv6Cidr, address: ep.ipv6, v6: true },
  ];
  for (const f of families) {
    if (!f.gateway || !f.host || !f.cidr || !f.address) continue;
    const srcField = f.v6 ? ('ipv6_src' as const) : ('ipv4_src' as const);
    flows.push({
      table: Table.L3Forwarding,
      priority: PRIORITY,
      cookie: c,
      match: [matchVni(net.vni), matchSource(Source.GatewayPort), ...ipMatch('src', f.host), ...ipMatch('dst', f.address).slice(1), { field: 'ip_proto', value: TCP }, { field: 'tcp_src', value: DNS_PORT }],
      instructions: [
        {
          type: 'apply_actions',
          actions: [
            { type: 'set_field', field: { field: srcField, value: f.gateway } },
            { type: 'set_field', field: { field: 'eth_src', value: gatewayMac(net.vni) } },
            { type: 'set_field', field: { field: 'eth_dst', value: ep.mac } },
            { type: 'load', dst: OutPortReg, value: ep.ofport },
          ],
        },
        goto(Table.Output),
      ],
    });
  }
  return flows;
}
