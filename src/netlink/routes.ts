/** Route operations of a Netlink handle. */
import { AF_INET, AF_INET6, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RT_TABLE_MAIN, RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE } from './codec/constants.js';
import { type Family, parseIp, parsePrefix } from './codec/ip.js';
import { decodeRoute, encodeRouteDump, encodeRouteRequest, type Route, type RouteRequest } from './codec/route.js';
import type { LinkRef, Requester } from './requester.js';

export type { Route };

export interface RouteSpec {
  /** 'default' or 'addr/len' (a bare address is a host route). */
  dst: string;
  /** Gateway address. Without it the route is a device route (scope link) and needs `dev`. */
  via?: string;
  /** Output interface. */
  dev?: LinkRef;
  /** Gateway is on the link even if no local prefix covers it (RTNH_F_ONLINK); needs `dev`. */
  onLink?: boolean;
  /** Needed only for 'default' without `via`. */
  family?: 4 | 6;
  metric?: number;
  /** Preferred source address. */
  src?: string;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
}

export interface RouteFilter {
  family?: 4 | 6;
  /** Table id, or 'all'. Default: main. */
  table?: number | 'all';
  dev?: LinkRef;
}

function describe(spec: RouteSpec): string {
  return [spec.dst, spec.via ? `via ${spec.via}` : '', spec.dev !== undefined ? `dev ${String(spec.dev)}` : ''].filter(Boolean).join(' ');
}

export class RouteOps {
  constructor(private readonly r: Requester) {}

  /** Adds a route; EEXIST if the same route exists. */
  add(spec: RouteSpec): Promise<void> {
    return this.change('route.add', RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, spec);
  }

  /** Adds the route or replaces the one with the same destination/table/metric. */
  replace(spec: RouteSpec): Promise<void> {
    return this.change('route.replace', RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, spec);
  }

  /** Deletes a matching route; ESRCH if none matches. */
  delete(spec: RouteSpec): Promise<void> {
    return this.change('route.delete', RTM_DELROUTE, 0, spec);
  }

  /** Routes of one family (default IPv4) in the main table unless told otherwise. */
  async list(filter: RouteFilter = {}): Promise<Route[]> {
    const op = 'route.list';
    const oif = filter.dev === undefined ? undefined : await this.r.index(op, filter.dev);
    const family = filter.family === 6 ? AF_INET6 : AF_INET;
    const table = filter.table ?? RT_TABLE_MAIN;
    const msgs = await this.r.dump(op, RTM_GETROUTE, encodeRouteDump(family));
    return msgs
      .map((m) => decodeRoute(m.payload))
      .filter((rt) => (table === 'all' || rt.table === table) && (oif === undefined || rt.oif === oif));
  }

  private async change(op: string, type: number, flags: number, spec: RouteSpec): Promise<void> {
    const subject = describe(spec);
    const req = this.r.parse(op, subject, () => this.toRequest(spec, type === RTM_DELROUTE));
    if (spec.dev !== undefined) req.oif = await this.r.index(op, spec.dev);
    const payload = this.r.parse(op, subject, () => encodeRouteRequest(req, type === RTM_DELROUTE));
    await this.r.call(op, subject, type, flags, payload);
  }

  private toRequest(spec: RouteSpec, forDelete: boolean): RouteRequest {
    const dst = spec.dst === 'default' ? undefined : parsePrefix(spec.dst);
    const gateway = spec.via === undefined ? undefined : parseIp(spec.via);
    const family: Family | undefined =
      dst?.family ?? gateway?.family ?? (spec.family === 6 ? AF_INET6 : spec.family === 4 ? AF_INET : undefined);
    if (family === undefined) throw new TypeError("a default route needs 'via' or 'family'");
    if (!forDelete && !gateway && spec.dev === undefined) throw new TypeError("a route needs 'via' or 'dev'");
    if (spec.onLink && spec.dev === undefined) throw new TypeError("an on-link route needs 'dev'");
    const req: RouteRequest = { family };
    if (dst) req.dst = dst;
    if (gateway) req.gateway = gateway;
    if (spec.onLink) req.onLink = true;
    if (spec.metric !== undefined) req.metric = spec.metric;
    if (spec.src !== undefined) req.prefsrc = parseIp(spec.src);
    if (spec.table !== undefined) req.table = spec.table;
    if (spec.protocol !== undefined) req.protocol = spec.protocol;
    if (spec.scope !== undefined) req.scope = spec.scope;
    if (spec.type !== undefined) req.type = spec.type;
    return req;
  }
}
