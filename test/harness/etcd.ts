// A real etcd (Debian's etcd-server) for tests: loopback only, free ports, its own temp dir,
// started and stopped by PID; ready when its /health answers (polled, no fixed sleep).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface EtcdServer {
  /** Client URL, http://127.0.0.1:PORT. */
  endpoint: string;
  pid: number;
  /** kill -9 by PID, waits for the exit. */
  kill(): Promise<void>;
  /** Starts the same member again on the same data dir and ports. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function healthy(endpoint: string, deadline: number, child: ChildProcess, log: () => string): Promise<void> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}): ${log().slice(-2000)}`);
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(500) });
      const body = (await res.json()) as { health?: string };
      if (body.health === 'true') return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`etcd at ${endpoint} not healthy in time: ${log().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startEtcd(opts: { maxTxnOps?: number } = {}): Promise<EtcdServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'loom-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'm0', '--data-dir', path.join(dir, 'data'),
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `m0=${peer}`, '--initial-cluster-state', 'new',
    '--max-txn-ops', String(opts.maxTxnOps ?? 128),
  ];
  let child: ChildProcess;
  let output = '';
  const launch = async (): Promise<void> => {
    output = '';
    child = spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
    await healthy(endpoint, Date.now() + 20_000, child, () => output);
  };
  const exited = (): Promise<void> =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
  await launch();
  const server: EtcdServer = {
    endpoint,
    get pid() {
      return child.pid!;
    },
    async kill() {
      process.kill(child.pid!, 'SIGKILL');
      await exited();
    },
    restart: launch,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid!, 'SIGTERM');
        await exited();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}
