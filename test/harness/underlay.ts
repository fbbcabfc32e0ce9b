// The underlay: a namespace holding a Linux bridge, the "physical" network every simulated host
// plugs into with a veth. Addresses come from TEST-NET ranges and exist only inside these namespaces.
import { run } from './exec.js';
import { track, untrack, uniqueTag } from './registry.js';
import type { SimHost } from './host.js';

export interface UnderlayLink {
  /** Interface holding the host's underlay address: the veth, or the OVS bridge when `ovsBridge` is set. */
  device: string;
  address: string;
}

export class Underlay {
  readonly netns: string;
  private removed = false;
  private ports = 0;

  constructor(readonly tag: string) {
    this.netns = `lt${tag}-ul`;
  }

  async create(mtu: number): Promise<void> {
    track({ kind: 'netns', name: this.netns });
    await run('ip', ['netns', 'add', this.netns]);
    await run('ip', ['-n', this.netns, 'link', 'add', 'br-ul', 'type', 'bridge']);
    await run('ip', ['-n', this.netns, 'link', 'set', 'br-ul', 'mtu', String(mtu), 'up']);
  }

  /**
   * Plugs a host into the underlay with `address` (CIDR, e.g. 192.0.2.11/24). With `ovsBridge`
   * the veth becomes a port of that OVS bridge and the bridge's internal interface holds the
   * address, which the userspace datapath needs to send tunnel traffic.
   */
  async connect(host: SimHost, address: string, opts: { ovsBridge?: string; ifname?: string; mtu?: number } = {}): Promise<UnderlayLink> {
    const ifname = opts.ifname ?? 'ul0';
    const mtu = String(opts.mtu ?? 1500);
    this.ports += 1;
    const peer = `p${this.tag}${this.ports}`.slice(0, 15);
    await run('ip', ['-n', this.netns, 'link', 'add', peer, 'mtu', mtu, 'type', 'veth', 'peer', 'name', ifname, 'mtu', mtu, 'netns', host.netns]);
    await run('ip', ['-n', this.netns, 'link', 'set', peer, 'master', 'br-ul', 'up']);
    await host.exec('ip', ['link', 'set', ifname, 'up']);
    let device = ifname;
    if (opts.ovsBridge) {
      await host.addBridge(opts.ovsBridge, { failMode: 'standalone' });
      await host.vsctl('--may-exist', 'add-port', opts.ovsBridge, ifname);
      await host.exec('ip', ['link', 'set', opts.ovsBridge, 'mtu', mtu, 'up']);
      device = opts.ovsBridge;
    }
    await host.exec('ip', ['addr', 'add', address, 'dev', device]);
    return { device, address };
  }

  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    await run('ip', ['netns', 'del', this.netns]).catch(() => undefined);
    untrack({ kind: 'netns', name: this.netns });
  }
}

export async function createUnderlay(opts: { mtu?: number } = {}): Promise<Underlay> {
  const u = new Underlay(uniqueTag());
  await u.create(opts.mtu ?? 1500);
  return u;
}
