/**
 * With several controllers, an agent keeps its Watch stream on whichever controller it reached
 * (followers serve most of them), while `loomctl trace` goes to the leader. A controller asks the
 * agents streaming to it directly (TraceBroker) and posts a request for any other host in the
 * store's mailbox; the controller holding that host's stream asks its agent and posts the reply.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AgentTraceReply, AgentTraceRequest } from '../api/types.js';
import type { Mailbox } from './store/types.js';
import { replyProblem, TraceAskError, type TraceFailure } from './trace-broker.js';

/** Asks one host's agent for a trace (TraceBroker does it over the host's stream). */
export interface AgentTracer {
  ask(host: string, req: Omit<AgentTraceRequest, 'id'>, timeoutMs: number): Promise<AgentTraceReply>;
}

export const REQUEST_BOX = 'trace-request';
export const REPLY_BOX = 'trace-reply';
/** Mailbox requests in flight from one controller (each holds a pending entry and a timer). */
export const MAX_RELAYED = 64;
/** The answering controller's own deadline is this much shorter, so its answer arrives in time. */
const ANSWER_MARGIN_MS = 250;

interface RelayedRequest {
  host: string;
  req: Omit<AgentTraceRequest, 'id'>;
  timeoutMs: number;
}
interface RelayedReply {
  reply?: AgentTraceReply;
  failure?: TraceFailure;
  message?: string;
}

const FAILURES = new Set<TraceFailure>(['not_connected', 'too_old', 'timeout', 'busy', 'stream_closed', 'bad_reply']);

function asRequest(v: unknown): RelayedRequest | undefined {
  const r = v as Partial<RelayedRequest> | null;
  if (!r || typeof r.host !== 'string' || typeof r.timeoutMs !== 'number' || typeof r.req !== 'object' || r.req === null) return undefined;
  return r as RelayedRequest;
}

export class TraceRelay implements AgentTracer {
  private readonly pending = new Map<string, { host: string; resolve: (r: AgentTraceReply) => void; reject: (e: TraceAskError) => void; timer: NodeJS.Timeout }>();
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly mailbox: Mailbox,
    /** This controller's own agents: whether `host` streams here, and the broker that asks it. */
    private readonly local: AgentTracer & { connected(host: string): boolean },
    private readonly log: Logger,
  ) {
    this.unsubscribe.push(
      mailbox.subscribe(REQUEST_BOX, (id, v) => this.answer(id, v)),
      mailbox.subscribe(REPLY_BOX, (id, v) => this.received(id, v)),
    );
  }

  ask(host: string, req: Omit<AgentTraceRequest, 'id'>, timeoutMs: number): Promise<AgentTraceReply> {
    if (this.local.connected(host)) return this.local.ask(host, req, timeoutMs);
    if (this.pending.size >= MAX_RELAYED) return Promise.reject(new TraceAskError('busy', host, `${this.pending.size} traces are already waiting on other controllers; try again`));
    const id = randomUUID();
    return new Promise<AgentTraceReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.finish(id)?.reject(new TraceAskError('not_connected', host, `no controller answered for host ${host} within ${timeoutMs} ms: its agent streams to none of them`));
      }, timeoutMs);
      this.pending.set(id, { host, resolve, reject, timer });
      const msg: RelayedRequest = { host, req, timeoutMs };
      this.mailbox.post(REQUEST_BOX, id, msg).catch((err: unknown) => {
        this.finish(id)?.reject(new TraceAskError('not_connected', host, `asking the other controllers for host ${host} failed: ${err instanceof Error ? err.message : String(err)}`));
      });
    });
  }

  /** Another controller's request: answered only where that host's agent streams. */
  private answer(id: string, v: unknown): void {
    const r = asRequest(v);
    if (!r || !this.local.connected(r.host)) return;
    const timeoutMs = Math.max(100, Math.min(r.timeoutMs, 30_000) - ANSWER_MARGIN_MS);
    this.local.ask(r.host, r.req, timeoutMs).then(
      (reply): RelayedReply => ({ reply }),
      (err: unknown): RelayedReply => (err instanceof TraceAskError ? { failure: err.failure, message: err.message } : { failure: 'bad_reply', message: String(err) }),
    ).then((answer) => this.mailbox.post(REPLY_BOX, id, answer)).catch((err: unknown) => this.log.warn({ err, host: r.host }, 'posting a relayed trace reply failed'));
  }

  private received(id: string, v: unknown): void {
    const p = this.finish(id);
    if (!p) return;
    void this.mailbox.remove(REPLY_BOX, id).catch(() => undefined);
    const a = (v ?? {}) as RelayedReply;
    if (a.reply) {
      const problem = replyProblem(a.reply);
      if (problem) p.reject(new TraceAskError('bad_reply', p.host, `host ${p.host} sent an unusable trace reply: ${problem}`));
      else p.resolve(a.reply);
      return;
    }
    const failure = a.failure && FAILURES.has(a.failure) ? a.failure : 'bad_reply';
    p.reject(new TraceAskError(failure, p.host, typeof a.message === 'string' ? a.message : `host ${p.host}: the controller it streams to could not trace`));
  }

  private finish(id: string) {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    void this.mailbox.remove(REQUEST_BOX, id).catch(() => undefined);
    return p;
  }

  stop(): void {
    for (const off of this.unsubscribe) off();
    for (const id of [...this.pending.keys()]) this.finish(id)?.reject(new TraceAskError('not_connected', '', 'the controller is shutting down'));
  }
}
