// Loom's own processes on simulated hosts: the agent as a child process bound to a host's OVS and
// namespace, and the CNI plugin run exactly as a runtime runs it (environment + stdin).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { keeping, track, untrack } from './registry.js';
import { waitFor } from './exec.js';
import type { SimHost } from './host.js';
import type { Container } from './container.js';

const ROOT = resolve(import.meta.dirname, '../..');

export interface AgentOptions {
  controller: string;
  vtep: string;
  underlayMtu?: number;
  extraArgs?: string[];
  /** Run the compiled agent (bin/loom-agent, after `npm run build`) instead of the source. */
  built?: boolean;
  /** Default debug: tests read the logs when something fails. */
  logLevel?: string;
}

/** Resolves when the agent answers GET /v1/status on its local API socket. */
function agentAnswers(socketPath: string): Promise<boolean> {
  return new Promise((done) => {
    const req = http.get({ socketPath, path: '/v1/status', timeout: 1000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('error', () => done(false));
    req.on('timeout', () => req.destroy());
  });
}

/**
 * LOOM_TEST_NETDEV_PORT_TYPE=afxdp runs every test agent with that port type, to run the suites
 * with the faster datapath configuration (hosts then let idle PMD threads sleep, see host.ts).
 */
export function testPortTypeArgs(): string[] {
  const type = process.env.LOOM_TEST_NETDEV_PORT_TYPE;
  return type ? ['--netdev-port-type', type] : [];
}

/** LOOM_TEST_NAT_PATH=ovs runs every test agent with NAT in OVS (a test's own --nat-path wins). */
export function testNatPathArgs(): string[] {
  const path = process.env.LOOM_TEST_NAT_PATH;
  return path ? ['--nat-path', path] : [];
}

export class AgentProcess {
  private proc?: ChildProcess;
  private out = '';
  readonly socket: string;

  constructor(
    readonly host: SimHost,
    readonly opts: AgentOptions,
  ) {
    this.socket = join(host.dir, 'agent.sock');
  }

  /** Everything the agent logged (JSON lines). */
  get logs(): string {
    return this.out;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts the agent and waits for it to serve its local API. */
  async start(): Promise<void> {
    const flags = [
      '--host-name', this.host.name,
      '--vtep', this.opts.vtep,
      '--controller', this.opts.controller,
      '--datapath', 'netdev',
      '--ovsdb', this.host.dbRemote,
      '--ovs-rundir', this.host.dir,
      '--host-netns', `/run/netns/${this.host.netns}`,
      '--socket', this.socket,
      '--underlay-mtu', String(this.opts.underlayMtu ?? 1500),
      '--metrics-listen', '',
      '--log-level', this.opts.logLevel ?? 'debug',
      ...testPortTypeArgs(),
      ...testNatPathArgs(),
      ...(this.opts.extraArgs ?? []),
    ];
    const [cmd, args] = this.opts.built
      ? [join(ROOT, 'bin/loom-agent'), flags]
      : [process.execPath, ['--import', 'tsx', 'src/agent/main.ts', ...flags]];
    const env = { ...process.env, UV_THREADPOOL_SIZE: '16' };
    if (keeping()) return this.startDetached(cmd, args, env);
    const proc = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    track({ kind: 'pid', pid: proc.pid!, exe: 'node' });
    const onData = (chunk: Buffer) => (this.out += chunk.toString());
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    await waitFor(`agent on ${this.host.name} to serve ${this.socket}`, async () => {
      if (proc.exitCode !== null) throw new Error(`agent exited with ${proc.exitCode}:\n${this.out}`);
      return agentAnswers(this.socket);
    }, 60_000, 50);
  }

  /** Keep mode: the agent outlives this process and logs to agent.log in the host's directory. */
  private async startDetached(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
    const logFile = join(this.host.dir, 'agent.log');
    const fd = openSync(logFile, 'a');
    const proc = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    proc.unref();
    this.proc = proc;
    await waitFor(`agent on ${this.host.name} (see ${logFile})`, async () => {
      if (proc.exitCode !== null) throw new Error(`agent exited with ${proc.exitCode}: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
      return agentAnswers(this.socket);
    }, 60_000, 100);
  }

  /** Stops the agent by PID (SIGTERM by default, SIGKILL to simulate a crash). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc?.pid || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await exited;
    untrack({ kind: 'pid', pid: proc.pid, exe: 'node' });
  }
}

export async function startAgent(host: SimHost, opts: AgentOptions): Promise<AgentProcess> {
  const a = new AgentProcess(host, opts);
  await a.start();
  return a;
}

/**
 * The compiled `loom` plugin (dist/cni/loom), built from src/cni/shim/loom.c when missing or
 * older than its source. build-cni.sh renames into place, so parallel workers never race.
 */
export function cniPluginPath(): string {
  const exe = join(ROOT, 'dist/cni/loom');
  const src = join(ROOT, 'src/cni/shim/loom.c');
  if (!existsSync(exe) || statSync(exe).mtimeMs < statSync(src).mtimeMs) {
    execFileSync('bash', [join(ROOT, 'scripts/build-cni.sh'), exe], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return exe;
}

/** A CNI_PATH directory holding the `loom` plugin binary, as a runtime's would. */
export function cniBinDir(dir: string): string {
  const bin = join(dir, 'cni-bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(cniPluginPath(), join(bin, 'loom'));
  return bin;
}

export interface CniResult {
  code: number;
  stdout: string;
  /** stdout parsed as JSON, when it is. */
  json: Record<string, unknown> | undefined;
}

/** Runs the plugin like a runtime: CNI_* environment, network configuration on stdin. */
export function runCni(
  binDir: string,
  command: string,
  conf: object | string,
  env: { containerId?: string; netns?: string; ifname?: string; args?: string } = {},
): Promise<CniResult> {
  return new Promise((resolveResult, reject) => {
    const child = spawn(join(binDir, 'loom'), [], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_PATH: binDir,
        ...(env.containerId ? { CNI_CONTAINERID: env.containerId } : {}),
        ...(env.netns ? { CNI_NETNS: env.netns } : {}),
        ...(env.ifname ? { CNI_IFNAME: env.ifname } : {}),
        ...(env.args ? { CNI_ARGS: env.args } : {}),
      },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      let json: Record<string, unknown> | undefined;
      try {
        json = JSON.parse(stdout) as Record<string, unknown>;
      } catch {
        json = undefined;
      }
      resolveResult({ code: code ?? -1, stdout, json });
    });
    child.stdin.on('error', () => undefined); // EPIPE when the plugin exits without reading stdin
    child.stdin.end(typeof conf === 'string' ? conf : JSON.stringify(conf));
  });
}

/** CNI arguments for a harness container. */
export function cniEnv(c: Container, containerId: string, args?: string) {
  return { containerId, netns: c.netnsPath, ifname: 'eth0', ...(args ? { args } : {}) };
}
