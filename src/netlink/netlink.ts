/** High-level rtnetlink handle bound to one network namespace. */
import { AddressOps } from './addresses.js';
import { LinkOps } from './links.js';
import { NeighbourOps } from './neighbours.js';
import { readSysctl, writeSysctl } from './netns.js';
import { Requester } from './requester.js';
import { RouteOps } from './routes.js';
import { RtnetlinkSocket, type RtnetlinkTransport } from './socket.js';
import { BlockingRtnetlinkSocket } from './blocking-socket.js';

export interface NetlinkOptions {
  /** Per-request timeout in ms (default 10 s). */
  timeoutMs?: number;
  /**
   * Requests run on the calling thread (BlockingRtnetlinkSocket): no thread-pool hops, but the
   * event loop waits while the kernel works. For a few short requests; not for link deletion.
   */
  blocking?: boolean;
}

/** Per-namespace sysctls (/proc/sys/net/... of the handle's namespace). */
export class SysctlOps {
  constructor(private readonly netns: string) {}

  /** Writes e.g. set('net/ipv6/conf/eth0/accept_dad', '0'). Only keys under net/ are allowed. */
  set(key: string, value: string | number): void {
    writeSysctl(this.netns, key, String(value));
  }

  get(key: string): string {
    return readSysctl(this.netns, key);
  }
}

/**
 * A rtnetlink connection to one network namespace.
 *
 *   const nl = await Netlink.open();                 // the caller's namespace
 *   const c1 = await nl.at('/run/netns/c1');         // another namespace, own socket
 *   await nl.link.createVeth({ name: 'veth1', peer: { name: 'eth0', netns: '/run/netns/c1' } });
 *   await c1.address.add('eth0', '198.18.0.2/24');
 *
 * The calling thread's own namespace is never left except inside synchronous setns() windows.
 * Failures are NetlinkErrors. Close every handle.
 */
export class Netlink {
  readonly link: LinkOps;
  readonly address: AddressOps;
  readonly route: RouteOps;
  readonly neighbour: NeighbourOps;
  readonly sysctl: SysctlOps;

  private constructor(
    private readonly socket: RtnetlinkTransport,
    private readonly options: NetlinkOptions,
  ) {
    const r = new Requester(socket);
    this.link = new LinkOps(r);
    this.address = new AddressOps(r);
    this.route = new RouteOps(r);
    this.neighbour = new NeighbourOps(r);
    this.sysctl = new SysctlOps(socket.netns);
  }

  /** Opens a handle on the caller's namespace, or on `netns` (a namespace file path). */
  static async open(options: NetlinkOptions & { netns?: string } = {}): Promise<Netlink> {
    const socketOptions = {
      ...(options.netns !== undefined ? { netns: options.netns } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    };
    const socket = options.blocking ? BlockingRtnetlinkSocket.open(socketOptions) : await RtnetlinkSocket.open(socketOptions);
    return new Netlink(socket, { ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) });
  }

  /** Namespace file this handle works in ('' = the namespace of the process that opened it). */
  get netns(): string {
    return this.socket.netns;
  }

  /** A new handle, with the same options, bound to the namespace at `nsPath` (e.g. /run/netns/c1). */
  at(nsPath: string, options: { blocking?: boolean } = {}): Promise<Netlink> {
    return Netlink.open({ ...this.options, ...options, netns: nsPath });
  }

  /** Closes the socket after pending requests finish. */
  close(): Promise<void> {
    return this.socket.close();
  }
}
