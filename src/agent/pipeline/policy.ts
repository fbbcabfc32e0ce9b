// Security: the spoof guard (an endpoint sends only with its own MAC and addresses) and the policy
// table between routing and output. Networks are isolated by construction: every routing flow
// matches the VNI, so a packet of network A can never match a destination of network B.
import type { DeniedLogState, DirectoryEntry, Flow, LocalEndpoint, NetworkState, PipelineState, PolicyRule } from './state.js';
import { DENY_OBJECT, Feature, OutPortReg, Source, Table, cookie, ctZone, matchSource, matchVni } from './fields.js';
import { EthType, Icmpv6Type, IpProto, goto, inPort, ipMatch } from './match-helpers.js';
import { ctState } from '../../openflow/match.js';
import type { Action, Instruction, MatchField } from '../../openflow/types.js';
import { labelsMatch, portMasks, type PeerSpec } from '../../api/policy.js';

export function policyFlows(state: PipelineState, reuse?: FlowReuse): Flow[] {
  const flows: Flow[] = [policyMissFlow(state.generation)];
  for (const net of state.networks) {
    for (const ep of net.endpoints) flows.push(...spoofGuardFlows(state.generation, ep));
  }
  for (const net of state.networks) {
    if (net.policy?.isolated) flows.push(...networkPolicyFlows(state.generation, net, state.tunnelPorts[net.tunnel], state.deniedLog, reuse).flows);
  }
  reuse?.rotate();
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
//                               address (or, for "outside", entry by the gateway port: reg0=3),
//                               clause 3 the protocol and port; conj_id -> ct(commit)
//   anything else              drop
// Flows per rule: local endpoints it names + source addresses/CIDRs + services, never their product.

/** Priorities inside table 40 (one network's flows all match its VNI). */
export const PolicyPriority = { Invalid: 210, Established: 200, Egress: 190, Rule: 150, Deny: 10, Track: 5 } as const;

const NEW = ctState('+trk+new');
const OUTSIDE_CLAUSE = Symbol('outside');

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

/** The service clause of a rule: protocol (per family) and destination ports as masked matches, each with a short key. */
function serviceMatches(rule: PolicyRule): { key: string; match: MatchField[] }[] {
  if (rule.protocol === 'icmp') {
    return [
      { key: 'icmp', match: [{ field: 'eth_type', value: EthType.IPv4 }, { field: 'ip_proto', value: 1 }] },
      { key: 'icmp6', match: [{ field: 'eth_type', value: EthType.IPv6 }, { field: 'ip_proto', value: IpProto.ICMPv6 }] },
    ];
  }
  const proto = rule.protocol === 'tcp' ? 6 : 17;
  const field = rule.protocol === 'tcp' ? ('tcp_dst' as const) : ('udp_dst' as const);
  const base = ipFamilies([{ field: 'ip_proto', value: proto }]).map((match, i) => ({ key: `${rule.protocol}${i === 0 ? '' : '6'}`, match }));
  if (rule.ports.length === 0) return base;
  const ports = rule.ports.flatMap((p) => portMasks(p.first, Math.max(p.first, p.last)));
  return base.flatMap((b) =>
    ports.map((p) => ({ key: `${b.key}:${p.value}/${p.mask}`, match: [...b.match, p.mask === 0xffff ? { field, value: p.value } : { field, value: p.value, mask: p.mask }] })),
  );
}

/**
 * The directory indexed by name and by label pair, so selecting a rule's endpoints costs what it
 * names rather than the whole directory (1,000 rules x 2,200 endpoints was seconds). Selects
 * exactly what peerSelects does.
 */
class DirectoryIndex {
  private readonly byName = new Map<string, DirectoryEntry[]>();
  private readonly byLabel = new Map<string, DirectoryEntry[]>();

  constructor(directory: readonly DirectoryEntry[]) {
    for (const e of directory) {
      push(this.byName, e.name, e);
      for (const k in e.labels) push(this.byLabel, `${k}\0${e.labels[k]}`, e);
    }
  }

  select(peer: PeerSpec): Iterable<DirectoryEntry> {
    const out = new Set<DirectoryEntry>();
    for (const name of peer.endpoints) for (const e of this.byName.get(name) ?? []) out.add(e);
    const pairs = Object.entries(peer.labels);
    if (pairs.length > 0) {
      // Start from the rarest pair, keep those that carry every pair.
      let smallest: DirectoryEntry[] | undefined;
      for (const [k, v] of pairs) {
        const list = this.byLabel.get(`${k}\0${v}`) ?? [];
        if (!smallest || list.length < smallest.length) smallest = list;
      }
      for (const e of smallest!) if (labelsMatch(peer.labels, e.labels)) out.add(e);
    }
    return out;
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

/** What a rule names on this host: local destination ports, source addresses and CIDRs, services. */
interface ResolvedRule {
  destinations: number[];
  sources: string[];
  services: { key: string; match: MatchField[] }[];
}

function resolveRule(index: DirectoryIndex, rule: PolicyRule): ResolvedRule {
  const destinations = new Set<number>();
  for (const e of index.select(rule.to)) if (e.ofport !== undefined) destinations.add(e.ofport);
  const sources = new Set<string>(rule.from.cidrs);
  for (const e of index.select(rule.from)) {
    if (e.ipv4) sources.add(e.ipv4);
    if (e.ipv6) sources.add(e.ipv6);
  }
  return { destinations: [...destinations], sources: [...sources], services: rule.protocol === 'any' ? [] : serviceMatches(rule) };
}

/**
 * What a build can take from the last one, so a change of one rule on a big network costs about
 * that rule (bench:policy): flow objects by an identity string that determines them (a build that
 * wants the same flow again gets the same object, which the diff's FlowTexts recognises without
 * formatting it), and, while a network's directory is the same array as last time (the agent
 * keeps it while no endpoint changed), each rule's resolved names by the rule's text. Only what
 * the last build used is kept.
 */
export class FlowReuse {
  private current = new Map<string, Flow>();
  private previous = new Map<string, Flow>();
  private readonly resolved = new Map<number, { directory: readonly DirectoryEntry[]; index: DirectoryIndex; rules: Map<string, ResolvedRule> }>();

  /** Resolves rules against `directory`, remembering results while the directory stays the same array. */
  resolver(vni: number, directory: readonly DirectoryEntry[]): (rule: PolicyRule) => ResolvedRule {
    let cache = this.resolved.get(vni);
    if (cache?.directory !== directory) this.resolved.set(vni, (cache = { directory, index: new DirectoryIndex(directory), rules: new Map() }));
    const { index, rules } = cache;
    const used = new Map<string, ResolvedRule>();
    cache.rules = used;
    return (rule) => {
      const key = JSON.stringify([rule.from, rule.to, rule.protocol, rule.ports]);
      const r = rules.get(key) ?? used.get(key) ?? resolveRule(index, rule);
      used.set(key, r);
      return r;
    };
  }

  /** The flow last built under `identity` if `same` accepts it (default: always), else a new one. */
  get(identity: string, make: () => Flow, same?: (old: Flow) => boolean): Flow {
    let f = this.current.get(identity) ?? this.previous.get(identity);
    if (!f || (same && !same(f))) f = make();
    this.current.set(identity, f);
    return f;
  }

  /** Ends a build. */
  rotate(): void {
    this.previous = this.current;
    this.current = new Map();
  }
}

/** Flows of one isolated network on this host, and what each rule compiled to. */
/** Bytes of a denied packet sent to the agent: Ethernet, IPv6 and TCP headers fit. */
export const DENIED_LOG_MAX_LEN = 128;

export function networkPolicyFlows(generation: number, net: NetworkState, tunnelPort: number, deniedLog?: DeniedLogState, reuse = new FlowReuse()): CompiledPolicy {
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
    // Isolated: what no rule allows is dropped (counted by this flow's statistics); with
    // --log-denied its headers also go to the agent, through the meter that bounds them.
    { table: Table.Policy, priority: PolicyPriority.Deny, cookie: denyCookie, match: [vni, ctState('+trk')], instructions: deniedLog ? toDeniedLog(deniedLog) : [] },
  ];
  // Clause flows with the same match are one flow with several conjunction actions. Keys are
  // short strings naming the match (a compile at 1,000 rules builds tens of thousands of them).
  // What a clause flow matches besides the VNI and +new: a destination port, a source address,
  // entry by the gateway port, or a service; built once per flow, when it is new.
  type ClauseMatch = number | string | typeof OUTSIDE_CLAUSE | MatchField[];
  const clauseFlows = new Map<string, { what: ClauseMatch; actions: Conjunction[] }>();
  const addClause = (key: string, what: ClauseMatch, id: number, clause: number, nClauses: number): void => {
    let f = clauseFlows.get(key);
    if (!f) clauseFlows.set(key, (f = { what, actions: [] }));
    f.actions.push({ type: 'conjunction', id, clause, nClauses });
  };
  const clauseMatch = (what: ClauseMatch): MatchField[] => {
    if (typeof what === 'number') return [vni, NEW, { field: 'reg', index: OutPortReg.index, value: what }];
    if (what === OUTSIDE_CLAUSE) return [vni, NEW, matchSource(Source.GatewayPort)];
    if (typeof what === 'string') return [vni, NEW, ...ipMatch('src', what)];
    return [vni, NEW, ...what];
  };
  const resolved = reuse.resolver(net.vni, policy.directory);
  const ids = conjunctionIds(net.vni, policy.rules);
  const compiled: CompiledPolicy['rules'] = [];
  const prefix = `${generation}/${net.vni}/${tunnelPort}/`;
  for (const rule of policy.rules) {
    const id = ids.get(rule.name)!;
    const { destinations, sources, services } = resolved(rule);
    const outside = rule.from.outside === true;
    if (destinations.length === 0 || (sources.length === 0 && !outside)) continue;
    const n = services.length > 0 ? 3 : 2;
    for (const port of destinations) addClause(`d${port}`, port, id, 1, n);
    for (const src of sources) addClause(src, src, id, 2, n);
    // Outside: entered this host through its gateway port (published ports after DNAT, routed
    // inbound, the host itself), whatever the source address.
    if (outside) addClause('o', OUTSIDE_CLAUSE, id, 2, n);
    for (const m of services) addClause(`v${m.key}`, m.match, id, 3, n);
    for (const [i, m] of ipFamilies([{ field: 'conj_id', value: id }]).entries()) {
      flows.push(
        reuse.get(`${prefix}a${id}/${i}`, () => ({
          table: Table.Policy,
          priority: PolicyPriority.Rule,
          cookie: cookie(generation, Feature.NetworkPolicy, id),
          match: [vni, ...m],
          instructions: [{ type: 'apply_actions', actions: [commit] }, goto(Table.Output)],
        })),
      );
    }
    compiled.push({ name: rule.name, id, clauses: [destinations.length, sources.length + (outside ? 1 : 0), ...(n === 3 ? [services.length] : [])] });
  }
  for (const [key, f] of clauseFlows) {
    // The same clause with the same conjunctions as in the last build: the same flow object, so
    // the diff finds its text without formatting it again.
    flows.push(
      reuse.get(
        `${prefix}${key}`,
        () => ({ table: Table.Policy, priority: PolicyPriority.Rule, cookie: base, match: clauseMatch(f.what), instructions: [{ type: 'apply_actions', actions: f.actions }] }),
        (old) => sameConjunctions(old, f.actions),
      ),
    );
  }
  return { flows, rules: compiled };
}

type Conjunction = Extract<Action, { type: 'conjunction' }>;

/** Whether a clause flow carries exactly these conjunction actions, in this order. */
function sameConjunctions(flow: Flow, actions: readonly Conjunction[]): boolean {
  const i = flow.instructions[0];
  if (flow.instructions.length !== 1 || i?.type !== 'apply_actions' || i.actions.length !== actions.length) return false;
  for (let k = 0; k < actions.length; k++) {
    const a = i.actions[k]!;
    const b = actions[k]!;
    if (a.type !== 'conjunction' || a.id !== b.id || a.clause !== b.clause || a.nClauses !== b.nClauses) return false;
  }
  return true;
}

function toDeniedLog(d: DeniedLogState): Instruction[] {
  return [
    ...(d.meterId !== undefined ? [{ type: 'meter' as const, meterId: d.meterId }] : []),
    { type: 'apply_actions', actions: [{ type: 'output', port: 'controller', maxLen: DENIED_LOG_MAX_LEN }] },
  ];
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
