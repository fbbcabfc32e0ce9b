/**
 * Records the controller keeps in its store, and their keys. Keys are "kind/<network>/<id>"
 * (hosts and networks: "kind/<name>"), so one network's objects share a prefix, as they would
 * in etcd.
 */

export type TunnelKind = 'vxlan' | 'gre';

export interface DnsRecord {
  nameservers: string[];
  search: string[];
  options: string[];
  /** '' or absent (stored before it existed) = `<network>.loom`. */
  domain?: string;
}

export interface NetworkRecord {
  name: string;
  vni: number;
  ipv4Cidr: string;
  ipv6Cidr: string; // '' when IPv4 only
  tunnel: TunnelKind;
  mtu: number;
  gateways: string[]; // canonical, at most one per family
  dns: DnsRecord;
  ipv4BlockPrefix: number;
  ipv6BlockPrefix: number;
  /** Absent in records written before egress existed: NAT. */
  egress?: 'nat' | 'off';
  ipv6Routed?: boolean;
  inboundSources?: string[];
  /** Absent in records written before policy existed: open. */
  isolation?: IsolationKind;
}

export type IsolationKind = 'open' | 'isolated';
export type ProtocolKind = 'any' | 'tcp' | 'udp' | 'icmp';

/** Who a rule names: endpoint names, a label selector (every pair must match), source CIDRs. */
export interface PeerRecord {
  endpoints: string[];
  labels: Record<string, string>;
  cidrs: string[]; // canonical
  /** Sources only: traffic entering through a host's gateway port. Absent in records older than it. */
  outside?: boolean;
}

/** An allow rule of a network (see Policy in types.proto). */
export interface PolicyRecord {
  network: string;
  name: string;
  from: PeerRecord;
  to: PeerRecord;
  protocol: ProtocolKind;
  ports: { first: number; last: number }[]; // last >= first
}

export interface HostRecord {
  name: string;
  vtep: string;
  agentVersion: string;
  capabilities: string[];
  up: boolean;
}

/** An address block of a network leased to a host. */
export interface BlockRecord {
  network: string;
  cidr: string;
  host: string;
}

/** A static endpoint address outside its host's blocks: needs its own route. */
export interface ExceptionRecord {
  network: string;
  address: string;
  host: string;
  containerId: string;
}

export interface EndpointRecord {
  network: string;
  containerId: string;
  name: string;
  host: string;
  mac: string;
  ipv4: string; // bare, canonical
  ipv6: string; // '' when none
  /** The host's gateway-port address in this network (allocated with its first endpoint). */
  hostGateway?: boolean;
  ports?: PortMappingRecord[];
  /** Absent in records written before labels existed. */
  labels?: Record<string, string>;
  /** DNS name given at create or update (canonical); absent: derived from `name`. */
  hostname?: string;
  /** Further DNS names (canonical, unique in the network); absent: none. */
  aliases?: string[];
  /** The endpoint's own DNS settings (no domain); absent: none. */
  dns?: DnsRecord;
}

export interface PortMappingRecord {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostIp: string; // canonical, '' = any
}

/** Container id of a host's gateway endpoint: '_' never starts a runtime's container id. */
export const hostGatewayId = (host: string): string => `_gw.${host}`;

export const keys = {
  network: (name: string) => `networks/${name}`,
  host: (name: string) => `hosts/${name}`,
  block: (network: string, cidr: string) => `blocks/${network}/${cidr}`,
  exception: (network: string, address: string) => `exceptions/${network}/${address}`,
  endpoint: (network: string, containerId: string) => `endpoints/${network}/${containerId}`,
  policy: (network: string, name: string) => `policies/${network}/${name}`,
};

export type KeyKind = 'networks' | 'hosts' | 'blocks' | 'exceptions' | 'endpoints' | 'policies';

/** Splits a key into kind, first segment (network or name) and the rest. */
export function parseKey(key: string): { kind: KeyKind; name: string; rest: string } {
  const a = key.indexOf('/');
  const kind = key.slice(0, a) as KeyKind;
  const b = key.indexOf('/', a + 1);
  if (b < 0) return { kind, name: key.slice(a + 1), rest: '' };
  return { kind, name: key.slice(a + 1, b), rest: key.slice(b + 1) };
}
