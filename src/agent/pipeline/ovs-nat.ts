// --nat-path ovs (userspace datapath): egress SNAT and published-port DNAT in OVS's own conntrack,
// leaving br-int through a patch port straight into the underlay bridge (br-phy), as OVN's gateway
// router does. A packet to or from the outside then crosses ovs-vswitchd once instead of twice
// (no loom-gw0 tap, no host forwarding, no br-phy tap). Only what is sure to be right takes this
// path; everything else (IPv6, other Loom networks, the host's addresses, unresolved next hops,
// connections begun on the kernel path, ICMP) keeps the host path (loom-gw0 and table inet loom).
//
// br-int: the host path's catch-all (L3Forwarding, TO_HOST_PRIORITY) gets a twin one above it for
// IPv4 that marks the packet (NatReg) and still chooses the gateway port; in Output, a marked
// packet goes to NatConntrack instead: kernel-only destinations to the gateway port, the rest
// through ct(zone=NAT_ZONE,nat). NatState sends published ports' replies out with the client's
// MAC (kept in ct_label), established connections and a new one's first packet (TCP SYN without
// ACK, UDP) to NatNextHop (the underlay's routes and neighbours, longest prefix), and NatCommit
// commits a new one with SNAT to the VTEP address in the SNAT port range. Anything else: the
// gateway port, as before. From the patch port: classified like the gateway port (by destination).
//
// br-phy (phyFlows): TCP/UDP from the uplink to the VTEP address in the SNAT port range, and ICMP
// to it, go through conntrack, established replies and related ICMP errors into the patch port; a published port from an allowed
// source is committed with DNAT (client MAC into ct_label) and, recirculated, sent into the patch port, from
// any other source dropped; what br-int sends through the patch port goes out the uplink (never
// NORMAL: it would learn br-phy's own MAC on the patch port). The rest of br-phy is untouched.
import { portMasks } from '../../api/policy.js';
import { cidrContains, tryParseCidr, tryParseIp } from '../../common/ip.js';
import { ctState } from '../../openflow/match.js';
import type { Action, Instruction, MatchField } from '../../openflow/types.js';
import { Feature, NAT_ZONE, NatMode, NatReg, OutPortReg, PhyTable, Source, Table, classify, cookie, matchNatMode, matchNatPath, matchSource, matchVni } from './fields.js';
import { TO_HOST_PRIORITY, toHost } from './host-path.js';
import { EthType, goto, inPort, ipMatch, prefixLength } from './match-helpers.js';
import type { Flow, GatewayPortState } from './state.js';

/** A destination prefix of the underlay and the MAC its packets go to; no MAC: not resolved (kernel path). */
export interface NextHop {
  prefix: string;
  mac?: string;
}

export interface OvsNatNetwork {
  vni: number;
  ipv4Cidr: string;
  /** Egress NAT (new connections may be committed); false: only published ports' replies. */
  egress: boolean;
  /** Sources allowed to published ports (empty: any); IPv6 entries do not apply here. */
  inboundSources: string[];
}

export interface OvsNatPublished {
  vni: number;
  containerIpv4: string;
  containerPort: number;
  hostPort: number;
  protocol: 'tcp' | 'udp';
}

export interface OvsNatState {
  /** br-int's end of the patch port pair. */
  patchOfport: number;
  /** br-phy's end of the pair, and br-phy's underlay interface. */
  phyPatchOfport: number;
  uplinkOfport: number;
  /** br-phy's MAC: the source of what leaves by the NAT path. */
  phyMac: string;
  vtep: string;
  snatPorts: { low: number; high: number };
  nextHops: NextHop[];
  /** The host's own IPv4 addresses: never NATed here. */
  hostAddresses: string[];
  /** Every Loom network's IPv4 range the agent knows: never NATed here. */
  loomCidrs: string[];
  networks: OvsNatNetwork[];
  published: OvsNatPublished[];
}

/** Not unicast destinations on the outside: this host, multicast, broadcast, link-local. */
export const KERNEL_ONLY_PREFIXES = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/3'];

const SYN_WITHOUT_ACK: MatchField = { field: 'tcp_flags', value: 0x002, mask: 0x012 };
const ip4: MatchField = { field: 'eth_type', value: EthType.IPv4 };
const proto = (p: 'tcp' | 'udp'): MatchField[] => [ip4, { field: 'ip_proto', value: p === 'tcp' ? 6 : 17 }];
const apply = (...actions: Action[]): Instruction => ({ type: 'apply_actions', actions });
const output = (port: number): Action => ({ type: 'output', port });
const isV4 = (cidr: string): boolean => !cidr.includes(':');

/** An IPv4 prefix match; /0 matches any (a zero mask would read back from the switch as no field). */
function prefixMatch(dir: 'src' | 'dst', prefix: string): MatchField[] {
  return prefixLength(prefix) === 0 ? [ip4] : ipMatch(dir, prefix);
}

/** The priority a prefix gets in a longest-prefix-match table. */
const lpm = (prefix: string): number => 100 + prefixLength(prefix);

/** br-int: the NAT path's host-wide flows (needs the gateway port: the kernel path). */
export function ovsNatFlows(generation: number, gw: GatewayPortState, nat: OvsNatState): Flow[] {
  const c = cookie(generation, Feature.OvsNat);
  const toKernel = apply(output(gw.ofport));
  const out: Flow[] = [];
  for (const table of [Table.NatConntrack, Table.NatState, Table.NatNextHop, Table.NatCommit]) {
    out.push({ table, priority: 0, cookie: c, match: [], instructions: table === Table.NatConntrack ? [] : [toKernel] });
  }
  out.push({ table: Table.Output, priority: 210, cookie: c, match: [{ field: 'reg', index: OutPortReg.index, value: gw.ofport }, matchNatPath()], instructions: [goto(Table.NatConntrack)] });
  const kernelOnly = new Set([...KERNEL_ONLY_PREFIXES, ...nat.loomCidrs.filter(isV4), ...nat.hostAddresses.filter(isV4).map((a) => `${a.split('/')[0]}/32`)]);
  for (const prefix of [...kernelOnly].sort()) {
    out.push({ table: Table.NatConntrack, priority: 200, cookie: c, match: prefixMatch('dst', prefix), instructions: [toKernel] });
  }
  out.push({ table: Table.NatConntrack, priority: 100, cookie: c, match: [ip4], instructions: [apply({ type: 'ct', zone: NAT_ZONE, table: Table.NatState, actions: [{ type: 'nat' }] })] });
  // A published port's reply: the client's MAC from ct_label, straight out.
  out.push({
    table: Table.NatState,
    priority: 300,
    cookie: c,
    match: [ctState('+trk+est+rpl'), ip4],
    instructions: [
      apply(
        { type: 'move', src: { field: 'ct_label', ofs: 0, nBits: 48 }, dst: { field: 'eth_dst' } },
        { type: 'set_field', field: { field: 'eth_src', value: nat.phyMac } },
        output(nat.patchOfport),
      ),
    ],
  });
  out.push({ table: Table.NatState, priority: 200, cookie: c, match: [ctState('+trk+est-rpl'), ip4], instructions: [goto(Table.NatNextHop)] });
  // Only a connection's first packet starts it on this path: one begun on the kernel path stays there.
  for (const p of ['tcp', 'udp'] as const) {
    out.push({
      table: Table.NatState,
      priority: 150,
      cookie: c,
      match: [ctState('+trk+new'), ...proto(p), ...(p === 'tcp' ? [SYN_WITHOUT_ACK] : []), matchNatMode(NatMode.Egress)],
      instructions: [goto(Table.NatNextHop)],
    });
  }
  for (const hop of nat.nextHops) {
    if (!isV4(hop.prefix)) continue;
    out.push({
      table: Table.NatNextHop,
      priority: lpm(hop.prefix),
      cookie: c,
      match: prefixMatch('dst', hop.prefix),
      instructions: hop.mac
        ? [apply({ type: 'set_field', field: { field: 'eth_src', value: nat.phyMac } }, { type: 'set_field', field: { field: 'eth_dst', value: hop.mac } }), goto(Table.NatCommit)]
        : [toKernel],
    });
  }
  out.push({
    table: Table.NatCommit,
    priority: 100,
    cookie: c,
    match: [ctState('+trk+new'), ip4],
    instructions: [
      apply(
        { type: 'ct', commit: true, zone: NAT_ZONE, actions: [{ type: 'nat', kind: 'src', ipMin: nat.vtep, portMin: nat.snatPorts.low, portMax: nat.snatPorts.high }] },
        output(nat.patchOfport),
      ),
    ],
  });
  out.push({ table: Table.NatCommit, priority: 50, cookie: c, match: [ip4], instructions: [apply(output(nat.patchOfport))] });
  return out;
}

/** br-int: a network's way onto the NAT path and back from the patch port. */
export function ovsNatNetworkFlows(generation: number, gw: GatewayPortState, nat: OvsNatState, net: OvsNatNetwork): Flow[] {
  const c = cookie(generation, Feature.OvsNat, net.vni);
  return [
    {
      table: Table.Classifier,
      priority: 200,
      cookie: c,
      match: [...inPort(nat.patchOfport), ...ipMatch('dst', net.ipv4Cidr)],
      instructions: classify(Source.GatewayPort, net.vni, Table.L3Forwarding),
    },
    {
      table: Table.L3Forwarding,
      priority: TO_HOST_PRIORITY + 1,
      cookie: c,
      match: [matchVni(net.vni), matchSource(Source.LocalEndpoint), ip4],
      instructions: [apply(...toHost(gw, net.vni), { type: 'load', dst: NatReg, value: net.egress ? NatMode.Egress : NatMode.RepliesOnly }), goto(Table.Policy)],
    },
  ];
}

/** Whether an allowed-sources list admits IPv4 sources at all, and as which prefixes (undefined: any). */
export function ipv4Sources(inboundSources: readonly string[]): string[] | undefined | null {
  if (inboundSources.length === 0) return undefined;
  const v4 = inboundSources.filter(isV4);
  return v4.length === 0 ? null : v4;
}

/** br-phy: SNAT replies, published ports, and the way out of the patch port. */
export function phyFlows(generation: number, nat: OvsNatState): Flow[] {
  const c = cookie(generation, Feature.OvsNat);
  const vtep = ipMatch('dst', nat.vtep);
  const fromWire = inPort(nat.uplinkOfport);
  const lookup = (table: number): Instruction => apply({ type: 'ct', zone: NAT_ZONE, table, actions: [{ type: 'nat' }] });
  const out: Flow[] = [
    { table: PhyTable.Classifier, priority: 1100, cookie: c, match: inPort(nat.phyPatchOfport), instructions: [apply(output(nat.uplinkOfport))] },
    { table: PhyTable.NatReply, priority: 100, cookie: c, match: [ctState('+trk+est+rpl'), ip4], instructions: [apply(output(nat.phyPatchOfport))] },
    // ICMP errors about a NAT connection (fragmentation needed, port unreachable), translated inside too.
    { table: PhyTable.NatReply, priority: 100, cookie: c, match: [ctState('+trk+rel'), ip4], instructions: [apply(output(nat.phyPatchOfport))] },
    { table: PhyTable.Classifier, priority: 1000, cookie: c, match: [...fromWire, ip4, { field: 'ip_proto', value: 1 }, ...vtep.slice(1)], instructions: [lookup(PhyTable.NatReply)] },
    // Not a NAT connection's reply (the host's own traffic in that range): as before.
    { table: PhyTable.NatReply, priority: 0, cookie: c, match: [], instructions: [apply({ type: 'output', port: 'normal' })] },
    { table: PhyTable.Publish, priority: 90, cookie: c, match: [ctState('+trk+est-rpl'), ip4], instructions: [apply(output(nat.phyPatchOfport))] },
    // A published port inside the SNAT range shadows that range's flow: its SNAT replies land here.
    { table: PhyTable.Publish, priority: 90, cookie: c, match: [ctState('+trk+est+rpl'), ip4], instructions: [apply(output(nat.phyPatchOfport))] },
    { table: PhyTable.Publish, priority: 0, cookie: c, match: [], instructions: [] },
    { table: PhyTable.PublishOut, priority: 0, cookie: c, match: [], instructions: [apply(output(nat.phyPatchOfport))] },
  ];
  for (const p of ['tcp', 'udp'] as const) {
    const field = p === 'tcp' ? ('tcp_dst' as const) : ('udp_dst' as const);
    for (const m of portMasks(nat.snatPorts.low, nat.snatPorts.high)) {
      out.push({
        table: PhyTable.Classifier,
        priority: 1000,
        cookie: c,
        match: [...fromWire, ...proto(p), ...vtep.slice(1), m.mask === 0xffff ? { field, value: m.value } : { field, value: m.value, mask: m.mask }],
        instructions: [lookup(PhyTable.NatReply)],
      });
    }
  }
  const byVni = new Map(nat.networks.map((n) => [n.vni, n]));
  for (const pub of nat.published) {
    const net = byVni.get(pub.vni);
    if (!net || !pub.containerIpv4) continue;
    const field = pub.protocol === 'tcp' ? ('tcp_dst' as const) : ('udp_dst' as const);
    const port = [...proto(pub.protocol), ...vtep.slice(1), { field, value: pub.hostPort } as MatchField];
    const cv = cookie(generation, Feature.OvsNat, net.vni);
    // Any other source gets nothing (table inet loom drops it too, had it reached the host).
    out.push({ table: PhyTable.Classifier, priority: 1010, cookie: cv, match: [...fromWire, ...port], instructions: [] });
    const sources = ipv4Sources(net.inboundSources);
    if (sources === null) continue;
    for (const src of sources ?? [undefined]) {
      out.push({ table: PhyTable.Classifier, priority: 1020, cookie: cv, match: [...fromWire, ...port, ...(src ? prefixMatch('src', src).slice(1) : [])], instructions: [lookup(PhyTable.Publish)] });
    }
    out.push({
      table: PhyTable.Publish,
      priority: 100,
      cookie: cv,
      match: [ctState('+trk+new'), ...port],
      instructions: [
        apply(
          {
            type: 'ct',
            commit: true,
            zone: NAT_ZONE,
            table: PhyTable.PublishOut,
            actions: [
              { type: 'nat', kind: 'dst', ipMin: pub.containerIpv4, portMin: pub.containerPort },
              { type: 'move', src: { field: 'eth_src' }, dst: { field: 'ct_label', ofs: 0, nBits: 48 } },
            ],
          },
        ),
      ],
    });
  }
  return out;
}

/** Whether `address` lies inside `cidr` (false across families). */
export function contains(cidr: string, address: string): boolean {
  const net = tryParseCidr(cidr, false);
  const ip = tryParseIp(address);
  return net !== null && ip !== null && cidrContains(net, ip.family, ip.value);
}
