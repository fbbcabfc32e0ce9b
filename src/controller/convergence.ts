/**
 * Convergence: the revision each host has applied, from the progress the watch hub reports
 * (acks, and revisions that did not concern the host). It answers `Wait` and `GetStatus`, feeds
 * the propagation histogram, and counts an ack as a sign of life.
 */
import { HostDrops } from './host-drops.js';
import type { HostStatus } from '../api/types.js';
import type { Controller } from './controller.js';

/** One host's stream progress, as the watch hub reports it. */
export interface HostProgress {
  host: string;
  /** Highest revision the agent acknowledged on its stream. */
  acked: number;
  /** Revision up to which the agent is current (>= acked: later revisions did not concern it). */
  applied: number;
  /** False: the host has no stream any more. */
  connected: boolean;
}

interface HostEntry {
  acked: number;
  applied: number;
  connected: boolean;
}

interface Waiter {
  revision: number;
  resolve: () => void;
}

export interface ConvergenceOptions {
  /** Seconds from a commit to an agent acknowledging it, per ack. */
  onAckLatency?: (seconds: number) => void;
}

export class Convergence {
  private readonly hosts = new Map<string, HostEntry>();
  /** Each host's drops, from its heartbeats. */
  readonly drops = new HostDrops();
  private readonly commitTimes = new Map<number, number>();
  private waiters: Waiter[] = [];
  private connectedCount = 0;

  constructor(
    private readonly controller: Controller,
    private readonly opts: ConvergenceOptions = {},
  ) {
    controller.onCommit((rev) => {
      this.commitTimes.set(rev, performance.now());
      if (this.commitTimes.size > 100_000) {
        for (const k of this.commitTimes.keys()) {
          this.commitTimes.delete(k);
          if (this.commitTimes.size <= 90_000) break;
        }
      }
    });
  }

  /** Number of open Watch streams. */
  get connected(): number {
    return this.connectedCount;
  }

  /** Applies the hub's progress reports. */
  report(batch: readonly HostProgress[]): void {
    const now = performance.now();
    for (const p of batch) {
      let e = this.hosts.get(p.host);
      if (!e) this.hosts.set(p.host, (e = { acked: 0, applied: 0, connected: false }));
      if (!p.connected) {
        if (e.connected) this.connectedCount--;
        e.connected = false;
        continue;
      }
      if (!e.connected) {
        // A (re)connect: what it acked before is no fresh ack.
        this.connectedCount++;
        e.connected = true;
        this.controller.touch(p.host);
      } else if (p.acked > e.acked) {
        const t = this.commitTimes.get(p.acked);
        if (t !== undefined) this.opts.onAckLatency?.((now - t) / 1000);
      }
      if (p.acked > e.acked) {
        e.acked = p.acked;
        this.controller.touch(p.host);
      }
      e.applied = Math.max(p.acked, p.applied);
    }
    // Now, not on a later turn: the hub already batches reports per turn, and a Wait reply
    // deferred behind the next burst of acks would add that burst to the measured latency.
    this.checkWaiters();
  }

  /**
   * A heartbeat's applied revision, for a host whose Watch stream is not on this controller (it
   * watches a follower): counts as its ack. A host streaming here is counted by its acks.
   */
  heard(host: string, applied: number): void {
    let e = this.hosts.get(host);
    if (e?.connected) return;
    if (!e) this.hosts.set(host, (e = { acked: 0, applied: 0, connected: false }));
    // Its stream sends nothing for revisions that do not concern it: current up to now if
    // nothing it sees changed since what it applied.
    const current = this.untouchedSince(host, applied) ? Math.max(applied, this.controller.revision()) : applied;
    if (current <= e.acked) return;
    e.acked = current;
    e.applied = Math.max(e.applied, current);
    this.checkWaiters();
  }

  /** Whether no key in `host`'s view changed after `revision` (false when the change log does not reach back). */
  private untouchedSince(host: string, revision: number): boolean {
    const keys = this.controller.changes.keysSince(revision);
    if (!keys) return false;
    const state = this.controller.state;
    const nets = state.networksOf(host);
    for (const k of keys) {
      const [kind, name] = k.split('/', 3);
      if (kind === 'hosts') {
        if (name === host || [...state.networksOf(name)].some((n) => nets.has(n))) return false;
      } else if (nets.has(name)) {
        return false;
      }
    }
    return true;
  }

  /**
   * Revision up to which the host's agent is known to be current. A host without a stream and
   * without networks has nothing to apply.
   */
  appliedRevision(host: string): number {
    const e = this.hosts.get(host);
    if (!e?.connected) return this.controller.state.networksOf(host).size === 0 ? this.controller.revision() : (e?.acked ?? 0);
    return Math.max(e.acked, e.applied);
  }

  /** Hosts that are up and have not applied `revision`. */
  pending(revision: number): string[] {
    const out: string[] = [];
    for (const [name, h] of this.controller.state.hosts) {
      if (h.rec.up && this.appliedRevision(name) < revision) out.push(name);
    }
    return out.sort();
  }

  /** Resolves when every up host applied `revision` (true) or after the timeout (false). */
  wait(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.pending(revision).length === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w: Waiter = { revision, resolve: () => resolve(true) };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(false);
      }, timeoutMs);
      w.resolve = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(w);
      this.waiters.sort((a, b) => a.revision - b.revision);
    });
  }

  private checkWaiters(): void {
    if (this.waiters.length === 0) return;
    let min = Infinity;
    for (const [name, h] of this.controller.state.hosts) {
      if (h.rec.up) min = Math.min(min, this.appliedRevision(name));
    }
    while (this.waiters.length > 0 && this.waiters[0].revision <= min) this.waiters.shift()!.resolve();
  }

  /** Per-host status for loomctl. */
  status(now = Date.now()): HostStatus[] {
    const rev = this.controller.revision();
    const state = this.controller.state;
    return [...state.hosts.values()]
      .map((h) => {
        const name = h.rec.name;
        const applied = this.appliedRevision(name);
        const e = this.hosts.get(name);
        let endpoints = 0;
        for (const n of state.networksOf(name)) endpoints += state.networks.get(n)?.hostEndpoints.get(name) ?? 0;
        return {
          name,
          vtep: h.rec.vtep,
          up: h.rec.up,
          connected: e?.connected ?? false,
          ackedRevision: e?.acked ?? 0,
          appliedRevision: applied,
          lag: Math.max(0, rev - applied),
          lastSeenMsAgo: Math.max(0, this.controller.lastSeenAgo(name, now)),
          networks: state.networksOf(name).size,
          endpoints,
          agentVersion: h.rec.agentVersion,
          drops: this.drops.of(name),
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }
}
