/**
 * Several controllers (`--controller a:7400,b:7400,c:7400`): which one a call goes to, and moving
 * on when one fails. Used by the agent and loomctl.
 *
 * Two targets: the *leader* takes writes (and what only the leader may judge: heartbeats,
 * convergence); the *home* takes reads and the agent's Watch stream, and may be a follower, so a
 * failover moves only the streams of the controller that failed. A follower refuses a write with
 * UNAVAILABLE naming the leader (trailer `loom-leader`); the call goes there at once if that
 * address is in the list (a follower never sends a client anywhere it was not told to trust),
 * else to the next address. A controller that does not answer (UNAVAILABLE without a leader, or
 * no leader elected yet) sends the call to the next address after a backoff
 * (`src/common/backoff.ts`); a call gives up after `failoverMs` and fails with the last error.
 *
 * Redirect, not forwarding: the caller's own TLS identity reaches the leader (no controller
 * acts for another's clients), and clients need the other addresses anyway to survive the loss
 * of the one they talk to.
 */
import * as grpc from '@grpc/grpc-js';
import { Backoff, type BackoffOptions } from '../common/backoff.js';
import { isServiceError, type LoomClient } from './client.js';
import type * as T from './types.js';

/** The trailer a follower's refusal names the leader in (the controller's `LEADER_TRAILER`). */
export const LEADER_METADATA = 'loom-leader';

export interface FailoverOptions {
  /** How long one call keeps trying (ms). Default 15 s: a leader's lease (3 s) plus an election, with room. */
  failoverMs?: number;
  /** Delay between attempts that found no controller to answer. */
  backoff?: BackoffOptions;
  /** Index of the first home: agents spread their Watch streams over the controllers by host name. */
  home?: number;
  /** Told when the leader or home moves (log lines). */
  onMove?: (target: 'leader' | 'home', address: string, why: string) => void;
  /** Time, replaceable in tests. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export const DEFAULT_FAILOVER_MS = 15_000;
/**
 * At most ~0.1 s between attempts: the client notices the new leader within ~0.1 s of its election
 * (a refusal costs a follower one small round trip, jittered across clients).
 */
export const FAILOVER_BACKOFF: BackoffOptions = { minMs: 25, maxMs: 100 };

/** Parses `a:7400,b:7400`: host:port each, at least one, none twice. Throws a readable Error. */
export function parseControllerList(text: string): string[] {
  const list = text.split(',').map((s) => s.trim());
  const addr = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
  for (const a of list) {
    if (!addr.test(a) || Number(a.slice(a.lastIndexOf(':') + 1)) > 65535) {
      throw new Error(`${JSON.stringify(a)} is not host:port`);
    }
  }
  if (new Set(list).size !== list.length) throw new Error(`controller list ${text} names an address twice`);
  return list;
}

/** The leader a refusal names, from the trailer, else from the message ("... leader at ADDR"). */
export function leaderHint(err: unknown): string {
  if (!isServiceError(err) || err.code !== grpc.status.UNAVAILABLE) return '';
  const fromTrailer = err.metadata?.get(LEADER_METADATA)[0];
  if (typeof fromTrailer === 'string' && fromTrailer) return fromTrailer;
  return /leader at (\S+)$/.exec(err.details ?? '')?.[1] ?? '';
}

/** A stable index in [0, n) for a host name: agents with the same list spread over it. */
export function homeIndex(name: string, n: number): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return n > 0 ? h % n : 0;
}

type Attempt<C, T> = (client: C) => Promise<T>;

/** Clients of every controller in the list, and where calls go. */
export class ControllerSet<C extends { close(): void }> {
  readonly clients: C[];
  private leaderIdx: number;
  private homeIdx: number;
  private readonly failoverMs: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    readonly addresses: readonly string[],
    make: (address: string) => C,
    private readonly o: FailoverOptions = {},
  ) {
    if (addresses.length === 0) throw new Error('no controller address');
    this.clients = addresses.map(make);
    this.homeIdx = (o.home ?? 0) % addresses.length;
    this.leaderIdx = this.homeIdx;
    this.failoverMs = o.failoverMs ?? DEFAULT_FAILOVER_MS;
    this.now = o.now ?? (() => Date.now());
    this.sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** The address writes go to next. */
  get leader(): string {
    return this.addresses[this.leaderIdx];
  }

  /** The address reads and the Watch stream go to next. */
  get home(): string {
    return this.addresses[this.homeIdx];
  }

  homeClient(): C {
    return this.clients[this.homeIdx];
  }

  /** The home failed (its Watch stream broke): the next stream goes to the next controller. */
  homeFailed(address: string, why: string): void {
    if (this.addresses.length === 1 || this.home !== address) return;
    this.homeIdx = (this.homeIdx + 1) % this.addresses.length;
    this.o.onMove?.('home', this.home, why);
  }

  /** A write (or a leader-only call): to the leader, following refusals that name it. */
  atLeader<T>(fn: Attempt<C, T>): Promise<T> {
    return this.run(fn, 'leader');
  }

  /** A read: to the home, moving on while it does not answer. */
  atHome<T>(fn: Attempt<C, T>): Promise<T> {
    return this.run(fn, 'home');
  }

  private async run<T>(fn: Attempt<C, T>, target: 'leader' | 'home'): Promise<T> {
    const deadline = this.now() + this.failoverMs;
    const backoff = new Backoff(this.o.backoff ?? FAILOVER_BACKOFF);
    for (;;) {
      const idx = target === 'leader' ? this.leaderIdx : this.homeIdx;
      try {
        return await fn(this.clients[idx]);
      } catch (err) {
        const why = describeError(err);
        if (!retriable(err, target)) throw err;
        const hint = leaderHint(err);
        const hinted = hint ? this.addresses.indexOf(hint) : -1;
        // Straight to a named leader that is not the one that just refused; else wait, then the next one.
        const next = hinted >= 0 && hinted !== idx ? hinted : (idx + 1) % this.addresses.length;
        const wait = hinted >= 0 && hinted !== idx ? 0 : backoff.next();
        if (this.now() + wait >= deadline) throw err;
        this.move(target, idx, next, why);
        if (wait > 0) await this.sleep(wait);
      }
    }
  }

  private move(target: 'leader' | 'home', from: number, to: number, why: string): void {
    if (target === 'leader') {
      if (this.leaderIdx !== from) return; // another call moved it already
      this.leaderIdx = to;
    } else {
      if (this.homeIdx !== from) return;
      this.homeIdx = to;
    }
    if (from !== to) this.o.onMove?.(target, this.addresses[to], why);
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

/**
 * Worth another controller: it did not answer, or refused as a follower / without a leader
 * (UNAVAILABLE). A read whose deadline passed may go elsewhere too; a write's may have committed,
 * so it is left to the caller.
 */
function retriable(err: unknown, target: 'leader' | 'home'): boolean {
  if (!isServiceError(err)) return false;
  return err.code === grpc.status.UNAVAILABLE || (target === 'home' && err.code === grpc.status.DEADLINE_EXCEEDED);
}

function describeError(err: unknown): string {
  if (isServiceError(err)) return `${grpc.status[err.code] ?? err.code}: ${err.details}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Where each of LoomClient's calls goes. `leader`: writes, and what only the leader can answer for
 * the whole cluster: heartbeats, `getStatus` and `wait` (it hears every agent's heartbeat, a
 * follower only those streaming from it), `trace` (any controller can trace, asking agents that
 * stream elsewhere through etcd; the leader alone hands out live-trace marks, docs/architecture.md).
 * `home`: reads. The compiler holds the table complete: a new call must be routed here.
 */
const ROUTES = {
  createNetwork: 'leader', getNetwork: 'home', listNetworks: 'home', deleteNetwork: 'leader', updateNetwork: 'leader',
  createPolicy: 'leader', getPolicy: 'home', listPolicies: 'home', deletePolicy: 'leader', explainPolicy: 'home',
  createEndpoint: 'leader', updateEndpoint: 'leader', getEndpoint: 'home', listEndpoints: 'home', deleteEndpoint: 'leader',
  register: 'leader', heartbeat: 'leader', listHosts: 'home',
  getStatus: 'leader', wait: 'leader', trace: 'leader',
} as const satisfies Record<Exclude<keyof LoomClient, 'raw' | 'watch' | 'close'>, 'leader' | 'home'>;

type RoutedCalls = Pick<LoomClient, keyof typeof ROUTES>;
type AnyCall = (...args: unknown[]) => Promise<unknown>;

/**
 * LoomClient's calls over several controllers, routed by ROUTES; reads go to the leader too with
 * `readsAtLeader` (the agent: an attach reads what it just wrote, so it asks the writer).
 */
// The calls are added in the constructor from ROUTES; the interface gives them their types.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface FailoverClient extends RoutedCalls {}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class FailoverClient {
  readonly set: ControllerSet<LoomClient>;

  constructor(
    addresses: readonly string[],
    make: (address: string) => LoomClient,
    opts: FailoverOptions & { readsAtLeader?: boolean } = {},
  ) {
    this.set = new ControllerSet(addresses, make, opts);
    const calls = this as unknown as Record<string, AnyCall>;
    for (const [name, route] of Object.entries(ROUTES)) {
      const at = route === 'leader' || opts.readsAtLeader ? this.set.atLeader.bind(this.set) : this.set.atHome.bind(this.set);
      calls[name] = (...args) => at((c) => (c as unknown as Record<string, AnyCall>)[name]!(...args));
    }
  }

  /** A Watch stream on the home's API port (see ControllerSet.homeFailed). */
  watch(): grpc.ClientDuplexStream<T.WatchRequest, T.WatchResponse> {
    return this.set.homeClient().watch();
  }
  close(): void {
    this.set.close();
  }
}
