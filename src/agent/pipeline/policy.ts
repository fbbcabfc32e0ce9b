// Security: the spoof guard (an endpoint sends only with its own MAC and addresses) and the policy
// table between routing and output. Networks are isolated by construction: every routing flow
// matches the VNI, so a packet of network A can never match a destination of network B.
import type { DeniedLogState, DirectoryEntry, Flow, LocalEndpoint, NetworkState, PipelineState, PolicyRule } from './state.js';
import { DENY_OBJECT, Feature, INVALID_OBJECT, OutPortReg, Source, Table, cookie, ctZone, matchSource, matchVni } from './fields.js';
import { EthType, Icmpv6Type, IpProto, goto, inPort, ipMatch } from './match-helpers.js';
import { ctState } from '../../openflow/match.js';
import type { Action, Instruction, MatchField } from '../../openflow/types.js';
import { labelsMatch, portMasks, type PeerSpec } from '../../api/policy.js';

export function policyFlows(state: PipelineState): Flow[] {
  const flows: Flow[] = [policyMissFlow(state.generation)];
  for (const net of state.networks) {
    for (const ep of net.endpoints) flows.push(...spoofGuardFlows(state.generation, ep));
  }
  for (const net of state.networks) {
    if (net.policy?.isolated) flows.push(...networkPolicyFlows(state.generation, net, state.tunnelPorts[net.tunnel], state.deniedLog).flows);
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
    let h = ruleHash(vni, r.name);
    while (h === 0 || used.has(h)) h = (h + 1) >>> 0;
    used.add(h);
    ids.set(r.name, h);
  }
  return ids;
}

/** FNV-1a of "vni/name": a rule's conjunction id unless it collides. */
function ruleHash(vni: number, name: string): number {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(`${vni}/${name}`)) h = Math.imul(h ^ ch, 0x01000193) >>> 0;
  return h;
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

/** Bytes of a denied packet sent to the agent: Ethernet, IPv6 and TCP headers fit. */
export const DENIED_LOG_MAX_LEN = 128;

/** Flows of one isolated network on this host, and what each rule compiled to (a fresh compile). */
export function networkPolicyFlows(generation: number, net: NetworkState, tunnelPort: number, deniedLog?: DeniedLogState): CompiledPolicy {
  if (!net.policy?.isolated) return { flows: [], rules: [] };
  const compiler = new NetworkPolicyCompiler();
  compiler.compile(generation, net);
  return { flows: [...networkPolicyBaseFlows(generation, net, tunnelPort, deniedLog), ...compiler.flows()], rules: compiler.summary(net.policy.rules) };
}

/**
 * The flows of an isolated network that do not depend on its rules: conntrack, established and
 * related, invalid, new connections leaving by a tunnel, and the default deny. A rule change
 * never touches them.
 */
export function networkPolicyBaseFlows(generation: number, net: NetworkState, tunnelPort: number, deniedLog?: DeniedLogState): Flow[] {
  if (!net.policy?.isolated) return [];
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
  return [
    ...ipFamilies([ctState('-trk')]).map((m) => ({
      table: Table.Policy,
      priority: PolicyPriority.Track,
      cookie: base,
      match: [vni, ...m],
      instructions: [{ type: 'apply_actions' as const, actions: [{ type: 'ct' as const, zone, table: Table.Policy }] }],
    })),
    { table: Table.Policy, priority: PolicyPriority.Invalid, cookie: cookie(generation, Feature.NetworkPolicy, INVALID_OBJECT | BigInt(net.vni)), match: [vni, ctState('+trk+inv')], instructions: [] },
    pass(PolicyPriority.Established, [ctState('+trk+est')]),
    pass(PolicyPriority.Established, [ctState('+trk+rel')]),
    // ct needs the IP family in the match (OVS refuses it otherwise), hence one flow per family.
    ...ipFamilies([NEW, { field: 'reg', index: OutPortReg.index, value: tunnelPort }]).map((m) => pass(PolicyPriority.Egress, m, [commit])),
    // Isolated: what no rule allows is dropped (counted by this flow's statistics); with
    // --log-denied its headers also go to the agent, through the meter that bounds them.
    { table: Table.Policy, priority: PolicyPriority.Deny, cookie: denyCookie, match: [vni, ctState('+trk')], instructions: deniedLog ? toDeniedLog(deniedLog) : [] },
  ];
}

type Conjunction = Extract<Action, { type: 'conjunction' }>;

/** What a clause flow matches besides the VNI and +new: a destination port, a source address, entry by the gateway port, or a service. */
type ClauseMatch = number | string | typeof OUTSIDE_CLAUSE | MatchField[];

/** One alternative a rule adds to a clause: the clause flow's key (a short string naming its match) and the clause. */
interface Contribution {
  key: string;
  what: ClauseMatch;
  clause: number;
}

interface RuleState {
  /** The rule object last compiled: the same object again is the same rule. */
  rule: PolicyRule;
  text: string;
  id: number;
  resolved: ResolvedRule;
  /** Nothing when the rule names no local destination or no source here (it has no flows). */
  contributions: Contribution[];
  allow: Flow[];
}

/** A clause flow: its match, and the conjunctions of every rule that shares it, by id. */
interface ClauseState {
  match: MatchField[];
  members: Map<number, Conjunction>;
  flow: Flow | undefined;
}

const ruleTexts = new WeakMap<PolicyRule, string>();
/** What a rule selects and allows, as text (its name aside): equal texts compile to equal flows. */
function ruleText(rule: PolicyRule): string {
  let t = ruleTexts.get(rule);
  if (t === undefined) ruleTexts.set(rule, (t = JSON.stringify([rule.from, rule.to, rule.protocol, rule.ports])));
  return t;
}

function sameResolved(a: ResolvedRule, b: ResolvedRule): boolean {
  const same = (x: readonly (number | string)[], y: readonly (number | string)[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  return same(a.destinations, b.destinations) && same(a.sources, b.sources);
}

let compileVersions = 0;

/**
 * The rule flows of one isolated network (clause and allow flows), kept from one compile to the
 * next so that a rule change costs that rule, not the network (bench:policy: 1,000 rules, 2,200
 * endpoints). Per rule it keeps what the rule resolved to and which clause flows it adds a
 * conjunction to; a clause flow shared by several rules carries their conjunctions sorted by id,
 * so the flows never depend on the order of changes (a fresh compile builds the same). A change
 * of a rule retracts its old conjunctions and adds its new ones: only the clause flows it touches
 * and its own allow flows are rebuilt; other flow objects stay the same objects, which is how
 * FlowSync tells them unchanged without looking at them. A new directory (endpoints came or went)
 * resolves every rule again but rebuilds only the rules whose result changed. A new generation
 * or VNI starts over.
 */
export class NetworkPolicyCompiler {
  private context = '';
  private directory: readonly DirectoryEntry[] | undefined;
  private index: DirectoryIndex | undefined;
  private readonly rules = new Map<string, RuleState>();
  private readonly clauses = new Map<string, ClauseState>();
  private readonly hashes = new Map<string, number>();
  private output: Flow[] = [];
  /** What the last compile that changed anything changed, from which version to which. */
  private lastDelta: { from: number; to: number; added: Flow[]; removed: Flow[] } | undefined;
  /** Changes whenever the flows do; unique over all compilers (a chunk key). */
  version = ++compileVersions;

  /** Brings the flows up to `net`'s rules and directory; whether they changed. */
  compile(generation: number, net: NetworkState): boolean {
    const policy = net.policy;
    const rules = policy?.isolated ? policy.rules : [];
    const directory = policy?.directory ?? [];
    const context = `${generation}/${net.vni}`;
    let changed = false;
    let fresh = false;
    if (context !== this.context) {
      fresh = true;
      this.context = context;
      this.rules.clear();
      this.clauses.clear();
      this.hashes.clear();
      this.directory = undefined;
      changed = true;
    }
    const directoryChanged = directory !== this.directory;
    if (directoryChanged) {
      this.directory = directory;
      this.index = new DirectoryIndex(directory);
    }
    const index = this.index!;
    const ids = this.ids(net.vni, rules);
    // Clause flows touched, with the flow each had before; flows gone and new.
    const dirty = new Map<string, Flow | undefined>();
    const delta = { added: [] as Flow[], removed: [] as Flow[] };
    const seen = new Set<string>();
    for (const rule of rules) {
      if (seen.has(rule.name)) continue;
      seen.add(rule.name);
      const id = ids.get(rule.name)!;
      const st = this.rules.get(rule.name);
      if (st && st.id === id && st.rule === rule && !directoryChanged) continue;
      const text = ruleText(rule);
      let resolved: ResolvedRule | undefined;
      if (st && st.id === id && st.text === text) {
        if (!directoryChanged) {
          st.rule = rule;
          continue;
        }
        resolved = resolveRule(index, rule);
        if (sameResolved(st.resolved, resolved)) {
          st.rule = rule;
          continue;
        }
      }
      if (st) this.retract(st, dirty, delta.removed);
      this.rules.set(rule.name, this.install(generation, net.vni, rule, text, id, resolved ?? resolveRule(index, rule), dirty, delta.added));
      changed = true;
    }
    for (const [name, st] of this.rules) {
      if (seen.has(name)) continue;
      this.retract(st, dirty, delta.removed);
      this.rules.delete(name);
      changed = true;
    }
    const base = cookie(generation, Feature.NetworkPolicy, net.vni);
    for (const [key, before] of dirty) {
      if (before) delta.removed.push(before);
      const c = this.clauses.get(key)!;
      if (c.members.size === 0) {
        this.clauses.delete(key);
        continue;
      }
      const actions = [...c.members.values()].sort((a, b) => a.id - b.id);
      c.flow = { table: Table.Policy, priority: PolicyPriority.Rule, cookie: base, match: c.match, instructions: [{ type: 'apply_actions', actions }] };
      delta.added.push(c.flow);
    }
    if (changed) {
      this.output = [];
      for (const st of this.rules.values()) for (const f of st.allow) this.output.push(f);
      for (const c of this.clauses.values()) this.output.push(c.flow!);
      const from = this.version;
      this.version = ++compileVersions;
      this.lastDelta = fresh ? undefined : { from, to: this.version, ...delta };
    }
    return changed;
  }

  /** The network's rule flows as last compiled (the same array until they change). */
  flows(): Flow[] {
    return this.output;
  }

  /**
   * The flows that went and came between `version` and the current one, when that was one compile
   * (FlowSync then sends these instead of comparing the whole network's flows); else undefined.
   */
  deltaSince(version: number): { added: Flow[]; removed: Flow[] } | undefined {
    const d = this.lastDelta;
    return d && d.from === version && d.to === this.version ? d : undefined;
  }

  /** Per rule of `rules` that has flows here: its conjunction id and the size of each clause. */
  summary(rules: readonly PolicyRule[]): CompiledPolicy['rules'] {
    const out: CompiledPolicy['rules'] = [];
    for (const rule of rules) {
      const st = this.rules.get(rule.name);
      if (!st || st.contributions.length === 0) continue;
      const { destinations, sources, services } = st.resolved;
      const outside = rule.from.outside === true ? 1 : 0;
      out.push({ name: rule.name, id: st.id, clauses: [destinations.length, sources.length + outside, ...(services.length > 0 ? [services.length] : [])] });
    }
    return out;
  }

  /** The rules' conjunction ids (conjunctionIds), from remembered hashes while no two collide. */
  private ids(vni: number, rules: readonly PolicyRule[]): Map<string, number> {
    if (this.hashes.size > 2 * rules.length + 64) this.hashes.clear();
    const ids = new Map<string, number>();
    const used = new Set<number>();
    for (const r of rules) {
      let h = this.hashes.get(r.name);
      if (h === undefined) this.hashes.set(r.name, (h = ruleHash(vni, r.name)));
      // A collision (or a repeated name): the probing order of conjunctionIds decides.
      if (h === 0 || used.has(h)) return conjunctionIds(vni, rules);
      used.add(h);
      ids.set(r.name, h);
    }
    return ids;
  }

  private retract(st: RuleState, dirty: Map<string, Flow | undefined>, removed: Flow[]): void {
    for (const f of st.allow) removed.push(f);
    for (const c of st.contributions) {
      const clause = this.clauses.get(c.key)!;
      if (!dirty.has(c.key)) dirty.set(c.key, clause.flow);
      clause.members.delete(st.id);
    }
  }

  private install(generation: number, vniValue: number, rule: PolicyRule, text: string, id: number, resolved: ResolvedRule, dirty: Map<string, Flow | undefined>, added: Flow[]): RuleState {
    const { destinations, sources, services } = resolved;
    const outside = rule.from.outside === true;
    if (destinations.length === 0 || (sources.length === 0 && !outside)) return { rule, text, id, resolved, contributions: [], allow: [] };
    const contributions: Contribution[] = [];
    for (const port of destinations) contributions.push({ key: `d${port}`, what: port, clause: 1 });
    for (const src of sources) contributions.push({ key: src, what: src, clause: 2 });
    // Outside: entered this host through its gateway port (published ports after DNAT, routed
    // inbound, the host itself), whatever the source address.
    if (outside) contributions.push({ key: 'o', what: OUTSIDE_CLAUSE, clause: 2 });
    for (const m of services) contributions.push({ key: `v${m.key}`, what: m.match, clause: 3 });
    const n = services.length > 0 ? 3 : 2;
    const vni = matchVni(vniValue);
    for (const c of contributions) {
      let clause = this.clauses.get(c.key);
      if (!clause) this.clauses.set(c.key, (clause = { match: clauseMatch(vni, c.what), members: new Map(), flow: undefined }));
      if (!dirty.has(c.key)) dirty.set(c.key, clause.flow);
      clause.members.set(id, { type: 'conjunction', id, clause: c.clause, nClauses: n });
    }
    const commit: Action = { type: 'ct', commit: true, zone: ctZone(vniValue) };
    const allow = ipFamilies([{ field: 'conj_id', value: id }]).map(
      (m): Flow => ({
        table: Table.Policy,
        priority: PolicyPriority.Rule,
        cookie: cookie(generation, Feature.NetworkPolicy, id),
        match: [vni, ...m],
        instructions: [{ type: 'apply_actions', actions: [commit] }, goto(Table.Output)],
      }),
    );
    for (const f of allow) added.push(f);
    return { rule, text, id, resolved, contributions, allow };
  }
}

function clauseMatch(vni: MatchField, what: ClauseMatch): MatchField[] {
  if (typeof what === 'number') return [vni, NEW, { field: 'reg', index: OutPortReg.index, value: what }];
  if (what === OUTSIDE_CLAUSE) return [vni, NEW, matchSource(Source.GatewayPort)];
  if (typeof what === 'string') return [vni, NEW, ...ipMatch('src', what)];
  return [vni, NEW, ...what];
}

/**
 * One NetworkPolicyCompiler per isolated network, kept by FlowSync across updates (the policy
 * chunks of pipelineChunks).
 */
export class PolicyCompilers {
  private readonly byVni = new Map<number, NetworkPolicyCompiler>();

  for(vni: number): NetworkPolicyCompiler {
    let c = this.byVni.get(vni);
    if (!c) this.byVni.set(vni, (c = new NetworkPolicyCompiler()));
    return c;
  }

  /** Forgets networks that are no longer isolated here. */
  retain(vnis: ReadonlySet<number>): void {
    for (const vni of this.byVni.keys()) if (!vnis.has(vni)) this.byVni.delete(vni);
  }
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
