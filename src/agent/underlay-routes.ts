// Userspace datapath only: OVS builds tunnel packets itself and routes them from its own table.
// By default that table is a copy of the kernel's, which ovs-vswitchd throws away and reads again
// on EVERY link change on the host (a container's veth appearing is one); a revalidation that runs
// meanwhile caches a datapath flow without the tunnel, and the packets it matches are lost until
// the next one (1-8 pings at 10 ms per container start, measured). Started with
// `--disable-system-route`, ovs-vswitchd keeps no copy, and the agent pins the underlay bridge's
// kernel routes into it as user routes (`ovs/route/add`), which nothing flushes. Loom owns the
// user routes on the underlay bridge; others are left alone.

/** A route in ovs-vswitchd's table, as `ovs/route/show` prints it. */
export interface OvsRoute {
  /** 'address/len' (IPv4 without the mapped prefix). */
  prefix: string;
  bridge: string;
  gateway?: string;
  /** 'cached': copied from the kernel (flushed on link changes); 'user': added by ovs/route/add. */
  kind: 'cached' | 'user';
}

/** A route the underlay bridge should have in OVS. */
export interface PinnedRoute {
  prefix: string;
  gateway?: string;
}

/** What pinning needs: ovs-vswitchd's control socket, and the kernel's routes through the bridge. */
export interface UnderlayRoutesDeps {
  appctl(command: string, args: readonly string[]): Promise<string>;
  /**
   * The bridge holding the VTEP address and the unicast routes of the main table through it,
   * both families; undefined while no interface holds the VTEP address.
   */
  underlay(): Promise<{ bridge: string; routes: Array<{ dst: string; gateway?: string; family: 4 | 6 }> } | undefined>;
}

export interface UnderlaySyncResult {
  /** The bridge holding the VTEP address ('' when none does: nothing was pinned). */
  bridge: string;
  added: PinnedRoute[];
  removed: PinnedRoute[];
  /** Routes OVS still copies from the kernel through this bridge: the flush race is there. */
  systemRoutes: number;
  /** Routes OVS refused (e.g. no address of that family on the bridge), with its error. */
  failed: Array<PinnedRoute & { error: string }>;
}

const LINE = /^(Cached|User): (\S+?)\/(\d+)(?: MARK \d+)? dev (\S+)(?: GW (\S+))? SRC \S+/;

/** Parses `ovs/route/show`. */
export function parseRouteShow(text: string): OvsRoute[] {
  const routes: OvsRoute[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line.trim());
    if (!m) continue;
    const gateway = m[5] && m[5] !== '::' && m[5] !== '0.0.0.0' ? m[5] : undefined;
    routes.push({ prefix: `${m[2]}/${m[3]}`, bridge: m[4]!, kind: m[1] === 'User' ? 'user' : 'cached', ...(gateway ? { gateway } : {}) });
  }
  return routes;
}

/** The kernel's routes through the bridge as OVS takes them ('default' spelled out; link-local left out: tunnels never use it). */
export function pinnedFromKernel(routes: ReadonlyArray<{ dst: string; gateway?: string; family: 4 | 6 }>): PinnedRoute[] {
  const out = new Map<string, PinnedRoute>();
  for (const r of routes) {
    const prefix = r.dst === 'default' ? (r.family === 6 ? '::/0' : '0.0.0.0/0') : r.dst;
    if (r.family === 6 && /^fe[89ab][0-9a-f]:/i.test(prefix)) continue;
    // One per prefix, as OVS keeps one user route per prefix (the first: lowest metric in a dump).
    if (!out.has(prefix)) out.set(prefix, { prefix, ...(r.gateway ? { gateway: r.gateway } : {}) });
  }
  return [...out.values()];
}

const key = (r: PinnedRoute): string => `${r.prefix} ${r.gateway ?? ''}`;

/** Keeps ovs-vswitchd's user routes on the underlay bridge equal to the kernel's routes through it. */
export class UnderlayRoutes {
  constructor(private readonly deps: UnderlayRoutesDeps) {}

  async sync(): Promise<UnderlaySyncResult> {
    const underlay = await this.deps.underlay();
    if (!underlay) return { bridge: '', added: [], removed: [], systemRoutes: 0, failed: [] };
    const { bridge } = underlay;
    const want = pinnedFromKernel(underlay.routes);
    const table = parseRouteShow(await this.deps.appctl('ovs/route/show', []));
    const ours = table.filter((r) => r.kind === 'user' && r.bridge === bridge);
    const systemRoutes = table.filter((r) => r.kind === 'cached' && r.bridge === bridge).length;
    const wanted = new Set(want.map(key));
    const present = new Set(ours.map(key));
    const result: UnderlaySyncResult = { bridge, added: [], removed: [], systemRoutes, failed: [] };
    // Stale first: OVS keeps one user route per prefix, so a changed gateway is a delete and an add.
    for (const r of ours) {
      if (wanted.has(key(r))) continue;
      await this.deps.appctl('ovs/route/del', [r.prefix]);
      result.removed.push({ prefix: r.prefix, ...(r.gateway ? { gateway: r.gateway } : {}) });
    }
    for (const r of want) {
      if (present.has(key(r))) continue;
      try {
        await this.deps.appctl('ovs/route/add', [r.prefix, bridge, ...(r.gateway ? [r.gateway] : [])]);
        result.added.push(r);
      } catch (err) {
        result.failed.push({ ...r, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return result;
  }
}
