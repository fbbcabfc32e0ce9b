// The whole pipeline: every feature's flows for one host, and the difference between two sets of
// flows (what a reconciliation or an update must change, in one bundle).
import type { Flow, NetworkState, PipelineState } from './state.js';
import type { Match } from '../../openflow/types.js';
import { formatInstructions, formatMatch } from '../../openflow/printer.js';
import { Feature, Table, cookie } from './fields.js';
import { connectivityFlows, endpointFlows } from './connectivity.js';
import { tunnelFlows, tunnelNetworkFlows, tunnelPortFlows } from './tunnels.js';
import { arpNdFlows } from './arp-nd.js';
import { NetworkPolicyCompiler, networkPolicyBaseFlows, policyFlows, policyMissFlow, spoofGuardFlows, type PolicyCompilers } from './policy.js';
import { hostPathFlows, hostPathNetworkFlows, hostPathPortFlows } from './host-path.js';
import { dnsEndpointFlows, dnsFlows } from './dns.js';
import { ovsNatFlows, ovsNatNetworkFlows } from './ovs-nat.js';

/** Every table ends in an explicit drop, so `dump-flows` shows where a packet died. */
function tableMissFlows(generation: number): Flow[] {
  return Object.values(Table)
    .filter((t) => t !== Table.Policy && t < Table.NatConntrack) // the policy table's miss is "allow" (policy.ts); the NAT tables' are ovs-nat.ts's
    .map((table) => ({ table, priority: 0, cookie: cookie(generation, Feature.Base), match: [], instructions: [] }));
}

export function buildPipeline(state: PipelineState): Flow[] {
  return [
    ...tableMissFlows(state.generation),
    ...connectivityFlows(state),
    ...tunnelFlows(state),
    ...arpNdFlows(state),
    ...policyFlows(state),
    ...hostPathFlows(state),
    ...dnsFlows(state),
    ...natFlows(state),
  ];
}

/** br-int's flows of --nat-path ovs (host-wide and per network), when it is on. */
function natFlows(state: Pick<PipelineState, 'generation' | 'gatewayPort' | 'ovsNat'>): Flow[] {
  const { generation, gatewayPort, ovsNat } = state;
  if (!gatewayPort || !ovsNat) return [];
  return [...ovsNatFlows(generation, gatewayPort, ovsNat), ...ovsNat.networks.flatMap((n) => ovsNatNetworkFlows(generation, gatewayPort, ovsNat, n))];
}

/**
 * The same flows as {@link buildPipeline}, cut into chunks by what they depend on: the host's
 * parts (generation, tunnel and gateway ports), each network without its endpoints and rules,
 * each isolated network's rules, and each local endpoint. A chunk's key is its whole input, so
 * equal keys mean equal flows: an attach or detach changes one endpoint chunk, and only its flows
 * are built and compared (FlowSync). A `policy` chunk is compiled incrementally by the network's
 * NetworkPolicyCompiler (kept in `compilers` between calls): its key is the compiler's version,
 * and its flows are the same objects from one version to the next except those a change touched.
 */
export interface FlowChunk {
  /** What the chunk's flows depend on. */
  kind: 'host' | 'network' | 'policy' | 'endpoint';
  key: string;
  build(): Flow[];
  /** Chunks of one slot replace each other (an isolated network's rule flows, one version after another). */
  slot?: string;
  /** The flows gone and new since the chunk of this slot with `key`, if the chunk can tell (else: compare all). */
  since?(key: string): { added: Flow[]; removed: Flow[] } | undefined;
}

export function pipelineChunks(state: PipelineState, compilers?: PolicyCompilers): FlowChunk[] {
  const { generation, tunnelPorts, gatewayPort, deniedLog } = state;
  const host = { generation, tunnelPorts, ...(gatewayPort ? { gatewayPort } : {}) };
  const hostKey = JSON.stringify(host);
  const chunks: FlowChunk[] = [
    { kind: 'host', key: `host ${hostKey}`, build: () => [...tableMissFlows(generation), ...tunnelPortFlows(host), policyMissFlow(generation), ...hostPathPortFlows(host)] },
  ];
  if (state.ovsNat && gatewayPort) {
    const nat = { generation, gatewayPort, ovsNat: state.ovsNat };
    chunks.push({ kind: 'host', key: `ovs-nat ${JSON.stringify(nat)}`, build: () => natFlows(nat) });
  }
  const isolated = new Set<number>();
  for (const net of state.networks) {
    const { endpoints, policy, ...rest } = net;
    // The network's flows see its policy only as isolated or not; its rules are the policy chunk's.
    const outline = { ...rest, ...(policy ? { policy: { network: policy.network, isolated: policy.isolated } } : {}) };
    const bare: NetworkState = { ...net, endpoints: [] };
    chunks.push({
      kind: 'network',
      key: `network ${hostKey} ${JSON.stringify(deniedLog ?? null)} ${JSON.stringify(outline)}`,
      build: () => {
        const one = { ...host, networks: [bare] };
        return [
          ...tunnelNetworkFlows(host, bare),
          ...arpNdFlows(one),
          ...networkPolicyBaseFlows(generation, bare, tunnelPorts[bare.tunnel], deniedLog),
          ...hostPathNetworkFlows(host, bare),
          ...dnsFlows(one),
        ];
      },
    });
    if (policy?.isolated) {
      isolated.add(net.vni);
      const compiler = compilers?.for(net.vni) ?? new NetworkPolicyCompiler();
      compiler.compile(generation, net);
      // Without kept compilers the version means nothing between calls: the key is the input.
      const slot = `policy ${generation} ${net.vni}`;
      if (!compilers) {
        chunks.push({ kind: 'policy', key: `${slot} ${JSON.stringify([policy.rules, policy.directory])}`, build: () => compiler.flows() });
      } else {
        chunks.push({
          kind: 'policy',
          key: `${slot} ${compiler.version}`,
          build: () => compiler.flows(),
          slot,
          since: (key) => (key.startsWith(`${slot} `) ? compiler.deltaSince(Number(key.slice(slot.length + 1))) : undefined),
        });
      }
    }
    for (const ep of endpoints) {
      chunks.push({
        // Endpoint flows depend on the endpoint, the host's parts and its network's VNI, gateways
        // and host addresses (TCP DNS answers) only.
        kind: 'endpoint',
        key: `endpoint ${hostKey} ${JSON.stringify([net.vni, net.gateway4, net.gateway6, net.hostAddress4, net.hostAddress6, net.ipv4Cidr, net.ipv6Cidr])} ${JSON.stringify(ep)}`,
        build: () => [...endpointFlows(generation, net, ep), ...spoofGuardFlows(generation, ep), ...dnsEndpointFlows(host, net, ep)],
      });
    }
  }
  compilers?.retain(isolated);
  return chunks;
}

/**
 * Identity of a flow in OpenFlow terms: the same table, priority and match replace each other.
 * Flows are compared in ovs-ofctl text, so a flow read back from the switch (numbers as bigints,
 * default bit ranges left out) equals the one that was built.
 */
export function flowKey(f: Pick<Flow, 'table' | 'priority' | 'match'>): string {
  return `${f.table}/${f.priority}/${stable(f.match)}`;
}

interface FlowText {
  json: string;
  key: string;
  instructions: string;
}

const bigints = (_key: string, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v);

/**
 * Flows' canonical texts, remembered between diffs. Every update diffs a freshly built pipeline
 * against the previous one, nearly all of it unchanged, and formatting every flow's match and
 * instructions dominated an attach at a hundred endpoints; a flow's JSON (native, several times
 * cheaper) finds its texts again. Only texts used by the last two diffs are kept.
 */
export class FlowTexts {
  private readonly byObject = new WeakMap<object, FlowText>();
  private current = new Map<string, FlowText>();
  private previous = new Map<string, FlowText>();

  of(f: Flow): FlowText {
    let t = this.byObject.get(f);
    if (!t) {
      const json = JSON.stringify([f.table, f.priority, f.match, f.instructions], bigints);
      t = this.current.get(json) ?? this.previous.get(json) ?? { json, key: flowKey(f), instructions: formatInstructions(f.instructions) };
      this.byObject.set(f, t);
    }
    this.current.set(t.json, t);
    return t;
  }

  /** Ends a diff: texts that neither it nor the one before used are forgotten. */
  rotate(): void {
    this.previous = this.current;
    this.current = new Map();
  }
}

export interface FlowDiff {
  /** Flows to add, or to replace (same key, other cookie or instructions). */
  upsert: Flow[];
  /** Flows to delete strictly (by table, priority and match). */
  remove: Flow[];
}

/** `texts` remembers formatted flows from one diff to the next (see {@link FlowTexts}). */
export function diffFlows(current: readonly Flow[], desired: readonly Flow[], texts = new FlowTexts()): FlowDiff {
  const have = new Map(current.map((f) => [texts.of(f).key, f]));
  const upsert: Flow[] = [];
  for (const f of desired) {
    const text = texts.of(f);
    const old = have.get(text.key);
    have.delete(text.key);
    if (!old || old.cookie !== f.cookie || texts.of(old).instructions !== text.instructions) {
      upsert.push(f);
    }
  }
  texts.rotate();
  return { upsert, remove: [...have.values()] };
}

/** A match as text that ignores field order (a switch returns fields in its own order). */
function stable(match: Match): string {
  const name = (f: Match[number]) => `${f.field}/${'index' in f ? f.index : ''}`;
  return formatMatch([...match].sort((a, b) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0)));
}
