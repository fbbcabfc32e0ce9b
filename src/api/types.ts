/**
 * TypeScript shapes of the messages in proto/loom/v1 (camelCase, as protobufjs converts them).
 * Decoded messages have every field present (proto3 defaults filled in); requests may omit
 * fields. Kept by hand in step with the .proto files: test/controller/api/types.test.ts fails
 * (type-checked half under `npm run typecheck`) when a message, field, field type or enum value
 * differs, and round-trips every message through the codec.
 */

export type TunnelType = 'TUNNEL_TYPE_UNSPECIFIED' | 'TUNNEL_TYPE_VXLAN' | 'TUNNEL_TYPE_GRE';
/** Agents that own a gateway port on br-int register with this capability; the controller then
 * allocates their host an address in every network it serves. */
export const GATEWAY_PORT_CAPABILITY = 'gateway-port';

export type EgressMode = 'EGRESS_MODE_UNSPECIFIED' | 'EGRESS_MODE_NAT' | 'EGRESS_MODE_OFF';
export type RouteKind = 'ROUTE_KIND_UNSPECIFIED' | 'ROUTE_KIND_BLOCK' | 'ROUTE_KIND_EXCEPTION';
/** UNSPECIFIED reads as OPEN (and on update: unchanged). ISOLATED = Docker's icc=false. */
export type Isolation = 'ISOLATION_UNSPECIFIED' | 'ISOLATION_OPEN' | 'ISOLATION_ISOLATED';
/** UNSPECIFIED: any protocol. ICMP means ICMPv6 for IPv6. */
export type Protocol = 'PROTOCOL_UNSPECIFIED' | 'PROTOCOL_TCP' | 'PROTOCOL_UDP' | 'PROTOCOL_ICMP';

export interface DnsConfig {
  nameservers: string[];
  search: string[];
  options: string[];
  /** The network's DNS zone for its endpoints' names; '' = `<network>.loom`. */
  domain: string;
}

export interface Network {
  name: string;
  vni: number;
  ipv4Cidr: string;
  ipv6Cidr: string;
  tunnelType: TunnelType;
  mtu: number;
  gateways: string[];
  dns: DnsConfig | null;
  ipv4BlockPrefix: number;
  ipv6BlockPrefix: number;
  createRevision: number;
  modRevision: number;
  egress: EgressMode;
  ipv6Routed: boolean;
  inboundSources: string[];
  isolation: Isolation;
}

/** A port published on the host: hostIp:hostPort/protocol -> containerPort. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  /** 'tcp' or 'udp' (validated by the controller). */
  protocol: string;
  /** '' = every address of the host (of the container address's family). */
  hostIp: string;
}

export interface Host {
  name: string;
  vtep: string;
  agentVersion: string;
  capabilities: string[];
  up: boolean;
  modRevision: number;
}

export interface RouteEntry {
  destination: string;
  gateway: string;
}

export interface EndpointInfo {
  network: string;
  containerId: string;
  name: string;
  host: string;
  mac: string;
  ipv4: string;
  ipv6: string;
  /** The address of a host's gateway port, not a container. */
  hostGateway: boolean;
  ports: PortMapping[];
  labels: Record<string, string>;
  /** DNS name: the one given, else derived from the name. */
  hostname: string;
  /** Further DNS names in the network (lower case, unique in it). */
  aliases: string[];
  /** The endpoint's own DNS settings (null: none); its nameservers are its upstreams. */
  dns: DnsConfig | null;
}

/** What a runtime needs for one endpoint: the directory entry plus its interface settings. */
export interface Endpoint extends EndpointInfo {
  gateways: string[];
  routes: RouteEntry[];
  mtu: number;
  /** Effective DNS settings: the override's nameservers, search and options where it has them, else the network's. */
  dns: DnsConfig | null;
  vni: number;
  createRevision: number;
  modRevision: number;
  /** The endpoint's own DNS settings as given (null: none). */
  dnsOverride: DnsConfig | null;
}

export interface Route {
  network: string;
  prefix: string;
  host: string;
  vtep: string;
  kind: RouteKind;
}

export interface RouteRef {
  network: string;
  prefix: string;
}

export interface EndpointRef {
  network: string;
  containerId: string;
}

export interface CreateNetworkRequest {
  network: Partial<Network>;
}
export interface NameRequest {
  name: string;
}
export interface ListNetworksResponse {
  networks: Network[];
  revision: number;
}
export interface DeleteResponse {
  revision: number;
}
export interface CreateEndpointRequest {
  network: string;
  host: string;
  containerId: string;
  name?: string;
  ipv4?: string;
  ipv6?: string;
  mac?: string;
  ports?: PortMapping[];
  labels?: Record<string, string>;
  dns?: Partial<DnsConfig> | null;
  hostname?: string;
  aliases?: string[];
}
/** Fields UpdateEndpoint may change. */
export type EndpointUpdateField = 'dns' | 'hostname' | 'aliases';
export interface UpdateEndpointRequest {
  network: string;
  containerId: string;
  /** The fields that replace the endpoint's ("dns", "hostname", "aliases"); named and empty clears. */
  updateMask: string[];
  dns?: Partial<DnsConfig> | null;
  hostname?: string;
  aliases?: string[];
}
export interface EndpointKeyRequest {
  network: string;
  containerId: string;
}
export interface ListEndpointsRequest {
  network?: string;
  host?: string;
}
export interface ListEndpointsResponse {
  endpoints: Endpoint[];
  revision: number;
}
export interface RegisterRequest {
  name: string;
  vtep: string;
  agentVersion?: string;
  capabilities?: string[];
}
export interface RegisterResponse {
  host: Host | null;
  revision: number;
  heartbeatIntervalMs: number;
  /** The controller's dedicated Watch port (same host, same TLS); 0: Watch on this channel. */
  watchPort: number;
}
export interface HeartbeatRequest {
  name: string;
  appliedRevision?: number;
  drops?: DropCount[];
}
export interface DropCount {
  reason: string;
  packets: number;
  bytes: number;
}
export interface HeartbeatResponse {
  revision: number;
}
export interface ListHostsResponse {
  hosts: Host[];
  revision: number;
}

export interface WatchStart {
  host: string;
  fromRevision?: number;
  networks?: string[];
  storeId?: string;
}
export interface WatchAck {
  revision: number;
}
/** First message on a Watch stream, or an acknowledgement (`kind` names which once decoded). */
export type WatchRequest =
  | { kind?: 'start'; start: WatchStart; ack?: undefined; traceReply?: undefined }
  | { kind?: 'ack'; ack: WatchAck; start?: undefined; traceReply?: undefined }
  | { kind?: 'traceReply'; traceReply: AgentTraceReply; start?: undefined; ack?: undefined };

/** One event of a view change; exactly one member is set (`kind` names it once decoded). */
export interface WatchEvent {
  kind?: 'network' | 'networkRemoved' | 'route' | 'routeRemoved' | 'endpoint' | 'endpointRemoved' | 'policy' | 'policyRemoved';
  network?: Network;
  networkRemoved?: string;
  route?: Route;
  routeRemoved?: RouteRef;
  endpoint?: EndpointInfo;
  endpointRemoved?: EndpointRef;
  policy?: Policy;
  policyRemoved?: PolicyRef;
}

export interface WatchResponse {
  revision: number;
  reset: boolean;
  partial: boolean;
  events: WatchEvent[];
  storeId: string;
  /** Not a view change: a trace the controller asks of this agent (capability "trace"). */
  traceRequest?: AgentTraceRequest | null;
}

export interface HostStatus {
  name: string;
  vtep: string;
  up: boolean;
  connected: boolean;
  ackedRevision: number;
  appliedRevision: number;
  lag: number;
  lastSeenMsAgo: number;
  networks: number;
  endpoints: number;
  agentVersion: string;
  drops: DropCount[];
}
export interface GetStatusResponse {
  revision: number;
  hosts: HostStatus[];
}
export interface WaitRequest {
  revision?: number;
  timeoutMs?: number;
}
export interface WaitResponse {
  converged: boolean;
  revision: number;
  pendingHosts: string[];
}
export interface UpdateNetworkRequest {
  name: string;
  isolation?: Isolation;
}

/**
 * Endpoints by name, or by carrying every label of `labels`; `cidrs` for sources only; `outside`
 * (sources only): what enters the network through a host's gateway port (published ports).
 */
export interface PolicyPeer {
  endpoints: string[];
  labels: Record<string, string>;
  cidrs: string[];
  /** Absent = false (proto3 default). */
  outside?: boolean;
}
/** Ports first..last; last 0 means just first. */
export interface PortRange {
  first: number;
  last: number;
}
/** An allow rule of an isolated network. */
export interface Policy {
  network: string;
  name: string;
  from: PolicyPeer | null;
  to: PolicyPeer | null;
  protocol: Protocol;
  ports: PortRange[];
  createRevision: number;
  modRevision: number;
}
export interface PolicyRef {
  network: string;
  name: string;
}
export interface CreatePolicyRequest {
  policy: Partial<Policy>;
}
export interface ListPoliciesRequest {
  network?: string;
}
export interface ListPoliciesResponse {
  policies: Policy[];
  revision: number;
}
export interface ExplainPolicyRequest {
  network?: string;
  from: string;
  to: string;
  protocol?: Protocol;
  port?: number;
}
export interface ExplainPolicyResponse {
  network: string;
  isolation: Isolation;
  allowed: boolean;
  policies: string[];
  reason: string;
}

/** Requests without fields. */
export type Empty = Record<string, never>;

/** Bytes the tunnel headers take from the underlay MTU (outer IPv4): VXLAN 50, GRE 42. */
export const TUNNEL_OVERHEAD: Readonly<Record<'vxlan' | 'gre', number>> = { vxlan: 50, gre: 42 };

/** Agents that answer WatchResponse.trace_request register this capability. */
export const TRACE_CAPABILITY = 'trace';

export interface TraceRequest {
  from: string;
  to: string;
  protocol?: string;
  port?: number;
  sourceAddress?: string;
  live?: boolean;
  timeoutMs?: number;
}
export interface TraceStep {
  table: number;
  tableName: string;
  feature: string;
  priority: number;
  cookie: string;
  match: string;
  actions: string[];
}
export interface TraceVerdict {
  kind: string;
  reason: string;
  table: string;
  explanation: string;
  tunnel: string;
  vni: number;
  remoteVtep: string;
  ofport: number;
  container: string;
  network: string;
  policy: string;
}
export interface TraceHostResult {
  host: string;
  role: string;
  flow: string;
  steps: TraceStep[];
  verdict: TraceVerdict | null;
  datapathActions: string;
}
export interface TraceLiveHost {
  host: string;
  seen: boolean;
  outcome: string;
  ofport: number;
}
export interface TraceLiveResult {
  injected: boolean;
  hosts: TraceLiveHost[];
  agrees: boolean;
  summary: string;
  dscp: number;
}
export interface TraceEndpointRef {
  network: string;
  name: string;
  containerId: string;
  host: string;
  address: string;
}
export interface TraceResponse {
  verdict: string;
  explanation: string;
  host: string;
  table: string;
  hosts: TraceHostResult[];
  tunnel: TraceVerdict | null;
  source: TraceEndpointRef | null;
  destination: TraceEndpointRef | null;
  live: TraceLiveResult | null;
}
export interface TraceLiveStep {
  phase: string;
  dscp: number;
  windowMs: number;
}
export interface AgentTraceRequest {
  id: number;
  network: string;
  role: string;
  containerId?: string;
  source?: string;
  destination: string;
  protocol?: string;
  port?: number;
  tunnel?: string;
  vni?: number;
  remoteVtep?: string;
  live?: TraceLiveStep | null;
}
export interface AgentTraceReply {
  id: number;
  result?: TraceHostResult | null;
  error?: string;
  errorKind?: string;
  live?: TraceLiveHost | null;
}
