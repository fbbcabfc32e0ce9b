// The gateway port on the host side: an OVS internal port on br-int (pinned OpenFlow port) that
// holds this host's address in every network it serves, with a route per network CIDR via the
// network's gateway (a permanent neighbour: the gateway MAC the pipeline answers for). Loom owns
// the port, so everything on it that the view does not want is removed.
import type { Logger } from 'pino';
import type { Netlink } from '../netlink/index.js';
import type { Vswitch } from '../ovsdb/vswitch.js';
import { OWNER } from './ovs.js';
import { gatewayMac } from './pipeline/fields.js';
import type { GatewayPortState } from './pipeline/state.js';

export const GATEWAY_OFPORT = 65003;
/** MTU of the port when the host serves no network yet (VXLAN over a 1500-byte underlay). */
const DEFAULT_MTU = 1450;

export interface GatewayNetwork {
  vni: number;
  mtu: number;
  ipv4Cidr: string;
  ipv6Cidr: string;
  gateway4: string;
  gateway6: string;
  hostAddress4: string;
  hostAddress6: string;
}

export async function ensureGatewayPort(vs: Vswitch, bridge: string, name: string): Promise<number> {
  const result = await vs.ensurePorts(bridge, [{ name, type: 'internal', ofportRequest: GATEWAY_OFPORT, externalIds: { ...OWNER, 'loom-role': 'gateway-port' } }], { wait: true });
  const status = result.interfaces.get(name);
  if (status?.error) throw new Error(`gateway port ${name} failed in ovs-vswitchd: ${status.error}`);
  if (status?.ofport === undefined || status.ofport < 0) throw new Error(`gateway port ${name} got no OpenFlow port number`);
  return status.ofport;
}

const isV6 = (a: string) => a.includes(':');

/** The host side of the gateway port: link up, MTU, addresses, routes, gateway neighbours. */
export class GatewayPortHost {
  private forwarding = false;
  /** What the last sync applied: a view change that does not touch the host path costs nothing. */
  private applied = '';

  constructor(
    private readonly nl: Netlink,
    readonly name: string,
    readonly ofport: number,
    private readonly log: Logger,
  ) {}

  /** Brings the interface up and returns its ofport and MAC for the pipeline. */
  async prepare(): Promise<GatewayPortState> {
    this.applied = ''; // a new port (ovs-vswitchd restarted) has none of it
    const link = await this.nl.link.get(this.name);
    if (!link.up) await this.nl.link.setUp(this.name);
    if (!link.mac) throw new Error(`gateway port ${this.name} has no MAC address`);
    // IPv6 on the port: no DAD for the link-local address, so the host can send at once.
    this.nl.sysctl.set(`net/ipv6/conf/${this.name}/accept_dad`, 0);
    return { ofport: this.ofport, mac: link.mac };
  }

  async sync(nets: GatewayNetwork[]): Promise<void> {
    const key = JSON.stringify(nets);
    if (key === this.applied) return;
    await this.apply(nets);
    this.applied = key;
  }

  private async apply(nets: GatewayNetwork[]): Promise<void> {
    const served = nets.filter((n) => n.hostAddress4 || n.hostAddress6);
    const mtu = served.length > 0 ? Math.min(...served.map((n) => n.mtu)) : DEFAULT_MTU;
    const link = await this.nl.link.get(this.name);
    if (link.mtu !== mtu) await this.nl.link.setMtu(this.name, mtu);
    if (served.length > 0 && !this.forwarding) {
      // The host forwards for its containers (egress, published ports); table inet loom decides what.
      this.nl.sysctl.set('net/ipv4/ip_forward', 1);
      this.nl.sysctl.set('net/ipv6/conf/all/forwarding', 1);
      // Lets `-p 127.0.0.1:...` reach a container (DNAT from loopback into this port only).
      this.nl.sysctl.set(`net/ipv4/conf/${this.name}/route_localnet`, 1);
      this.forwarding = true;
    }
    const addresses = new Set<string>();
    const routes = new Map<string, { via: string; src: string }>();
    const neighbours = new Map<string, string>();
    for (const n of served) {
      for (const [cidr, gw, host] of [[n.ipv4Cidr, n.gateway4, n.hostAddress4], [n.ipv6Cidr, n.gateway6, n.hostAddress6]] as const) {
        if (!cidr || !gw || !host) continue;
        addresses.add(`${host}/${isV6(host) ? 128 : 32}`);
        routes.set(cidr, { via: gw, src: host });
        neighbours.set(gw, gatewayMac(n.vni));
      }
    }
    for (const a of await this.nl.address.list({ link: this.name })) {
      if (a.scope === 'link') continue;
      if (!addresses.has(a.cidr)) await this.nl.address.delete(this.name, a.cidr);
    }
    for (const cidr of addresses) await this.nl.address.replace(this.name, cidr, { noPrefixRoute: true, ...(isV6(cidr) ? { noDad: true } : {}) });
    for (const [ip, mac] of neighbours) await this.nl.neighbour.replace(this.name, ip, mac);
    for (const [dst, r] of routes) {
      await this.nl.route.replace({ dst, via: r.via, dev: this.name, onLink: true, src: r.src, family: isV6(dst) ? 6 : 4 });
    }
    for (const family of [4, 6] as const) {
      for (const r of await this.nl.route.list({ family, dev: this.name })) {
        if (r.dst.startsWith('fe80:') || r.dst.startsWith('ff00:') || routes.has(r.dst)) continue;
        await this.nl.route.delete({ dst: r.dst, dev: this.name, family }).catch((err: unknown) => this.log.warn({ err, route: r.dst }, 'removing a stale gateway-port route failed'));
      }
    }
    for (const nb of await this.nl.neighbour.list({ link: this.name })) {
      if (nb.permanent && !neighbours.has(nb.address)) await this.nl.neighbour.delete(this.name, nb.address);
    }
  }
}
