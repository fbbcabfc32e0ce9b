// The container side of an endpoint, through netlink: a veth whose peer is created directly in
// the container's namespace, its MAC, MTU and addresses, routes via the network's gateway and a
// permanent neighbour entry for that gateway (so the container never needs to resolve anything).
import type { Netlink } from '../netlink/index.js';
import { NetlinkError } from '../netlink/index.js';
import { setTxChecksum } from '../netlink/ethtool.js';
import { netnsPathProblem } from '../netlink/netns.js';

export interface ContainerInterface {
  /** Container network namespace file, e.g. /run/netns/x or /proc/PID/ns/net. */
  netns: string;
  /** Interface name inside the container (CNI_IFNAME). */
  ifname: string;
  /** The veth end that stays on the host and becomes an OVS port. */
  hostIfname: string;
  mac: string;
  mtu: number;
  /** Addresses with the network's prefix length, e.g. 198.18.1.2/16. */
  addresses: string[];
  /** Gateway addresses (one per family) and the MAC that answers for them. */
  gateways: string[];
  gatewayMac: string;
  /** Destinations routed via the gateway of their family ('default' or a CIDR). */
  routes: string[];
  /** Software datapaths need the container to compute its own checksums. */
  txChecksumOff: boolean;
}

/** What creating the veth pair needs: names and namespace; MAC and MTU when already known. */
export type VethEnds = Pick<ContainerInterface, 'netns' | 'ifname' | 'hostIfname'> & Partial<Pick<ContainerInterface, 'mac' | 'mtu'>>;

const isV6 = (a: string) => a.includes(':');

export class ContainerPlumber {
  /** `host` is a handle on the namespace OVS's ports live in. */
  constructor(private readonly host: Netlink) {}

  /** Why `path` is not a network namespace (never opening anything that is not one), or null. */
  async netnsProblem(path: string): Promise<string | null> {
    return (await netnsPathProblem(path))?.reason ?? null;
  }

  /** Creates the interface; an interface left over by an earlier attempt is replaced. */
  async attach(spec: ContainerInterface): Promise<{ hostIfindex: number }> {
    await this.create(spec);
    try {
      await this.configureInside(spec);
    } catch (err) {
      await this.detach(spec.hostIfname).catch(() => undefined);
      throw err;
    }
    const link = await this.host.link.get(spec.hostIfname);
    return { hostIfindex: link.index };
  }

  /**
   * The first half of {@link attach}: the veth pair, host end up, container end named and
   * addressed at link level. The host end can join OVS from here on, while the caller runs
   * {@link configureInside}; on failure of the second half the caller removes the interface.
   */
  async create(spec: VethEnds): Promise<void> {
    await this.detach(spec.hostIfname);
    const mtu = spec.mtu !== undefined ? { mtu: spec.mtu } : {};
    await this.host.link.createVeth({
      name: spec.hostIfname,
      ...mtu,
      up: true,
      peer: { name: spec.ifname, netns: spec.netns, ...mtu, ...(spec.mac !== undefined ? { mac: spec.mac } : {}) },
    });
  }

  /** The host end's MTU (a pair created before the MTU was known). */
  async setHostMtu(hostIfname: string, mtu: number): Promise<void> {
    await this.host.link.setMtu(hostIfname, mtu);
  }

  /** The second half of {@link attach}: link up, addresses, gateway neighbours and routes inside. */
  async configureInside(spec: ContainerInterface): Promise<void> {
    // A handful of short requests: on the calling thread, without the thread-pool hops per request.
    const inside = await this.host.at(spec.netns, { blocking: true });
    try {
      if (spec.addresses.some(isV6)) inside.sysctl.set(`net/ipv6/conf/${spec.ifname}/disable_ipv6`, 0);
      if (spec.txChecksumOff) setTxChecksum(spec.netns, spec.ifname, false);
      // MAC and MTU here rather than at creation: the pair may be made before the controller answered.
      await inside.link.configure(spec.ifname, { mac: spec.mac, mtu: spec.mtu, up: true });
      for (const address of spec.addresses) {
        await inside.address.replace(spec.ifname, address, { noPrefixRoute: true, ...(isV6(address) ? { noDad: true } : {}) });
      }
      for (const gw of spec.gateways) await inside.neighbour.replace(spec.ifname, gw, spec.gatewayMac);
      for (const dst of spec.routes) {
        const v6 = dst === 'default' ? undefined : isV6(dst);
        for (const gw of spec.gateways) {
          if (v6 !== undefined && v6 !== isV6(gw)) continue;
          await inside.route.replace({ dst, via: gw, dev: spec.ifname, onLink: true, family: isV6(gw) ? 6 : 4 });
        }
      }
    } finally {
      await inside.close();
    }
  }

  /** Removes the interface (its peer goes with it). Idempotent. */
  async detach(hostIfname: string): Promise<void> {
    try {
      await this.host.link.delete(hostIfname);
    } catch (err) {
      if (err instanceof NetlinkError && err.code === 'ENODEV') return;
      throw err;
    }
  }

  /** Differences between the container's interface and `spec`, as readable lines; [] = in order. */
  async check(spec: ContainerInterface): Promise<string[]> {
    const problems: string[] = [];
    if (!(await this.host.link.find(spec.hostIfname))) problems.push(`host interface ${spec.hostIfname} is missing`);
    let inside: Netlink;
    try {
      inside = await this.host.at(spec.netns);
    } catch (err) {
      return [...problems, `container namespace ${spec.netns} cannot be entered: ${(err as Error).message}`];
    }
    try {
      const link = await inside.link.find(spec.ifname);
      if (!link) return [...problems, `interface ${spec.ifname} is missing in the container`];
      if (link.mac?.toLowerCase() !== spec.mac.toLowerCase()) problems.push(`${spec.ifname} has MAC ${link.mac}, expected ${spec.mac}`);
      if (link.mtu !== spec.mtu) problems.push(`${spec.ifname} has MTU ${link.mtu}, expected ${spec.mtu}`);
      const have = new Set((await inside.address.list({ link: spec.ifname })).map((a) => a.cidr));
      for (const a of spec.addresses) if (!have.has(a)) problems.push(`${spec.ifname} lacks address ${a}`);
    } finally {
      await inside.close();
    }
    return problems;
  }
}
