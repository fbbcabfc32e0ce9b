// bench:cni: 100 sequential ADDs, then 100 DELs, through the `loom` CNI plugin binary (static C),
// on one simulated host with a real OVS, the compiled agent and the compiled controller.
// Last line: RESULT adds=100 add_p50_ms=... add_p99_ms=... del_p50_ms=... agent_rss_mb=...
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startHost, startAgent, cniBinDir, runCni, cniEnv, waitFor, type Container } from '../test/harness/index.js';
import { LoomClient } from '../src/api/client.js';

const N = Number(process.env.BENCH_CNI_N ?? 100);
const ROOT = resolve(import.meta.dirname, '..');

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

async function main(): Promise<void> {
  const host = await startHost({ name: 'bench' });
  const dbPath = join(host.dir, 'controller.db');
  const ctl = spawn(join(ROOT, 'bin/loom-controller'), ['--listen', '127.0.0.1:0', '--metrics-listen', '', '--db', dbPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  ctl.stdout.on('data', (c: Buffer) => (out += c.toString()));
  try {
    const port = await waitFor('controller', () => /"grpcPort":(\d+)/.exec(out)?.[1], 30_000, 50);
    const target = `127.0.0.1:${port}`;
    const client = new LoomClient(target);
    await client.createNetwork({ name: 'bench', ipv4Cidr: '198.18.0.0/16', ipv6Cidr: 'fd00:be::/64', tunnelType: 'TUNNEL_TYPE_VXLAN' });
    const agent = await startAgent(host, { controller: target, vtep: '192.0.2.1', built: true, logLevel: 'info' });
    const bin = cniBinDir(host.dir);
    const conf = { cniVersion: '1.0.0', name: 'bench', type: 'loom', agentSocket: agent.socket };
    const containers: Container[] = [];
    for (let i = 0; i < N; i++) containers.push(await host.addContainer(`b${i}`, { empty: true }));
    // One warm-up ADD/DEL so the first sample does not pay for cold caches.
    const warm = await host.addContainer('warm', { empty: true });
    await runCni(bin, 'ADD', conf, cniEnv(warm, 'warm'));
    await runCni(bin, 'DEL', conf, cniEnv(warm, 'warm'));

    const time = async (cmd: string, c: Container, id: string) => {
      const t0 = process.hrtime.bigint();
      const r = await runCni(bin, cmd, conf, cniEnv(c, id));
      if (r.code !== 0) throw new Error(`${cmd} ${id} failed: ${r.stdout}`);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const adds: number[] = [];
    for (const [i, c] of containers.entries()) {
      adds.push(await time('ADD', c, `c${i}`));
      if ((i + 1) % 25 === 0) process.stdout.write(`  ${i + 1}/${N} ADDs\n`);
    }
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))?.[1]);
    const flows = (await host.ofctl('dump-flows', 'br-int')).split('\n').filter((l) => l.includes('actions=')).length;
    const dels: number[] = [];
    for (const [i, c] of containers.entries()) dels.push(await time('DEL', c, `c${i}`));
    console.log(`ADD ms: p50 ${percentile(adds, 50).toFixed(1)}, p90 ${percentile(adds, 90).toFixed(1)}, p99 ${percentile(adds, 99).toFixed(1)}, max ${Math.max(...adds).toFixed(1)}`);
    console.log(`DEL ms: p50 ${percentile(dels, 50).toFixed(1)}, p99 ${percentile(dels, 99).toFixed(1)}; flows with ${N} endpoints: ${flows}`);
    // Where an ADD's time goes inside the agent (cumulative milliseconds at each stage, medians).
    const stages = agent.logs.split('\n').filter((l) => l.includes('"container attached"')).map((l) => (JSON.parse(l) as { ms: Record<string, number> }).ms);
    const median = (k: string) => percentile(stages.map((s) => s[k] ?? 0), 50).toFixed(1);
    console.log(`agent, cumulative ms (p50): controller ${median('controller')}, netlink ${median('netlink')}, ovsdb ${median('ovsdb')}, openflow ${median('openflow')}`);
    console.log(`plugin process alone (VERSION, answered without the agent): ${await pluginStartMs(bin)} ms; a bare \`node -e ''\` for comparison: ${await nodeStartMs()} ms`);
    await agent.stop();
    client.close();
    console.log(`RESULT adds=${N} add_p50_ms=${percentile(adds, 50).toFixed(1)} add_p99_ms=${percentile(adds, 99).toFixed(1)} del_p50_ms=${percentile(dels, 50).toFixed(1)} agent_rss_mb=${(rssKb / 1024).toFixed(1)}`);
  } finally {
    ctl.kill('SIGTERM');
    await host.stop();
  }
}

async function pluginStartMs(bin: string): Promise<string> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 5; i++) await runCni(bin, 'VERSION', '{"cniVersion":"1.0.0"}');
  return (Number(process.hrtime.bigint() - t0) / 5e6).toFixed(1);
}

async function nodeStartMs(): Promise<string> {
  const t0 = process.hrtime.bigint();
  await new Promise((r) => spawn(process.execPath, ['-e', '']).on('exit', r));
  return (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
