/**
 * Per-host view computation (pure). A host's view holds, for each network it has at least one
 * endpoint in:
 *  - the network (VNI, CIDRs, tunnel type, MTU, gateways, DNS);
 *  - routes: the blocks of every OTHER host that is up, and the exceptions (single static or
 *    borrowed addresses) of every other up host, each with that host's VTEP. This is the
 *    forwarding state: it grows with hosts, not endpoints;
 *  - the endpoint directory (name, MAC, addresses, host) of the network, for ARP/ND, DNS and
 *    policy. The host's own endpoints are the entries whose host is itself.
 * Networks without a local endpoint are not in the view. Down hosts contribute no routes.
 */
import type { EndpointInfo, Network, Route } from '../api/types.js';
import { toEndpointInfo, toNetwork } from './convert.js';
import type { BlockRecord, ExceptionRecord } from './model.js';
import type { ClusterState, NetworkState } from './state.js';

export interface NetworkView {
  network: Network;
  routes: Route[];
  endpoints: EndpointInfo[];
}

export interface HostView {
  host: string;
  networks: NetworkView[];
}

/** Whether a host is registered and currently considered alive. */
export function isHostUp(state: ClusterState, name: string): boolean {
  return state.hosts.get(name)?.rec.up === true;
}

function routeTo(state: ClusterState, network: string, prefix: string, owner: string, viewer: string, kind: Route['kind']): Route | null {
  if (owner === viewer) return null;
  const host = state.hosts.get(owner);
  if (!host || !host.rec.up) return null;
  return { network, prefix, host: owner, vtep: host.rec.vtep, kind };
}

/** The route `viewer` needs for a block, or null (its own block, or the owner is down). */
export function blockRoute(state: ClusterState, b: BlockRecord, viewer: string): Route | null {
  return routeTo(state, b.network, b.cidr, b.host, viewer, 'ROUTE_KIND_BLOCK');
}

/** The host route `viewer` needs for an exception, or null. */
export function exceptionRoute(state: ClusterState, e: ExceptionRecord, viewer: string): Route | null {
  const prefix = `${e.address}/${e.address.includes(':') ? 128 : 32}`;
  return routeTo(state, e.network, prefix, e.host, viewer, 'ROUTE_KIND_EXCEPTION');
}

/** All routes of a network as seen from `viewer`. */
export function networkRoutes(state: ClusterState, net: NetworkState, viewer: string): Route[] {
  const out: Route[] = [];
  for (const b of net.blocks.values()) {
    const r = blockRoute(state, b.rec, viewer);
    if (r) out.push(r);
  }
  for (const e of net.exceptions.values()) {
    const r = exceptionRoute(state, e.rec, viewer);
    if (r) out.push(r);
  }
  return out;
}

/** One network of a host's view. */
export function networkView(state: ClusterState, net: NetworkState, viewer: string): NetworkView {
  return {
    network: toNetwork(net),
    routes: networkRoutes(state, net, viewer),
    endpoints: [...net.endpoints.values()].map((e) => toEndpointInfo(e.rec)),
  };
}

/** The complete view of `host`, networks in name order. */
export function hostView(state: ClusterState, host: string): HostView {
  const names = [...state.networksOf(host)].sort();
  const networks: NetworkView[] = [];
  for (const n of names) {
    const net = state.networks.get(n);
    if (net) networks.push(networkView(state, net, host));
  }
  return { host, networks };
}
