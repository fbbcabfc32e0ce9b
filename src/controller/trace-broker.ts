/**
 * Asks agents to trace over their existing Watch stream: a WatchResponse carrying only
 * `trace_request` goes out, the agent answers with WatchRequest.trace_reply of the same id.
 * Bounded: a few requests in flight per agent, a timeout on each, a cap on what a reply may hold;
 * an agent that is not connected, or too old to know the message, is never asked.
 */
import type { AgentTraceReply, AgentTraceRequest } from '../api/types.js';

/** Why an agent could not be asked or did not answer. */
export type TraceFailure = 'not_connected' | 'too_old' | 'timeout' | 'busy' | 'stream_closed' | 'bad_reply';

export class TraceAskError extends Error {
  constructor(
    readonly failure: TraceFailure,
    readonly host: string,
    message: string,
  ) {
    super(message);
  }
}

/** What the broker needs from the Watch hub. */
export interface TraceTransport {
  /** Whether the host has an open Watch stream. */
  connected(host: string): boolean;
  /** Whether the host's agent registered the "trace" capability. */
  capable(host: string): boolean;
  /** Writes the request on the host's stream; false when there is none. */
  send(host: string, req: AgentTraceRequest): boolean;
}

/** Requests in flight per agent. */
export const MAX_TRACES_PER_AGENT = 4;
/** Steps one host's answer may hold (a Loom pipeline visits ~6 tables; conntrack recirculation doubles that). */
export const MAX_REPLY_STEPS = 64;
/** Characters of text one reply may hold in all (flows, matches, actions, explanations). */
export const MAX_REPLY_CHARS = 64 * 1024;

interface Pending {
  host: string;
  resolve: (r: AgentTraceReply) => void;
  reject: (e: TraceAskError) => void;
  timer: NodeJS.Timeout;
}

export class TraceBroker {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly perHost = new Map<string, number>();

  constructor(private readonly transport: TraceTransport) {}

  /** Sends `req` to `host`'s agent and resolves with its reply, or rejects with a TraceAskError. */
  ask(host: string, req: Omit<AgentTraceRequest, 'id'>, timeoutMs: number): Promise<AgentTraceReply> {
    if (!this.transport.connected(host)) return Promise.reject(new TraceAskError('not_connected', host, `the agent of host ${host} is not connected to the controller`));
    if (!this.transport.capable(host)) return Promise.reject(new TraceAskError('too_old', host, `the agent of host ${host} is too old to trace (it did not register the "trace" capability)`));
    const inFlight = this.perHost.get(host) ?? 0;
    if (inFlight >= MAX_TRACES_PER_AGENT) return Promise.reject(new TraceAskError('busy', host, `host ${host} already has ${inFlight} traces in flight; try again`));
    const id = this.nextId++;
    return new Promise<AgentTraceReply>((resolve, reject) => {
      const timer = setTimeout(() => this.finish(id)?.reject(new TraceAskError('timeout', host, `the agent of host ${host} did not answer within ${timeoutMs} ms`)), timeoutMs);
      this.pending.set(id, { host, resolve, reject, timer });
      this.perHost.set(host, inFlight + 1);
      if (!this.transport.send(host, { ...req, id })) this.finish(id)?.reject(new TraceAskError('not_connected', host, `the agent of host ${host} is not connected to the controller`));
    });
  }

  /** A reply from `host`'s stream. Unknown ids (late, or another host's) are ignored. */
  reply(host: string, reply: AgentTraceReply): void {
    const p = this.pending.get(reply.id);
    if (!p || p.host !== host) return;
    this.finish(reply.id);
    const problem = replyProblem(reply);
    if (problem) p.reject(new TraceAskError('bad_reply', host, `host ${host} sent an unusable trace reply: ${problem}`));
    else p.resolve(reply);
  }

  /** The host's stream closed: its outstanding requests fail now rather than at their timeout. */
  streamClosed(host: string): void {
    for (const [id, p] of [...this.pending]) {
      if (p.host === host) this.finish(id)?.reject(new TraceAskError('stream_closed', host, `the Watch stream of host ${host} closed before it answered`));
    }
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private finish(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    const n = (this.perHost.get(p.host) ?? 1) - 1;
    if (n > 0) this.perHost.set(p.host, n);
    else this.perHost.delete(p.host);
    return p;
  }
}

/** Why a reply cannot be used, or undefined. */
export function replyProblem(reply: AgentTraceReply): string | undefined {
  const steps = reply.result?.steps ?? [];
  if (steps.length > MAX_REPLY_STEPS) return `${steps.length} steps (at most ${MAX_REPLY_STEPS})`;
  let chars = (reply.error ?? '').length + (reply.result?.flow ?? '').length + (reply.result?.datapathActions ?? '').length + (reply.result?.verdict?.explanation ?? '').length;
  for (const s of steps) chars += s.match.length + s.actions.reduce((n, a) => n + a.length, 0);
  if (chars > MAX_REPLY_CHARS) return `${chars} characters of text (at most ${MAX_REPLY_CHARS})`;
  return undefined;
}
