/**
 * The events that take an agent's view from what it has to the current state. Deltas are
 * coalesced: for every key changed since the agent's revision we send the key's CURRENT state
 * (upsert or removal), never the history, so a burst of changes costs one event per key.
 * Events are produced lazily through an encoder, so the hub can stream them in chunks and
 * reuse encoded bytes.
 */
import type { Route, WatchEvent } from '../api/types.js';
import { parseKey, type EndpointRecord, type HostRecord } from './model.js';
import { blockRoute, exceptionRoute } from './routes.js';
import { toPolicy } from './convert.js';
import type { ClusterState, Entry, NetworkState } from './state.js';

/**
 * Turns events into the output type (encoded frames in the hub, objects in tests). The
 * record-based methods let the hub cache encodings: records are immutable, replaced on change.
 */
export interface EventEncoder<T> {
  event(ev: WatchEvent): T;
  endpoint(rec: EndpointRecord): T;
  network(net: NetworkState): T;
  /** A route derived from `source` (a block or exception entry) and its owner's entry. */
  route(source: object, owner: Entry<HostRecord>, route: Route): T;
}

function routeEvent<T>(state: ClusterState, source: Entry<{ host: string }>, route: Route | null, enc: EventEncoder<T>): T | null {
  return route ? enc.route(source, state.hosts.get(route.host)!, route) : null;
}

function* fullNetwork<T>(state: ClusterState, net: NetworkState, viewer: string, enc: EventEncoder<T>): Generator<T> {
  yield enc.network(net);
  for (const b of net.blocks.values()) {
    const r = routeEvent(state, b, blockRoute(state, b.rec, viewer), enc);
    if (r !== null) yield r;
  }
  for (const e of net.exceptions.values()) {
    const r = routeEvent(state, e, exceptionRoute(state, e.rec, viewer), enc);
    if (r !== null) yield r;
  }
  for (const e of net.endpoints.values()) yield enc.endpoint(e.rec);
  for (const p of net.policies.values()) yield enc.event({ policy: toPolicy(p) });
}

function* blockEvent<T>(state: ClusterState, net: NetworkState, cidr: string, viewer: string, enc: EventEncoder<T>): Generator<T> {
  const b = net.blocks.get(cidr);
  const r = b ? routeEvent(state, b, blockRoute(state, b.rec, viewer), enc) : null;
  yield r ?? enc.event({ routeRemoved: { network: net.entry.rec.name, prefix: cidr } });
}

function* exceptionEvent<T>(state: ClusterState, net: NetworkState, address: string, viewer: string, enc: EventEncoder<T>): Generator<T> {
  const e = net.exceptions.get(address);
  const r = e ? routeEvent(state, e, exceptionRoute(state, e.rec, viewer), enc) : null;
  const prefix = `${address}/${address.includes(':') ? 128 : 32}`;
  yield r ?? enc.event({ routeRemoved: { network: net.entry.rec.name, prefix } });
}

/**
 * Hosts whose own view of these changes differs from everybody else's: owners of changed
 * blocks and exceptions (they get no route to themselves) and changed hosts.
 */
export function viewerSpecificHosts(state: ClusterState, changed: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const key of changed) {
    const { kind, name, rest } = parseKey(key);
    if (kind === 'hosts') out.add(name);
    else if (kind === 'blocks') {
      const b = state.networks.get(name)?.blocks.get(rest);
      if (b) out.add(b.rec.host);
    } else if (kind === 'exceptions') {
      const e = state.networks.get(name)?.exceptions.get(rest);
      if (e) out.add(e.rec.host);
    }
  }
  return out;
}

/**
 * Events for `viewer`. `known`: networks the agent holds; `current`: networks it should hold;
 * `changed`: keys changed since the agent's revision, or null for a snapshot (the agent starts
 * empty, so `known` must be empty).
 */
export function* viewEvents<T>(
  state: ClusterState,
  viewer: string,
  known: ReadonlySet<string>,
  current: ReadonlySet<string>,
  changed: ReadonlySet<string> | null,
  enc: EventEncoder<T>,
): Generator<T> {
  for (const n of known) if (!current.has(n)) yield enc.event({ networkRemoved: n });
  const kept: string[] = [];
  for (const n of current) {
    const net = state.networks.get(n);
    if (!net) continue;
    if (changed === null || !known.has(n)) yield* fullNetwork(state, net, viewer, enc);
    else kept.push(n);
  }
  if (changed === null || kept.length === 0) return;
  const keptSet = new Set(kept);
  const hosts: string[] = [];
  for (const key of changed) {
    const { kind, name, rest } = parseKey(key);
    if (kind === 'hosts') {
      if (name !== viewer) hosts.push(name);
      continue;
    }
    if (!keptSet.has(name)) continue;
    const net = state.networks.get(name);
    if (!net) continue;
    switch (kind) {
      case 'networks':
        yield enc.network(net);
        break;
      case 'blocks':
        yield* blockEvent(state, net, rest, viewer, enc);
        break;
      case 'exceptions':
        yield* exceptionEvent(state, net, rest, viewer, enc);
        break;
      case 'endpoints': {
        const e = net.endpoints.get(rest);
        yield e ? enc.endpoint(e.rec) : enc.event({ endpointRemoved: { network: name, containerId: rest } });
        break;
      }
      case 'policies': {
        // Every host of the network gets its rules: an endpoint's labels, and so who a rule
        // names, can change on any host at any time.
        const p = net.policies.get(rest);
        yield enc.event(p ? { policy: toPolicy(p) } : { policyRemoved: { network: name, name: rest } });
        break;
      }
    }
  }
  // A host went down, came back or moved its VTEP: re-state all its routes.
  for (const h of hosts) {
    for (const n of kept) {
      const net = state.networks.get(n);
      if (!net) continue;
      for (const cidr of net.hostBlocks.get(h) ?? []) yield* blockEvent(state, net, cidr, viewer, enc);
      for (const a of net.hostExceptions.get(h) ?? []) yield* exceptionEvent(state, net, a, viewer, enc);
    }
  }
}
