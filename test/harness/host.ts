// A simulated host: its own network namespace running ovs-vswitchd (userspace datapath), backed by
// its own ovsdb-server. ovsdb-server stays in the root namespace: it only needs sockets, and tests
// then reach its unix socket and loopback TCP port directly.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { run, waitFor, alive } from './exec.js';
import { keeping, runDir, track, untrack, uniqueTag, installExitCleanup, type Resource } from './registry.js';
import { Container } from './container.js';

const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

export interface HostOptions {
  /** Readable name, used in namespace and directory names (keep it short). */
  name: string;
  /** Start ovs-vswitchd too (default true); false gives an ovsdb-server only. */
  vswitchd?: boolean;
  /** More ovs-vswitchd arguments, on every (re)start. */
  vswitchdArgs?: string[];
}

/**
 * What a Loom host's ovs-vswitchd runs with on the userspace datapath (docs/deploy.md): no copy of
 * the kernel routing table, so a link change cannot race tunnel routing; the agent pins the
 * underlay bridge's routes instead (src/agent/underlay-routes.ts).
 */
export const LOOM_VSWITCHD_ARGS = ['--disable-system-route'];

export interface BridgeOptions {
  failMode?: 'secure' | 'standalone';
  protocols?: string[];
}

export class SimHost {
  readonly name: string;
  readonly netns: string;
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly dbPath: string;
  readonly dbSocket: string;
  dbTcpPort = 0;
  private ovsdb?: ChildProcess;
  private vswitchd?: ChildProcess;
  private readonly containers: Container[] = [];
  private stopped = false;
  /** More ovs-vswitchd arguments, on every (re)start. */
  vswitchdArgs: string[] = [];

  constructor(name: string, tag: string) {
    this.name = name;
    this.netns = `lt${tag}-${name}`;
    this.dir = join(runDir(), `${tag}-${name}`);
    this.dbPath = join(this.dir, 'conf.db');
    this.dbSocket = join(this.dir, 'db.sock');
    this.env = {
      ...process.env,
      OVS_RUNDIR: this.dir,
      OVS_DBDIR: this.dir,
      OVS_LOGDIR: this.dir,
      OVS_SYSCONFDIR: this.dir,
    };
  }

  get dbRemote(): string {
    return `unix:${this.dbSocket}`;
  }

  /** The OpenFlow management socket ovs-vswitchd opens for a bridge. */
  mgmtSocket(bridge: string): string {
    return join(this.dir, `${bridge}.mgmt`);
  }

  get vswitchdPid(): number | undefined {
    return this.vswitchd?.pid;
  }

  get ovsdbPid(): number | undefined {
    return this.ovsdb?.pid;
  }

  /** Runs a command inside the host's network namespace, with the host's OVS environment. */
  exec(cmd: string, args: readonly string[] = [], input?: string): Promise<string> {
    return run('ip', ['netns', 'exec', this.netns, cmd, ...args], { env: this.env, input });
  }

  vsctl(...args: string[]): Promise<string> {
    return run('ovs-vsctl', [`--db=${this.dbRemote}`, '--timeout=30', ...args], { env: this.env });
  }

  ofctl(...args: string[]): Promise<string> {
    return run('ovs-ofctl', ['-O', 'OpenFlow13', ...args], { env: this.env });
  }

  appctl(...args: string[]): Promise<string> {
    return run('ovs-appctl', ['-t', join(this.dir, 'ovs-vswitchd.ctl'), ...args], { env: this.env });
  }

  /** Adds a bridge on the userspace datapath and waits until ovs-vswitchd created it. */
  async addBridge(name: string, opts: BridgeOptions = {}): Promise<void> {
    const args = ['--may-exist', 'add-br', name, '--', 'set', 'bridge', name, 'datapath_type=netdev'];
    if (opts.failMode) args.push(`fail_mode=${opts.failMode}`);
    args.push(`protocols=${(opts.protocols ?? ['OpenFlow13']).join(',')}`);
    await this.vsctl(...args);
    await waitFor(`${name}.mgmt`, () => existsSync(this.mgmtSocket(name)));
  }

  async start(withVswitchd: boolean): Promise<void> {
    installExitCleanup();
    mkdirSync(this.dir, { recursive: true });
    track({ kind: 'dir', path: this.dir });
    track({ kind: 'netns', name: this.netns });
    await run('ip', ['netns', 'add', this.netns]);
    await run('ip', ['-n', this.netns, 'link', 'set', 'lo', 'up']);
    await run('ovsdb-tool', ['create', this.dbPath, SCHEMA]);
    await this.startOvsdb();
    await this.vsctl('--no-wait', 'init');
    // AF_XDP ports are polled by PMD threads: with the tests' AF_XDP run on, idle ones sleep
    // (OVS 3.1's pmd-maxsleep) instead of spinning on a core the other hosts need.
    if (process.env.LOOM_TEST_NETDEV_PORT_TYPE) await this.vsctl('--no-wait', 'set', 'Open_vSwitch', '.', 'other_config:pmd-maxsleep=50');
    if (withVswitchd) await this.startVswitchd();
  }

  async startOvsdb(): Promise<void> {
    // Retry on a port taken between probing and binding (other workers run in parallel).
    for (let attempt = 0; ; attempt++) {
      const port = this.dbTcpPort || (await freeLoopbackPort());
      this.ovsdb = this.spawnTracked('ovsdb-server', [
        this.dbPath,
        `--remote=punix:${this.dbSocket}`,
        `--remote=ptcp:${port}:127.0.0.1`,
        `--pidfile=${join(this.dir, 'ovsdb-server.pid')}`,
        `--unixctl=${join(this.dir, 'ovsdb-server.ctl')}`,
        `--log-file=${join(this.dir, 'ovsdb-server.log')}`,
        '-vconsole:off',
      ]);
      try {
        await waitFor('ovsdb-server', async () => {
          if (!alive(this.ovsdb!.pid!)) throw new Error('ovsdb-server exited');
          await run('ovsdb-client', ['list-dbs', `tcp:127.0.0.1:${port}`], { timeoutMs: 2000 });
          return true;
        });
        this.dbTcpPort = port;
        return;
      } catch (e) {
        await this.stopOvsdb();
        this.dbTcpPort = 0;
        if (attempt >= 3) throw e;
      }
    }
  }

  /** Kills ovsdb-server with SIGKILL, like a crash: nothing is flushed beyond what it committed. */
  async stopOvsdb(): Promise<void> {
    await this.stopProcess(this.ovsdb, 'SIGKILL');
    this.ovsdb = undefined;
  }

  async restartOvsdb(): Promise<void> {
    await this.stopOvsdb();
    await this.startOvsdb();
  }

  async startVswitchd(): Promise<void> {
    this.vswitchd = this.spawnTracked(
      'ovs-vswitchd',
      [
        this.dbRemote,
        `--pidfile=${join(this.dir, 'ovs-vswitchd.pid')}`,
        `--unixctl=${join(this.dir, 'ovs-vswitchd.ctl')}`,
        `--log-file=${join(this.dir, 'ovs-vswitchd.log')}`,
        '-vconsole:off',
        ...this.vswitchdArgs,
      ],
      this.netns,
    );
    await waitFor('ovs-vswitchd', async () => {
      if (!alive(this.vswitchd!.pid!)) throw new Error(`ovs-vswitchd exited; see ${this.dir}/ovs-vswitchd.log`);
      await this.appctl('version');
      return true;
    });
    // The first transaction that waits for ovs-vswitchd proves it has read the database.
    await this.vsctl('set', 'Open_vSwitch', '.', `external_ids:harness-host=${this.name}`);
  }

  /** Stops ovs-vswitchd gracefully (SIGTERM), as a service restart would. */
  async stopVswitchd(): Promise<void> {
    await this.stopProcess(this.vswitchd, 'SIGTERM');
    this.vswitchd = undefined;
  }

  async restartVswitchd(): Promise<void> {
    await this.stopVswitchd();
    await this.startVswitchd();
  }

  /**
   * A "container": a network namespace with a veth pair, `eth0` inside, `hostIf` in this host.
   * With `{ empty: true }` only the namespace, for a CNI plugin to plumb.
   */
  async addContainer(name: string, opts: { empty?: boolean } = {}): Promise<Container> {
    const c = new Container(this, name, uniqueTag());
    this.containers.push(c);
    if (opts.empty) await c.createEmpty();
    else await c.create();
    return c;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const c of this.containers) await c.remove();
    await this.stopVswitchd();
    await this.stopOvsdb();
    await run('ip', ['netns', 'del', this.netns]).catch(() => undefined);
    untrack({ kind: 'netns', name: this.netns });
    rmSync(this.dir, { recursive: true, force: true });
    untrack({ kind: 'dir', path: this.dir });
  }

  private spawnTracked(exe: string, args: string[], netns?: string): ChildProcess {
    // `ip netns exec` execs in place (no fork), so the child's PID is the daemon's PID.
    const [cmd, argv] = netns ? ['ip', ['netns', 'exec', netns, exe, ...args]] : [exe, args];
    const child = spawn(cmd, argv, { env: this.env, stdio: 'ignore', detached: keeping() });
    if (child.pid === undefined) throw new Error(`could not start ${exe}`);
    if (keeping()) child.unref();
    track({ kind: 'pid', pid: child.pid, exe });
    return child;
  }

  private async stopProcess(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
    if (!child?.pid) return;
    const pid = child.pid;
    const exited = new Promise<void>((r) => {
      if (child.exitCode !== null || child.signalCode !== null) r();
      else child.once('exit', () => r());
    });
    child.kill(signal);
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000));
    if ((await Promise.race([exited, timeout])) === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
    untrack({ kind: 'pid', pid, exe: '' } satisfies Resource);
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts a simulated host. Call `stop()` when done; exit handlers clean up if a test crashes. */
export async function startHost(opts: HostOptions): Promise<SimHost> {
  const host = new SimHost(opts.name, uniqueTag());
  host.vswitchdArgs = opts.vswitchdArgs ?? [];
  try {
    await host.start(opts.vswitchd ?? true);
  } catch (e) {
    await host.stop().catch(() => undefined);
    throw e;
  }
  return host;
}
