/**
 * The controller core: validates requests, allocates, commits to the store and keeps the
 * in-memory state.
 *
 * Mutations are queued and run in batches (group commit): each mutation, in arrival order,
 * validates against the state left by the ones before it, gets its own revision and is applied
 * to memory; then the whole batch is written in one store transaction (one fsync) and only
 * then are clients answered and watchers told. One mutation at a time sees one consistent
 * state, so no address is handed out twice even when requests race. Watch delivery is held
 * back while a batch is being written (`writing`), so agents never see what is not durable.
 * If the write fails, the batch is refused and memory is rebuilt from the store.
 */
import type { Logger } from 'pino';
import { macFromIpv4 } from '../common/ip.js';
import {
  GATEWAY_PORT_CAPABILITY,
  type CreateEndpointRequest,
  type CreatePolicyRequest,
  type Endpoint,
  type ExplainPolicyRequest,
  type ExplainPolicyResponse,
  type Host,
  type Network,
  type Policy,
  type RegisterRequest,
  type UpdateEndpointRequest,
  type UpdateNetworkRequest,
} from '../api/types.js';
import { dnsName } from '../common/endpoint-name.js';
import { ChangeLog } from './changelog.js';
import { toEndpoint, toHost, toNetwork, toPolicy } from './convert.js';
import { checkLabels, explain, isolationOf, validatePolicy } from './policy.js';
import { alreadyExists, ApiError, failedPrecondition, invalid, notFound } from './errors.js';
import { allocateAddress, releaseOps } from './ipam.js';
import { hostGatewayId, keys, type EndpointRecord, type HostRecord } from './model.js';
import { ClusterState, type NetworkState } from './state.js';
import { NotLeaderError, type FollowedChange, type Store, type StoreOp } from './store/types.js';
import {
  checkAliases,
  checkDnsName,
  checkEndpointDns,
  checkHostName,
  defaultEndpointName,
  validateEndpointRequest,
  validateNetwork,
  validateRegister,
} from './validate.js';

export interface ControllerOptions {
  /** A host without heartbeat (or watch ack) for this long is marked down. */
  hostDownAfterMs: number;
  /** Interval suggested to agents at registration. */
  heartbeatIntervalMs: number;
  /** In-memory change log entries kept for watch resumption. */
  changeLogSize: number;
  /** Revisions of change log kept in the store (resumption across restarts). */
  storeHistory: number;
  logger: Logger;
  /** How long a new leader waits for the watch to deliver its store's last commits before it reloads (default 1000). */
  termCatchUpMs?: number;
}

/** Called after every committed revision with its operations (durable by then). */
export type CommitListener = (revision: number, ops: readonly StoreOp[]) => void;

/**
 * A mutation: checks the request against the current state (throwing ApiError) and returns
 * its store ops and the reply, computed right after its ops are applied at `revision`.
 */
type Mutation<T> = () => { ops: StoreOp[]; reply: (revision: number) => T };

interface Queued {
  run: Mutation<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

const MAX_BATCH = 256;
/** How long a new leader waits for etcd's watch to deliver the last commits before it reloads instead. */
const TERM_CATCH_UP_MS = 1000;

export { GATEWAY_PORT_CAPABILITY };

/** Ops of two lists, each key once (the later op of a key wins). */
function dedupe(a: StoreOp[], b: StoreOp[]): StoreOp[] {
  const byKey = new Map<string, StoreOp>();
  for (const op of [...a, ...b]) byKey.set(op.key, op);
  return [...byKey.values()];
}

export class Controller {
  readonly state = new ClusterState();
  changes: ChangeLog;
  /** True while a batch is applied in memory but not yet durable. */
  writing = false;
  private readonly queue: Queued[] = [];
  private batchScheduled = false;
  private readonly lastSeen = new Map<string, number>();
  private readonly listeners: CommitListener[] = [];
  private livenessTimer: NodeJS.Timeout | null = null;
  /**
   * Since when the controller could hear agents without a break: set when it starts serving and
   * again after its own event loop stalled. Silence before it is not the hosts' (see checkLiveness).
   */
  private hearingSince = 0;
  private closed = false;
  /** Set when the store could not be read back after a failed commit: reload before writing. */
  private stale = false;
  /** Every change up to this revision is in the change log. */
  private loggedRevision = 0;
  /** The store's leadership term the memory was loaded for (0 without election). */
  private term = 0;
  /**
   * On winning a term: the revision memory must reach before the first batch (the store's last
   * commit when the term began), 0 when there is nothing to wait for. See `catchUp`.
   */
  private catchUpTo = 0;
  /**
   * The highest followed revision refused while a batch or reload of ours ran (0: none missing).
   * Cleared once a commit or reload of ours covers it; while set, memory may lack a revision the
   * watch will not bring again, so a new term reloads instead of trusting memory.
   */
  private refusedAbove = 0;
  /** While the first batch of a term waits for the watch to deliver up to `catchUpTo`. */
  private catchingUp: { target: number; done: () => void } | null = null;
  /** Stops following the store's other writers. */
  private unfollow: (() => void) | undefined;

  private constructor(
    readonly store: Store,
    readonly opts: ControllerOptions,
    changes: ChangeLog,
  ) {
    this.changes = changes;
  }

  /** Loads the state from the store (and the store's change log tail, for resumption). */
  static async open(store: Store, opts: ControllerOptions): Promise<Controller> {
    const c = new Controller(store, opts, new ChangeLog(0, 1));
    const n = await c.load();
    c.term = store.leadership?.()?.term ?? 0;
    // etcd may have compacted further than the store knew: it learns that from the first answer.
    // Without it (etcd compacted, or the member the watch went to is down) agents get snapshots.
    const since = (): Promise<Awaited<ReturnType<Store['changesSince']>>> =>
      store.changesSince(store.compactedRevision()).catch((err: unknown) => {
        opts.logger.warn({ err }, 'reading the store\'s change history failed');
        return null;
      });
    let history = await since();
    history ??= await since();
    // Without the store's history the log covers only what comes next.
    const log = new ChangeLog(history ? store.compactedRevision() : store.revision(), Math.max(opts.changeLogSize, 1));
    c.changes = log;
    for (const ch of history ?? []) log.append(ch.revision, [ch.key]);
    c.loggedRevision = store.revision();
    c.hearingSince = Date.now();
    c.follow();
    opts.logger.info({ revision: store.revision(), keys: n, logFloor: log.floor }, 'state loaded');
    return c;
  }

  private async load(): Promise<number> {
    const all = await this.store.loadAll();
    this.state.load(all);
    return all.length;
  }

  /**
   * Reloads memory from the store, and the change log with what the store committed since the
   * revision memory was at (another leader's writes, or a batch that committed in part), so
   * Watch deltas miss nothing; without that history agents get snapshots from here on.
   */
  private async reload(): Promise<void> {
    await this.load();
    const missed = await this.store.changesSince(this.loggedRevision).catch(() => null);
    if (missed) for (const ch of missed) this.changes.append(ch.revision, [ch.key]);
    else this.changes = new ChangeLog(this.store.revision(), Math.max(this.opts.changeLogSize, 1));
    this.loggedRevision = this.store.revision();
    if (this.refusedAbove <= this.loggedRevision) this.refusedAbove = 0;
  }

  /**
   * With leader election: memory follows the store's other writers (the leader) as they commit,
   * so a follower answers reads and serves Watch streams with the current state, and a new leader
   * starts from it. Each revision is applied, logged and told to watchers as a local commit is.
   */
  private follow(): void {
    if (!this.store.follow || !this.store.leadership?.()) return;
    this.unfollow = this.store.follow(this.store.revision(), {
      onRevision: (revision, changes) => this.applyFollowed(revision, changes),
      onLost: () => {
        // etcd compacted past what we followed: read it all again, then follow from there.
        this.reload().then(
          () => this.follow(),
          (err: unknown) => {
            this.opts.logger.error({ err }, 'reloading after the store compacted failed; the next batch reloads');
            this.stale = true;
          },
        );
      },
    });
  }

  /**
   * Another controller's commit (from the store's watch). Not while a batch of ours is being
   * written: that batch then fails its fence (the store's revision moved) and memory reloads.
   * Revisions up to `loggedRevision` are ours or already known.
   */
  private applyFollowed(revision: number, changes: FollowedChange[]): boolean {
    // While catching up at the start of a term no batch of ours is in memory: take them then too.
    if (this.closed || revision <= this.loggedRevision) return false;
    if (this.writing && !this.catchingUp) {
      this.refusedAbove = Math.max(this.refusedAbove, revision);
      return false;
    }
    const created = new Map(changes.map((c) => [c.key, c.createRevision]));
    this.state.applyChanges(changes, (k) => created.get(k) ?? revision, revision);
    this.changes.append(revision, changes.map((c) => c.key));
    this.loggedRevision = revision;
    const ops: StoreOp[] = changes.map((c) => (c.value === null ? { type: 'delete', key: c.key } : { type: 'put', key: c.key, value: c.value }));
    for (const fn of this.listeners) {
      try {
        fn(revision, ops);
      } catch (err) {
        this.opts.logger.error({ err }, 'commit listener failed');
      }
    }
    if (this.catchingUp && revision >= this.catchingUp.target) this.catchingUp.done();
    return true;
  }

  /**
   * Starts the liveness timer; call it once the API and Watch ports listen, since only from then
   * on can a host's silence be the host's. A tick that runs late means the controller's own event
   * loop stalled, with agents' messages unread meanwhile: hearing starts over then too.
   */
  start(): void {
    const every = Math.max(50, Math.min(1000, Math.floor(this.opts.hostDownAfterMs / 4)));
    this.hearingSince = Date.now();
    let lastTick = this.hearingSince;
    this.livenessTimer = setInterval(() => {
      const now = Date.now();
      if (now - lastTick > 2 * every) {
        this.opts.logger.warn({ stalledMs: now - lastTick - every }, 'the controller stalled; host liveness counts from now');
        this.hearingSince = now;
      }
      lastTick = now;
      this.checkLiveness(now).catch((err: unknown) => this.opts.logger.error({ err }, 'liveness check failed'));
    }, every);
    this.livenessTimer.unref();
  }

  async close(): Promise<void> {
    if (this.livenessTimer) clearInterval(this.livenessTimer);
    this.unfollow?.();
    while (this.writing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
    this.closed = true;
    await this.store.close();
  }

  revision(): number {
    return this.store.revision();
  }

  storeId(): string {
    return this.store.id();
  }

  /** Mutations waiting for the next batch. */
  queuedMutations(): number {
    return this.queue.length;
  }

  onCommit(fn: CommitListener): void {
    this.listeners.push(fn);
  }

  // ---- the mutation queue

  /** Null while this controller may write; else why not (a follower names the leader). */
  notLeading(): string | null {
    const l = this.store.leadership?.();
    if (!l || l.term > 0) return null;
    return l.leader ? `this controller is a follower; send writes to the leader at ${l.leader}` : 'no controller leads yet; retry shortly';
  }

  /**
   * On a new leadership term: others may have written meanwhile, and hosts could not count on
   * this controller before (host liveness counts from now). A follower's memory is hot from the
   * watch, so a new leader need not reload: it has to hold every commit up to the store's last
   * one when its term began (`Leadership.base`, read atomically with the win; the deposed leader's
   * commits are fenced on its own term, so none can follow). Memory behind that waits for the
   * watch to deliver the rest (`catchUp`); without a base (no election info) it reloads.
   */
  private followTerm(): void {
    const l = this.store.leadership?.();
    const term = l?.term ?? 0;
    if (term === this.term) return;
    this.term = term;
    this.hearingSince = Date.now();
    // Deposed: memory keeps following the new leader (a batch the fence refused reloaded already).
    if (term === 0) return;
    if (l?.base !== undefined && this.follows()) this.catchUpTo = l.base;
    else this.stale = true;
  }

  /** Whether memory follows the store's other writers (etcd with election). */
  private follows(): boolean {
    return this.unfollow !== undefined;
  }

  /**
   * Before a new term's first batch: memory must hold every commit up to `catchUpTo`. Usually it
   * does already (the watch is hot); else waits for the watch up to `termCatchUpMs`, then reloads.
   * Memory behind the store's last commit would also fail its first commit's fence on `meta/rev`
   * (and reload); a gap with later revisions taken after it the fence cannot see: `refusedAbove`.
   */
  private async catchUp(): Promise<void> {
    const target = this.catchUpTo;
    if (target === 0) return;
    this.catchUpTo = 0;
    if (this.refusedAbove > 0) {
      this.stale = true; // memory may lack a revision the watch brought while we wrote
      return;
    }
    const started = Date.now();
    if (this.loggedRevision < target || this.store.revision() < target) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.catchingUp = { target, done: resolve };
        timer = setTimeout(resolve, this.opts.termCatchUpMs ?? TERM_CATCH_UP_MS);
      });
      clearTimeout(timer);
      this.catchingUp = null;
    }
    if (this.loggedRevision < target || this.store.revision() < target) {
      this.stale = true;
      this.opts.logger.warn({ revision: this.store.revision(), base: target }, 'new leadership term: the watch did not catch up in time; reloading');
      return;
    }
    this.opts.logger.info({ term: this.term, revision: this.store.revision(), base: target, waitedMs: Date.now() - started }, 'leading: state current from the watch, no reload');
  }

  /**
   * Throws on a follower: for what only the leader can answer for the whole cluster (convergence
   * and host status: agents' heartbeats go to it), as for writes.
   */
  requireLeader(): void {
    const refusal = this.followerRefusal();
    if (refusal) throw refusal;
  }

  /** The refusal of a write on a follower: UNAVAILABLE naming the leader (message and trailer). */
  private followerRefusal(): ApiError | null {
    const why = this.notLeading();
    return why ? new ApiError('UNAVAILABLE', why, this.store.leadership?.()?.leader ?? '') : null;
  }

  private mutate<T>(m: Mutation<T>): Promise<T> {
    if (this.closed) return Promise.reject(new ApiError('UNAVAILABLE', 'the controller is shutting down'));
    const refusal = this.followerRefusal();
    if (refusal) return Promise.reject(refusal);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: m, resolve: resolve as (v: unknown) => void, reject });
      this.scheduleBatch();
    });
  }

  private scheduleBatch(): void {
    if (this.batchScheduled || this.writing || this.queue.length === 0) return;
    this.batchScheduled = true;
    setImmediate(() => {
      this.batchScheduled = false;
      this.runBatch().catch((err: unknown) => {
        this.writing = false;
        this.opts.logger.error({ err }, 'mutation batch failed');
      });
    });
  }

  private async runBatch(): Promise<void> {
    const batch = this.queue.splice(0, MAX_BATCH);
    if (batch.length === 0) return;
    this.writing = true;
    this.followTerm();
    await this.catchUp();
    if (this.stale) {
      // Memory may hold a batch that never committed: nothing validates against it.
      try {
        await this.reload();
        this.stale = false;
        this.opts.logger.info({ revision: this.store.revision() }, 'state reloaded from the store');
      } catch (err) {
        this.writing = false;
        const refusal = new ApiError('UNAVAILABLE', `the controller cannot read its store: ${(err as Error).message}`);
        for (const q of batch) q.reject(refusal);
        this.scheduleBatch();
        return;
      }
    }
    const opsList: StoreOp[][] = [];
    const answered: { q: Queued; value: unknown }[] = [];
    // Mutations apply to memory at provisional revisions base+1, base+2, ... so each sees the ones
    // before it; the store assigns the real ones when it commits (etcd's may skip numbers or be
    // shared by mutations in one Txn), and the batch is restamped with them before anyone sees it.
    const base = this.store.revision();
    let rev = base;
    // Set when a mutation failed half-applied (a bug, not bad input): memory is rebuilt after the commit.
    let reload = false;
    for (const q of batch) {
      let value: unknown;
      let applying = false;
      try {
        const r = q.run();
        if (r.ops.length > 0) {
          applying = true;
          for (const op of r.ops) this.state.applyOp(op, rev + 1);
          applying = false;
          rev++;
          opsList.push(r.ops);
        }
        value = r.reply(rev);
      } catch (err) {
        if (applying) {
          reload = true;
          this.opts.logger.error({ err }, 'applying a mutation failed');
        }
        q.reject(err);
        continue;
      }
      answered.push({ q, value });
    }
    let revs: number[];
    try {
      revs = await this.store.commitBatch(opsList);
      const ordered = revs.every((r, i) => (i === 0 ? r > base : r >= revs[i - 1]));
      if (revs.length !== opsList.length || !ordered || (revs.length > 0 && revs[revs.length - 1] !== this.store.revision())) {
        throw new Error(`store answered revisions [${revs.join(',')}] for ${opsList.length} commits after ${base}`);
      }
    } catch (err) {
      this.opts.logger.error({ err }, 'store commit failed; reloading state from the store');
      await this.reload().catch((e: unknown) => {
        this.stale = true;
        this.opts.logger.error({ err: e }, 'reloading state failed; the next batch tries again');
      });
      this.writing = false;
      const refusal = new ApiError('UNAVAILABLE', `the controller could not write its store: ${(err as Error).message}`, err instanceof NotLeaderError ? err.leader : '');
      for (const a of answered) a.q.reject(refusal);
      this.scheduleBatch();
      return;
    }
    if (reload) await this.load(); // the batch committed: its changes are logged below
    else if (revs.some((r, i) => r !== base + 1 + i)) {
      const real = (provisional: number): number => (provisional > base && provisional <= rev ? revs[provisional - base - 1] : provisional);
      this.state.restamp(new Set(opsList.flatMap((ops) => ops.map((o) => o.key))), real);
      for (const a of answered) a.value = restampReply(a.value, real);
    }
    this.writing = false;
    opsList.forEach((ops, i) => this.changes.append(revs[i], ops.map((o) => o.key)));
    this.loggedRevision = this.store.revision();
    // Our Txns chain on meta/rev, so no other writer's revision lies at or below our last: refused ones were ours.
    if (this.refusedAbove <= this.loggedRevision) this.refusedAbove = 0;
    const last = revs.length > 0 ? revs[revs.length - 1] : base;
    if (opsList.length > 0 && Math.floor(last / 1000) > Math.floor(base / 1000) && last > this.opts.storeHistory) {
      await this.store.compact(last - this.opts.storeHistory).catch((err: unknown) => this.opts.logger.warn({ err }, 'change log compaction failed'));
    }
    for (const a of answered) a.q.resolve(a.value);
    opsList.forEach((ops, i) => {
      for (const fn of this.listeners) {
        try {
          fn(revs[i], ops);
        } catch (err) {
          this.opts.logger.error({ err }, 'commit listener failed');
        }
      }
    });
    this.scheduleBatch();
  }

  // ---- networks

  createNetwork(spec: Partial<Network> | null | undefined): Promise<Network> {
    return this.mutate(() => {
      const isolation = isolationOf(spec?.isolation, `network ${spec?.name ?? ''}`);
      const rec = { ...validateNetwork(spec, this.state), ...(isolation === 'isolated' ? { isolation } : {}) };
      return {
        ops: [{ type: 'put', key: keys.network(rec.name), value: rec }],
        reply: () => {
          this.opts.logger.info({ network: rec.name, vni: rec.vni, ipv4: rec.ipv4Cidr, ipv6: rec.ipv6Cidr }, 'network created');
          return toNetwork(this.mustNetwork(rec.name));
        },
      };
    });
  }

  getNetwork(name: string): Network {
    return toNetwork(this.mustNetwork(name));
  }

  listNetworks(): Network[] {
    return [...this.state.networks.values()].map(toNetwork).sort((a, b) => a.name.localeCompare(b.name));
  }

  deleteNetwork(name: string): Promise<number> {
    return this.mutate(() => {
      const net = this.mustNetwork(name);
      if (net.endpoints.size > 0) {
        throw failedPrecondition(`network ${name} still has ${net.endpoints.size} endpoint(s); delete them first`);
      }
      const ops: StoreOp[] = [];
      for (const cidr of net.blocks.keys()) ops.push({ type: 'delete', key: keys.block(name, cidr) });
      for (const a of net.exceptions.keys()) ops.push({ type: 'delete', key: keys.exception(name, a) });
      for (const p of net.policies.keys()) ops.push({ type: 'delete', key: keys.policy(name, p) });
      ops.push({ type: 'delete', key: keys.network(name) });
      return {
        ops,
        reply: (revision) => {
          this.opts.logger.info({ network: name, revision }, 'network deleted');
          return revision;
        },
      };
    });
  }

  /** Changes a network's isolation; an unchanged value commits nothing. */
  updateNetwork(req: UpdateNetworkRequest): Promise<Network> {
    return this.mutate(() => {
      const net = this.mustNetwork(req.name);
      const old = net.entry.rec;
      const isolation = isolationOf(req.isolation, `network ${req.name}`) ?? old.isolation ?? 'open';
      const changed = isolation !== (old.isolation ?? 'open');
      return {
        ops: changed ? [{ type: 'put', key: keys.network(old.name), value: { ...old, isolation } }] : [],
        reply: () => {
          if (changed) this.opts.logger.info({ network: old.name, isolation }, 'network isolation changed');
          return toNetwork(this.mustNetwork(old.name));
        },
      };
    });
  }

  // ---- policies

  /** Creates a rule, or replaces the one of that name (so a change is one atomic step). */
  createPolicy(spec: CreatePolicyRequest['policy'] | null | undefined): Promise<Policy> {
    return this.mutate(() => {
      const rec = validatePolicy(spec, this.state);
      return {
        ops: [{ type: 'put', key: keys.policy(rec.network, rec.name), value: rec }],
        reply: () => {
          this.opts.logger.info({ network: rec.network, policy: rec.name }, 'policy written');
          return toPolicy(this.mustNetwork(rec.network).policies.get(rec.name)!);
        },
      };
    });
  }

  getPolicy(network: string, name: string): Policy {
    const p = this.mustNetwork(network).policies.get(name);
    if (!p) throw notFound(`network ${network} has no policy ${name || '""'}`);
    return toPolicy(p);
  }

  listPolicies(network?: string): Policy[] {
    const nets = network ? [this.mustNetwork(network)] : [...this.state.networks.values()];
    return nets.flatMap((n) => [...n.policies.values()].map(toPolicy)).sort((a, b) => (a.network + '/' + a.name < b.network + '/' + b.name ? -1 : 1));
  }

  deletePolicy(network: string, name: string): Promise<number> {
    return this.mutate(() => {
      const net = this.mustNetwork(network);
      if (!net.policies.has(name)) throw notFound(`network ${network} has no policy ${name || '""'}`);
      return {
        ops: [{ type: 'delete', key: keys.policy(network, name) }],
        reply: (revision) => {
          this.opts.logger.info({ network, policy: name, revision }, 'policy deleted');
          return revision;
        },
      };
    });
  }

  explainPolicy(req: ExplainPolicyRequest): ExplainPolicyResponse {
    return explain(this.state, req);
  }

  private mustNetwork(name: string) {
    const net = this.state.networks.get(name);
    if (!net) throw notFound(`network ${name || '""'} does not exist`);
    return net;
  }

  // ---- hosts

  register(req: RegisterRequest): Promise<{ host: Host; revision: number }> {
    return this.mutate(() => {
      const vtep = validateRegister(req, this.state);
      const rec: HostRecord = {
        name: req.name,
        vtep,
        agentVersion: req.agentVersion ?? '',
        capabilities: [...(req.capabilities ?? [])].sort(),
        up: true,
      };
      this.lastSeen.set(rec.name, Date.now());
      const old = this.state.hosts.get(rec.name);
      const changed = !old || JSON.stringify(old.rec) !== JSON.stringify(rec);
      return {
        ops: changed ? [{ type: 'put', key: keys.host(rec.name), value: rec }] : [],
        reply: () => {
          if (changed) this.opts.logger.info({ host: rec.name, vtep, previous: old?.rec.vtep }, old ? 'host re-registered' : 'host registered');
          const h = this.state.hosts.get(rec.name)!;
          return { host: toHost(h), revision: h.modRevision };
        },
      };
    });
  }

  /** Records liveness; a host that was down comes back up (its routes return). */
  async heartbeat(name: string): Promise<number> {
    checkHostName(name);
    // Liveness is the leader's to judge: a follower that took the heartbeat would leave the
    // leader deaf to this host. The agent follows the refusal to the leader.
    const refusal = this.followerRefusal();
    if (refusal) throw refusal;
    const h = this.state.hosts.get(name);
    if (!h) throw notFound(`host ${name} is not registered; register it first`);
    this.lastSeen.set(name, Date.now());
    if (!h.rec.up) await this.setUp(name, true);
    return this.revision();
  }

  /** Liveness from any agent message (watch acks); no-op for unknown hosts. */
  touch(name: string): void {
    const h = this.state.hosts.get(name);
    if (!h) return;
    this.lastSeen.set(name, Date.now());
    // A follower leaves that to the leader, which hears the host's heartbeats.
    if (!h.rec.up && !this.notLeading()) this.setUp(name, true).catch((err: unknown) => this.opts.logger.error({ err }, 'marking host up failed'));
  }

  /** Milliseconds since the host was last heard from. */
  lastSeenAgo(name: string, now = Date.now()): number {
    return now - (this.lastSeen.get(name) ?? this.hearingSince);
  }

  private setUp(name: string, up: boolean): Promise<void> {
    return this.mutate(() => {
      const h = this.state.hosts.get(name);
      const change = h !== undefined && h.rec.up !== up;
      return {
        ops: change ? [{ type: 'put', key: keys.host(name), value: { ...h.rec, up } }] : [],
        reply: () => {
          if (change) this.opts.logger.warn({ host: name, silentMs: this.lastSeenAgo(name) }, up ? 'host is back up' : 'host is down: withdrawing its routes');
        },
      };
    });
  }

  /**
   * Marks hosts down that the controller could have heard for longer than the timeout and did
   * not (silence counts only since `hearingSince`: never the controller's own absence); returns them.
   */
  async checkLiveness(now = Date.now()): Promise<string[]> {
    const down: string[] = [];
    this.followTerm();
    if (this.notLeading()) return down;
    for (const [name, h] of this.state.hosts) {
      const since = Math.max(this.lastSeen.get(name) ?? 0, this.hearingSince);
      if (h.rec.up && now - since > this.opts.hostDownAfterMs) down.push(name);
    }
    await Promise.all(down.map((name) => this.setUp(name, false)));
    return down;
  }

  /** A registered host's record, or undefined (no error: for lookups such as authorization). */
  findHost(name: string): { vtep: string } | undefined {
    return this.state.hosts.get(name)?.rec;
  }

  listHosts(): Host[] {
    return [...this.state.hosts.values()].map(toHost).sort((a, b) => a.name.localeCompare(b.name));
  }

  // ---- endpoints

  createEndpoint(req: CreateEndpointRequest): Promise<Endpoint> {
    return this.mutate(() => {
      const checked = validateEndpointRequest(req);
      let name = checked.name;
      const givenMac = checked.mac;
      const net = this.mustNetwork(req.network);
      if (!this.state.hosts.has(req.host)) {
        throw failedPrecondition(`host ${req.host} is not registered (is loom-agent running on it?)`);
      }
      const id = req.containerId;
      if (net.endpoints.has(id)) throw alreadyExists(`container ${id} already has an endpoint on network ${net.entry.rec.name}`);
      let holder = net.names.get(name);
      if (holder !== undefined && !req.name) {
        // The short default name collides: fall back to the longest label the id gives.
        name = defaultEndpointName(id, 63);
        holder = net.names.get(name);
      }
      if (holder !== undefined) throw alreadyExists(`endpoint name ${name} is already used by container ${holder} on network ${req.network}`);
      if (req.ipv6 && !net.v6) throw invalid(`network ${req.network} has no IPv6 CIDR; cannot assign ${req.ipv6}`);
      const a4 = allocateAddress(net, net.v4, req.host, id, req.ipv4 || undefined);
      const a6 = net.v6 ? allocateAddress(net, net.v6, req.host, id, req.ipv6 || undefined) : null;
      const mac = givenMac ?? macFromIpv4(a4.value);
      const macHolder = net.macs.get(mac);
      if (macHolder !== undefined) throw alreadyExists(`MAC ${mac} is already used by container ${macHolder} on network ${req.network}`);
      const labels = checkLabels(`endpoint ${name}`, req.labels);
      const rec: EndpointRecord = { network: req.network, containerId: id, name, host: req.host, mac, ipv4: a4.address, ipv6: a6?.address ?? '' };
      if (Object.keys(labels).length > 0) rec.labels = labels;
      if (checked.ports.length > 0) rec.ports = checked.ports;
      setNames(rec, checked.hostname, checked.aliases);
      if (checked.dns) rec.dns = checked.dns;
      checkNamesFree(net, rec);
      const ops: StoreOp[] = [...a4.ops, ...(a6?.ops ?? []), { type: 'put', key: keys.endpoint(req.network, id), value: rec }];
      ops.push(...this.hostGatewayOps(net, req.host, [a4.value, ...(a6 ? [a6.value] : [])], ops));
      return {
        ops,
        reply: () => toEndpoint(net, net.endpoints.get(id)!),
      };
    });
  }

  /** Replaces an endpoint's hostname, aliases or DNS settings (those `updateMask` names). */
  updateEndpoint(req: UpdateEndpointRequest): Promise<Endpoint> {
    return this.mutate(() => {
      const net = this.mustNetwork(req.network);
      const e = net.endpoints.get(req.containerId);
      if (!e) throw notFound(`container ${req.containerId || '""'} has no endpoint on network ${req.network}`);
      if (e.rec.hostGateway) throw failedPrecondition(`${req.containerId} is host ${e.rec.host}'s gateway port, not a container: it has no names`);
      const mask = new Set(req.updateMask ?? []);
      if (mask.size === 0) throw invalid('update_mask must name at least one of dns, hostname, aliases');
      for (const f of mask) if (!ENDPOINT_UPDATE_FIELDS.has(f)) throw invalid(`update_mask: "${f}" cannot be updated (only dns, hostname, aliases)`);
      const rec: EndpointRecord = { ...e.rec };
      if (mask.has('hostname')) setNames(rec, req.hostname ? checkDnsName('hostname', req.hostname) : undefined, rec.aliases ?? []);
      if (mask.has('aliases')) setNames(rec, rec.hostname, checkAliases(req.aliases));
      if (mask.has('dns')) {
        const dns = checkEndpointDns(req.dns);
        if (dns) rec.dns = dns;
        else delete rec.dns;
      }
      checkNamesFree(net, rec);
      const changed = JSON.stringify(rec) !== JSON.stringify(e.rec);
      return {
        ops: changed ? [{ type: 'put', key: keys.endpoint(req.network, req.containerId), value: rec }] : [],
        reply: () => toEndpoint(net, net.endpoints.get(req.containerId)!),
      };
    });
  }

  deleteEndpoint(network: string, containerId: string): Promise<number> {
    return this.mutate(() => {
      const net = this.mustNetwork(network);
      const e = net.endpoints.get(containerId);
      if (!e) throw notFound(`container ${containerId || '""'} has no endpoint on network ${network}`);
      if (e.rec.hostGateway) throw failedPrecondition(`${containerId} is host ${e.rec.host}'s gateway port; it leaves with the host's last endpoint`);
      const ops: StoreOp[] = [{ type: 'delete', key: keys.endpoint(network, containerId) }];
      // The host's last endpoint in the network takes the host's gateway address with it.
      const gw = net.endpoints.get(hostGatewayId(e.rec.host));
      const others = [...net.endpoints.values()].some((x) => x.rec.host === e.rec.host && !x.rec.hostGateway && x.rec.containerId !== containerId);
      if (gw && !others) {
        const leaving = new Set([containerId, gw.rec.containerId]);
        ops.push({ type: 'delete', key: keys.endpoint(network, gw.rec.containerId) });
        ops.push(...dedupe(releaseOps(this.state, net, e.rec, leaving), releaseOps(this.state, net, gw.rec, leaving)));
      } else {
        ops.push(...releaseOps(this.state, net, e.rec));
      }
      return {
        ops,
        reply: (revision) => revision,
      };
    });
  }

  /** An endpoint's record, or undefined. */
  findEndpoint(network: string, containerId: string): { host: string } | undefined {
    return this.state.networks.get(network)?.endpoints.get(containerId)?.rec;
  }

  /**
   * The host's gateway-port address in the network, allocated with its first endpoint there when
   * its agent has a gateway port (capability `gateway-port`): from the top of the host's block,
   * so containers keep the addresses they would get without it. `taken`: addresses this mutation
   * already chose; `pending`: its ops (a block it leases is leased once).
   */
  private hostGatewayOps(net: NetworkState, host: string, taken: bigint[], pending: readonly StoreOp[]): StoreOp[] {
    const id = hostGatewayId(host);
    if (net.endpoints.has(id) || !this.state.hosts.get(host)?.rec.capabilities.includes(GATEWAY_PORT_CAPABILITY)) return [];
    const pick = { fromTop: true, exclude: new Set(taken) };
    const g4 = allocateAddress(net, net.v4, host, id, undefined, pick);
    const g6 = net.v6 ? allocateAddress(net, net.v6, host, id, undefined, pick) : null;
    const rec: EndpointRecord = {
      network: net.entry.rec.name,
      containerId: id,
      name: id,
      host,
      mac: macFromIpv4(g4.value),
      ipv4: g4.address,
      ipv6: g6?.address ?? '',
      hostGateway: true,
    };
    const leased = new Set(pending.map((o) => o.key));
    return [...g4.ops, ...(g6?.ops ?? [])].filter((o) => !leased.has(o.key)).concat({ type: 'put', key: keys.endpoint(rec.network, id), value: rec });
  }

  getEndpoint(network: string, containerId: string): Endpoint {
    const net = this.mustNetwork(network);
    const e = net.endpoints.get(containerId);
    if (!e) throw notFound(`container ${containerId || '""'} has no endpoint on network ${network}`);
    return toEndpoint(net, e);
  }

  listEndpoints(filter: { network?: string; host?: string }): Endpoint[] {
    const nets = filter.network ? [this.mustNetwork(filter.network)] : [...this.state.networks.values()];
    const out: Endpoint[] = [];
    for (const net of nets) {
      for (const e of net.endpoints.values()) {
        if (!filter.host || e.rec.host === filter.host) out.push(toEndpoint(net, e));
      }
    }
    return out;
  }
}

const ENDPOINT_UPDATE_FIELDS = new Set(['dns', 'hostname', 'aliases']);

/**
 * Sets the record's hostname and aliases: a hostname equal to the derived one is not kept (it
 * follows the name), nor are aliases equal to the endpoint's other names (podman passes the
 * container's name among its aliases).
 */
function setNames(rec: EndpointRecord, hostname: string | undefined, aliases: readonly string[]): void {
  const derived = dnsName(rec.name);
  if (hostname && hostname !== derived) rec.hostname = hostname;
  else delete rec.hostname;
  const own = new Set([derived, ...(rec.hostname ? [rec.hostname] : [])]);
  const kept = aliases.filter((a) => !own.has(a));
  if (kept.length > 0) rec.aliases = kept;
  else delete rec.aliases;
}

/** ALREADY_EXISTS unless the record's hostname and aliases are names no other endpoint of the network answers to. */
function checkNamesFree(net: NetworkState, rec: EndpointRecord): void {
  for (const [what, name] of [...(rec.hostname ? [['hostname', rec.hostname] as const] : []), ...(rec.aliases ?? []).map((a) => ['alias', a] as const)]) {
    const holders = [...(net.dnsNames.get(name) ?? [])].filter((id) => id !== rec.containerId);
    if (holders.length > 0) {
      const other = net.endpoints.get(holders[0]!)?.rec;
      throw alreadyExists(`${what} ${name} is already a DNS name of endpoint ${other?.name ?? holders[0]} (container ${holders[0]}) on network ${rec.network}`);
    }
  }
}

/** Revision fields of API replies (Network, Endpoint, Host, deletions' `revision`). */
const REVISION_FIELDS = new Set(['revision', 'createRevision', 'modRevision']);

/**
 * A reply computed at provisional revisions, with the store's real ones: a bare number is a
 * revision (deletions answer one), and so is every revision field of an object, at any depth.
 */
function restampReply(value: unknown, real: (provisional: number) => number): unknown {
  if (typeof value === 'number') return real(value);
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'number' ? v : restampReply(v, real)));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = typeof v === 'number' ? (REVISION_FIELDS.has(k) ? real(v) : v) : restampReply(v, real);
  }
  return out;
}
