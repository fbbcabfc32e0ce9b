// A real etcd (Debian's etcd-server) for tests: loopback only, free ports, its own temp dir,
// started and stopped by PID; ready when its /health answers (polled, no fixed sleep).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
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

/** GET <endpoint>/health (with the client certificate when etcd wants one). */
function health(endpoint: string, tls?: EtcdTls): Promise<string> {
  return new Promise((resolve, reject) => {
    const options = tls ? { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {};
    const req = (endpoint.startsWith('https:') ? https : http).get(`${endpoint}/health`, { ...options, timeout: 500 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function healthy(endpoint: string, deadline: number, child: ChildProcess, log: () => string, tls?: EtcdTls): Promise<void> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}): ${log().slice(-2000)}`);
    try {
      if ((JSON.parse(await health(endpoint, tls)) as { health?: string }).health === 'true') return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`etcd at ${endpoint} not healthy in time: ${log().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** PEM files: the CA that signed both etcd's and the client's certificate, and a client cert/key. */
export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
}

/** With `tls`, etcd serves https with `tls.serverCert`/`serverKey` and requires client certificates. */
export async function startEtcd(opts: { maxTxnOps?: number; tls?: EtcdTls & { serverCert: string; serverKey: string } } = {}): Promise<EtcdServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'loom-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'm0', '--data-dir', path.join(dir, 'data'),
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `m0=${peer}`, '--initial-cluster-state', 'new',
    '--max-txn-ops', String(opts.maxTxnOps ?? 128),
    ...(opts.tls ? ['--cert-file', opts.tls.serverCert, '--key-file', opts.tls.serverKey, '--client-cert-auth', '--trusted-ca-file', opts.tls.ca] : []),
  ];
  let child: ChildProcess;
  let output = '';
  const launch = async (): Promise<void> => {
    output = '';
    child = spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
    await healthy(endpoint, Date.now() + 20_000, child, () => output, opts.tls);
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
