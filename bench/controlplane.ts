/**
 * Control-plane benchmark: one loom-controller process (SQLite store, synchronous=FULL; or with
 * `--store etcd` an etcd the bench starts on loopback: one member, its default fsync) and
 * simulated agents in separate processes (every agent has its own TCP connection and Watch
 * stream).
 *
 * 1. agents register and watch; 10 networks are created, each spanning all hosts;
 *    100 endpoints per host (10 per network) are created: 100,000 endpoints;
 * 2. snapshot_ms: one agent re-watches from revision 0 and fully decodes and applies its view
 *    (all 10 networks: 100,000 directory entries + 9,990 routes);
 * 3. 1,000 endpoint creations issued back to back (each as soon as the previous was answered);
 *    for each, the time from issuing the create until the controller reports (Wait RPC) that
 *    every interested agent (here: all 1,000) acknowledged its revision.
 * Agents ack every complete message, on the controller's dedicated Watch port (learned from
 * RegisterResponse.watch_port, as loom-agent does). On a real deployment every agent has a machine
 * of its own; here 1,000 of them share the controller's 2 cores, so the simulated agents are kept
 * cheap: two agents, in a process of their own, are full clients (grpc-js, decode and apply
 * everything, their final views are checked against the expected endpoint count); the others,
 * in WORKERS processes, speak gRPC on bench/lib/h2-lite.ts (a minimal HTTP/2 client: one
 * connection and one Watch stream each) and read only the header of each message (revision,
 * reset, partial).
 *
 * Env: LOOM_BENCH_HOSTS (1000), LOOM_BENCH_EPH endpoints per host (100), LOOM_BENCH_WORKERS lite-agent processes (4),
 * LOOM_BENCH_CREATES (1000), LOOM_BENCH_SETTLE_MS idle time before step 3 (10000),
 * LOOM_BENCH_SERIAL=1 (creates one at a time), LOOM_BENCH_CONTROLLER_ARGS
 * and LOOM_BENCH_CONTROLLER_NODE_ARGS (extra controller flags / node flags, e.g. --cpu-prof).
 */
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { joinHostPort, splitHostPort } from '../src/common/config.js';
import { LoomClient } from '../src/api/client.js';
import { codecs, watchMethod } from '../src/api/proto.js';
import type { WatchRequest } from '../src/api/types.js';
import { ViewState } from '../src/api/view-state.js';
import { connectH2, grpcCall, type H2Connection } from './lib/h2-lite.js';
import { startEtcd, type EtcdServer } from '../test/harness/etcd.js';

const HOSTS = Number(process.env.LOOM_BENCH_HOSTS ?? 1000);
const EPH = Number(process.env.LOOM_BENCH_EPH ?? 100);
const WORKERS = Number(process.env.LOOM_BENCH_WORKERS ?? 4);
const CREATES = Number(process.env.LOOM_BENCH_CREATES ?? 1000);
const SETTLE_MS = Number(process.env.LOOM_BENCH_SETTLE_MS ?? 10_000);
/** One create at a time, each waited for: the latency of a lone change, without batching. */
const SERIAL = process.env.LOOM_BENCH_SERIAL === '1';
const NETWORKS = 10;
/** Fully decoding, checked agents (grpc-js clients, in a process of their own). */
const FULL = 2;
const ROOT = path.resolve(import.meta.dirname, '..');

const hostName = (i: number): string => `h${String(i).padStart(4, '0')}`;
const vtepOf = (i: number): string => `10.254.${i >> 8}.${i & 255}`;
const log = (msg: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

// ---------------------------------------------------------------- worker: simulated agents

interface Header {
  revision: number;
  reset: boolean;
  partial: boolean;
}

/** Reads fields 1-3 (written first by the controller) without decoding the events. */
function parseHeader(b: Buffer): Header {
  const h: Header = { revision: 0, reset: false, partial: false };
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const byte = b[i++];
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) return v;
      mul *= 128;
    }
  };
  while (i < b.length) {
    const tag = b[i];
    if (tag === 0x08) {
      i++;
      h.revision = varint();
    } else if (tag === 0x10) {
      i++;
      h.reset = varint() === 1;
    } else if (tag === 0x18) {
      i++;
      h.partial = varint() === 1;
    } else break;
  }
  return h;
}

type Msg = { type: 'ready' } | { type: 'snapshot-done'; ms: number; endpoints: number; routes: number } | { type: 'check'; endpoints: number[]; messages: number };

/** The sending side of one simulated agent's Watch stream. */
interface WatchCall {
  write(req: WatchRequest): void;
  cancel(): void;
}

interface SimAgent {
  name: string;
  /** The full agent (decodes everything) has a grpc-js channel, the others an h2-lite connection. */
  transport: grpc.Client | H2Connection;
  view: ViewState;
  call?: WatchCall;
}

let exiting = false;

/** Watch over h2-lite: the gRPC wire protocol on a minimal HTTP/2 client (bench/lib/h2-lite.ts). */
function liteWatch(conn: H2Connection, target: string, onMessage: (b: Buffer) => void): WatchCall {
  const call = grpcCall(conn, watchMethod.path, target, onMessage);
  call.onError = (err) => {
    if (!exiting) process.stderr.write(`watch failed: ${err.message}\n`);
  };
  return { write: (req) => call.send(watchMethod.requestSerialize(req)), cancel: () => call.cancel() };
}

/** Agents start..start+count-1: fully decoding grpc-js clients ('full') or h2-lite ones ('lite'). */
async function worker(target: string, start: number, count: number, full: boolean): Promise<void> {
  const send = (m: Msg): void => void process.send!(m);
  const agents: SimAgent[] = [];
  const lightDeserialize = (b: Buffer): Buffer => b;
  let messages = 0; // complete messages received by agent 0, for the message-per-create ratio

  function watch(a: SimAgent, fromRevision: number, onComplete?: () => void): WatchCall {
    let call: WatchCall;
    const onMessage = (buf: Buffer): void => {
      let done: boolean;
      let revision: number;
      if (a.transport instanceof grpc.Client) {
        const msg = codecs.watchResponse.decode(buf);
        done = a.view.apply(msg);
        revision = msg.revision;
      } else {
        const h = parseHeader(buf);
        done = !h.partial;
        revision = h.revision;
      }
      if (done) {
        if (a === agents[0]) messages++;
        call.write({ ack: { revision } });
        onComplete?.();
      }
    };
    if (a.transport instanceof grpc.Client) {
      const c = a.transport.makeBidiStreamRequest(watchMethod.path, watchMethod.requestSerialize, lightDeserialize);
      c.on('data', onMessage);
      c.on('error', () => undefined); // superseded streams end with ABORTED
      call = { write: (req) => void c.write(req), cancel: () => c.cancel() };
    } else {
      call = liteWatch(a.transport, watchTarget, onMessage);
    }
    call.write({ start: { host: a.name, fromRevision } });
    return call;
  }
  // Register first: the reply says where the controller's dedicated Watch server is.
  const api = new LoomClient(target);
  let watchPort = 0;
  for (let k = start; k < start + count; k += 50) {
    const batch = Array.from({ length: Math.min(50, start + count - k) }, (_, j) => k + j);
    const replies = await Promise.all(batch.map((i) => api.register({ name: hostName(i), vtep: vtepOf(i), agentVersion: 'bench', capabilities: ['vxlan'] })));
    watchPort = replies[0].watchPort;
  }
  const api0 = splitHostPort(target);
  const watchAddress = { host: api0.host, port: watchPort || api0.port };
  const watchTarget = joinHostPort(watchAddress.host, watchAddress.port);
  for (let i = start; i < start + count; i++) {
    let transport: SimAgent['transport'];
    if (full) {
      transport = new grpc.Client(watchTarget, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20, 'grpc.enable_channelz': 0, 'loom.bench.agent': i } as grpc.ClientOptions); // distinct options: a connection of its own
    } else {
      transport = await connectH2(watchAddress.host, watchAddress.port);
    }
    agents.push({ name: hostName(i), transport, view: new ViewState() });
  }
  await Promise.all(
    agents.map(
      (a) =>
        new Promise<void>((resolve) => {
          let resolved = false;
          a.call = watch(a, 0, () => {
            if (!resolved) {
              resolved = true;
              resolve();
            }
          });
        }),
    ),
  );
  send({ type: 'ready' });

  process.on('message', (m: { type: string }) => {
    const a = agents[0];
    if (m.type === 'count') {
      messages = 0;
    } else if (m.type === 'snapshot') {
      // Re-watch from 0 with a fresh view: full snapshot, fully decoded and applied.
      a.view = new ViewState();
      const t0 = performance.now();
      let reported = false;
      const old = a.call;
      a.call = watch(a, 0, () => {
        if (reported) return;
        reported = true;
        let endpoints = 0;
        let routes = 0;
        for (const n of a.view.networks.values()) {
          endpoints += n.endpoints.size;
          routes += n.routes.size;
        }
        send({ type: 'snapshot-done', ms: performance.now() - t0, endpoints, routes });
      });
      old?.cancel();
    } else if (m.type === 'check') {
      const endpoints = agents.map((x) => [...x.view.networks.values()].reduce((sum, n) => sum + n.endpoints.size, 0));
      send({ type: 'check', endpoints, messages });
    } else if (m.type === 'exit') {
      exiting = true;
      for (const x of agents) {
        x.call?.cancel();
        x.transport.close();
      }
      api.close();
      setTimeout(() => process.exit(0), 100);
    }
  });
}

// ---------------------------------------------------------------- driver

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** User and system CPU time of a process so far, in ms. */
function cpuMs(pid: number): { user: number; sys: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { user: Number(fields[11]) * 10, sys: Number(fields[12]) * 10 }; // clock ticks (USER_HZ 100)
}

function rssMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : -1;
}

/** `--store sqlite|etcd` (default sqlite): where the controller keeps its state. */
function storeFlag(): 'sqlite' | 'etcd' {
  const i = process.argv.indexOf('--store');
  const v = i >= 0 ? process.argv[i + 1] : 'sqlite';
  if (v !== 'sqlite' && v !== 'etcd') throw new Error(`--store must be sqlite or etcd, got ${JSON.stringify(v)}`);
  return v;
}

/** The controller's store flags: SQLite in `dir`, or an etcd (one member, loopback) the bench started. */
function storeArgs(dir: string, etcd: EtcdServer | null): string[] {
  return etcd ? ['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', '/loom-bench/'] : ['--db', path.join(dir, 'controller.db')];
}

function startController(storeFlags: string[]): Promise<{ proc: ChildProcess; target: string }> {
  const proc = spawn(
    process.execPath,
    [...(process.env.LOOM_BENCH_CONTROLLER_NODE_ARGS ?? '').split(' ').filter(Boolean), '--import', 'tsx', 'src/controller/main.ts', ...storeFlags, '--listen', '127.0.0.1:0', '--metrics-listen', '', '--host-down-after-ms', '600000', '--heartbeat-interval-ms', '60000', '--max-connections-per-peer', String(HOSTS + 16), ...(process.env.LOOM_BENCH_CONTROLLER_ARGS ?? '').split(' ').filter(Boolean)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    let buf: string | null = '';
    const logFile = process.env.LOOM_BENCH_CONTROLLER_LOG;
    proc.stdout!.on('data', (c: Buffer) => {
      if (logFile) appendFileSync(logFile, c);
      if (buf === null) return; // ready already seen; keep draining the pipe
      buf += c.toString();
      const line = buf.split('\n').find((l) => l.includes('loom-controller ready'));
      if (line) {
        resolve({ proc, target: `127.0.0.1:${(JSON.parse(line) as { grpcPort: number }).grpcPort}` });
        buf = null;
      }
    });
    proc.once('exit', (code) => reject(new Error(`controller exited with ${code}`)));
  });
}

async function driver(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'loom-bench-'));
  const children: ChildProcess[] = [];
  const store = storeFlag();
  const etcd = store === 'etcd' ? await startEtcd() : null;
  try {
    if (etcd) log(`etcd (one member, loopback) at ${etcd.endpoint}`);
    const { proc: ctl, target } = await startController(storeArgs(dir, etcd));
    children.push(ctl);
    // Process 0 holds the FULL fully-decoding agents (alone, so their acks are not queued behind
    // hundreds of others in one event loop); processes 1..WORKERS share the rest.
    log(`controller pid ${ctl.pid} at ${target}; starting ${WORKERS + 1} agent processes for ${HOSTS} hosts`);
    const per = Math.ceil((HOSTS - FULL) / WORKERS);
    const workers: ChildProcess[] = [];
    const inbox: Msg[][] = [];
    const waiters: (() => void)[] = [];
    for (let w = 0; w <= WORKERS; w++) {
      const start = w === 0 ? 0 : FULL + (w - 1) * per;
      const count = w === 0 ? FULL : Math.min(per, HOSTS - start);
      const child = spawn(process.execPath, ['--import', 'tsx', 'bench/controlplane.ts', '--agents', target, String(start), String(count), w === 0 ? 'full' : 'lite'], {
        cwd: ROOT,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.push(child);
      workers.push(child);
      inbox.push([]);
      child.on('message', (m: Msg) => {
        inbox[w].push(m);
        for (const f of waiters.splice(0)) f();
      });
    }
    const collect = async (type: Msg['type'], from = inbox.map((_, i) => i)): Promise<Msg[]> => {
      for (;;) {
        if (from.every((w) => inbox[w].some((m) => m.type === type))) {
          return from.map((w) => inbox[w].splice(inbox[w].findIndex((m) => m.type === type), 1)[0]);
        }
        await new Promise<void>((r) => waiters.push(r));
      }
    };
    await collect('ready');
    log('all agents registered and watching');

    const api = new LoomClient(target);
    for (let n = 0; n < NETWORKS; n++) {
      await api.createNetwork({ name: `net${n}`, ipv4Cidr: `10.${n}.0.0/16`, ipv4BlockPrefix: 27 });
    }
    const total = HOSTS * EPH;
    const t0 = performance.now();
    let issued = 0;
    let lastRev = 0;
    const writer = async (): Promise<void> => {
      for (;;) {
        const i = issued++;
        if (i >= total) return;
        const h = i % HOSTS;
        const n = Math.floor(i / HOSTS) % NETWORKS;
        const k = Math.floor(i / (HOSTS * NETWORKS));
        const ep = await api.createEndpoint({ network: `net${n}`, host: hostName(h), containerId: `${hostName(h)}-n${n}-${k}` });
        lastRev = Math.max(lastRev, ep.modRevision);
        if (i % 10_000 === 9_999) log(`${i + 1} endpoints created (${((i + 1) / ((performance.now() - t0) / 1000)).toFixed(0)}/s)`);
      }
    };
    await Promise.all(Array.from({ length: 64 }, writer));
    log(`${total} endpoints created in ${((performance.now() - t0) / 1000).toFixed(1)} s; waiting for every agent`);
    const conv = await api.wait(lastRev, 1_800_000);
    if (!conv.converged) throw new Error(`setup did not converge: pending ${conv.pendingHosts.length} hosts`);
    log(`converged at revision ${lastRev} after ${((performance.now() - t0) / 1000).toFixed(1)} s; controller RSS ${rssMb(ctl.pid!, 'VmRSS')} MB`);

    // Snapshot of one agent.
    workers[0].send({ type: 'snapshot' });
    const snap = (await collect('snapshot-done', [0]))[0] as Extract<Msg, { type: 'snapshot-done' }>;
    if (snap.endpoints !== total) throw new Error(`snapshot had ${snap.endpoints} endpoints, expected ${total}`);
    log(`snapshot: ${snap.endpoints} endpoints, ${snap.routes} routes in ${snap.ms.toFixed(0)} ms`);

    // The setup wrote 100,000 endpoints in about a minute; let the controller go idle so V8's
    // idle-time major GC collects that garbage now rather than in the measured window (steady
    // state, which this measures, has no such debt). LOOM_BENCH_SETTLE_MS=0 measures right away.
    log(`settling ${SETTLE_MS} ms before measuring`);
    await new Promise((r) => setTimeout(r, SETTLE_MS));

    // Propagation of back-to-back creates.
    const latencies: number[] = [];
    const replyMs: number[] = [];
    const waits: Promise<void>[] = [];
    workers[0].send({ type: 'count' });
    const p0 = performance.now();
    const cpu0 = cpuMs(ctl.pid!);
    const agentCpu = (): number => workers.reduce((sum, w) => sum + cpuMs(w.pid!).user + cpuMs(w.pid!).sys, 0);
    const agentCpu0 = agentCpu();
    for (let i = 0; i < CREATES; i++) {
      const h = (i * 7) % HOSTS;
      const n = i % NETWORKS;
      const issuedAt = performance.now();
      const ep = await api.createEndpoint({ network: `net${n}`, host: hostName(h), containerId: `extra-${i}` });
      replyMs.push(performance.now() - issuedAt);
      if (SERIAL) {
        const r = await api.wait(ep.modRevision, 60_000);
        if (!r.converged) throw new Error(`revision ${ep.modRevision} not applied by ${r.pendingHosts.length} hosts in 60 s`);
        latencies.push(performance.now() - issuedAt);
        continue;
      }
      waits.push(
        api.wait(ep.modRevision, 60_000).then((r) => {
          if (!r.converged) throw new Error(`revision ${ep.modRevision} not applied by ${r.pendingHosts.length} hosts in 60 s`);
          latencies.push(performance.now() - issuedAt);
        }),
      );
    }
    await Promise.all(waits);
    const createSecs = (performance.now() - p0) / 1000;
    const cpu1 = cpuMs(ctl.pid!);
    const cpuPerCreate = (cpu1.user + cpu1.sys - cpu0.user - cpu0.sys) / CREATES;
    const agentCpuPerCreate = (agentCpu() - agentCpu0) / CREATES;
    const sysShare = (cpu1.sys - cpu0.sys) / Math.max(1, cpu1.user + cpu1.sys - cpu0.user - cpu0.sys);
    latencies.sort((a, b) => a - b);
    replyMs.sort((a, b) => a - b);
    log(`controller CPU per create (write to and ack from every agent): ${cpuPerCreate.toFixed(1)} ms (${(sysShare * 100).toFixed(0)}% in the kernel); simulated agents: ${agentCpuPerCreate.toFixed(1)} ms`);
    log(`propagation p90 ${percentile(latencies, 90).toFixed(1)} ms, max ${latencies[latencies.length - 1].toFixed(1)} ms`);
    log(`create reply p50 ${percentile(replyMs, 50).toFixed(1)} ms, p99 ${percentile(replyMs, 99).toFixed(1)} ms`);
    workers[0].send({ type: 'check' });
    const check = (await collect('check', [0]))[0] as Extract<Msg, { type: 'check' }>;
    log(`an agent received ${check.messages} messages for the ${CREATES} creates (coalescing)`);
    if (check.endpoints.some((n) => n !== total + CREATES)) throw new Error(`fully decoding agents disagree: ${JSON.stringify(check.endpoints)}, expected ${total + CREATES}`);
    const rss = rssMb(ctl.pid!, 'VmRSS');
    const peak = rssMb(ctl.pid!, 'VmHWM');
    log(`${CREATES} creates in ${createSecs.toFixed(1)} s; every fully-decoding agent holds ${total + CREATES} endpoints; controller RSS ${rss} MB (peak ${peak} MB)`);
    api.close();
    workers.forEach((w) => w.send({ type: 'exit' }));
    console.log(
      `RESULT store=${store} hosts=${HOSTS} endpoints=${total} propagate_p50_ms=${percentile(latencies, 50).toFixed(1)} ` +
        `propagate_p99_ms=${percentile(latencies, 99).toFixed(1)} snapshot_ms=${snap.ms.toFixed(0)} controller_rss_mb=${rss} controller_peak_rss_mb=${peak}`,
    );
  } finally {
    await new Promise((r) => setTimeout(r, 300));
    // The controller gets SIGTERM (a clean stop: profiles get written), workers SIGKILL; all by PID.
    const exits = children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : Promise.resolve()));
    for (const c of children) if (c.exitCode === null && c.signalCode === null) process.kill(c.pid!, c === children[0] ? 'SIGTERM' : 'SIGKILL');
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 10_000))]);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) process.kill(c.pid!, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await etcd?.stop();
  }
}

if (process.argv[2] === '--agents') {
  worker(process.argv[3], Number(process.argv[4]), Number(process.argv[5]), process.argv[6] === 'full').catch((err: unknown) => {
    process.stderr.write(`agent worker failed: ${(err as Error).stack}\n`);
    process.exit(1);
  });
} else {
  driver().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
    process.exit(1);
  });
}
