// --nat-path ovs, the host's side: the patch ports between br-int and the underlay bridge (Loom's,
// marked in external_ids), the underlay's next hops mirrored from the kernel (routes and
// neighbours, read over rtnetlink), and the underlay bridge's flows (only those carrying the
// OvsNat cookie feature are read, changed or deleted: the operator's stay as they are).
import type { Logger } from 'pino';
import type { Vswitch } from '../ovsdb/vswitch.js';
import { OpenFlowClient } from '../openflow/client.js';
import { asFlow, bundleOf } from './flow-sync.js';
import { codec, type Netlink } from '../netlink/index.js';
import { OWNER } from './ovs.js';
import { Feature, FEATURE_MASK } from './pipeline/fields.js';
import { contains, type NextHop } from './pipeline/ovs-nat.js';
import { diffFlows } from './pipeline/pipeline.js';
import type { Flow } from './pipeline/state.js';
import type { BackoffOptions } from '../common/backoff.js';

/** Patch port names: on br-int, and its peer on the underlay bridge. */
export const PATCH_INT = 'loom-int-phy';
export const PATCH_PHY = 'loom-phy-int';
/** Pinned OpenFlow port number of both ends (each on its own bridge). */
export const PATCH_OFPORT = 65004;
/** 61440-65535: above Linux's default ip_local_port_range (32768-60999), one masked block per protocol. */
export const SNAT_PORTS = { low: 61440, high: 65535 } as const;

/** Usable neighbour states: an address the kernel has (or had recently) a MAC for. */
const USABLE =
  codec.NUD_REACHABLE | codec.NUD_STALE | codec.NUD_DELAY | codec.NUD_PROBE | codec.NUD_PERMANENT | codec.NUD_NOARP;

export interface KernelRoute {
  dst: string;
  gateway?: string;
  oif?: number;
}
export interface KernelNeighbour {
  index: number;
  address: string;
  mac?: string;
  state: number;
}

/** At most this many on-link neighbours become /32 next hops (flows); the rest keep the kernel path. */
export const MAX_NEIGHBOUR_HOPS = 4096;
/**
 * A main table with more IPv4 routes than this (a host that carries a routing protocol's table)
 * is not mirrored: longest-prefix match needs every route, so the NAT path takes nothing new and
 * everything keeps the kernel path (one catch-all hop without a MAC).
 */
export const MAX_ROUTES = 2048;

/**
 * The NAT path's next hops from the kernel's IPv4 main table and neighbours: a route through the
 * underlay bridge via a gateway goes to the gateway's MAC, an on-link one to each resolved
 * neighbour's own (as /32); an on-link prefix without a resolved neighbour, and any route through
 * another interface, stay on the kernel path (no MAC), so a less specific route never catches them.
 */
export function resolveNextHops(underlayIndex: number, routes: readonly KernelRoute[], neighbours: readonly KernelNeighbour[], maxNeighbours = MAX_NEIGHBOUR_HOPS, maxRoutes = MAX_ROUTES): NextHop[] {
  if (routes.length > maxRoutes) return [{ prefix: '0.0.0.0/0' }];
  const macOf = new Map<string, string>();
  for (const n of neighbours) if (n.index === underlayIndex && n.mac && n.state & USABLE && n.mac !== '00:00:00:00:00:00') macOf.set(n.address, n.mac);
  const hops = new Map<string, NextHop>();
  const add = (hop: NextHop) => {
    if (!hops.has(hop.prefix)) hops.set(hop.prefix, hop);
  };
  let neighbourHops = 0;
  for (const r of routes) {
    const prefix = r.dst === 'default' ? '0.0.0.0/0' : r.dst.includes('/') ? r.dst : `${r.dst}/32`;
    if (r.oif !== underlayIndex) {
      add({ prefix });
      continue;
    }
    if (r.gateway) {
      const mac = macOf.get(r.gateway);
      add(mac ? { prefix, mac } : { prefix });
      continue;
    }
    add({ prefix });
    for (const [address, mac] of macOf) {
      if (neighbourHops >= maxNeighbours || !contains(prefix, address) || hops.has(`${address}/32`)) continue;
      add({ prefix: `${address}/32`, mac });
      neighbourHops++;
    }
  }
  return [...hops.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
}

/** How long a neighbour the kernel dropped (garbage collection) keeps serving as a next hop. */
export const NEIGHBOUR_MEMORY_MS = 10 * 60_000;

/**
 * The kernel's neighbours plus those it no longer lists at all but resolved within `ttlMs`. Traffic
 * on the NAT path never passes the host's stack, so the kernel sees no use of a next hop and may
 * garbage-collect its entry under an established connection; remembering it keeps that connection
 * on its path. An entry the kernel lists as unresolved (failed, incomplete) is forgotten at once.
 * `memory` is updated in place and holds at most MAX_NEIGHBOUR_HOPS entries.
 */
export function rememberNeighbours(neighbours: readonly KernelNeighbour[], memory: Map<string, { index: number; mac: string; at: number }>, now: number, ttlMs = NEIGHBOUR_MEMORY_MS): KernelNeighbour[] {
  const listed = new Set<string>();
  for (const n of neighbours) {
    const key = `${n.index} ${n.address}`;
    listed.add(key);
    if (n.mac && n.state & USABLE) memory.set(key, { index: n.index, mac: n.mac, at: now });
    else memory.delete(key);
  }
  const out = [...neighbours];
  for (const [key, m] of memory) {
    if (listed.has(key)) continue;
    if (now - m.at > ttlMs) {
      memory.delete(key);
      continue;
    }
    out.push({ index: m.index, address: key.slice(key.indexOf(' ') + 1), mac: m.mac, state: codec.NUD_STALE });
  }
  // Oldest first out when over the bound.
  while (memory.size > MAX_NEIGHBOUR_HOPS) memory.delete(memory.keys().next().value!);
  return out;
}

/** Creates the patch port pair (idempotent); both ends get PATCH_OFPORT. */
export async function ensurePatchPorts(vs: Vswitch, integrationBridge: string, underlayBridge: string): Promise<void> {
  const ids = { ...OWNER, 'loom-role': 'nat-patch' };
  const ends = [
    { bridge: integrationBridge, spec: { name: PATCH_INT, type: 'patch' as const, options: { peer: PATCH_PHY }, ofportRequest: PATCH_OFPORT, externalIds: ids } },
    { bridge: underlayBridge, spec: { name: PATCH_PHY, type: 'patch' as const, options: { peer: PATCH_INT }, ofportRequest: PATCH_OFPORT, externalIds: ids } },
  ];
  for (const end of ends) await vs.ensurePorts(end.bridge, [end.spec], { wait: true });
  // The end created first may keep "no usable peer" from before its peer existed: that end is
  // added again now that the peer is there (bounded).
  for (let attempt = 0; ; attempt++) {
    const status = await vs.interfaceStatus([PATCH_INT, PATCH_PHY]);
    const problems: string[] = [];
    for (const end of ends) {
      const s = status.get(end.spec.name);
      if (s?.error) problems.push(`patch port ${end.spec.name} failed in ovs-vswitchd: ${s.error}`);
      else if (s?.ofport !== PATCH_OFPORT) problems.push(`patch port ${end.spec.name} got OpenFlow port ${s?.ofport ?? 'none'}, not ${PATCH_OFPORT} (is the number taken?)`);
    }
    if (problems.length === 0) return;
    if (attempt >= 3) throw new Error(problems.join('; '));
    for (const end of ends) {
      if (!status.get(end.spec.name)?.error) continue;
      await vs.removePorts(end.bridge, [end.spec.name]);
      await vs.ensurePorts(end.bridge, [end.spec], { wait: true });
    }
  }
}

/** Removes Loom's patch ports, if an earlier run with --nat-path ovs left them. */
export async function removePatchPorts(vs: Vswitch, integrationBridge: string, underlayBridge: string): Promise<boolean> {
  const ours = new Set((await vs.findPorts({ ...OWNER, 'loom-role': 'nat-patch' })).map((p) => p.name));
  let changed = false;
  if (ours.has(PATCH_INT)) changed = (await vs.removePorts(integrationBridge, [PATCH_INT])).changed || changed;
  if (ours.has(PATCH_PHY) && underlayBridge) changed = (await vs.removePorts(underlayBridge, [PATCH_PHY])).changed || changed;
  return changed;
}

/** The underlay as the NAT path needs it. */
export interface UnderlayFacts {
  mac: string;
  nextHops: NextHop[];
  hostAddresses: string[];
  /** IPv4 unicast routes in the main table (above MAX_ROUTES none is mirrored). */
  routes: number;
}

/** The underlay bridge's OpenFlow client and the kernel's view of the underlay. */
export class OvsNatHost {
  /** Neighbours resolved before, for rememberNeighbours. */
  private readonly neighbourMemory = new Map<string, { index: number; mac: string; at: number }>();

  private constructor(
    readonly phy: OpenFlowClient,
    private readonly netlink: Netlink,
    readonly underlayBridge: string,
    readonly uplinkOfport: number,
  ) {}

  static async open(
    vs: Vswitch,
    netlink: Netlink,
    c: { ovsRunDir: string; integrationBridge: string; underlayBridge: string; underlayInterface: string },
    retry: BackoffOptions,
    log: Logger,
  ): Promise<OvsNatHost> {
    await ensurePatchPorts(vs, c.integrationBridge, c.underlayBridge);
    const uplink = (await vs.interfaceStatus([c.underlayInterface])).get(c.underlayInterface);
    if (uplink?.ofport === undefined || uplink.ofport < 0) throw new Error(`underlay interface ${c.underlayInterface} has no OpenFlow port on ${c.underlayBridge}`);
    const phy = await OpenFlowClient.connect(`unix:${c.ovsRunDir}/${c.underlayBridge}.mgmt`, { backoffMinMs: retry.minMs, backoffMaxMs: retry.maxMs });
    log.info({ underlayBridge: c.underlayBridge, patch: [PATCH_INT, PATCH_PHY], snatPorts: SNAT_PORTS }, 'NAT path ovs: egress and published ports NATed in OVS conntrack, through the patch port to the underlay bridge');
    return new OvsNatHost(phy, netlink, c.underlayBridge, uplink.ofport);
  }

  /** Reads br-phy's MAC, the IPv4 routes and neighbours, and the host's IPv4 addresses. */
  async underlay(): Promise<UnderlayFacts> {
    const link = await this.netlink.link.get(this.underlayBridge);
    if (!link.mac) throw new Error(`underlay bridge ${this.underlayBridge} has no MAC address`);
    const routes = (await this.netlink.route.list({ family: 4 })).filter((r) => r.type === codec.RTN_UNICAST);
    const neighbours = rememberNeighbours(await this.netlink.neighbour.list({ family: 4 }), this.neighbourMemory, Date.now());
    const addresses = await this.netlink.address.list({ family: 4 });
    return {
      mac: link.mac,
      nextHops: resolveNextHops(link.index, routes, neighbours),
      hostAddresses: [...new Set(addresses.map((a) => a.address))].sort(),
      routes: routes.length,
    };
  }

  /** Makes the underlay bridge's OvsNat flows equal to `desired` in one bundle; others untouched. */
  async sync(desired: Flow[]): Promise<{ upserted: number; removed: number }> {
    const current = (await this.phy.dumpFlows({ cookie: BigInt(Feature.OvsNat) << 40n, cookieMask: FEATURE_MASK })).map(asFlow);
    const diff = diffFlows(current, desired);
    const changes = bundleOf(diff);
    if (changes.length > 0) await this.phy.applyBundle(changes);
    return { upserted: diff.upsert.length, removed: diff.remove.length };
  }

  async close(): Promise<void> {
    await this.phy.close();
  }
}

/** With --nat-path host: removes what an earlier --nat-path ovs run left (patch ports, br-phy flows). */
export async function removeOvsNat(vs: Vswitch, c: { ovsRunDir: string; integrationBridge: string; underlayBridge: string }, retry: BackoffOptions, log: Logger): Promise<void> {
  if (!(await removePatchPorts(vs, c.integrationBridge, c.underlayBridge))) return;
  if (c.underlayBridge) {
    const phy = await OpenFlowClient.connect(`unix:${c.ovsRunDir}/${c.underlayBridge}.mgmt`, { backoffMinMs: retry.minMs, backoffMaxMs: retry.maxMs });
    try {
      await phy.deleteFlows({ cookie: BigInt(Feature.OvsNat) << 40n, cookieMask: FEATURE_MASK });
    } finally {
      await phy.close();
    }
  }
  log.info('NAT path host: removed the patch ports and underlay bridge flows of an earlier --nat-path ovs run');
}
