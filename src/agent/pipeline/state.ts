// What the pipeline is computed from: the agent's view of one host, already resolved to OpenFlow
// port numbers. Plain data, so the pipeline is a pure function that unit tests can call.
import type { Instruction, Match } from '../../openflow/types.js';
import type { PeerSpec } from '../../api/policy.js';
import type { OvsNatState } from './ovs-nat.js';

export type TunnelKind = 'vxlan' | 'gre';

export interface LocalEndpoint {
  /** Stable id (the controller's endpoint id); used in logs only. */
  id: string;
  ofport: number;
  mac: string;
  ipv4?: string;
  ipv6?: string;
}

/** Traffic for `prefix` (another host's block, or a single static address) goes to `vtep`. */
export interface RemoteRoute {
  prefix: string;
  vtep: string;
}

/** An endpoint of the network on any host, as policy rules name it. */
export interface DirectoryEntry {
  name: string;
  labels: Readonly<Record<string, string>>;
  ipv4?: string;
  ipv6?: string;
  /** Set when the endpoint is attached on this host. */
  ofport?: number;
}

export interface PolicyRule {
  name: string;
  from: PeerSpec;
  to: PeerSpec;
  protocol: 'any' | 'tcp' | 'udp' | 'icmp';
  ports: { first: number; last: number }[];
}

/** Policy input of an isolated network (absent or isolated=false: everything passes). */
export interface NetworkPolicyState {
  /** The network's name (metrics and logs). */
  network: string;
  isolated: boolean;
  directory: DirectoryEntry[];
  rules: PolicyRule[];
}

export interface NetworkState {
  /** Isolation and allow rules; absent = open. */
  policy?: NetworkPolicyState;
  vni: number;
  tunnel: TunnelKind;
  gateway4?: string;
  gateway6?: string;
  endpoints: LocalEndpoint[];
  remote: RemoteRoute[];
  /** The network's ranges (host path: what the gateway port may send into the network). */
  ipv4Cidr?: string;
  ipv6Cidr?: string;
  /** This host's gateway-port addresses in the network (from the controller's IPAM). */
  hostAddress4?: string;
  hostAddress6?: string;
}

/** The OVS internal port to the host's own network stack. */
export interface GatewayPortState {
  ofport: number;
  mac: string;
}

export interface PipelineState {
  /** Cookie generation of this agent run (see fields.ts). */
  generation: number;
  /** OpenFlow port numbers of the flow-based tunnel ports (remote_ip=flow, key=flow). */
  tunnelPorts: Record<TunnelKind, number>;
  networks: NetworkState[];
  /** Absent: no host path (the pipeline is as before). */
  gatewayPort?: GatewayPortState;
  /** Set (--log-denied): default-deny flows also send to the agent, through this meter if any. */
  deniedLog?: DeniedLogState;
  /** --nat-path ovs with the underlay read (needs gatewayPort too): NAT in OVS conntrack (ovs-nat.ts). */
  ovsNat?: OvsNatState;
}

export interface DeniedLogState {
  /** OpenFlow meter bounding packet-ins (absent: the switch has no meters; the agent still rate-limits lines). */
  meterId?: number;
}

/** One flow the pipeline wants installed. */
export interface Flow {
  table: number;
  priority: number;
  cookie: bigint;
  match: Match;
  instructions: Instruction[];
}
