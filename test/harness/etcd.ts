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

type ServerTlsFiles = EtcdTls & { serverCert: string; serverKey: string };

/** With `tls`, etcd serves https with `tls.serverCert`/`serverKey` and requires client certificates. */
export async function startEtcd(opts: { maxTxnOps?: number; tls?: ServerTlsFiles } = {}): Promise<EtcdServer> {
  return (await startEtcdCluster(1, opts))[0];
}

/** `size` members on loopback forming one cluster; resolves once every member is healthy. */
export async function startEtcdCluster(size: number, opts: { maxTxnOps?: number; tls?: ServerTlsFiles } = {}): Promise<EtcdServer[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'loom-etcd-'));
  const members = [];
  for (let i = 0; i < size; i++) {
    const endpoint = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${await freePort()}`;
    members.push({ name: `m${i}`, endpoint, peer: `http://127.0.0.1:${await freePort()}` });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const servers = members.map((m) => {
    const args = [
      '--name', m.name, '--data-dir', path.join(dir, m.name),
      '--listen-client-urls', m.endpoint, '--advertise-client-urls', m.endpoint,
      '--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer,
      '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', path.basename(dir),
      '--max-txn-ops', String(opts.maxTxnOps ?? 128),
      // Loopback: elect in half a second, not etcd's WAN-friendly default of one.
      '--heartbeat-interval', '50', '--election-timeout', '500',
      ...(opts.tls ? ['--cert-file', opts.tls.serverCert, '--key-file', opts.tls.serverKey, '--client-cert-auth', '--trusted-ca-file', opts.tls.ca] : []),
    ];
    return member(m.endpoint, args, opts.tls);
  });
  try {
    await Promise.all(servers.map((s) => s.restart()));
  } catch (err) {
    await Promise.all(servers.map((s) => s.kill().catch(() => {})));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped = 0;
  for (const s of servers) {
    const stop = s.stop.bind(s);
    s.stop = async () => {
      await stop();
      if (++stopped === servers.length) rmSync(dir, { recursive: true, force: true });
    };
  }
  return servers;
}

/** One member: (re)started by restart(), which waits until it is healthy. */
function member(endpoint: string, args: string[], tls?: EtcdTls): EtcdServer {
  let child: ChildProcess | null = null;
  let output = '';
  const alive = (): boolean => child !== null && child.exitCode === null && child.signalCode === null;
  const exited = (): Promise<void> => (alive() ? new Promise((r) => child!.once('exit', () => r())) : Promise.resolve());
  return {
    endpoint,
    get pid() {
      return child?.pid ?? 0;
    },
    async kill() {
      if (alive()) process.kill(child!.pid!, 'SIGKILL');
      await exited();
    },
    async restart() {
      output = '';
      const c = spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      const keep = (d: Buffer): void => {
        output = (output + d.toString()).slice(-20_000);
      };
      c.stdout!.on('data', keep);
      c.stderr!.on('data', keep);
      await healthy(endpoint, Date.now() + 20_000, c, () => output, tls);
    },
    async stop() {
      if (alive()) process.kill(child!.pid!, 'SIGTERM');
      await exited();
    },
  };
}

/** Whether this member is the raft leader (etcd's maintenance Status through its JSON gateway). */
export async function isLeader(m: EtcdServer): Promise<boolean> {
  const res = await fetch(`${m.endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2000) });
  const body = (await res.json()) as { header: { member_id: string }; leader: string };
  return body.header.member_id === body.leader;
}
