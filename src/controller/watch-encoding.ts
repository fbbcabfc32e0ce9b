/**
 * Builds encoded WatchResponse messages by concatenation: protobuf lets a message be written as
 * its scalar fields followed by each repeated `events` entry (field 4) as its own
 * length-delimited frame. Each event is encoded once and its frame reused for every agent
 * (endpoint frames are cached per record), so a snapshot of 100k endpoints is mostly memcpy.
 */
import protobuf from 'protobufjs';
import type { Route, WatchEvent } from '../api/types.js';
import { codecs } from '../api/proto.js';
import { toEndpointInfo, toNetwork } from './convert.js';
import type { EndpointRecord, HostRecord } from './model.js';
import type { Entry, NetworkState } from './state.js';

const EVENTS_TAG = (4 << 3) | 2;

/** The field-4 frame of one event. */
export function eventFrame(ev: WatchEvent): Buffer {
  const body = codecs.watchEvent.encode(ev);
  return Buffer.from(protobuf.Writer.create().uint32(EVENTS_TAG).bytes(body).finish());
}

const endpointFrames = new WeakMap<EndpointRecord, Buffer>();

/** Frame of an endpoint upsert, cached per (immutable) record. */
export function endpointFrame(rec: EndpointRecord): Buffer {
  let f = endpointFrames.get(rec);
  if (!f) endpointFrames.set(rec, (f = eventFrame({ endpoint: toEndpointInfo(rec) })));
  return f;
}

const networkFrames = new WeakMap<Entry<unknown>, Buffer>();

/** Frame of a network upsert, cached per network entry. */
export function networkFrame(net: NetworkState): Buffer {
  let f = networkFrames.get(net.entry);
  if (!f) networkFrames.set(net.entry, (f = eventFrame({ network: toNetwork(net) })));
  return f;
}

const routeFrames = new WeakMap<object, { owner: Entry<HostRecord>; frame: Buffer }>();

/** Frame of a route, cached per (block or exception entry, owner host entry). */
export function routeFrame(source: object, owner: Entry<HostRecord>, route: Route): Buffer {
  const c = routeFrames.get(source);
  if (c && c.owner === owner) return c.frame;
  const frame = eventFrame({ route });
  routeFrames.set(source, { owner, frame });
  return frame;
}

/** A complete WatchResponse from its header fields and pre-encoded event frames. */
export function watchMessage(revision: number, reset: boolean, partial: boolean, frames: Buffer[], framesBytes: number, storeId = ''): Buffer {
  const w = protobuf.Writer.create();
  if (revision) w.uint32((1 << 3) | 0).uint64(revision);
  if (reset) w.uint32((2 << 3) | 0).bool(true);
  if (partial) w.uint32((3 << 3) | 0).bool(true);
  if (storeId) w.uint32((5 << 3) | 2).string(storeId);
  const header = w.finish();
  return Buffer.concat([header, ...frames], header.length + framesBytes);
}
