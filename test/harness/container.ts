// A "container" is a network namespace with one veth pair into its host's namespace, the same
// shape a container runtime gives a CNI plugin.
import { run } from './exec.js';
import { track, untrack } from './registry.js';
import type { SimHost } from './host.js';

export class Container {
  readonly netns: string;
  /** The veth end in the host namespace (attach it to a bridge). */
  readonly hostIf: string;
  /** The veth end inside the container. */
  readonly ifname = 'eth0';
  private removed = false;

  constructor(
    readonly host: SimHost,
    readonly name: string,
    tag: string,
  ) {
    this.netns = `lt${tag}-${name}`;
    this.hostIf = `v${tag}`.slice(0, 15);
  }

  /** Path a runtime would pass as CNI_NETNS. */
  get netnsPath(): string {
    return `/run/netns/${this.netns}`;
  }

  /** Creates only the namespace, for plugins that create the veth themselves. */
  async createEmpty(): Promise<void> {
    track({ kind: 'netns', name: this.netns });
    await run('ip', ['netns', 'add', this.netns]);
    await run('ip', ['-n', this.netns, 'link', 'set', 'lo', 'up']);
  }

  async create(): Promise<void> {
    await this.createEmpty();
    await run('ip', [
      '-n', this.host.netns, 'link', 'add', this.hostIf, 'type', 'veth',
      'peer', 'name', this.ifname, 'netns', this.netns,
    ]);
    await run('ip', ['-n', this.host.netns, 'link', 'set', this.hostIf, 'up']);
    await run('ip', ['-n', this.netns, 'link', 'set', this.ifname, 'up']);
  }

  /** Runs a command inside the container's namespace. */
  exec(cmd: string, args: readonly string[] = [], input?: string): Promise<string> {
    return run('ip', ['netns', 'exec', this.netns, cmd, ...args], { input });
  }

  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    await run('ip', ['netns', 'del', this.netns]).catch(() => undefined);
    untrack({ kind: 'netns', name: this.netns });
  }
}

/**
 * Sends `bytes` random bytes over TCP from `from` to `to` (listening on `address`:`port`) and
 * resolves with both sides' SHA-256, so a test can check the content arrived intact.
 */
export async function tcpTransfer(from: Container, to: Container, address: string, bytes: number, port = 5001): Promise<{ sent: string; received: string }> {
  const family = address.includes(':') ? '-6' : '-4';
  const server = to.exec('sh', ['-c', `timeout 60 nc ${family} -l ${port} | sha256sum`]);
  // The listener needs a moment to bind; retry the connection instead of sleeping blindly.
  const send = `head -c ${bytes} /dev/urandom > /tmp/lt-$$ && sha256sum < /tmp/lt-$$ && for i in 1 2 3 4 5 6 7 8 9 10; do nc ${family} -N -w 10 ${address} ${port} < /tmp/lt-$$ && break; sleep 0.1; done; rm -f /tmp/lt-$$`;
  const sent = await from.exec('sh', ['-c', send]);
  const received = await server;
  return { sent: sent.split(' ')[0]!, received: received.split(' ')[0]! };
}
