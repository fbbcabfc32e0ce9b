// A simulated trace on this host: the packet's flow in ovs-ofctl terms is run through
// ovs-vswitchd's `ofproto/trace` (its unixctl socket, spoken directly), and the answer is read in
// Loom's terms: the tables it visited by name, the feature owning each flow (from its cookie), and
// a verdict (dropped by the spoof guard, gateway ARP answered, into a tunnel to a VTEP with a VNI,
// delivered to an endpoint, no route).
import { parseOfprotoTrace, type OfprotoTrace } from '../openflow/ofproto-trace.js';
import { controlSocketPath, unixctl } from '../ovsdb/unixctl.js';
import { Feature, cookieFeature, gatewayMac } from './pipeline/fields.js';
import { dropReason, featureName, tableName } from './datapath-counters.js';
import type { TunnelKind } from './pipeline/state.js';
import { GATEWAY_OFPORT } from './gateway-port.js';
import { PATCH_OFPORT } from './ovs-nat-host.js';
import type { TraceHostResult } from '../api/types.js';

export interface TraceStepView {
  table: number;
  tableName: string;
  /** The feature owning the matching flow (its cookie), or 'none' on a table miss without a flow. */
  feature: string;
  priority?: number;
  cookie?: string;
  match?: string;
  actions: string[];
}

export type Verdict =
  | { kind: 'dropped'; reason: string; table: string; explanation: string }
  | { kind: 'gateway_answered'; protocol: 'arp' | 'nd'; explanation: string }
  | { kind: 'tunnel'; tunnel: TunnelKind; vni: number; remoteVtep: string; explanation: string }
  | { kind: 'delivered'; ofport: number; container?: string; network?: string; explanation: string }
  | { kind: 'to_host'; ofport: number; explanation: string }
  | { kind: 'nat_out'; ofport: number; explanation: string }
  | { kind: 'other'; explanation: string };

export interface HostTrace {
  /** The flow OVS traced. */
  flow: string;
  steps: TraceStepView[];
  verdict: Verdict;
  datapathActions?: string;
}

export interface TraceContext {
  /** Integration bridge name. */
  bridge: string;
  tunnelPorts: Record<TunnelKind, number>;
  /** Local endpoints by OpenFlow port. */
  endpoint(ofport: number): { container: string; network: string } | undefined;
}

const EXPLAIN_DROP: Record<string, string> = {
  classifier_miss: 'dropped at the classifier: the packet entered by a port Loom does not know, or by a tunnel with a key (VNI) of no network of that tunnel type on this host',
  spoof_guard: 'dropped by the spoof guard: the endpoint sent with a MAC or address that is not its own',
  arp_nd: 'dropped in ARP/ND: only requests for the network\'s gateway are answered, no other ARP or ND leaves the host',
  no_route: 'no route: no endpoint of this network on this host and no other host\'s block holds the destination (another network, a host that is down, or an address not in use)',
  policy: 'dropped by policy',
  no_output: 'dropped at output: the chosen port is not (or no longer) on the bridge',
};

const hex = (s: string) => Number.parseInt(s, 16);

/** Reads an `ofproto/trace` answer of the integration bridge in Loom's terms. */
export function interpretTrace(trace: OfprotoTrace, ctx: TraceContext): HostTrace {
  const own = trace.steps.filter((s) => s.bridge === ctx.bridge);
  const steps: TraceStepView[] = own.map((s) => ({
    table: s.table,
    tableName: tableName(s.table),
    feature: s.cookie === undefined ? 'none' : featureName(cookieFeature(s.cookie)),
    priority: s.priority,
    cookie: s.cookie === undefined ? undefined : `0x${s.cookie.toString(16)}`,
    match: s.match,
    actions: s.actions,
  }));
  return { flow: trace.flow, steps, verdict: verdictOf(own, ctx), datapathActions: trace.datapathActions };
}

function verdictOf(steps: OfprotoTrace['steps'], ctx: TraceContext): Verdict {
  const last = steps.at(-1);
  if (!last) return { kind: 'other', explanation: `the packet did not enter bridge ${ctx.bridge}` };
  const actions = last.actions;
  const ends = (a: string) => actions.some((x) => x === a || x.startsWith(`${a}:`) || x.startsWith(`${a}(`));
  if (actions.length === 0 || actions.at(-1) === 'drop') {
    const reason = last.cookie === undefined ? 'no_flow' : dropReason(last.table, last.cookie);
    return { kind: 'dropped', reason, table: tableName(last.table), explanation: EXPLAIN_DROP[reason] ?? `dropped in table ${tableName(last.table)} (${reason})` };
  }
  const feature = last.cookie === undefined ? undefined : cookieFeature(last.cookie);
  if (ends('IN_PORT') && feature === Feature.ArpNd) {
    return { kind: 'gateway_answered', protocol: 'arp', explanation: 'ARP request for the gateway, answered on the bridge (sent back by the port it came in)' };
  }
  if (ends('CONTROLLER') || actions.some((a) => a.startsWith('controller'))) {
    return feature === Feature.ArpNd
      ? { kind: 'gateway_answered', protocol: 'nd', explanation: 'neighbour solicitation for the gateway, sent to the agent, which answers it' }
      : { kind: 'other', explanation: 'sent to the agent (packet-in)' };
  }
  const output = actions.map((a) => /^output:(\d+)$/.exec(a)).find((m) => m);
  if (output) {
    const port = Number(output[1]);
    const tunnel = (Object.entries(ctx.tunnelPorts) as Array<[TunnelKind, number]>).find(([, p]) => p === port)?.[0];
    if (tunnel) {
      const all = steps.flatMap((s) => s.actions);
      const vtep = all.map((a) => /^set_field:(.+)->tun_dst$/.exec(a)?.[1]).filter(Boolean).at(-1);
      const key = all.map((a) => /^set_field:0x([0-9a-f]+)->tun_id$/.exec(a)?.[1]).filter(Boolean).at(-1);
      const vni = key === undefined ? Number.NaN : hex(key);
      return { kind: 'tunnel', tunnel, vni, remoteVtep: vtep ?? '', explanation: `into the ${tunnel} tunnel with VNI ${vni} to VTEP ${vtep ?? '?'}` };
    }
    if (port === GATEWAY_OFPORT) {
      return {
        kind: 'to_host',
        ofport: port,
        explanation: "to the host's own stack through the gateway port: an outside address leaves by egress NAT; the host never forwards between Loom networks (table inet loom)",
      };
    }
    if (port === PATCH_OFPORT) {
      return {
        kind: 'nat_out',
        ofport: port,
        explanation: "to the outside through OVS conntrack (--nat-path ovs): source translated to this host's VTEP address, out the patch port to the underlay bridge",
      };
    }
    const ep = ctx.endpoint(port);
    return {
      kind: 'delivered',
      ofport: port,
      ...(ep ?? {}),
      explanation: ep ? `delivered to endpoint ${ep.container} of network ${ep.network} (port ${port})` : `output to port ${port}, which is no endpoint of this host`,
    };
  }
  return { kind: 'other', explanation: `ends in table ${tableName(last.table)} with ${actions.join(', ')}` };
}

export interface PacketSpec {
  proto: 'icmp' | 'tcp' | 'udp';
  src: string;
  dst: string;
  /** Destination port for tcp/udp. */
  port?: number;
}

const isV6 = (a: string) => a.includes(':');

function l3(p: PacketSpec): string {
  const v6 = isV6(p.src);
  if (v6 !== isV6(p.dst)) throw new Error(`source ${p.src} and destination ${p.dst} are of different address families`);
  const proto = p.proto === 'icmp' ? (v6 ? 'icmp6' : 'icmp') : v6 ? `${p.proto}6` : p.proto;
  const addrs = v6 ? `ipv6_src=${p.src},ipv6_dst=${p.dst}` : `nw_src=${p.src},nw_dst=${p.dst}`;
  // TCP as a connection's first packet (SYN): what decides its path and policy.
  const syn = p.proto === 'tcp' ? ',tcp_flags=0x002' : '';
  const l4 = p.proto === 'icmp' ? (v6 ? ',icmpv6_type=128' : ',icmp_type=8') : `${p.port !== undefined ? `,${p.proto}_dst=${p.port}` : ''}${syn}`;
  return `${proto},${addrs},nw_ttl=64${l4}`;
}

/** The flow a local endpoint's packet has when it enters the bridge (routed via the gateway). */
export function endpointFlow(p: PacketSpec, from: { ofport: number; mac: string; vni: number }): string {
  return `in_port=${from.ofport},dl_src=${from.mac},dl_dst=${gatewayMac(from.vni)},${l3(p)}`;
}

/** The flow the same packet has when it arrives from a tunnel on the destination host. */
export function tunnelFlow(p: PacketSpec, via: { tunnelPort: number; vni: number; srcVtep: string; dstVtep: string }): string {
  const gw = gatewayMac(via.vni);
  const tun = isV6(via.dstVtep) ? `tun_ipv6_src=${via.srcVtep},tun_ipv6_dst=${via.dstVtep}` : `tun_src=${via.srcVtep},tun_dst=${via.dstVtep}`;
  return `in_port=${via.tunnelPort},tun_id=${via.vni},${tun},dl_src=${gw},dl_dst=${gw},${l3(p)}`;
}

/** Runs `ofproto/trace` on this host's ovs-vswitchd (control socket in `rundir`) and interprets it. */
export async function traceOnHost(rundir: string, flow: string, ctx: TraceContext): Promise<HostTrace> {
  const text = await unixctl(controlSocketPath(rundir), 'ofproto/trace', [ctx.bridge, flow]);
  return interpretTrace(parseOfprotoTrace(text), ctx);
}

/** A trace asked of this host's agent: from one of its endpoints to an address. */
export interface TraceFromEndpointRequest {
  containerId: string;
  /** Default eth0. */
  ifname?: string;
  destination: string;
  proto?: 'icmp' | 'tcp' | 'udp';
  port?: number;
  /** Source address to claim (default: the endpoint's own of the destination's family); another one shows the spoof guard. */
  source?: string;
}

export interface TraceEndpoint {
  containerId: string;
  ifname: string;
  ofport: number;
  mac: string;
  ipv4?: string;
  ipv6?: string;
  vni: number;
}

/** The flow of `req` from `ep`, or an Error naming what is missing. */
export function flowFromEndpoint(req: TraceFromEndpointRequest, ep: TraceEndpoint): string {
  const v6 = isV6(req.destination);
  const src = req.source ?? (v6 ? ep.ipv6 : ep.ipv4);
  if (!src) throw new Error(`endpoint ${ep.containerId} has no IPv${v6 ? 6 : 4} address to send to ${req.destination} from`);
  return endpointFlow({ proto: req.proto ?? 'icmp', src, dst: req.destination, port: req.port }, ep);
}

/** A host's trace as the controller's API carries it; `policy` names the rule whose allow flow matched, if one did. */
export function toTraceHostResult(host: string, role: string, t: HostTrace, policy = ''): TraceHostResult {
  const v = t.verdict;
  return {
    host,
    role,
    flow: t.flow,
    steps: t.steps.map((s) => ({
      table: s.table,
      tableName: s.tableName,
      feature: s.feature,
      priority: s.priority ?? 0,
      cookie: s.cookie ?? '',
      match: s.match ?? '',
      actions: s.actions,
    })),
    verdict: {
      kind: v.kind,
      reason: v.kind === 'dropped' ? v.reason : '',
      table: v.kind === 'dropped' ? v.table : '',
      explanation: v.explanation,
      tunnel: v.kind === 'tunnel' ? v.tunnel : '',
      vni: v.kind === 'tunnel' && Number.isFinite(v.vni) ? v.vni : 0,
      remoteVtep: v.kind === 'tunnel' ? v.remoteVtep : '',
      ofport: v.kind === 'delivered' || v.kind === 'to_host' ? v.ofport : 0,
      container: v.kind === 'delivered' ? (v.container ?? '') : '',
      network: v.kind === 'delivered' ? (v.network ?? '') : '',
      policy,
    },
    datapathActions: t.datapathActions ?? '',
  };
}
