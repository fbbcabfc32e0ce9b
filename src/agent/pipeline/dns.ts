// DNS: a local endpoint's UDP query to its network's gateway (port 53) goes to the agent as a
// packet-in; the agent answers it from the endpoint directory (or forwards it upstream) and sends
// the answer back to the port it came from (src/agent/dns-responder.ts). The match sits in
// L3Forwarding above every route, after the spoof guard, so only a container's own address can ask.
import type { Flow, PipelineState } from './state.js';
import { Feature, Source, Table, cookie, matchSource, matchVni } from './fields.js';
import { EthType, IpProto } from './match-helpers.js';

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
  }
  return flows;
}
