// Security: the spoof guard (an endpoint sends only with its own MAC and addresses) and the policy
// table between routing and output. Networks are isolated by construction: every routing flow
// matches the VNI, so a packet of network A can never match a destination of network B.
import type { Flow, LocalEndpoint, NetworkState, PipelineState, PolicyRule } from './state.js';
import { DENY_OBJECT, Feature, OutPortReg, Table, cookie, ctZone, matchVni } from './fields.js';
import { EthType, Icmpv6Type, IpProto, goto, inPort, ipMatch } from './match-helpers.js';
import { ctState } from '../../openflow/match.js';
import type { Action, MatchField } from '../../openflow/types.js';
import { peerSelects, portMasks } from '../../api/policy.js';

export function policyFlows(state: PipelineState): Flow[] {
  const flows: Flow[] = [policyMissFlow(state.generation)];
  for (const net of state.networks) {
    for (const ep of net.endpoints) flows.push(...spoofGuardFlows(state.generation, ep));
  }
  for (const net of state.networks) {
    if (net.policy?.isolated) flows.push(...networkPolicyFlows(state.generation, net, state.tunnelPorts[net.tunnel]).flows);
  }
  return flows;
}

/** The policy table's miss: everything routed within an open network is allowed. */
export function policyMissFlow(generation: number): Flow {
  return { table: Table.Policy, priority: 0, cookie: cookie(generation, Feature.Policy), match: [], instructions: [goto(Table.Output)] };
}

/** What one local endpoint may send: its own MAC and addresses. */
export function spoofGuardFlows(generation: number, ep: LocalEndpoint): Flow[] {
  const c = cookie(generation, Feature.SpoofGuard, ep.ofport);
  const from = [...inPort(ep.ofport), { field: 'eth_src' as const, value: ep.mac }];
  const flows: Flow[] = [];
  if (ep.ipv4) {
    flows.push({
      table: Table.SpoofGuard,
      priority: 200,
      cookie: c,
      match: [
        ...from,
        { field: 'eth_type', value: EthType.ARP },
        { field: 'arp_spa', value: ep.ipv4 },
        { field: 'arp_sha', value: ep.mac },
      ],
      instructions: [goto(Table.ArpNd)],
    });
    flows.push({ table: Table.SpoofGuard, priority: 200, cookie: c, match: [...from, ...ipMatch('src', ep.ipv4)], instructions: [goto(Table.L3Forwarding)] });
  }
  if (ep.ipv6) {
    // Solicitations may come from the link-local address, so they are checked on MAC only.
    flows.push({
      table: Table.SpoofGuard,
      priority: 210,
      cookie: c,
      match: [
        ...from,
        { field: 'eth_type', value: EthType.IPv6 },
        { field: 'ip_proto', value: IpProto.ICMPv6 },
        { field: 'icmpv6_type', value: Icmpv6Type.NeighborSolicit },
      ],
      instructions: [goto(Table.ArpNd)],
    });
    flows.push({ table: Table.SpoofGuard, priority: 200, cookie: c, match: [...from, ...ipMatch('src', ep.ipv6)], instructions: [goto(Table.L3Forwarding)] });
  }
  return flows;
}

// ---- network policy (isolation and allow rules) ---------------------------------------------
//
// Enforced at the destination endpoint's host, which sees both local and tunnel traffic, with
// conntrack in a zone per network (ctZone). Every IP packet of an isolated network reaching
// table 40 goes through ct once (recirculating into table 40), then:
//   +inv                        drop
//   +est or +rel                pass (replies and later packets of allowed connections)
//   +new, leaving by a tunnel   commit and pass: the destination host decides, and the commit
//                               here lets its replies in as +est
//   +new to a local endpoint    commit and pass if a rule allows it, through conjunction:
//                               clause 1 the destination port (reg2), clause 2 the source
//                               address, clause 3 the protocol and port; conj_id -> ct(commit)
//   anything else              drop
// Flows per rule: local endpoints it names + source addresses/CIDRs + services, never their product.

/** Priorities inside table 40 (one network's flows all match its VNI). */
export const PolicyPriority = { Invalid: 210, Established: 200, Egress: 190, Rule: 150, Deny: 10, Track: 5 } as const;

const NEW = ctState('+trk+new');

/** Conjunction ids per rule: FNV-1a of "vni/name", probing past collisions (never 0). */
export function conjunctionIds(vni: number, rules: readonly PolicyRule[]): Map<string, number> {
  const ids = new Map<string, number>();
  const used = new Set<number>();
  for (const r of [...rules].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    let h = 0x811c9dc5;
    for (const ch of Buffer.from(`${vni}/${r.name}`)) h = Math.imul(h ^ ch, 0x01000193) >>> 0;
    while (h === 0 || used.has(h)) h = (h + 1) >>> 0;
    used.add(h);
    ids.set(r.name, h);
  }
  return ids;
}

export interface CompiledPolicy {
  flows: Flow[];
  /** Per rule that has flows on this host: its conjunction id and the size of each clause. */
  rules: { name: string; id: number; clauses: number[] }[];
}

function ipFamilies(m: MatchField[]): MatchField[][] {
  return [[{ field: 'eth_type', value: EthType.IPv4 }, ...m], [{ field: 'eth_type', value: EthType.IPv6 }, ...m]];
}

/** The service clause of a rule: protocol (per family) and destination ports as masked matches. */
function serviceMatches(rule: PolicyRule): MatchField[][] {
  if (rule.protocol === 'icmp') {
    return [
      [{ field: 'eth_type', value: EthType.IPv4 }, { field: 'ip_proto', value: 1 }],
      [{ field: 'eth_type', value: EthType.IPv6 }, { field: 'ip_proto', value: IpProto.ICMPv6 }],
    ];
  }
  const proto = rule.protocol === 'tcp' ? 6 : 17;
  const field = rule.protocol === 'tcp' ? ('tcp_dst' as const) : ('udp_dst' as const);
  const base = ipFamilies([{ field: 'ip_proto', value: proto }]);
  if (rule.ports.length === 0) return base;
  const ports = rule.ports.flatMap((p) => portMasks(p.first, Math.max(p.first, p.last)));
  return base.flatMap((b) => ports.map((p) => [...b, p.mask === 0xffff ? { field, value: p.value } : { field, value: p.value, mask: p.mask }]));
}

/** Flows of one isolated network on this host, and what each rule compiled to. */
export function networkPolicyFlows(generation: number, net: NetworkState, tunnelPort: number): CompiledPolicy {
  const policy = net.policy;
  if (!policy?.isolated) return { flows: [], rules: [] };
  const vni = matchVni(net.vni);
  const zone = ctZone(net.vni);
  const base = cookie(generation, Feature.NetworkPolicy, net.vni);
  const denyCookie = cookie(generation, Feature.NetworkPolicy, DENY_OBJECT | BigInt(net.vni));
  const pass = (priority: number, match: MatchField[], actions: Action[] = []): Flow => ({
    table: Table.Policy,
    priority,
    cookie: base,
    match: [vni, ...match],
    instructions: [...(actions.length ? [{ type: 'apply_actions' as const, actions }] : []), goto(Table.Output)],
  });
  const commit: Action = { type: 'ct', commit: true, zone };
  const flows: Flow[] = [
    ...ipFamilies([ctState('-trk')]).map((m) => ({
      table: Table.Policy,
      priority: PolicyPriority.Track,
      cookie: base,
      match: [vni, ...m],
      instructions: [{ type: 'apply_actions' as const, actions: [{ type: 'ct' as const, zone, table: Table.Policy }] }],
    })),
    { table: Table.Policy, priority: PolicyPriority.Invalid, cookie: base, match: [vni, ctState('+trk+inv')], instructions: [] },
    pass(PolicyPriority.Established, [ctState('+trk+est')]),
    pass(PolicyPriority.Established, [ctState('+trk+rel')]),
    // ct needs the IP family in the match (OVS refuses it otherwise), hence one flow per family.
    ...ipFamilies([NEW, { field: 'reg', index: OutPortReg.index, value: tunnelPort }]).map((m) => pass(PolicyPriority.Egress, m, [commit])),
    // Isolated: what no rule allows is dropped (counted by this flow's statistics).
    { table: Table.Policy, priority: PolicyPriority.Deny, cookie: denyCookie, match: [vni, ctState('+trk')], instructions: [] },
  ];
  // Clause flows with the same match are one flow with several conjunction actions.
  const clauseFlows = new Map<string, { match: MatchField[]; actions: Action[] }>();
  const addClause = (match: MatchField[], id: number, clause: number, nClauses: number): void => {
    const key = JSON.stringify(match);
    let f = clauseFlows.get(key);
    if (!f) clauseFlows.set(key, (f = { match, actions: [] }));
    f.actions.push({ type: 'conjunction', id, clause, nClauses });
  };
  const ids = conjunctionIds(net.vni, policy.rules);
  const compiled: CompiledPolicy['rules'] = [];
  for (const rule of policy.rules) {
    const id = ids.get(rule.name)!;
    const destinations = policy.directory.filter((e) => e.ofport !== undefined && peerSelects(rule.to, e)).map((e) => e.ofport!);
    const sources = new Set<string>(rule.from.cidrs);
    for (const e of policy.directory) {
      if (!peerSelects(rule.from, e)) continue;
      if (e.ipv4) sources.add(e.ipv4);
      if (e.ipv6) sources.add(e.ipv6);
    }
    if (destinations.length === 0 || sources.size === 0) continue;
    const services = rule.protocol === 'any' ? [] : serviceMatches(rule);
    const n = services.length > 0 ? 3 : 2;
    for (const port of new Set(destinations)) addClause([vni, NEW, { field: 'reg', index: OutPortReg.index, value: port }], id, 1, n);
    for (const s of sources) addClause([vni, NEW, ...ipMatch('src', s)], id, 2, n);
    for (const m of services) addClause([vni, NEW, ...m], id, 3, n);
    for (const m of ipFamilies([{ field: 'conj_id', value: id }])) {
      flows.push({
        table: Table.Policy,
        priority: PolicyPriority.Rule,
        cookie: cookie(generation, Feature.NetworkPolicy, id),
        match: [vni, ...m],
        instructions: [{ type: 'apply_actions', actions: [commit] }, goto(Table.Output)],
      });
    }
    compiled.push({ name: rule.name, id, clauses: [new Set(destinations).size, sources.size, ...(n === 3 ? [services.length] : [])] });
  }
  for (const f of clauseFlows.values()) {
    flows.push({ table: Table.Policy, priority: PolicyPriority.Rule, cookie: base, match: f.match, instructions: [{ type: 'apply_actions', actions: f.actions }] });
  }
  return { flows, rules: compiled };
}

export interface PolicyPacketCount {
  network: string;
  /** The rule that allowed the packets; '' for the network's default deny. */
  policy: string;
  verdict: 'allowed' | 'denied';
  packets: number;
}

/**
 * Flow statistics of network policy flows as counts: allow flows carry their rule's conjunction
 * id in the cookie, the default-deny flow DENY_OBJECT | VNI. Other policy flows are not counted.
 */
export function policyPacketCounts(state: PipelineState, flows: readonly { cookie: bigint; packetCount: bigint }[]): PolicyPacketCount[] {
  const byObject = new Map<bigint, PolicyPacketCount>();
  for (const net of state.networks) {
    if (!net.policy?.isolated) continue;
    byObject.set(DENY_OBJECT | BigInt(net.vni), { network: net.policy.network, policy: '', verdict: 'denied', packets: 0 });
    for (const [name, id] of conjunctionIds(net.vni, net.policy.rules)) {
      byObject.set(BigInt(id), { network: net.policy.network, policy: name, verdict: 'allowed', packets: 0 });
    }
  }
  for (const f of flows) {
    if (((f.cookie >> 40n) & 0xffn) !== BigInt(Feature.NetworkPolicy)) continue;
    const row = byObject.get(f.cookie & 0xff_ffff_ffffn);
    if (row) row.packets += Number(f.packetCount);
  }
  return [...byObject.values()];
}
