// A client for OVS daemons' unixctl control sockets (what `ovs-appctl` speaks): JSON-RPC 1.0 over
// a unix socket, each request answered by a string result or a string error. Used for commands
// such as `ofproto/trace`. Knows nothing of Loom.
import { existsSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { JsonStreamParser } from './jsonrpc/parser.js';
import { classifyMessage } from './jsonrpc/messages.js';
import { encodeRequest } from './jsonrpc/serializer.js';

/** The daemon answered the command with an error (its text, as ovs-appctl prints it). */
export class UnixctlError extends Error {
  override name = 'UnixctlError';
  constructor(
    readonly command: string,
    readonly reply: string,
  ) {
    super(`${command}: ${reply.trim()}`);
  }
}

export interface UnixctlOptions {
  /** Per-command timeout (default 10 s). */
  timeoutMs?: number;
  /** Largest reply accepted (default 16 MiB): a trace of a big table can be long, but not endless. */
  maxReplyBytes?: number;
}

/**
 * The control socket of an OVS daemon in `rundir`: `<name>.<pid>.ctl` with the pid from
 * `<name>.pid` (the default), else `<name>.ctl` (a daemon started with --unixctl so named).
 */
export function controlSocketPath(rundir: string, daemon = 'ovs-vswitchd'): string {
  const pidFile = join(rundir, `${daemon}.pid`);
  if (existsSync(pidFile)) {
    const pid = readFileSync(pidFile, 'utf8').trim();
    const byPid = join(rundir, `${daemon}.${pid}.ctl`);
    if (/^\d+$/.test(pid) && existsSync(byPid)) return byPid;
  }
  const plain = join(rundir, `${daemon}.ctl`);
  if (existsSync(plain)) return plain;
  throw new Error(`no control socket of ${daemon} in ${rundir} (is it running?)`);
}

/** Runs one command on a fresh connection and closes it, as ovs-appctl does. */
export async function unixctl(path: string, command: string, args: readonly string[] = [], opts: UnixctlOptions = {}): Promise<string> {
  const client = await UnixctlClient.connect(path, opts);
  try {
    return await client.call(command, args);
  } finally {
    client.close();
  }
}

export class UnixctlClient {
  private readonly parser: JsonStreamParser;
  private readonly waiting = new Map<number, { command: string; resolve: (s: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 0;
  private closedWith?: Error;

  private constructor(
    private readonly socket: Socket,
    private readonly opts: UnixctlOptions,
  ) {
    this.parser = new JsonStreamParser(opts.maxReplyBytes ?? 16 * 1024 * 1024);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('control socket closed')));
  }

  static connect(path: string, opts: UnixctlOptions = {}): Promise<UnixctlClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new UnixctlClient(socket, opts));
      });
      socket.once('error', reject);
    });
  }

  call(command: string, args: readonly string[] = []): Promise<string> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timeoutMs = this.opts.timeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${command}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { command, resolve, reject, timer });
      this.socket.write(encodeRequest(id, command, args));
    });
  }

  close(): void {
    this.fail(new Error('control socket closed by the client'));
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    let messages: unknown[];
    try {
      messages = this.parser.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      this.socket.destroy();
      return;
    }
    for (const json of messages) {
      let m;
      try {
        m = classifyMessage(json);
      } catch (err) {
        this.fail(err as Error);
        this.socket.destroy();
        return;
      }
      if (m.kind !== 'response' || typeof m.id !== 'number') continue; // daemons send nothing else; ignore it if they do
      const w = this.waiting.get(m.id);
      if (!w) continue;
      this.waiting.delete(m.id);
      clearTimeout(w.timer);
      if (m.error !== null) w.reject(new UnixctlError(w.command, typeof m.error === 'string' ? m.error : JSON.stringify(m.error)));
      else w.resolve(typeof m.result === 'string' ? m.result : JSON.stringify(m.result));
    }
  }

  private fail(err: Error): void {
    this.closedWith ??= err;
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer);
      this.waiting.delete(id);
      w.reject(err);
    }
  }
}
