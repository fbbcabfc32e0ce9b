/**
 * Failover benchmark: three loom-controller daemons elected on a 3-member etcd cluster
 * (loopback), a steady stream of endpoint creates through the failover client (`--controller`
 * with all three addresses, as loomctl and agents use it), and LOOM_BENCH_KILLS (10) kill -9s of
 * the leading controller; each killed controller is started again (as a follower) before the next.
 *
 * failover_ms of one kill: from the SIGKILL until the first create is answered again (by the new
 * leader: the lease has to expire, a follower win the election and reload). At the end every
 * answered create must be stored with the address it was answered with (acked_lost) and no IPv4
 * address may be held twice (duplicate_addresses).
 *
 * Side by side, what a user would run instead: one controller on SQLite restarted at once after
 * each kill -9 (systemd Restart=always with no delay), measured the same way. The lease TTL
 * (--etcd-lease-ttl, LOOM_BENCH_LEASE_TTL, default 2 s) bounds the failover: printed with it.
 *
 * Where each failover's time goes, from the SIGKILL (wall clock, ms): `expired` when etcd deleted
 * the dead leader's key (its lease ran out; seen by the bench's own watch on the key, as the
 * followers see it), `won` when a follower's key was created (campaign won), `ready` when the new
 * leader logged that its state is current (no reload, or after one), `answered` the next create.
 *
 * Env: LOOM_BENCH_KILLS (10), LOOM_BENCH_WRITERS concurrent create loops (2), LOOM_BENCH_LEASE_TTL (2).
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Etcd3 } from 'etcd3';
import { LoomClient } from '../src/api/client.js';
import { FailoverClient } from '../src/api/failover.js';
import type { Endpoint } from '../src/api/types.js';
import { startDaemon, tempDir, type Daemon } from '../test/harness/controller-daemon.js';
import { startEtcdCluster, type EtcdServer } from '../test/harness/etcd.js';

const KILLS = Number(process.env.LOOM_BENCH_KILLS ?? 10);
const WRITERS = Number(process.env.LOOM_BENCH_WRITERS ?? 2);
const LEASE_TTL = Number(process.env.LOOM_BENCH_LEASE_TTL ?? 2);

const log = (s: string): void => console.log(`# ${s}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Creates from WRITERS loops until stopped; answered ones with the time they were answered. */
function stream(client: FailoverClient, tag: string) {
  const acked: { e: Endpoint; at: number }[] = [];
  let stopped = false;
  let failed = 0;
  const failures = new Map<string, number>();
  let seq = 0;
  const loop = async (): Promise<void> => {
    while (!stopped) {
      const id = `${tag}-${seq++}`;
      try {
        const e = await client.createEndpoint({ network: 'bench', host: 'h1', containerId: id }, { timeoutMs: 5000 });
        acked.push({ e, at: performance.now() });
      } catch (err) {
        // ALREADY_EXISTS: a retry of a create that committed before its answer was lost with the
        // leader. Anything else: not answered within the client's budget (may or may not have committed).
        const code = (err as { code?: number }).code;
        failures.set(code === 6 ? 'ALREADY_EXISTS' : code === undefined ? 'other' : `code ${code}`, (failures.get(code === 6 ? 'ALREADY_EXISTS' : code === undefined ? 'other' : `code ${code}`) ?? 0) + 1);
        failed++;
      }
    }
  };
  const loops = Array.from({ length: WRITERS }, loop);
  return {
    acked,
    failed: () => failed,
    failures: () => [...failures].map(([k, v]) => `${v} ${k}`).join(', ') || 'none',
    /** Milliseconds from `t` until the first create answered after `after` (default `t`). */
    async answeredAfter(t: number, after = t, limitMs = 30_000): Promise<number> {
      for (;;) {
        const hit = acked.find((a) => a.at > after);
        if (hit) return hit.at - t;
        if (performance.now() - t > limitMs) throw new Error(`no create answered within ${limitMs} ms`);
        await sleep(2);
      }
    },
    async stop(): Promise<void> {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Answered creates missing or changed in the store's list, and IPv4 addresses held twice. */
async function verify(client: FailoverClient, acked: { e: Endpoint }[]): Promise<{ lost: number; duplicates: number }> {
  const { endpoints } = await client.listEndpoints({ network: 'bench' });
  const byId = new Map(endpoints.map((e) => [e.containerId, e.ipv4]));
  const lost = acked.filter((a) => byId.get(a.e.containerId) !== a.e.ipv4).length;
  const v4 = endpoints.map((e) => e.ipv4);
  return { lost, duplicates: v4.length - new Set(v4).size };
}

async function setUp(client: FailoverClient): Promise<void> {
  await client.createNetwork({ name: 'bench', ipv4Cidr: '10.64.0.0/10', ipv4BlockPrefix: 20 });
  await client.register({ name: 'h1', vtep: '192.0.2.1' });
}

/** Which daemon leads: its heartbeat of an unknown host says NOT_FOUND (a follower refuses: UNAVAILABLE). */
async function leaderOf(targets: string[]): Promise<number> {
  for (;;) {
    for (const [i, target] of targets.entries()) {
      const c = new LoomClient(target);
      const code = await c.heartbeat(`probe-${randomUUID().slice(0, 8)}`, 0, { timeoutMs: 1000 }).then(
        () => -1,
        (e: { code: number }) => e.code,
      );
      c.close();
      if (code === 5) return i;
    }
    await sleep(20);
  }
}

interface Phases {
  expired: number;
  won: number;
  ready: number;
}

/** Wall-clock times of the leader key's deletes and creates, from a watch of the bench's own. */
async function watchLeaderKey(endpoints: string[], key: string): Promise<{ deletes: number[]; puts: number[]; close: () => Promise<void> }> {
  const etcd = new Etcd3({ hosts: endpoints });
  const deletes: number[] = [];
  const puts: number[] = [];
  const w = await etcd.watch().key(key).create();
  w.on('delete', () => deletes.push(Date.now()));
  w.on('put', () => puts.push(Date.now()));
  return {
    deletes,
    puts,
    close: async () => {
      await w.cancel().catch(() => {});
      etcd.close();
    },
  };
}

/** When (epoch ms) and how a daemon first logged, after `after`, that it leads with current state. */
function readyAt(daemons: Daemon[], after: number): { at: number; how: string } {
  let best = { at: NaN, how: '?' };
  for (const d of daemons) {
    for (const line of d.output().split('\n')) {
      const fromWatch = line.includes('"leading: state current');
      if (!fromWatch && !line.includes('"state reloaded from the store"')) continue;
      const rec = JSON.parse(line) as { time: string; waitedMs?: number };
      const t = Date.parse(rec.time);
      if (t >= after && !(t >= best.at)) best = { at: t, how: fromWatch ? `from the watch, waited ${rec.waitedMs} ms` : 'reloaded' };
    }
  }
  return best;
}

async function etcdRun(): Promise<{ failovers: number[]; phases: Phases[]; lost: number; duplicates: number; acked: number; failed: number; failures: string }> {
  const members: EtcdServer[] = await startEtcdCluster(3);
  const daemons: Daemon[] = [];
  const port = await freePort();
  const watchPort = await freePort();
  const prefix = `/loom-bench-${randomUUID()}/`;
  const hosts = [1, 2, 3].map((n) => `127.0.0.${n}`);
  const start = (i: number): Promise<Daemon> =>
    startDaemon([
      '--listen', `${hosts[i]}:${port}`,
      '--watch-listen', `${hosts[i]}:${watchPort}`,
      '--store', 'etcd',
      '--etcd-endpoints', members.map((m) => m.endpoint).join(','),
      '--etcd-prefix', prefix,
      '--etcd-elect-as', `${hosts[i]}:${port}`,
      '--etcd-lease-ttl', String(LEASE_TTL),
    ]);
  const client = new FailoverClient(hosts.map((h) => `${h}:${port}`), (a) => new LoomClient(a));
  try {
    for (let i = 0; i < 3; i++) daemons.push(await start(i));
    await setUp(client);
    const keyWatch = await watchLeaderKey(members.map((m) => m.endpoint), `${prefix}leader`);
    const s = stream(client, 'ha');
    const failovers: number[] = [];
    const phases: Phases[] = [];
    for (let k = 0; k < KILLS; k++) {
      await s.answeredAfter(performance.now()); // steady: creates flow
      await sleep(300);
      const leader = await leaderOf(hosts.map((h) => `${h}:${port}`));
      const t = performance.now();
      const wall = Date.now();
      await daemons[leader].kill9();
      // Answers the dead leader sent before it died may be read after the SIGKILL: count from its exit.
      const ms = await s.answeredAfter(t, performance.now());
      failovers.push(ms);
      const expired = (keyWatch.deletes.find((x) => x >= wall) ?? NaN) - wall;
      const won = (keyWatch.puts.find((x) => x >= wall) ?? NaN) - wall;
      const r = readyAt(daemons.filter((_, i) => i !== leader), wall);
      const ready = r.at - wall;
      phases.push({ expired, won, ready });
      log(`kill ${k + 1}: controller ${hosts[leader]} (leader) killed; lease expired +${expired} ms, campaign won +${won} ms, ready +${ready} ms (${r.how}), creates answered again +${ms.toFixed(0)} ms`);
      daemons[leader] = await start(leader);
    }
    await sleep(300);
    await s.stop();
    await keyWatch.close();
    const { lost, duplicates } = await verify(client, s.acked);
    return { failovers, phases, lost, duplicates, acked: s.acked.length, failed: s.failed(), failures: s.failures() };
  } finally {
    client.close();
    for (const d of daemons) await d.kill9();
    await Promise.all(members.map((m) => m.stop()));
  }
}

async function sqliteRun(): Promise<{ outages: number[]; lost: number; duplicates: number; acked: number }> {
  const tmp = tempDir();
  const port = await freePort();
  const start = (): Promise<Daemon> => startDaemon(['--listen', `127.0.0.1:${port}`, '--db', `${tmp.dir}/c.db`]);
  let daemon = await start();
  // One address: the client must still wait out the restart, so give it the same budget.
  const client = new FailoverClient([`127.0.0.1:${port}`], (a) => new LoomClient(a), { failoverMs: 30_000 });
  try {
    await setUp(client);
    const s = stream(client, 'one');
    const outages: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      await s.answeredAfter(performance.now());
      await sleep(300);
      const t = performance.now();
      await daemon.kill9();
      const dead = performance.now();
      const restarted = start();
      const ms = await s.answeredAfter(t, dead);
      daemon = await restarted;
      outages.push(ms);
      log(`kill ${k + 1}: the one SQLite controller killed and restarted at once; creates answered again after ${ms.toFixed(0)} ms`);
    }
    await s.stop();
    const { lost, duplicates } = await verify(client, s.acked);
    return { outages, lost, duplicates, acked: s.acked.length };
  } finally {
    client.close();
    await daemon.kill9();
    tmp.cleanup();
  }
}

async function main(): Promise<void> {
  log(`${KILLS} kill -9s of the leading controller (3 controllers, 3-member etcd, lease TTL ${LEASE_TTL} s), ${WRITERS} create loops`);
  const ha = await etcdRun();
  log(`then the alternative: one controller on SQLite, restarted at once after each kill -9`);
  const one = await sqliteRun();
  const f = [...ha.failovers].sort((a, b) => a - b);
  const o = [...one.outages].sort((a, b) => a - b);
  log(`side by side          p50 ms   p99 ms   max ms   answered  lost  duplicates`);
  log(`etcd, 3 controllers  ${percentile(f, 50).toFixed(0).padStart(7)} ${percentile(f, 99).toFixed(0).padStart(8)} ${f[f.length - 1].toFixed(0).padStart(8)} ${String(ha.acked).padStart(9)} ${String(ha.lost).padStart(5)} ${String(ha.duplicates).padStart(11)}`);
  log(`sqlite, 1 restarted  ${percentile(o, 50).toFixed(0).padStart(7)} ${percentile(o, 99).toFixed(0).padStart(8)} ${o[o.length - 1].toFixed(0).padStart(8)} ${String(one.acked).padStart(9)} ${String(one.lost).padStart(5)} ${String(one.duplicates).padStart(11)}`);
  const med = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50);
  const exp = ha.phases.map((p) => p.expired);
  log(`after the kill (p50 ms): lease expired ${med(exp).toFixed(0)} (max ${Math.max(...exp).toFixed(0)}), campaign won +${med(ha.phases.map((p) => p.won - p.expired)).toFixed(0)}, ready +${med(ha.phases.map((p) => p.ready - p.won)).toFixed(0)}, answered +${med(ha.phases.map((p, i) => ha.failovers[i] - p.ready)).toFixed(0)}`);
  log(`the failover is bounded by the lease TTL (${LEASE_TTL * 1000} ms, plus etcd's 0.5 s expiry check) plus an election; creates not answered: ${ha.failures}`);
  log(`the restart is bounded by the controller's start-up (from source under tsx here; the release runs compiled JS) and needs the machine to survive`);
  console.log(
    `RESULT kills=${KILLS} failover_p50_ms=${percentile(f, 50).toFixed(0)} failover_p99_ms=${percentile(f, 99).toFixed(0)} acked_lost=${ha.lost} duplicate_addresses=${ha.duplicates} ` +
      `lease_ttl_ms=${LEASE_TTL * 1000} lease_expired_p50_ms=${med(exp).toFixed(0)} sqlite_restart_p50_ms=${percentile(o, 50).toFixed(0)} sqlite_restart_p99_ms=${percentile(o, 99).toFixed(0)}`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
    process.exit(1);
  },
);
