/**
 * Policy: validation of allow rules and endpoint labels, and `explain` (which rules allow a
 * pair). Rules are per network, keyed policies/<network>/<name>; they take effect only on an
 * ISOLATED network. Refusals are INVALID_ARGUMENT naming the field and the value.
 */
import { cidrToString, tryParseCidr } from '../common/ip.js';
import { endpointNameProblem } from '../common/endpoint-name.js';
import { cidrsContain, peerSelects } from '../api/policy.js';
import type { CreatePolicyRequest, ExplainPolicyRequest, ExplainPolicyResponse, Isolation, PolicyPeer, Protocol } from '../api/types.js';
import { invalid, notFound } from './errors.js';
import type { EndpointRecord, IsolationKind, PeerRecord, PolicyRecord, ProtocolKind } from './model.js';
import type { ClusterState, NetworkState } from './state.js';

/** Bounds on what one request may make the controller and every agent of a network hold. */
export const POLICY_LIMITS = { perNetwork: 10_000, peerItems: 1_000, portRanges: 64, labels: 64 } as const;

const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** Labels as Kubernetes spells them: `[prefix/]name` keys, values up to 63 characters. */
export function checkLabels(what: string, labels: Record<string, string> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = Object.entries(labels ?? {});
  if (entries.length > POLICY_LIMITS.labels) throw invalid(`${what}: ${entries.length} labels; at most ${POLICY_LIMITS.labels}`);
  for (const [k, v] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!LABEL_KEY.test(k)) throw invalid(`${what}: label key "${k.slice(0, 300)}" is not like "app" or "example.com/tier" (a-z, 0-9, '-', '_', '.', at most 63 characters after an optional DNS prefix and '/')`);
    if (typeof v !== 'string' || !LABEL_VALUE.test(v)) throw invalid(`${what}: label ${k}="${String(v).slice(0, 100)}": values are at most 63 characters of A-Z, a-z, 0-9, '-', '_', '.', starting and ending alphanumeric`);
    out[k] = v;
  }
  return out;
}

export function isolationOf(value: Isolation | undefined, what: string): IsolationKind | undefined {
  switch (value ?? 'ISOLATION_UNSPECIFIED') {
    case 'ISOLATION_UNSPECIFIED':
      return undefined;
    case 'ISOLATION_OPEN':
      return 'open';
    case 'ISOLATION_ISOLATED':
      return 'isolated';
    default:
      throw invalid(`${what}: isolation "${String(value)}" is not OPEN or ISOLATED`);
  }
}

const PROTOCOLS: Record<Protocol, ProtocolKind> = { PROTOCOL_UNSPECIFIED: 'any', PROTOCOL_TCP: 'tcp', PROTOCOL_UDP: 'udp', PROTOCOL_ICMP: 'icmp' };

function checkPeer(what: string, peer: Partial<PolicyPeer> | null | undefined, cidrsAllowed: boolean): PeerRecord {
  const endpoints = [...new Set(peer?.endpoints ?? [])];
  const cidrs = peer?.cidrs ?? [];
  if (endpoints.length + cidrs.length > POLICY_LIMITS.peerItems) throw invalid(`${what}: more than ${POLICY_LIMITS.peerItems} endpoints and CIDRs`);
  for (const e of endpoints) {
    const problem = endpointNameProblem(e);
    if (problem) throw invalid(`${what}: ${problem}`);
  }
  const labels = checkLabels(what, peer?.labels);
  if (!cidrsAllowed && cidrs.length > 0) throw invalid(`${what}: CIDRs name sources only; name the destination by endpoint names or labels`);
  const out: string[] = [];
  for (const c of cidrs) {
    const loose = tryParseCidr(c, false) ?? tryParseCidr(`${c}/${c.includes(':') ? 128 : 32}`, false);
    if (!loose) throw invalid(`${what}: "${c.slice(0, 100)}" is not a CIDR like 10.10.10.10/32 or fd00::/64`);
    const text = cidrToString(loose);
    if (c.includes('/') && tryParseCidr(c, true) === null) throw invalid(`${what}: CIDR "${c}" has host bits set; did you mean ${text}?`);
    if (!out.includes(text)) out.push(text);
  }
  const outside = peer?.outside === true;
  if (!cidrsAllowed && outside) throw invalid(`${what}: outside names a source only (traffic entering through a host's gateway port)`);
  if (endpoints.length === 0 && Object.keys(labels).length === 0 && out.length === 0 && !outside) {
    throw invalid(`${what} names nothing: give endpoint names, labels${cidrsAllowed ? ', CIDRs (0.0.0.0/0 and ::/0 for any source) or outside' : ''}`);
  }
  return { endpoints: endpoints.sort(), labels, cidrs: out, ...(outside ? { outside: true } : {}) };
}

/** A create request as the record to store. */
export function validatePolicy(spec: CreatePolicyRequest['policy'] | null | undefined, state: ClusterState): PolicyRecord {
  if (!spec) throw invalid('policy is required');
  const network = spec.network ?? '';
  const net = state.networks.get(network);
  if (!net) throw notFound(`network ${network || '""'} does not exist`);
  const name = spec.name ?? '';
  const problem = endpointNameProblem(name);
  if (problem) throw invalid(`policy name: ${problem.replace(/^endpoint name/, 'name')}`);
  const what = `policy ${name}`;
  if (!net.policies.has(name) && net.policies.size >= POLICY_LIMITS.perNetwork) {
    throw invalid(`network ${network} already has ${net.policies.size} policies; at most ${POLICY_LIMITS.perNetwork}`);
  }
  const protocol = PROTOCOLS[spec.protocol ?? 'PROTOCOL_UNSPECIFIED'];
  if (protocol === undefined) throw invalid(`${what}: protocol "${String(spec.protocol)}" is not TCP, UDP, ICMP or unspecified (any)`);
  const ports = spec.ports ?? [];
  if (ports.length > POLICY_LIMITS.portRanges) throw invalid(`${what}: more than ${POLICY_LIMITS.portRanges} port ranges`);
  if (ports.length > 0 && protocol !== 'tcp' && protocol !== 'udp') throw invalid(`${what}: ports need protocol TCP or UDP (${protocol === 'any' ? 'no protocol given' : 'ICMP has no ports'})`);
  const checked = ports.map((p) => {
    const first = p.first ?? 0;
    const last = p.last || first;
    if (!Number.isInteger(first) || first < 1 || first > 65535) throw invalid(`${what}: port ${first} is out of range 1..65535`);
    if (!Number.isInteger(last) || last < first || last > 65535) throw invalid(`${what}: port range ${first}-${last} must end between ${first} and 65535`);
    return { first, last };
  });
  return { network, name, from: checkPeer(`${what}: from`, spec.from, true), to: checkPeer(`${what}: to`, spec.to, false), protocol, ports: checked };
}

function findByName(net: NetworkState, name: string): EndpointRecord | undefined {
  const id = net.names.get(name);
  return id === undefined ? undefined : net.endpoints.get(id)?.rec;
}

/** `explain`'s source for traffic entering through the host path (unless an endpoint has that name). */
export const OUTSIDE = 'outside';

/**
 * Whether `rule` lets `from` open connections to `to` with this protocol and port. Protocol
 * 'any' and port 0 ask "anything at all"; a protocol without a port asks "some port of it".
 */
export function ruleAllows(rule: PolicyRecord, from: EndpointRecord | typeof OUTSIDE, to: EndpointRecord, protocol: ProtocolKind, port: number): boolean {
  const source =
    from === OUTSIDE
      ? rule.from.outside === true
      : peerSelects(rule.from, { name: from.name, labels: from.labels }) || [from.ipv4, from.ipv6].some((a) => a && cidrsContain(rule.from, a));
  if (!source || !peerSelects(rule.to, { name: to.name, labels: to.labels })) return false;
  if (rule.protocol === 'any' || (protocol === 'any' && port === 0)) return true;
  if (rule.protocol !== protocol) return false;
  if (port === 0 || rule.ports.length === 0) return true;
  return rule.ports.some((p) => port >= p.first && port <= p.last);
}

/** Which rules allow the pair, or why nothing does. */
export function explain(state: ClusterState, req: ExplainPolicyRequest): ExplainPolicyResponse {
  if (!req.from || !req.to) throw invalid('explain needs two endpoint names (from and to)');
  let net: NetworkState | undefined;
  if (req.network) {
    net = state.networks.get(req.network);
    if (!net) throw notFound(`network ${req.network} does not exist`);
  } else {
    const hasSource = (n: NetworkState) => n.names.has(req.from) || req.from === OUTSIDE;
    const both = [...state.networks.values()].filter((n) => hasSource(n) && n.names.has(req.to));
    if (both.length === 0) throw notFound(`no network has both endpoints ${req.from} and ${req.to}`);
    if (both.length > 1) throw invalid(`endpoints ${req.from} and ${req.to} share networks ${both.map((n) => n.entry.rec.name).join(', ')}; name one`);
    net = both[0]!;
  }
  const netName = net.entry.rec.name;
  // "outside" is the host path, unless the network has an endpoint of that name.
  const from = findByName(net, req.from) ?? (req.from === OUTSIDE ? OUTSIDE : undefined);
  const to = findByName(net, req.to);
  if (!from) throw notFound(`network ${netName} has no endpoint named ${req.from}`);
  if (!to) throw notFound(`network ${netName} has no endpoint named ${req.to}`);
  const port = req.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalid(`port ${port} is out of range 1..65535`);
  let protocol = PROTOCOLS[req.protocol ?? 'PROTOCOL_UNSPECIFIED'];
  if (protocol === undefined) throw invalid(`protocol "${String(req.protocol)}" is not TCP, UDP or ICMP`);
  if (protocol === 'any' && port > 0) protocol = 'tcp';
  const what = `${req.from} -> ${req.to}${port ? ` ${protocol}/${port}` : protocol !== 'any' ? ` ${protocol}` : ''}`;
  if (net.entry.rec.isolation !== 'isolated') {
    const reason =
      from === OUTSIDE
        ? `network ${netName} is open: its published ports are reachable from outside, limited only by its inbound sources (${what})`
        : `network ${netName} is open: every endpoint reaches every other (${what})`;
    return { network: netName, isolation: 'ISOLATION_OPEN', allowed: true, policies: [], reason };
  }
  const matching = [...net.policies.values()].filter((p) => ruleAllows(p.rec, from, to, protocol, port)).map((p) => p.rec);
  matching.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const policies = matching.map((p) => p.name);
  const allowed = policies.length > 0;
  const services = matching.map((p) => `${p.name} (${serviceText(p)})`).join(', ');
  return {
    network: netName,
    isolation: 'ISOLATION_ISOLATED',
    allowed,
    policies,
    reason: allowed
      ? `${what} is allowed by ${services}; replies pass`
      : `network ${netName} is isolated and no policy allows ${what}: new connections are dropped` +
        (from === OUTSIDE ? ' (a policy from a CIDR still admits outside sources whose address it contains)' : ''),
  };
}

/** "tcp/22,8000-8080", "icmp", "any protocol". */
export function serviceText(p: Pick<PolicyRecord, 'protocol' | 'ports'>): string {
  if (p.protocol === 'any') return 'any protocol';
  if (p.ports.length === 0) return p.protocol === 'icmp' ? 'icmp' : `${p.protocol}/any port`;
  return `${p.protocol}/${p.ports.map((r) => (r.last > r.first ? `${r.first}-${r.last}` : String(r.first))).join(',')}`;
}
