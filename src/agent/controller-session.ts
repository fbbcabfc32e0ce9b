// The agent's session with the controller: register (retrying until it answers), heartbeat, and
// follow the Watch stream, on the controller's dedicated Watch port when it has one and on the API
// port when that port fails while the API answers. It keeps the view; the agent applies changes.
import type { Logger } from 'pino';
import * as grpc from '@grpc/grpc-js';
import { isServiceError, type CallOptions } from '../api/client.js';
import { Backoff, type BackoffOptions } from '../common/backoff.js';
import { ViewState } from '../api/view-state.js';
import type * as api from '../api/types.js';

/** The part of a Watch call the session uses (a grpc-js duplex stream has it). */
export interface WatchStream {
  write(msg: api.WatchRequest): unknown;
  on(event: 'data', fn: (msg: api.WatchResponse) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  on(event: 'end', fn: () => void): unknown;
  cancel(): void;
  readonly destroyed: boolean;
}

/** The controller calls the session makes (LoomClient implements them). */
export interface SessionApi {
  register(req: api.RegisterRequest, o?: CallOptions): Promise<api.RegisterResponse>;
  heartbeat(name: string, appliedRevision: number, o?: CallOptions, drops?: api.DropCount[]): Promise<unknown>;
  watch(): WatchStream;
  close(): void;
}

/** Time, replaceable in tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(t: NodeJS.Timeout | undefined): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
};

/**
 * How the agent retries the controller (register, heartbeat, Watch) and how grpc-js retries its
 * connections: at most ~1 s apart, jittered. So a live agent is heard again within about a second
 * of its controller returning, well inside any host-down timeout (docs/architecture.md).
 */
export const CONTROLLER_RETRY: BackoffOptions = { minMs: 100, maxMs: 1000 };
/** grpc-js channel options with the same bounds (its default grows from 1 s to 120 s). */
export const CONTROLLER_CHANNEL_OPTIONS = {
  'grpc.initial_reconnect_backoff_ms': CONTROLLER_RETRY.minMs,
  'grpc.max_reconnect_backoff_ms': CONTROLLER_RETRY.maxMs,
};

/** Watch-port failures (before any message, while the API answers) that send Watch to the API port. */
export const WATCH_PORT_FAILURES = 3;
/** How long Watch stays on the API port after that. */
export const WATCH_PORT_RETRY_MS = 300_000;
/** The API port counts as answering this long after its last answer. */
const API_ANSWERS_MS = 15_000;

export interface SessionOptions {
  /** What the agent registers: host name, VTEP, version, capabilities. */
  registration: api.RegisterRequest;
  /** The controller's API address, for log lines and errors. */
  controller: string;
  /** The API port's client. */
  api: SessionApi;
  /** Builds a client for the dedicated Watch port of the controller at `home` (same host and TLS). */
  watchApi: (port: number, home: string) => SessionApi;
  /**
   * Several controllers: the one Watch goes to (`home`, its address), and how to move on when
   * its stream breaks. Without them there is one controller, `controller`.
   */
  home?: () => string;
  homeFailed?: (address: string, why: string) => void;
  /** The revision the agent applied last (heartbeats carry it). */
  appliedRevision: () => number;
  /** The host's drops by reason, for heartbeats to carry (loomctl status shows them); a failed read sends none. */
  drops?: () => Promise<api.DropCount[]>;
  /**
   * The view changed to `revision`; call `ack` once it is applied. Called in stream order; the
   * agent serialises the work itself.
   */
  onChange: (revision: number, ack: () => void) => void;
  /** A trace the controller asks for on the stream (not a view change); the reply goes back on it. Must not reject. */
  onTrace?: (req: api.AgentTraceRequest) => Promise<api.AgentTraceReply>;
  log: Logger;
  clock?: Clock;
}

export class ControllerSession {
  readonly view = new ViewState();
  /** The dedicated Watch port's client (RegisterResponse.watchPort), when the controller has one. */
  private watchClient: { port: number; home: string; client: SessionApi } | undefined;
  /** Watch attempts on the dedicated port that failed before any message while the API port answered. */
  private watchPortFailures = 0;
  /** The Watch port the controllers named at registration (0: none). */
  private watchPort = 0;
  private watchPortRetryAt = 0;
  /** Last time the API port answered (register, heartbeat). */
  private apiOkAt = 0;
  private watchStream: WatchStream | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly watchBackoff = new Backoff(CONTROLLER_RETRY);
  private stopped = false;
  registered = false;
  connected = false;
  private readonly clock: Clock;

  constructor(private readonly o: SessionOptions) {
    this.clock = o.clock ?? systemClock;
  }

  /** Registers (in the background, retrying) and then follows the Watch stream. */
  start(): Promise<void> {
    return this.register().then(() => this.openWatch());
  }

  /** Which port the current or next Watch goes to. */
  get watchTarget(): 'watch-port' | 'api-port' {
    return this.watchClient !== undefined && this.watchPortFailures < WATCH_PORT_FAILURES ? 'watch-port' : 'api-port';
  }

  /** Registers with the controller, retrying with backoff (and saying so) until it answers. */
  async register(): Promise<void> {
    const backoff = new Backoff(CONTROLLER_RETRY);
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const res = await this.o.api.register(this.o.registration, { timeoutMs: 5000 });
        this.o.log.info({ controller: this.o.controller, revision: res.revision, watchPort: res.watchPort }, 'registered with the controller');
        this.apiOkAt = this.clock.now();
        this.useWatchPort(res.watchPort);
        this.registered = true;
        this.startHeartbeats(res.heartbeatIntervalMs || 5000);
        return;
      } catch (err) {
        const wait = backoff.next();
        if (isServiceError(err) && err.code === grpc.status.PERMISSION_DENIED) {
          // Wrong certificate, or a VTEP change an operator has not made yet: retrying picks that up.
          this.o.log.error({ attempt, err: describe(err), retryInMs: wait }, 'the controller refused this host (certificate or VTEP); forwarding continues on the last known state');
        } else {
          this.o.log.warn({ attempt, err: describe(err), retryInMs: wait }, 'controller not reachable; forwarding continues on the last known state');
        }
        await new Promise<void>((r) => this.clock.setTimeout(r, wait));
      }
    }
  }

  /** Heartbeats every `intervalMs`; after a failure sooner (backoff), so a returning controller hears the host at once. */
  private startHeartbeats(intervalMs: number): void {
    this.clock.clearTimeout(this.heartbeatTimer);
    const backoff = new Backoff(CONTROLLER_RETRY);
    const schedule = (ms: number): void => {
      if (this.stopped) return;
      this.heartbeatTimer = this.clock.setTimeout(beat, ms);
      this.heartbeatTimer.unref?.();
    };
    const beat = (): void => {
      // Bounded: a switch slow to answer must never delay the heartbeat that keeps the host up.
      const drops = this.o.drops ? within(this.o.drops(), Math.min(500, intervalMs / 4)) : Promise.resolve(undefined);
      drops.then((d) => this.o.api.heartbeat(this.o.registration.name, this.o.appliedRevision(), { timeoutMs: intervalMs }, d)).then(
        () => {
          this.apiOkAt = this.clock.now();
          backoff.reset();
          schedule(intervalMs);
        },
        async (err) => {
          this.o.log.warn({ err: describe(err) }, 'heartbeat failed');
          if (isServiceError(err) && err.code === grpc.status.NOT_FOUND) {
            await this.register(); // starts heartbeats anew
            return;
          }
          schedule(Math.min(intervalMs, backoff.next()));
        },
      );
    };
    schedule(intervalMs);
  }

  /** Watch goes to the controller's dedicated port on a connection of its own. */
  private useWatchPort(port: number): void {
    const home = this.home();
    if (this.watchClient?.port === port && this.watchClient.home === home) return;
    this.watchClient?.client.close();
    this.watchClient = undefined;
    // Failures count across a move to the next controller: ports that fail on every controller
    // while the API answers still send Watch to the API port.
    if (port !== this.watchPort) this.watchPortFailures = 0;
    this.watchPort = port;
    if (!port) return;
    this.watchClient = { port, home, client: this.o.watchApi(port, home) };
  }

  private home(): string {
    return this.o.home?.() ?? this.o.controller;
  }

  private openWatch(): void {
    if (this.stopped) return;
    // The home moved (its last stream broke): the Watch port of the next one.
    if (this.watchClient && this.watchClient.home !== this.home()) this.useWatchPort(this.watchPort);
    const home = this.home();
    if (this.watchPortFailures >= WATCH_PORT_FAILURES && this.clock.now() >= this.watchPortRetryAt) this.watchPortFailures = 0;
    const dedicated = this.watchTarget === 'watch-port';
    const stream = dedicated ? this.watchClient!.client.watch() : this.o.api.watch();
    let received = false;
    this.watchStream = stream;
    stream.write({
      start: {
        host: this.o.registration.name,
        fromRevision: this.view.revision,
        networks: [...this.view.networks.keys()],
        storeId: this.view.storeId,
      },
    });
    stream.on('data', (msg: api.WatchResponse) => {
      if (!received && dedicated) this.watchPortFailures = 0;
      received = true;
      this.connected = true;
      this.watchBackoff.reset();
      if (msg.traceRequest) {
        const req = msg.traceRequest;
        const onTrace = this.o.onTrace ?? (async () => ({ id: req.id, error: 'this agent does not trace', errorKind: 'unavailable' }));
        void onTrace(req).then((traceReply) => {
          if (!stream.destroyed) stream.write({ traceReply });
        });
        return;
      }
      let changed: boolean;
      try {
        changed = this.view.apply(msg);
      } catch (err) {
        // A message the view cannot take: drop this stream and resume from the last good revision.
        this.o.log.error({ err, revision: this.view.revision }, 'the controller sent a Watch message that cannot be applied; reconnecting');
        stream.cancel();
        retry(`unusable Watch message: ${describe(err)}`);
        return;
      }
      if (!changed) return;
      const revision = this.view.revision;
      this.o.onChange(revision, () => {
        if (!stream.destroyed) stream.write({ ack: { revision } });
      });
    });
    const retry = (why: string) => {
      if (this.watchStream !== stream) return;
      this.watchStream = undefined;
      this.connected = false;
      if (this.stopped) return;
      const apiAnswers = this.clock.now() - this.apiOkAt < API_ANSWERS_MS;
      if (dedicated && !received && apiAnswers && ++this.watchPortFailures === WATCH_PORT_FAILURES) {
        this.watchPortRetryAt = this.clock.now() + WATCH_PORT_RETRY_MS;
        this.o.log.warn({ watchPort: this.watchClient?.port, why }, 'the controller\'s Watch port fails while its API port answers; watching on the API port for 5 minutes');
      }
      const retryInMs = this.watchBackoff.next();
      this.o.homeFailed?.(home, why);
      this.o.log.warn({ why, retryInMs, revision: this.view.revision, controller: home, next: this.home() }, 'watch stream lost; keeping the installed flows');
      this.reconnectTimer = this.clock.setTimeout(() => this.openWatch(), retryInMs);
    };
    stream.on('error', (err) => retry(describe(err)));
    stream.on('end', () => retry('controller ended the stream'));
  }

  /** Stops registering, heartbeating and watching; the clients stay open until close(). */
  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.heartbeatTimer);
    this.clock.clearTimeout(this.reconnectTimer);
    this.watchStream?.cancel();
  }

  close(): void {
    this.o.api.close();
    this.watchClient?.client.close();
  }
}

export function describe(err: unknown): string {
  if (isServiceError(err)) return `${grpc.status[err.code] ?? err.code}: ${err.details}`;
  return err instanceof Error ? err.message : String(err);
}

/** The value if it comes within `ms`, else (or on failure) undefined. */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      () => (clearTimeout(t), resolve(undefined)),
    );
  });
}
