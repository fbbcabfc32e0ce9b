/** Records -> API messages. */
import { dnsName } from '../common/endpoint-name.js';
import type { DnsConfig, Endpoint, EndpointInfo, Host, Network, Policy, Protocol, RouteEntry, TunnelType } from '../api/types.js';
import type { DnsRecord, EndpointRecord, HostRecord, PolicyRecord, ProtocolKind } from './model.js';
import type { Entry, NetworkState } from './state.js';

const TUNNEL: Record<string, TunnelType> = { vxlan: 'TUNNEL_TYPE_VXLAN', gre: 'TUNNEL_TYPE_GRE' };

export function toNetwork(net: NetworkState): Network {
  const { rec, createRevision, modRevision } = net.entry;
  return {
    name: rec.name,
    vni: rec.vni,
    ipv4Cidr: rec.ipv4Cidr,
    ipv6Cidr: rec.ipv6Cidr,
    tunnelType: TUNNEL[rec.tunnel],
    mtu: rec.mtu,
    gateways: rec.gateways,
    dns: { ...rec.dns, domain: rec.dns.domain ?? '' },
    ipv4BlockPrefix: rec.ipv4BlockPrefix,
    ipv6BlockPrefix: rec.ipv6BlockPrefix,
    createRevision,
    modRevision,
    egress: rec.egress === 'off' ? 'EGRESS_MODE_OFF' : 'EGRESS_MODE_NAT',
    ipv6Routed: rec.ipv6Routed ?? false,
    inboundSources: rec.inboundSources ?? [],
    isolation: rec.isolation === 'isolated' ? 'ISOLATION_ISOLATED' : 'ISOLATION_OPEN',
  };
}

const PROTOCOL: Record<ProtocolKind, Protocol> = { any: 'PROTOCOL_UNSPECIFIED', tcp: 'PROTOCOL_TCP', udp: 'PROTOCOL_UDP', icmp: 'PROTOCOL_ICMP' };

export function toPolicy(e: Entry<PolicyRecord>): Policy {
  const { rec } = e;
  return {
    network: rec.network,
    name: rec.name,
    from: { endpoints: rec.from.endpoints, labels: rec.from.labels, cidrs: rec.from.cidrs, outside: rec.from.outside ?? false },
    to: { endpoints: rec.to.endpoints, labels: rec.to.labels, cidrs: rec.to.cidrs, outside: false },
    protocol: PROTOCOL[rec.protocol],
    ports: rec.ports.map((p) => ({ first: p.first, last: p.last })),
    createRevision: e.createRevision,
    modRevision: e.modRevision,
  };
}

export function toHost(h: Entry<HostRecord>): Host {
  const { rec } = h;
  return { name: rec.name, vtep: rec.vtep, agentVersion: rec.agentVersion, capabilities: rec.capabilities, up: rec.up, modRevision: h.modRevision };
}

export function toEndpointInfo(rec: EndpointRecord): EndpointInfo {
  return {
    network: rec.network,
    containerId: rec.containerId,
    name: rec.name,
    host: rec.host,
    mac: rec.mac,
    ipv4: rec.ipv4,
    ipv6: rec.ipv6,
    hostGateway: rec.hostGateway ?? false,
    ports: rec.ports ?? [],
    labels: rec.labels ?? {},
    hostname: rec.hostGateway ? '' : (rec.hostname ?? dnsName(rec.name)),
    aliases: rec.aliases ?? [],
    dns: rec.dns ? { ...rec.dns, domain: '' } : null,
  };
}

/** An endpoint's effective DNS settings: its own nameservers, search and options where it has them, else its network's. */
export function effectiveDns(network: DnsRecord, own: DnsRecord | undefined): DnsConfig {
  return {
    nameservers: own?.nameservers.length ? own.nameservers : network.nameservers,
    search: own?.search.length ? own.search : network.search,
    options: own?.options.length ? own.options : network.options,
    domain: network.domain ?? '',
  };
}

/** The full endpoint reply: everything a runtime needs to plumb the interface. */
export function toEndpoint(net: NetworkState, e: Entry<EndpointRecord>): Endpoint {
  const { rec } = e;
  const n = net.entry.rec;
  const gw4 = n.gateways.find((g) => !g.includes(':')) ?? '';
  const gw6 = n.gateways.find((g) => g.includes(':')) ?? '';
  const routes: RouteEntry[] = [];
  if (gw4) routes.push({ destination: '0.0.0.0/0', gateway: gw4 });
  if (gw6 && rec.ipv6) routes.push({ destination: '::/0', gateway: gw6 });
  return {
    ...toEndpointInfo(rec),
    ipv4: `${rec.ipv4}/${net.v4.cidr.prefix}`,
    ipv6: rec.ipv6 && net.v6 ? `${rec.ipv6}/${net.v6.cidr.prefix}` : '',
    gateways: rec.ipv6 ? [gw4, gw6].filter(Boolean) : [gw4].filter(Boolean),
    routes,
    mtu: n.mtu,
    dns: effectiveDns(n.dns, rec.dns),
    vni: n.vni,
    createRevision: e.createRevision,
    modRevision: e.modRevision,
    dnsOverride: rec.dns ? { ...rec.dns, domain: '' } : null,
  };
}
