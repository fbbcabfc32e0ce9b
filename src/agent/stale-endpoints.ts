// Endpoints whose container vanished while nobody told the agent (a DEL that failed while the
// agent was down, a namespace deleted behind the runtime's back): found at start and by a
// periodic sweep, then removed from the controller and from OVS, retrying until both are done.
import type { Logger } from 'pino';
import type { Netlink } from '../netlink/index.js';
import { netnsPathProblem } from '../netlink/netns.js';
import type { EndpointPortRecord } from './ovs.js';
import type { AgentMetrics } from './metrics.js';

/** When a stale endpoint was found: recovering ports (agent start, ovs-vswitchd restart) or by the sweep. */
export type FoundBy = 'recovery' | 'sweep';

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

const key = (r: EndpointPortRecord) => `${r.containerId}/${r.ifname}`;

/**
 * Reclaims stale endpoints one after another. The controller goes first and OVS second: if the
 * agent stops in between, the port is still there at the next start, found stale again and the
 * work resumed, so nothing leaks (deleting at the controller is idempotent).
 */
export class EndpointReclaimer {
  private readonly pending = new Map<string, StaleEndpoint>();
  /** Keys an attach is working on: never reclaimed meanwhile. */
  private readonly claimed = new Map<string, number>();
  /** The reclaim under way, so an attach of the same container can wait for it. */
  private inFlight: { key: string; done: Promise<void> } | undefined;
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
    this.deps.log.warn(
      { containerId: ep.record.containerId, network: ep.record.network, ifname: ep.record.ifname, port: ep.hostIfname, reason: ep.reason, found: ep.found },
      'container gone; reclaiming its endpoint',
    );
    this.schedule(0);
  }

  /**
   * An attach of this container and interface begins: a pending reclaim is dropped (the attach
   * replaces the port and reuses or recreates the endpoint), one under way is waited for, and
   * none starts until `release`.
   */
  async claim(containerId: string, ifname: string): Promise<void> {
    const k = `${containerId}/${ifname}`;
    this.claimed.set(k, (this.claimed.get(k) ?? 0) + 1);
    this.pending.delete(k);
    if (this.inFlight?.key === k) await this.inFlight.done;
  }

  release(containerId: string, ifname: string): void {
    const k = `${containerId}/${ifname}`;
    const n = (this.claimed.get(k) ?? 1) - 1;
    if (n > 0) this.claimed.set(k, n);
    else this.claimed.delete(k);
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

  private async run(): Promise<void> {
    if (!this.deps.connected()) {
      this.schedule(500);
      return;
    }
    this.running = true;
    let failed = false;
    for (const [k, ep] of [...this.pending]) {
      if (this.stopped) break;
      if (this.pending.get(k) !== ep || this.claimed.has(k)) continue;
      let finished!: () => void;
      this.inFlight = { key: k, done: new Promise<void>((r) => (finished = r)) };
      const fields = { containerId: ep.record.containerId, network: ep.record.network, ifname: ep.record.ifname, port: ep.hostIfname, reason: ep.reason };
      try {
        const controller = await this.deps.deleteAtController(ep);
        await this.deps.removeLocal(ep);
        this.pending.delete(k);
        this.deps.metrics?.endpointsReclaimed.inc({ found: ep.found });
        this.deps.log.info({ ...fields, controller }, 'stale endpoint reclaimed');
      } catch (err) {
        failed = true;
        this.deps.log.warn({ ...fields, err: (err as Error).message, retryInMs: this.backoffMs }, 'reclaiming a stale endpoint failed; will retry');
      } finally {
        this.inFlight = undefined;
        finished();
      }
    }
    this.running = false;
    if (failed) {
      this.schedule(this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
    } else {
      this.backoffMs = 500;
      if (this.pending.size > 0) this.schedule(0);
    }
  }
}
