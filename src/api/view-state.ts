/**
 * Client side of Watch: applies WatchResponses to a host view the way an agent must (reset,
 * partial chunks applied atomically, idempotent upserts/removals). Used by tests and the
 * benchmark; the agent can use it as is.
 */
import type { EndpointInfo, Network, Policy, Route, WatchEvent, WatchResponse } from './types.js';

export interface NetworkViewState {
  network: Network;
  routes: Map<string, Route>; // by prefix
  endpoints: Map<string, EndpointInfo>; // by container id
  policies: Map<string, Policy>; // by name
}

export class ViewState {
  revision = 0;
  /** Store the revision belongs to; pass it back with the revision when resuming. */
  storeId = '';
  readonly networks = new Map<string, NetworkViewState>();
  /** Bumped by every change to networks or endpoints (not rules or routes): who is named what. */
  directoryVersion = 0;
  private pending: WatchEvent[] = [];
  private pendingReset = false;

  /** Applies a message; returns true when a complete revision was applied (time to ack). */
  apply(msg: WatchResponse): boolean {
    if (msg.reset) {
      this.pending = [];
      this.pendingReset = true;
    }
    for (const ev of msg.events) this.pending.push(ev);
    if (msg.partial) return false;
    if (this.pendingReset) {
      this.networks.clear();
      this.directoryVersion++;
    }
    for (const ev of this.pending) this.applyEvent(ev);
    this.pending = [];
    this.pendingReset = false;
    this.revision = msg.revision;
    this.storeId = msg.storeId;
    return true;
  }

  private applyEvent(ev: WatchEvent): void {
    if (ev.network || ev.networkRemoved || ev.endpoint || ev.endpointRemoved) this.directoryVersion++;
    if (ev.network) {
      const cur = this.networks.get(ev.network.name);
      if (cur) cur.network = ev.network;
      else this.networks.set(ev.network.name, { network: ev.network, routes: new Map(), endpoints: new Map(), policies: new Map() });
    } else if (ev.networkRemoved) {
      this.networks.delete(ev.networkRemoved);
    } else if (ev.route) {
      this.networks.get(ev.route.network)?.routes.set(ev.route.prefix, ev.route);
    } else if (ev.routeRemoved) {
      this.networks.get(ev.routeRemoved.network)?.routes.delete(ev.routeRemoved.prefix);
    } else if (ev.endpoint) {
      this.networks.get(ev.endpoint.network)?.endpoints.set(ev.endpoint.containerId, ev.endpoint);
    } else if (ev.endpointRemoved) {
      this.networks.get(ev.endpointRemoved.network)?.endpoints.delete(ev.endpointRemoved.containerId);
    } else if (ev.policy) {
      this.networks.get(ev.policy.network)?.policies.set(ev.policy.name, ev.policy);
    } else if (ev.policyRemoved) {
      this.networks.get(ev.policyRemoved.network)?.policies.delete(ev.policyRemoved.name);
    }
  }

  /** A plain, order-independent form (sorted) for comparisons. */
  toJSON(): { network: Network; routes: Route[]; endpoints: EndpointInfo[]; policies?: Policy[] }[] {
    return [...this.networks.values()]
      .sort((a, b) => a.network.name.localeCompare(b.network.name))
      .map((n) => ({
        network: n.network,
        routes: [...n.routes.values()].sort((a, b) => a.prefix.localeCompare(b.prefix)),
        endpoints: [...n.endpoints.values()].sort((a, b) => a.containerId.localeCompare(b.containerId)),
        // Only when there are some, so views without policy compare as they always did.
        ...(n.policies.size > 0 ? { policies: [...n.policies.values()].sort((a, b) => a.name.localeCompare(b.name)) } : {}),
      }));
  }
}
