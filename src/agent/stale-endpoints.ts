// Endpoints whose container vanished while nobody told the agent (a DEL that failed while the
// agent was down, a namespace deleted behind the runtime's back): found at start and by a
// periodic sweep, then removed from the controller and from OVS, retrying until both are done.
import type { Logger } from 'pino';
import type { Netlink } from '../netlink/index.js';
import { netnsPathProblem } from '../netlink/netns.js';
import type { EndpointPortRecord } from './ovs.js';
import type { AgentMetrics } from './metrics.js';

/**
 * When a stale endpoint was found: recovering ports (agent start, ovs-vswitchd restart), by the
 * sweep, or handed over by a CNI DEL that answered the runtime before releasing at the controller.
 */
export type FoundBy = 'recovery' | 'sweep' | 'detach';

export interface StaleEndpoint {
  hostIfname: string;
  record: EndpointPortRecord;
  reason: string;
  found: FoundBy;
}

/** Names of the links in the namespace OVS's ports live in (one dump per check round). */
export async function hostLinkNames(host: Netlink): Promise<Set<string>> {
  return new Set((await host.link.list()).map((l) => l.name));
}

/**
 * Why the container side of an endpoint is gone, or null when it is there (or cannot be told:
 * only a certain answer removes an endpoint). Never opens anything that is not a namespace.
 */
export async function containerGoneReason(hostLinks: ReadonlySet<string>, hostIfname: string, netns: string): Promise<string | null> {
  const problem = await netnsPathProblem(netns);
  if (problem?.certain) return `container namespace ${netns} ${problem.reason}`;
  if (!hostLinks.has(hostIfname)) return `host interface ${hostIfname} is gone (its veth pair died with the container)`;
  return null;
}

export interface ReclaimerDeps {
  /** True once the agent can call the controller (registered). */
  connected(): boolean;
  /**
   * Deletes the endpoint at the controller if it still belongs to this host and was not attached
   * again meanwhile; gone is success. Says what it found.
   */
  deleteAtController(ep: StaleEndpoint): Promise<'deleted' | 'absent' | 'elsewhere' | 'reattached'>;
  /** Removes the OVS port and the host veth unless the container was attached again meanwhile. */
  removeLocal(ep: StaleEndpoint): Promise<void>;
  log: Logger;
  metrics?: AgentMetrics | undefined;
}

const keyOf = (containerId: string, ifname: string) => `${containerId}/${ifname}`;
const key = (r: EndpointPortRecord) => keyOf(r.containerId, r.ifname);
const describeEp = (ep: StaleEndpoint) => ({ containerId: ep.record.containerId, network: ep.record.network, ifname: ep.record.ifname, port: ep.hostIfname, reason: ep.reason });

/**
 * Reclaims stale endpoints one after another. The controller goes first and OVS second: if the
 * agent stops in between, the port is still there at the next start, found stale again and the
 * work resumed, so nothing leaks (deleting at the controller is idempotent).
 */
export class EndpointReclaimer {
  private readonly pending = new Map<string, StaleEndpoint>();
  /** Keys an attach is working on: never reclaimed meanwhile. */
  private readonly claimed = new Map<string, number>();
  /** Reclaims under way by key, so an attach of the same container can wait for one. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private backoffMs = 500;
  private stopped = false;

  constructor(private readonly deps: ReclaimerDeps) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  add(ep: StaleEndpoint): void {
    if (this.stopped || this.pending.has(key(ep.record)) || this.claimed.has(key(ep.record))) return;
    this.pending.set(key(ep.record), ep);
    const fields = { ...describeEp(ep), found: ep.found };
    if (ep.found === 'detach') this.deps.log.debug(fields, 'container detached; releasing its endpoint at the controller');
    else this.deps.log.warn(fields, 'container gone; reclaiming its endpoint');
    this.schedule(0);
  }

  /** The network of the endpoint pending for this container interface, if any. */
  pendingNetwork(containerId: string, ifname: string): string | undefined {
    return this.pending.get(keyOf(containerId, ifname))?.record.network;
  }

  /**
   * An attach of this container and interface begins: a reclaim under way is waited for, one
   * pending is done now (the attach then creates the endpoint afresh, as the runtime asks, and
   * never races a release of the old one), and none starts until `release`. Throws (and claims
   * nothing) when that reclaim fails.
   */
  async claim(containerId: string, ifname: string): Promise<void> {
    const k = keyOf(containerId, ifname);
    this.claimed.set(k, (this.claimed.get(k) ?? 0) + 1);
    try {
      await this.inFlight.get(k)?.catch(() => undefined);
      const ep = this.pending.get(k);
      if (ep) await this.reclaim(k, ep);
    } catch (err) {
      this.release(containerId, ifname);
      throw err;
    }
  }

  release(containerId: string, ifname: string): void {
    const k = keyOf(containerId, ifname);
    const n = (this.claimed.get(k) ?? 1) - 1;
    if (n > 0) this.claimed.set(k, n);
    else {
      this.claimed.delete(k);
      if (this.pending.has(k)) this.schedule(this.backoffMs);
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), delayMs);
    this.timer.unref();
  }

  /** Controller first, then OVS; rejects when either fails (the endpoint stays pending). */
  private reclaim(k: string, ep: StaleEndpoint): Promise<void> {
    const done = this.reclaimNow(k, ep).finally(() => {
      if (this.inFlight.get(k) === done) this.inFlight.delete(k);
    });
    this.inFlight.set(k, done);
    return done;
  }

  private async reclaimNow(k: string, ep: StaleEndpoint): Promise<void> {
    const controller = await this.deps.deleteAtController(ep);
    await this.deps.removeLocal(ep);
    if (this.pending.get(k) === ep) this.pending.delete(k);
    this.deps.metrics?.endpointsReclaimed.inc({ found: ep.found });
    if (ep.found === 'detach') this.deps.log.debug({ ...describeEp(ep), controller }, 'detached endpoint released');
    else this.deps.log.info({ ...describeEp(ep), controller }, 'stale endpoint reclaimed');
  }

  private async run(): Promise<void> {
    if (!this.deps.connected()) {
      this.schedule(500);
      return;
    }
    this.running = true;
    let failed = false;
    for (const [k, ep] of [...this.pending]) {
      if (this.stopped) break;
      if (this.pending.get(k) !== ep || this.claimed.has(k) || this.inFlight.has(k)) continue;
      try {
        await this.reclaim(k, ep);
      } catch (err) {
        failed = true;
        this.deps.log.warn({ ...describeEp(ep), err: (err as Error).message, retryInMs: this.backoffMs }, ep.found === 'detach' ? 'releasing a detached endpoint failed; will retry' : 'reclaiming a stale endpoint failed; will retry');
      }
    }
    this.running = false;
    if (failed) {
      this.schedule(this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
    } else {
      this.backoffMs = 500;
      // Claimed ones wait for their attach: `release` schedules them.
      if ([...this.pending.keys()].some((k) => !this.claimed.has(k))) this.schedule(0);
    }
  }
}
