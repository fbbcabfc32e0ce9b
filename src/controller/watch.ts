/**
 * Delivers host views to agents. Per agent the hub keeps O(1) state: the revision its view was
 * last computed at ("synced"), what was sent, what it acked, and the networks it holds. After
 * commits a flush runs (once commits paused `quietMs`, at most `coalesceMs` after the first
 * unflushed one) and every agent that is ready gets ONE message covering everything since its
 * synced revision. Agents at the same revision in the same networks share the encoded bytes.
 *
 * Updates are ack-clocked: an agent is ready when it acknowledged its last update (or did not
 * within `ackTimeoutMs`). Changes that arrive while it applies one go out together as soon as
 * its ack does, batched with every other agent whose ack came in the same read. So a busy
 * agent gets fewer, larger updates instead of a queue, and the controller does one write and
 * one ack per agent per batch rather than per change.
 *
 * Backpressure is also counted in bytes: a write is "in flight" until the server has handed it to
 * HTTP/2 (its write callback), and an agent with more than ~2 messages in flight is skipped
 * until they complete; its next message then simply covers more revisions. So a stalled agent
 * blocks nobody and costs at most a couple of messages of memory; it gets a snapshot instead of
 * a delta only if it fell so far behind that the change log no longer reaches back.
 *
 * What each agent has applied goes out as progress reports (to `Convergence`, which answers
 * Wait and status). The hub does not care which server carries a stream (watch-call.ts).
 */
import type { Logger } from 'pino';
import type { Controller } from './controller.js';
import type { HostProgress } from './convergence.js';
import { endpointFrame, eventFrame, networkFrame, routeFrame, watchMessage } from './watch-encoding.js';
import { viewerSpecificHosts, viewEvents, type EventEncoder } from './watch-events.js';
import { TraceBroker } from './trace-broker.js';
import { codecs } from '../api/proto.js';
import { TRACE_CAPABILITY, type AgentTraceReply } from '../api/types.js';

/** The writable side of one agent's stream (on either server). `done` runs once the bytes left. */
export interface WatchSink {
  write(message: Buffer, done: () => void): boolean;
  /** Ends the stream with an error status: ABORTED (superseded), or UNAVAILABLE (retry later). */
  abort(details: string, unavailable?: boolean): void;
}

/** One agent's Watch stream. */
export class WatchSession {
  syncedRevision = 0;
  sentRevision = 0;
  ackedRevision = 0;
  needSnapshot: boolean;
  sentNetworks: ReadonlySet<string>;
  messagesSent = 0;
  bytesSent = 0;
  /** Bytes written to the stream whose write callback has not run yet. */
  inflightBytes = 0;
  /** Skipped by flushes until in-flight writes complete. */
  waiting = false;
  /** When the last complete update started going out (performance.now()). */
  lastSentAt = 0;
  closed = false;
  iterator: Iterator<Buffer> | null = null;
  /** The host's networks as of state.membershipVersion `netsVersion`, and their sorted key. */
  nets: ReadonlySet<string> = new Set();
  netsKey = '';
  netsVersion = -1;

  constructor(
    readonly host: string,
    readonly sink: WatchSink,
    fromRevision: number,
    knownNetworks: ReadonlySet<string>,
  ) {
    this.syncedRevision = fromRevision;
    this.ackedRevision = fromRevision;
    this.needSnapshot = fromRevision === 0;
    this.sentNetworks = this.needSnapshot ? new Set() : knownNetworks;
  }
}

export interface WatchHubOptions {
  /** Soft cap on one WatchResponse's size; larger views go out in partial chunks. */
  maxMessageBytes: number;
  /**
   * While more mutations are queued, a flush to agents waits for them (so one message per agent
   * covers them all), but never longer than this after the first unflushed commit. 0: flush on
   * the next event-loop turn regardless.
   */
  coalesceMs?: number;
  /** Flush only after commits paused this long (ms); 0: as soon as nothing is queued. */
  quietMs?: number;
  logger: Logger;
  /**
   * An agent gets its next update once it acknowledged the previous one (so changes that arrive
   * while it applies one are batched into the next), or when it has not acked for this long.
   */
  ackTimeoutMs?: number;
  /** Receives what agents applied (acks, and revisions that did not concern them), batched. */
  onProgress: (batch: HostProgress[]) => void;
}

const encoder: EventEncoder<Buffer> = { event: eventFrame, endpoint: endpointFrame, network: networkFrame, route: routeFrame };

/** A delta shared by every agent at the same revision with the same networks. */
interface SharedDelta {
  /** Hosts for which the delta differs (see viewerSpecificHosts). */
  exceptFor: Set<string>;
  messages: Buffer[];
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

export class WatchHub {
  private readonly sessions = new Map<string, WatchSession>();
  /** Deltas computed at the current revision, by "from revision|networks"; reset by commits. */
  private shared = new Map<string, SharedDelta>();
  private flushScheduled = false;
  private lastCommitAt = 0;
  /** Hosts whose progress changed since the last report. */
  private dirty = new Set<string>();
  private reportScheduled = false;
  /** Sessions whose ack made them eligible for their next update, serviced on the next turn. */
  private ackedReady = new Set<WatchSession>();
  private readyScheduled = false;
  private ackTimer: NodeJS.Timeout | undefined;
  /** Traces asked of agents over their streams (loomctl trace). */
  readonly traces: TraceBroker;

  constructor(
    private readonly controller: Controller,
    private readonly opts: WatchHubOptions,
  ) {
    this.traces = new TraceBroker({
      connected: (host) => this.sessions.has(host),
      capable: (host) => this.controller.state.hosts.get(host)?.rec.capabilities.includes(TRACE_CAPABILITY) ?? false,
      send: (host, req) => {
        const s = this.sessions.get(host);
        if (!s || s.closed) return false;
        // Small and rare: outside the view's backpressure accounting; the agent reads it apart from view changes.
        s.sink.write(codecs.watchResponse.encode({ revision: 0, reset: false, partial: false, events: [], storeId: '', traceRequest: req }), () => undefined);
        return true;
      },
    });
    controller.onCommit(() => {
      this.shared = new Map();
      this.scheduleFlush();
    });
  }

  /** Whether the host is registered. */
  knowsHost(host: string): boolean {
    return this.controller.state.hosts.has(host);
  }

  session(host: string): WatchSession | undefined {
    return this.sessions.get(host);
  }

  /**
   * Opens a session; a previous stream of the same host is returned in `replaced` for the
   * caller to close. `fromRevision` beyond the controller's revision (another store) or behind
   * the change log gets a snapshot.
   */
  open(host: string, fromRevision: number, knownNetworks: string[], sink: WatchSink, storeId = ''): { session: WatchSession; replaced?: WatchSession } {
    const current = this.controller.revision();
    const sameStore = storeId === '' || storeId === this.controller.storeId();
    const resumable = sameStore && fromRevision > 0 && fromRevision <= current && this.controller.changes.covers(fromRevision);
    const s = new WatchSession(host, sink, resumable ? fromRevision : 0, new Set(knownNetworks));
    const replaced = this.sessions.get(host);
    if (replaced) replaced.closed = true;
    this.sessions.set(host, s);
    this.opts.logger.info({ host, fromRevision, resumable, revision: current }, 'agent watching');
    this.service(s);
    this.changed(host);
    return { session: s, replaced };
  }

  /** A trace reply on the session's stream. */
  traceReply(s: WatchSession, reply: AgentTraceReply): void {
    if (!s.closed) this.traces.reply(s.host, reply);
  }

  close(s: WatchSession): void {
    s.closed = true;
    s.iterator = null;
    if (this.sessions.get(s.host) === s) {
      this.sessions.delete(s.host);
      this.traces.streamClosed(s.host);
      this.opts.logger.info({ host: s.host, acked: s.ackedRevision }, 'agent stopped watching');
      this.changed(s.host);
    }
  }

  /** Ends every stream (the controller is stopping); agents reconnect and resume. */
  shutdown(): void {
    for (const s of [...this.sessions.values()]) {
      this.close(s);
      s.sink.abort('the controller is shutting down', true);
    }
  }

  ack(s: WatchSession, revision: number): void {
    if (s.closed || revision <= s.ackedRevision) return;
    s.ackedRevision = Math.min(revision, s.sentRevision || revision);
    this.changed(s.host);
    if (s.ackedRevision >= s.sentRevision && s.syncedRevision < this.controller.revision()) {
      // Changes came in while the agent applied the last update: they go out together, on the
      // next turn, with every other agent whose ack arrived in the same read.
      this.ackedReady.add(s);
      if (!this.readyScheduled) {
        this.readyScheduled = true;
        setImmediate(() => {
          this.readyScheduled = false;
          const ready = [...this.ackedReady];
          this.ackedReady.clear();
          for (const r of ready) this.service(r);
        });
      }
    }
  }

  /**
   * Flushes once commits have been quiet for `quietMs` (or nothing is queued and quietMs is 0),
   * but at most `coalesceMs` after the first unflushed commit: back-to-back requests then share
   * one message (and one ack) per agent instead of one each.
   */
  private scheduleFlush(): void {
    this.lastCommitAt = performance.now();
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const since = this.lastCommitAt;
    const quiet = this.opts.quietMs ?? 0;
    const max = this.opts.coalesceMs ?? 0;
    const flush = (): void => {
      const now = performance.now();
      const busy = this.controller.queuedMutations() > 0 || now - this.lastCommitAt < quiet;
      if (busy && now - since < max) {
        if (this.controller.queuedMutations() > 0) setImmediate(flush);
        else setTimeout(flush, Math.max(1, quiet - (now - this.lastCommitAt)));
        return;
      }
      this.flushScheduled = false;
      for (const s of this.sessions.values()) this.service(s);
    };
    if (quiet > 0) setTimeout(flush, quiet);
    else setImmediate(flush);
  }

  /** Writes to one agent until it is up to date or its stream is full. */
  private service(s: WatchSession): void {
    // While a batch is being written, memory is ahead of the store: wait for its commit flush.
    if (s.waiting || s.closed || this.controller.writing) return;
    this.changed(s.host);
    for (;;) {
      if (s.iterator === null) {
        if (!s.needSnapshot && s.syncedRevision >= this.controller.revision()) return;
        if (s.ackedRevision < s.sentRevision && !s.needSnapshot) {
          const waited = performance.now() - s.lastSentAt;
          const timeout = this.opts.ackTimeoutMs ?? 2000;
          if (waited < timeout) return this.recheckUnacked(timeout - waited);
        }
        s.lastSentAt = performance.now();
        s.iterator = this.messages(s);
      }
      const next = s.iterator.next();
      if (next.done) {
        s.iterator = null;
        continue;
      }
      const len = next.value.length;
      s.messagesSent++;
      s.bytesSent += len;
      s.inflightBytes += len;
      const ok = s.sink.write(next.value, () => {
        s.inflightBytes -= len;
        if (s.waiting && s.inflightBytes <= this.opts.maxMessageBytes) {
          s.waiting = false;
          this.service(s);
        }
      });
      if (!ok || s.inflightBytes > 2 * this.opts.maxMessageBytes) {
        s.waiting = true;
        return;
      }
    }
  }

  /** Services agents that did not ack in time (they get their update regardless). */
  private recheckUnacked(delayMs: number): void {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(
      () => {
        this.ackTimer = undefined;
        for (const s of this.sessions.values()) this.service(s);
      },
      Math.max(1, delayMs),
    );
    this.ackTimer.unref();
  }

  /** Messages bringing `s` from its synced revision to now (nothing if no relevant change). */
  private *messages(s: WatchSession): Generator<Buffer> {
    const state = this.controller.state;
    const revision = this.controller.revision();
    const from = s.syncedRevision;
    const snapshot = s.needSnapshot || !this.controller.changes.covers(from);
    const known = snapshot ? new Set<string>() : s.sentNetworks;
    if (s.netsVersion !== state.membershipVersion) {
      s.nets = new Set(state.networksOf(s.host));
      s.netsKey = [...s.nets].sort().join(',');
      s.netsVersion = state.membershipVersion;
    }
    const current = s.nets;
    s.needSnapshot = false;
    s.syncedRevision = revision;
    s.sentNetworks = current;

    // The common case: agents caught up to the same revision, in the same networks, get the
    // same bytes. Compute once per commit, write to all (except hosts the change is about).
    if (!snapshot && sameSet(known, current)) {
      const key = `${from}|${s.netsKey}`;
      let d = this.shared.get(key);
      if (!d) {
        const changed = this.controller.changes.keysSince(from)!;
        d = { exceptFor: viewerSpecificHosts(state, changed), messages: [...this.chunks(revision, false, viewEvents(state, '', known, current, changed, encoder))] };
        this.shared.set(key, d);
      }
      if (!d.exceptFor.has(s.host)) {
        for (const m of d.messages) {
          s.sentRevision = revision;
          yield m;
        }
        return;
      }
    }
    const changed = snapshot ? null : this.controller.changes.keysSince(from);
    for (const m of this.chunks(revision, snapshot, viewEvents(state, s.host, known, current, changed, encoder))) {
      s.sentRevision = revision;
      yield m;
    }
  }

  /** Packs event frames into WatchResponses of at most ~maxMessageBytes, lazily. */
  private *chunks(revision: number, snapshot: boolean, frames: Iterable<Buffer>): Generator<Buffer> {
    const max = this.opts.maxMessageBytes;
    let batch: Buffer[] = [];
    let bytes = 0;
    let first = true;
    for (const f of frames) {
      if (bytes > 0 && bytes + f.length > max) {
        yield watchMessage(revision, snapshot && first, true, batch, bytes, this.controller.storeId());
        first = false;
        batch = [];
        bytes = 0;
      }
      batch.push(f);
      bytes += f.length;
    }
    if (bytes > 0 || snapshot || !first) yield watchMessage(revision, snapshot && first, false, batch, bytes, this.controller.storeId());
  }

  /**
   * Revision up to which the session's agent is known to be current: its ack, or the synced
   * revision when it acked all it was sent and nothing relevant changed since.
   */
  private applied(s: WatchSession): number {
    if (s.iterator === null && !s.needSnapshot && s.ackedRevision >= s.sentRevision) return Math.max(s.ackedRevision, s.syncedRevision);
    return s.ackedRevision;
  }

  /** Notes that a host's progress may have moved; reported once per event-loop turn. */
  private changed(host: string): void {
    this.dirty.add(host);
    if (this.reportScheduled) return;
    this.reportScheduled = true;
    setImmediate(() => {
      this.reportScheduled = false;
      const batch: HostProgress[] = [];
      for (const host of this.dirty) {
        const s = this.sessions.get(host);
        batch.push(s ? { host, acked: s.ackedRevision, applied: this.applied(s), connected: true } : { host, acked: 0, applied: 0, connected: false });
      }
      this.dirty.clear();
      this.opts.onProgress(batch);
    });
  }
}
