// bench:ovs-restart: how long forwarding stays broken after ovs-vswitchd restarts, counted from
// the moment its OpenFlow management socket answers again (before that nothing can program it).
// Two hosts, a container on each, `ping -D` between them every 2 ms; ovs-vswitchd of the first
// host is stopped (SIGTERM) and started again, BENCH_RESTARTS times, and a prober completes an
// OpenFlow handshake on br-int.mgmt as soon as it can. restore = first reply after the restart
// minus that handshake.
// Side by side, in the same run: what an operator gets without Loom reprogramming the switch,
// the `ovs-ctl restart` way (ovs-save: flows dumped before the stop, restored with
// `ovs-ofctl --bundle add-flows` as soon as the socket answers), with the agent stopped.
// Last line: RESULT restarts=N restore_p50_ms=... restore_p99_ms=... ovs_save_p50_ms=... ...
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, runCni, cniEnv, waitFor, type Cluster, type Container, type SimHost } from '../test/harness/index.js';
import { startController } from '../test/harness/controller.js';
import { OpenFlowConnection } from '../src/openflow/connection.js';

const RESTARTS = Number(process.env.BENCH_RESTARTS ?? 10);
const BASELINE_RESTARTS = Number(process.env.BENCH_BASELINE_RESTARTS ?? 5);
const PING_INTERVAL_S = '0.002';

// Wall clock, as ping -D prints it.
const nowMs = () => Date.now();

interface Sample {
  /** OVS stop to its OpenFlow socket answering (ms). */
  ovsStartMs: number;
  /** Socket answering to the first packet forwarded end to end (ms). */
  restoreMs: number;
}

async function attach(cluster: Cluster, host: number, name: string): Promise<{ c: Container; ipv4: string }> {
  const c = await cluster.hosts[host]!.addContainer(name, { empty: true });
  const conf = { cniVersion: '1.0.0', name: 'blue', type: 'loom', agentSocket: cluster.agents[host]!.socket };
  const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, name));
  if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout}`);
  return { c, ipv4: (r.json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]! };
}

/** Starts `ping -D` in the container; `stop()` interrupts it and returns the reply times (epoch ms). */
function pinger(c: Container, address: string): { stop: () => Promise<number[]> } {
  // `ip netns exec` execs in place: the PID is ping's.
  const proc = spawn('ip', ['netns', 'exec', c.netns, 'ping', '-D', '-n', '-i', PING_INTERVAL_S, '-W', '1', address], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    async stop() {
      process.kill(proc.pid!, 'SIGINT');
      await exited;
      return [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]) * 1000);
    },
  };
}

/** Polls the bridge's management socket until an OpenFlow handshake completes; returns that moment. */
async function socketAnswers(host: SimHost): Promise<number> {
  const target = `unix:${host.mgmtSocket('br-int')}`;
  for (;;) {
    try {
      const conn = await OpenFlowConnection.connect(target, { reconnect: false, probeIntervalMs: 0, connectTimeoutMs: 2000 });
      const t = nowMs();
      await conn.close();
      return t;
    } catch {
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

/** One restart of ovs-vswitchd on `host` under ping; `afterSocket` runs once the socket answers. */
async function restartOnce(host: SimHost, from: Container, to: string, afterSocket?: () => Promise<void>): Promise<Sample> {
  const ping = pinger(from, to);
  await new Promise((r) => setTimeout(r, 200));
  await host.stopVswitchd();
  const stoppedAt = nowMs();
  const answered = socketAnswers(host);
  const started = host.startVswitchd();
  const socketAt = await answered;
  await afterSocket?.();
  await started;
  await waitFor('forwarding after the restart', async () => (await from.exec('ping', ['-c', '1', '-W', '1', to]).then(() => true, () => false)), 30_000, 10);
  await new Promise((r) => setTimeout(r, 100));
  const replies = await ping.stop();
  const first = replies.find((t) => t > stoppedAt);
  if (first === undefined) throw new Error('no reply after the restart');
  return { ovsStartMs: socketAt - stoppedAt, restoreMs: first - socketAt };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
const r1 = (x: number) => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const ctl = await startController({ hostDownAfterMs: 60_000 });
  await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN' });
  const cluster = await startCluster({ hosts: ['ra', 'rb'], controller: ctl.target });
  try {
    const host = cluster.hosts[0]!;
    const a = await attach(cluster, 0, 'a1');
    const b = await attach(cluster, 1, 'b1');
    await a.c.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', b.ipv4]);

    const loom: Sample[] = [];
    for (let i = 0; i < RESTARTS; i++) {
      const s = await restartOnce(host, a.c, b.ipv4);
      loom.push(s);
      console.log(`loom      restart ${i + 1}: ovs up after ${r1(s.ovsStartMs)} ms, forwarding ${r1(s.restoreMs)} ms after its socket answered`);
    }

    // BENCH_VERBOSE=1: the agent's own view of the last restarts (reconnect, flows reinstalled).
    if (process.env.BENCH_VERBOSE) {
      for (const l of cluster.agents[0]!.logs.split('\n').filter((x) => /re-established|flows updated/.test(x)).slice(-6)) console.log(l);
    }
    // The ovs-save way, with Loom's agent out of the picture: ovs-vswitchd as it runs without
    // Loom, copying the kernel's routes (nobody would pin the underlay routes after a restart).
    await cluster.agents[0]!.stop();
    const loomArgs = host.vswitchdArgs;
    host.vswitchdArgs = [];
    const saved = join(host.dir, 'saved-flows.txt');
    const ovsSave: Sample[] = [];
    for (let i = 0; i < BASELINE_RESTARTS; i++) {
      const dump = await host.ofctl('dump-flows', '--no-names', '--no-stats', 'br-int');
      writeFileSync(saved, dump.split('\n').filter((l) => l.includes('actions=')).map((l) => l.trim()).join('\n') + '\n');
      const s = await restartOnce(host, a.c, b.ipv4, async () => {
        await host.ofctl('--bundle', 'add-flows', 'br-int', saved);
      });
      ovsSave.push(s);
      console.log(`ovs-save  restart ${i + 1}: ovs up after ${r1(s.ovsStartMs)} ms, forwarding ${r1(s.restoreMs)} ms after its socket answered`);
    }
    host.vswitchdArgs = loomArgs;
    await cluster.agents[0]!.start();

    const restore = loom.map((s) => s.restoreMs);
    const baseline = ovsSave.map((s) => s.restoreMs);
    const ovsStart = [...loom, ...ovsSave].map((s) => s.ovsStartMs);
    console.log(
      `RESULT restarts=${RESTARTS} restore_p50_ms=${r1(pct(restore, 50))} restore_p99_ms=${r1(pct(restore, 99))} ` +
        `ovs_save_p50_ms=${r1(pct(baseline, 50))} ovs_save_p99_ms=${r1(pct(baseline, 99))} ovs_start_p50_ms=${r1(pct(ovsStart, 50))}`,
    );
  } finally {
    await cluster.stop();
    await ctl.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
