// "The outside": a namespace on the underlay that is no Loom host (a server on the internet, an
// operator's machine), with a TCP/UDP echo server that tells each client its source address.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { run, waitFor } from './exec.js';
import { track, untrack, uniqueTag } from './registry.js';
import type { Underlay } from './underlay.js';

const ROOT = resolve(import.meta.dirname, '../..');
const ECHO = resolve(import.meta.dirname, 'fixtures/echo-server.ts');

export class Outside {
  readonly netns: string;
  private servers: ChildProcess[] = [];

  constructor(tag: string) {
    this.netns = `lt${tag}-out`;
  }

  /** Plugs the namespace into the underlay with the given addresses (CIDRs). */
  async create(underlay: Underlay, addresses: string[]): Promise<void> {
    track({ kind: 'netns', name: this.netns });
    await run('ip', ['netns', 'add', this.netns]);
    await run('ip', ['-n', this.netns, 'link', 'set', 'lo', 'up']);
    const peer = `o${this.netns.slice(2, 14)}`.slice(0, 15);
    await run('ip', ['-n', underlay.netns, 'link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.netns]);
    await run('ip', ['-n', underlay.netns, 'link', 'set', peer, 'master', 'br-ul', 'up']);
    for (const a of addresses) await run('ip', ['-n', this.netns, 'addr', 'add', a, 'dev', 'eth0', ...(a.includes(':') ? ['nodad'] : [])]);
    await run('ip', ['-n', this.netns, 'link', 'set', 'eth0', 'up']);
    // A real machine's NIC finishes checksums; a veth leaves them partial, and the hosts'
    // userspace datapath reads their underlay port from a socket and would pass them on unfinished.
    await run('ip', ['netns', 'exec', this.netns, 'ethtool', '-K', 'eth0', 'tx', 'off']);
  }

  exec(cmd: string, args: readonly string[] = [], input?: string): Promise<string> {
    return run('ip', ['netns', 'exec', this.netns, cmd, ...args], { input });
  }

  /** Starts the echo server on `port` (TCP and UDP, IPv4 and IPv6) and waits until it listens. */
  async startEcho(port: number): Promise<void> {
    this.servers.push(await startEchoServer(this.netns, port));
  }

  async remove(): Promise<void> {
    for (const s of this.servers) await stopEchoServer(s);
    await run('ip', ['netns', 'del', this.netns]).catch(() => undefined);
    untrack({ kind: 'netns', name: this.netns });
  }
}

/** The echo server in any namespace (a container's too); stop it with stopEchoServer. */
export async function startEchoServer(netns: string, port: number): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '--import', 'tsx', ECHO, String(port)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  track({ kind: 'pid', pid: child.pid!, exe: 'node' });
  await new Promise<void>((ok, fail) => {
    child.stdout!.on('data', (c: Buffer) => c.toString().includes('ready') && ok());
    child.once('exit', (code) => fail(new Error(`echo server exited with ${code}`)));
  });
  return child;
}

export async function stopEchoServer(s: ChildProcess): Promise<void> {
  if (s.exitCode === null && s.signalCode === null) {
    const exited = new Promise((r) => s.once('exit', r));
    s.kill('SIGTERM');
    await exited;
  }
  untrack({ kind: 'pid', pid: s.pid!, exe: 'node' });
}

export async function createOutside(underlay: Underlay, addresses: string[]): Promise<Outside> {
  const o = new Outside(uniqueTag());
  try {
    await o.create(underlay, addresses);
  } catch (err) {
    await o.remove();
    throw err;
  }
  return o;
}

/** One TCP connection to an echo server, held open (e.g. across an agent restart). */
export interface HeldConnection {
  /** Sends a line and waits until it came back. */
  send(line: string): Promise<void>;
  /** Everything received so far (the server's "peer <address>" first). */
  received(): string;
  close(): Promise<void>;
}

/** Opens a TCP connection from `netns` to an echo server at `address`:`port` with nc, fed through a fifo. */
export async function holdEchoConnection(netns: string, address: string, port: number): Promise<HeldConnection> {
  const dir = mkdtempSync(join(tmpdir(), 'loom-held-'));
  const fifo = join(dir, 'in');
  const out = join(dir, 'out');
  await run('ip', ['netns', 'exec', netns, 'mkfifo', fifo]);
  const nc = spawn('ip', ['netns', 'exec', netns, 'sh', '-c', `nc -4 ${address} ${port} < ${fifo} > ${out}`], { stdio: 'ignore' });
  const writer = await open(fifo, 'w');
  const received = () => readFileSync(out, 'utf8');
  return {
    async send(line) {
      await writer.write(`${line}\n`);
      await waitFor(`"${line}" echoed`, () => received().includes(line), 5000, 20);
    },
    received,
    async close() {
      await writer.close();
      nc.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
