/**
 * loomctl trace across hosts: resolve both ends, ask the source host's agent to trace from its
 * endpoint, follow the tunnel to the host holding the remote VTEP and ask its agent to trace the
 * packet as it arrives, then combine both into one verdict in Loom's words. With `live`, a marked
 * packet is injected at the source and observed on both hosts (the agents do it), and the
 * result says whether the datapath agrees with the simulated trace.
 */
import { canonicalIp } from '../common/ip.js';
import type { AgentTraceReply, AgentTraceRequest, TraceEndpointRef, TraceHostResult, TraceLiveHost, TraceLiveResult, TraceRequest, TraceResponse, TraceVerdict } from '../api/types.js';
import { ApiError, invalid, notFound } from './errors.js';
import { TraceAskError } from './trace-broker.js';

/** An endpoint as trace needs it. */
export interface TraceEndpoint {
  network: string;
  name: string;
  containerId: string;
  host: string;
  ipv4: string;
  ipv6: string;
  vni: number;
  tunnel: 'vxlan' | 'gre';
}

/** What the trace needs from the controller: its state, and a way to ask agents. */
export interface TraceDeps {
  /** Every endpoint (all networks). */
  endpoints(): Iterable<TraceEndpoint>;
  host(name: string): { vtep: string; up: boolean } | undefined;
  hostByVtep(vtep: string): string | undefined;
  ask(host: string, req: Omit<AgentTraceRequest, 'id'>, timeoutMs: number): Promise<AgentTraceReply>;
}

export const DEFAULT_TRACE_TIMEOUT_MS = 5000;
export const MAX_TRACE_TIMEOUT_MS = 30_000;
/** DSCP values a live trace marks its packet with, one per live trace in flight (cluster-wide). */
export const LIVE_DSCP = [52, 53, 54, 55, 56, 57, 58, 59] as const;
const liveInUse = new Set<number>();

type Proto = 'icmp' | 'tcp' | 'udp';

/** Finds an endpoint by NETWORK/NAME, NETWORK/CONTAINER_ID, container id, or address. */
export function resolveEndpoint(spec: string, all: readonly TraceEndpoint[], preferNetwork?: string): { ep?: TraceEndpoint; address?: string } {
  const what = spec.trim();
  if (!what) throw invalid('trace: both ends are needed (NETWORK/NAME, a container id, or an address)');
  const slash = what.indexOf('/');
  if (slash > 0 && canonicalIp(what) === null) {
    const network = what.slice(0, slash);
    const name = what.slice(slash + 1);
    const ep = all.find((e) => e.network === network && e.name === name) ?? all.find((e) => e.network === network && e.containerId === name);
    if (!ep) throw notFound(`trace: no endpoint ${name} in network ${network}`);
    return { ep };
  }
  const address = canonicalIp(what);
  if (address !== null) {
    const owners = all.filter((e) => e.ipv4 === address || e.ipv6 === address);
    const pick = owners.length > 1 ? owners.filter((e) => e.network === preferNetwork) : owners;
    if (owners.length > 1 && pick.length !== 1) throw invalid(`trace: address ${address} belongs to endpoints of networks ${owners.map((o) => o.network).join(', ')}; name one as NETWORK/NAME`);
    return pick[0] ? { ep: pick[0], address } : { address };
  }
  const byId = all.filter((e) => e.containerId === what);
  if (byId.length > 1) throw invalid(`trace: container ${what} has endpoints in networks ${byId.map((e) => e.network).join(', ')}; name one as NETWORK/${what}`);
  if (!byId[0]) throw notFound(`trace: no endpoint named ${what}: give NETWORK/NAME, a container id, or an address`);
  return { ep: byId[0] };
}

function protoOf(p: string | undefined): Proto {
  const v = (p || 'icmp').toLowerCase();
  if (v !== 'icmp' && v !== 'tcp' && v !== 'udp') throw invalid(`trace: protocol must be icmp, tcp or udp, got "${p}"`);
  return v;
}

const ref = (ep: TraceEndpoint | undefined, address: string): TraceEndpointRef => ({
  network: ep?.network ?? '',
  name: ep?.name ?? '',
  containerId: ep?.containerId ?? '',
  host: ep?.host ?? '',
  address,
});

/** A host's part with empty defaults filled (replies decode with defaults; fakes may not). */
function hostPart(host: string, role: string, r: TraceHostResult | null | undefined): TraceHostResult {
  return { host, role, flow: r?.flow ?? '', steps: r?.steps ?? [], verdict: r?.verdict ?? null, datapathActions: r?.datapathActions ?? '' };
}

export function emptyVerdict(v: Partial<TraceVerdict>): TraceVerdict {
  return { kind: '', reason: '', table: '', explanation: '', tunnel: '', vni: 0, remoteVtep: '', ofport: 0, container: '', network: '', policy: '', ...v };
}

/** Runs a trace. Throws ApiError when nothing can be traced (bad input, source host unreachable). */
export async function traceAcrossHosts(req: TraceRequest, deps: TraceDeps): Promise<TraceResponse> {
  const all = [...deps.endpoints()];
  const protocol = protoOf(req.protocol);
  const port = req.port ?? 0;
  if (port > 65535) throw invalid(`trace: port ${port} is not a port number`);
  if (port > 0 && protocol === 'icmp') throw invalid('trace: a port needs --proto tcp or udp');
  const timeoutMs = Math.min(Math.max(req.timeoutMs || DEFAULT_TRACE_TIMEOUT_MS, 100), MAX_TRACE_TIMEOUT_MS);
  const from = resolveEndpoint(req.from, all);
  if (!from.ep) throw invalid(`trace: the source ${req.from} is no endpoint: a packet is traced from the endpoint that sends it`);
  const src = from.ep;
  const to = resolveEndpoint(req.to, all, src.network);
  const claimed = req.sourceAddress ? canonicalIp(req.sourceAddress) : null;
  if (req.sourceAddress && claimed === null) throw invalid(`trace: source address ${req.sourceAddress} is not an IP address`);
  const v6 = (to.address ?? claimed ?? from.address ?? '').includes(':');
  const dstAddress = to.address ?? (v6 ? to.ep?.ipv6 : to.ep?.ipv4) ?? '';
  if (!dstAddress) throw invalid(`trace: endpoint ${to.ep?.network}/${to.ep?.name} has no IPv${v6 ? 6 : 4} address`);
  const srcAddress = claimed ?? (v6 ? src.ipv6 : src.ipv4);
  if (!srcAddress) throw invalid(`trace: endpoint ${src.network}/${src.name} has no IPv${v6 ? 6 : 4} address`);
  if (srcAddress.includes(':') !== dstAddress.includes(':')) throw invalid(`trace: ${srcAddress} and ${dstAddress} are of different address families`);

  const base: TraceResponse = {
    verdict: '',
    explanation: '',
    host: '',
    table: '',
    hosts: [],
    tunnel: null,
    source: ref(src, srcAddress),
    destination: ref(to.ep, dstAddress),
    live: null,
  };
  const packet = { network: src.network, source: srcAddress, destination: dstAddress, protocol, port };
  // The source agent sends from its endpoint's own address unless another one is claimed.
  const srcReq: Omit<AgentTraceRequest, 'id'> = { ...packet, role: 'source', containerId: src.containerId, source: claimed ?? '' };

  const srcHost = deps.host(src.host);
  if (!srcHost) throw new ApiError('FAILED_PRECONDITION', `trace: host ${src.host} of endpoint ${src.network}/${src.name} is not registered`);
  const srcReply = await askOrThrow(deps, src.host, srcReq, timeoutMs, srcHost.up);
  if (srcReply.error) return notOnHost(base, src, srcReply);
  const srcPart = hostPart(src.host, 'source', srcReply.result);
  base.hosts.push(srcPart);

  let dstHostName: string | undefined;
  let dstReq: Omit<AgentTraceRequest, 'id'> | undefined;
  const sv = srcPart.verdict;
  if (sv?.kind === 'tunnel') {
    base.tunnel = sv;
    dstHostName = deps.hostByVtep(sv.remoteVtep);
    if (dstHostName) {
      dstReq = { ...packet, role: 'destination', tunnel: sv.tunnel, vni: sv.vni, remoteVtep: srcHost.vtep };
      try {
        const r = await deps.ask(dstHostName, dstReq, timeoutMs);
        if (r.error) base.hosts.push({ ...hostPart(dstHostName, 'destination', null), verdict: emptyVerdict({ kind: 'other', explanation: r.error }) });
        else base.hosts.push(hostPart(dstHostName, 'destination', r.result));
      } catch (err) {
        if (!(err instanceof TraceAskError)) throw err;
        return { ...base, ...combine(base, src, to.ep, deps, err) };
      }
    }
  }
  const out: TraceResponse = { ...base, ...combine(base, src, to.ep, deps) };
  if (req.live) out.live = await liveTrace(deps, { src: src.host, srcReq, dst: dstHostName, dstReq }, base.hosts, timeoutMs);
  return out;
}

async function askOrThrow(deps: TraceDeps, host: string, req: Omit<AgentTraceRequest, 'id'>, timeoutMs: number, up: boolean): Promise<AgentTraceReply> {
  try {
    return await deps.ask(host, req, timeoutMs);
  } catch (err) {
    if (!(err instanceof TraceAskError)) throw err;
    const why = up ? err.message : `host ${host} is down (no heartbeat) and ${err.message}`;
    if (err.failure === 'too_old') throw new ApiError('FAILED_PRECONDITION', `trace: ${why}; upgrade its agent`);
    if (err.failure === 'busy') throw new ApiError('RESOURCE_EXHAUSTED', `trace: ${why}`);
    throw new ApiError('UNAVAILABLE', `trace: cannot trace from host ${host}: ${why}`);
  }
}

function notOnHost(base: TraceResponse, src: TraceEndpoint, reply: AgentTraceReply): TraceResponse {
  if (reply.errorKind === 'not_found') {
    return {
      ...base,
      verdict: 'endpoint_not_on_host',
      host: src.host,
      explanation: `endpoint ${src.network}/${src.name} (container ${src.containerId}) is not on host ${src.host}, where the controller places it: ${reply.error}`,
    };
  }
  throw new ApiError(reply.errorKind === 'invalid' ? 'INVALID_ARGUMENT' : 'UNAVAILABLE', `trace: host ${src.host}: ${reply.error}`);
}

type Verdict = Pick<TraceResponse, 'verdict' | 'explanation' | 'host' | 'table'>;

/** The verdict of a trace in Loom's words, from the hosts' parts (pure; unit-tested on fakes). */
export function combine(t: Pick<TraceResponse, 'hosts' | 'tunnel' | 'destination'>, src: TraceEndpoint, dst: TraceEndpoint | undefined, deps: Pick<TraceDeps, 'host' | 'hostByVtep'>, destinationFailure?: TraceAskError): Verdict {
  const first = t.hosts[0];
  const sv = first?.verdict;
  const dstName = dst ? `endpoint ${dst.network}/${dst.name}` : `address ${t.destination?.address ?? ''}`;
  const srcHost = src.host;
  if (!first || !sv) return { verdict: 'other', explanation: 'the source host returned no verdict', host: srcHost, table: '' };
  const otherNetwork = dst !== undefined && dst.network !== src.network;
  if (sv.kind === 'dropped') {
    if (sv.reason === 'spoof_guard') return { verdict: 'dropped', host: srcHost, table: sv.table, explanation: `dropped on host ${srcHost} by the spoof guard: ${src.network}/${src.name} may send only from its own MAC and addresses` };
    if (sv.reason === 'no_route' && otherNetwork) return isolatedNetworks(src, dst, srcHost, sv.table);
    if (sv.reason === 'no_route' && dst && dst.host !== srcHost) {
      const h = deps.host(dst.host);
      if (h && !h.up) {
        return {
          verdict: 'host_down',
          host: srcHost,
          table: sv.table,
          explanation: `no route on host ${srcHost}: ${dstName} is on host ${dst.host}, which is down (no heartbeat), so its routes were withdrawn from every other host`,
        };
      }
      return { verdict: 'dropped', host: srcHost, table: sv.table, explanation: `no route on host ${srcHost} to ${dstName} on host ${dst.host}: this host has not applied its route yet (see loomctl status)` };
    }
    if (isPolicy(sv.reason)) return policyVerdict(sv, srcHost, dstName, src.network);
    return { verdict: 'dropped', host: srcHost, table: sv.table, explanation: `on host ${srcHost}: ${sv.explanation}` };
  }
  if (sv.kind === 'to_host' && otherNetwork) return isolatedNetworks(src, dst, srcHost, 'l3_forwarding');
  if (sv.kind === 'to_host' && dst && dst.host !== srcHost) {
    // No route to the destination's block: the endpoint's fallback (egress) takes it to the host, which never forwards it back into a Loom network.
    const h = deps.host(dst.host);
    const fallback = `so the packet falls to the host path of ${srcHost} (egress), which never forwards into a Loom network`;
    if (h && !h.up) {
      return { verdict: 'host_down', host: srcHost, table: 'l3_forwarding', explanation: `no route on host ${srcHost}: ${dstName} is on host ${dst.host}, which is down (no heartbeat), so its routes were withdrawn from every other host; ${fallback}` };
    }
    return { verdict: 'dropped', host: srcHost, table: 'l3_forwarding', explanation: `no route on host ${srcHost} to ${dstName} on host ${dst.host} (not applied yet? see loomctl status); ${fallback}` };
  }
  if (sv.kind === 'tunnel') {
    const to = deps.hostByVtep(sv.remoteVtep);
    const hop = `from host ${srcHost} into the ${sv.tunnel} tunnel (VNI ${sv.vni}) to VTEP ${sv.remoteVtep}`;
    if (!to) return { verdict: 'other', host: srcHost, table: 'output', explanation: `${hop}, which no registered host has` };
    if (destinationFailure) {
      const kind = destinationFailure.failure === 'too_old' ? 'agent_too_old' : destinationFailure.failure === 'timeout' ? 'timeout' : 'host_unreachable';
      return { verdict: kind, host: to, table: '', explanation: `${hop} (host ${to}); the rest is not traced: ${destinationFailure.message}` };
    }
    const dv = t.hosts[1]?.verdict;
    if (!dv) return { verdict: 'other', host: to, table: '', explanation: `${hop} (host ${to}), which returned no verdict` };
    if (dv.kind === 'delivered') {
      const allowed = dv.policy ? `, allowed by policy rule ${dv.policy}` : '';
      return { verdict: 'delivered', host: to, table: 'output', explanation: `forwarded ${hop} (host ${to}), delivered there to ${dstName}${allowed}` };
    }
    if (dv.kind === 'dropped') {
      if (isPolicy(dv.reason)) {
        const p = policyVerdict(dv, to, dstName, src.network);
        return { ...p, explanation: `forwarded ${hop} (host ${to}); ${p.explanation}` };
      }
      if (dv.reason === 'no_route' && dst && dst.host !== to) {
        return { verdict: 'dropped', host: to, table: dv.table, explanation: `forwarded ${hop}, but ${dstName} is not on host ${to} (it is on ${dst.host}): the source host's route is stale` };
      }
      return { verdict: 'dropped', host: to, table: dv.table, explanation: `forwarded ${hop} (host ${to}); there: ${dv.explanation}` };
    }
    return { verdict: dv.kind || 'other', host: to, table: '', explanation: `forwarded ${hop} (host ${to}); there: ${dv.explanation}` };
  }
  if (sv.kind === 'delivered') {
    const allowed = sv.policy ? `, allowed by policy rule ${sv.policy}` : '';
    return { verdict: 'delivered', host: srcHost, table: 'output', explanation: `delivered on host ${srcHost} to ${dstName}${allowed}` };
  }
  return { verdict: sv.kind || 'other', host: srcHost, table: '', explanation: `on host ${srcHost}: ${sv.explanation}` };
}

const isPolicy = (reason: string): boolean => reason === 'policy' || reason === 'network_policy';

function isolatedNetworks(src: TraceEndpoint, dst: TraceEndpoint | undefined, host: string, table: string): Verdict {
  return {
    verdict: 'isolated_networks',
    host,
    table,
    explanation: `isolation between networks: ${src.network}/${src.name} and ${dst?.network}/${dst?.name} are in different networks; no flow of network ${src.network} (VNI ${src.vni}) leads to another network, and host ${host} never forwards between Loom networks`,
  };
}

function policyVerdict(v: TraceVerdict, host: string, dstName: string, network: string): Verdict {
  return { verdict: 'dropped', host, table: v.table || 'policy', explanation: `dropped on host ${host} by the default deny of isolated network ${network}: no policy rule allows this connection to ${dstName}` };
}

// ---- live

interface LivePlan {
  src: string;
  srcReq: Omit<AgentTraceRequest, 'id'>;
  dst?: string;
  dstReq?: Omit<AgentTraceRequest, 'id'>;
}

/** What the simulated verdict of a host predicts a live packet does there. */
export function expectedOutcome(v: TraceVerdict | null | undefined): string {
  if (!v) return '';
  if (v.kind === 'tunnel' || v.kind === 'delivered' || v.kind === 'to_host') return v.kind;
  return ''; // dropped, answered by the bridge or the agent: not seen leaving
}

/** Compares live observations with the simulated parts, host by host. */
export function compareLive(sim: readonly TraceHostResult[], seen: readonly TraceLiveHost[]): { agrees: boolean; summary: string } {
  const lines: string[] = [];
  let agrees = true;
  for (const part of sim) {
    const want = expectedOutcome(part.verdict);
    const got = seen.find((s) => s.host === part.host);
    const outcome = got?.seen ? got.outcome : '';
    const same = got !== undefined && outcome === want;
    agrees &&= same;
    const saw = got === undefined ? 'not observed (the agent did not answer)' : outcome ? `seen leaving as ${outcome}${got.ofport ? ` (port ${got.ofport})` : ''}` : 'not seen leaving (dropped or consumed there)';
    lines.push(`host ${part.host}: ${saw}; simulated: ${want || 'not leaving'}${same ? '' : ' -- DISAGREES'}`);
  }
  return { agrees, summary: lines.join('; ') };
}

async function liveTrace(deps: TraceDeps, plan: LivePlan, sim: readonly TraceHostResult[], timeoutMs: number): Promise<TraceLiveResult> {
  const dscp = LIVE_DSCP.find((d) => !liveInUse.has(d));
  if (dscp === undefined) throw new ApiError('RESOURCE_EXHAUSTED', `trace: ${LIVE_DSCP.length} live traces are running; try again`);
  liveInUse.add(dscp);
  const windowMs = Math.min(timeoutMs, 3000);
  const step = (phase: string) => ({ phase, dscp, windowMs });
  const seen: TraceLiveHost[] = [];
  const errors: string[] = [];
  const note = (host: string) => (err: unknown) => {
    errors.push(`host ${host}: ${(err as Error).message}`);
    return undefined;
  };
  try {
    const armed = plan.dst && plan.dstReq ? await deps.ask(plan.dst, { ...plan.dstReq, live: step('arm') }, timeoutMs).catch(note(plan.dst)) : undefined;
    if (armed?.error) errors.push(`host ${plan.dst}: ${armed.error}`);
    const injected = await deps.ask(plan.src, { ...plan.srcReq, live: step('inject') }, timeoutMs + windowMs).catch(note(plan.src));
    if (injected?.error) errors.push(`host ${plan.src}: ${injected.error}`);
    if (injected?.live) seen.push({ ...injected.live, host: plan.src });
    if (plan.dst && plan.dstReq && armed && !armed.error) {
      const collected = await deps.ask(plan.dst, { ...plan.dstReq, live: step('collect') }, timeoutMs + windowMs).catch(note(plan.dst));
      if (collected?.error) errors.push(`host ${plan.dst}: ${collected.error}`);
      if (collected?.live) seen.push({ ...collected.live, host: plan.dst });
    }
    const cmp = compareLive(sim, seen);
    const summary = errors.length ? `${cmp.summary}; ${errors.join('; ')}` : cmp.summary;
    return { injected: injected?.live !== undefined && injected.live !== null, hosts: seen, agrees: cmp.agrees && errors.length === 0, summary, dscp };
  } finally {
    liveInUse.delete(dscp);
  }
}
