/** Routes: struct rtmsg + RTA_* attributes (RTM_NEWROUTE / RTM_DELROUTE / RTM_GETROUTE). */
import { NetlinkDecodeError } from './errors.js';
import { Attrs, AttrWriter } from './attrs.js';
import {
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_TABLE,
  RTN_UNICAST,
  RTNH_F_LINKDOWN,
  RTNH_F_ONLINK,
  RTPROT_BOOT,
} from './constants.js';
import { decodeIpAttr, type Family, formatIp, type IpAddress, type IpPrefix } from './ip.js';

export const RTMSG_LEN = 12;
const RT_SCOPE_NOWHERE = 255;

export interface RouteRequest {
  family: Family;
  /** Destination; undefined means the default route (0/0). */
  dst?: IpPrefix;
  gateway?: IpAddress;
  /** Output interface index (RTA_OIF). */
  oif?: number;
  /** Treat the gateway as directly reachable on oif even without a covering prefix (RTNH_F_ONLINK). */
  onLink?: boolean;
  table?: number;
  /** Route metric (RTA_PRIORITY). */
  metric?: number;
  prefsrc?: IpAddress;
  protocol?: number;
  scope?: number;
  type?: number;
}

export interface Route {
  family: Family;
  /** 'default' or 'address/len', as `ip route` prints it. */
  dst: string;
  gateway?: string;
  oif?: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
  onLink: boolean;
  /** The output link has no carrier (RTNH_F_LINKDOWN). */
  linkDown: boolean;
  metric?: number;
  prefsrc?: string;
}

function rtmsg(family: number, dstLen: number, table: number, protocol: number, scope: number, type: number, flags: number): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  b.writeUInt8(family, 0);
  b.writeUInt8(dstLen, 1);
  b.writeUInt8(table < 256 ? table : 0, 4);
  b.writeUInt8(protocol, 5);
  b.writeUInt8(scope, 6);
  b.writeUInt8(type, 7);
  b.writeUInt32LE(flags >>> 0, 8);
  return b;
}

/**
 * Payload for RTM_NEWROUTE (forDelete false) or RTM_DELROUTE (forDelete true). Defaults follow
 * iproute2: protocol boot, type unicast, scope link for device routes, universe with a gateway;
 * a delete matches any protocol, type and scope unless given.
 */
export function encodeRouteRequest(req: RouteRequest, forDelete = false): Buffer {
  if (req.gateway && req.gateway.family !== req.family) {
    throw new TypeError(`gateway ${formatIp(req.gateway.bytes)} is not of the route's address family`);
  }
  if (req.dst && req.dst.family !== req.family) {
    throw new TypeError(`destination ${formatIp(req.dst.bytes)} is not of the route's address family`);
  }
  const table = req.table ?? RT_TABLE_MAIN;
  const defaultScope = forDelete ? RT_SCOPE_NOWHERE : req.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  const head = rtmsg(
    req.family,
    req.dst?.prefixLen ?? 0,
    table,
    req.protocol ?? (forDelete ? 0 : RTPROT_BOOT),
    req.scope ?? defaultScope,
    req.type ?? (forDelete ? 0 : RTN_UNICAST),
    req.onLink ? RTNH_F_ONLINK : 0,
  );
  const w = new AttrWriter().raw(head);
  if (table >= 256) w.u32(RTA_TABLE, table);
  if (req.dst && req.dst.prefixLen > 0) w.bytes(RTA_DST, req.dst.bytes);
  if (req.gateway) w.bytes(RTA_GATEWAY, req.gateway.bytes);
  if (req.oif !== undefined) w.u32(RTA_OIF, req.oif);
  if (req.metric !== undefined) w.u32(RTA_PRIORITY, req.metric);
  if (req.prefsrc) w.bytes(RTA_PREFSRC, req.prefsrc.bytes);
  return w.toBuffer();
}

/** Payload for an RTM_GETROUTE dump of one family. */
export function encodeRouteDump(family: number): Buffer {
  return rtmsg(family, 0, 0, 0, 0, 0, 0);
}

/** Decodes an RTM_NEWROUTE payload. */
export function decodeRoute(payload: Buffer): Route {
  if (payload.length < RTMSG_LEN) throw new NetlinkDecodeError(`rtmsg too short: ${payload.length} bytes`);
  const family = payload.readUInt8(0) as Family;
  const dstLen = payload.readUInt8(1);
  const flags = payload.readUInt32LE(8);
  const attrs = Attrs.parse(payload, RTMSG_LEN);
  const dstBytes = attrs.bytes(RTA_DST);
  const route: Route = {
    family,
    dst: dstBytes ? `${decodeIpAttr(dstBytes, 'RTA_DST')}/${dstLen}` : 'default',
    table: attrs.u32(RTA_TABLE) ?? payload.readUInt8(4),
    protocol: payload.readUInt8(5),
    scope: payload.readUInt8(6),
    type: payload.readUInt8(7),
    flags,
    onLink: (flags & RTNH_F_ONLINK) !== 0,
    linkDown: (flags & RTNH_F_LINKDOWN) !== 0,
  };
  const gw = attrs.bytes(RTA_GATEWAY);
  if (gw) route.gateway = decodeIpAttr(gw, 'RTA_GATEWAY');
  const oif = attrs.u32(RTA_OIF);
  if (oif !== undefined) route.oif = oif;
  const metric = attrs.u32(RTA_PRIORITY);
  if (metric !== undefined) route.metric = metric;
  const prefsrc = attrs.bytes(RTA_PREFSRC);
  if (prefsrc) route.prefsrc = decodeIpAttr(prefsrc, 'RTA_PREFSRC');
  return route;
}
