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
