// bench:cni: the `loom` CNI plugin against the standard `bridge` plugin (containernetworking-plugins,
// with host-local IPAM), in the same run on the same simulated host, both invoked as a runtime
// invokes them: the plugin binary exec'd with CNI_* in its environment and the configuration on
// stdin, a fresh container namespace for every container. N ADDs, then N DELs; each step times one
// loom and one bridge call back to back, in alternating order, so both see the same machine.
// Both plugins run in the host's namespace through the same `nsenter --net` wrapper (a runtime
// runs them in its own namespace; the bench must not create bridges in the machine's).
// Last line: RESULT adds=N add_p50_ms add_p99_ms del_p50_ms agent_rss_mb bridge_add_p50_ms
//            bridge_del_p50_ms ratio_vs_bridge (loom ADD+DEL p50 over bridge ADD+DEL p50)
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startHost, startAgent, cniBinDir, waitFor, type Container } from '../test/harness/index.js';
import { LoomClient } from '../src/api/client.js';

const N = Number(process.env.BENCH_CNI_N ?? 100);
/**
 * IPv4 only by default, as podman's default network. BENCH_CNI_IPV6=1 gives both plugins an IPv6
 * address too; bridge then waits for its addresses to settle (tens of ms), which flatters Loom.
 */
const DUAL_STACK = process.env.BENCH_CNI_IPV6 === '1';
const ROOT = resolve(import.meta.dirname, '..');
/** Where Debian's containernetworking-plugins puts the standard plugins. */
const STD_CNI_DIR = process.env.BENCH_CNI_STD_DIR ?? '/usr/lib/cni';

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

interface Plugin {
  label: 'loom' | 'bridge';
  /** CNI_PATH: the directory holding the plugin (and, for bridge, its IPAM plugin). */
  binDir: string;
  type: string;
  conf: object;
}

/** One CNI call as a runtime makes it, inside `netns` (the host's); resolves with its duration. */
function invoke(hostNetns: string, p: Plugin, command: string, c: Container, containerId: string): Promise<number> {
  return new Promise((done, fail) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('nsenter', [`--net=/run/netns/${hostNetns}`, join(p.binDir, p.type)], {
      env: {
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: containerId,
        CNI_NETNS: c.netnsPath,
        CNI_IFNAME: 'eth0',
        CNI_PATH: p.binDir,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', fail);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) fail(new Error(`${p.label} ${command} ${containerId} failed (exit ${code}): ${out.trim()}`));
      else done(ms);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify(p.conf));
  });
}

async function main(): Promise<void> {
  for (const exe of ['bridge', 'host-local']) {
    if (!existsSync(join(STD_CNI_DIR, exe))) {
      throw new Error(`${join(STD_CNI_DIR, exe)} is missing: apt-get install containernetworking-plugins (or set BENCH_CNI_STD_DIR)`);
    }
  }
  const host = await startHost({ name: 'bench' });
  const dbPath = join(host.dir, 'controller.db');
  const ctl = spawn(join(ROOT, 'bin/loom-controller'), ['--listen', '127.0.0.1:0', '--metrics-listen', '', '--db', dbPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  ctl.stdout.on('data', (c: Buffer) => (out += c.toString()));
  try {
    const port = await waitFor('controller', () => /"grpcPort":(\d+)/.exec(out)?.[1], 30_000, 50);
    const target = `127.0.0.1:${port}`;
    const client = new LoomClient(target);
    await client.createNetwork({ name: 'bench', ipv4Cidr: '198.18.0.0/16', ...(DUAL_STACK ? { ipv6Cidr: 'fd00:be::/64' } : {}), tunnelType: 'TUNNEL_TYPE_VXLAN' });
    const agent = await startAgent(host, { controller: target, vtep: '192.0.2.1', built: true, logLevel: 'info' });
    // Both give the container the same: an address per family, a default route via a gateway.
    const loom: Plugin = { label: 'loom', binDir: cniBinDir(host.dir), type: 'loom', conf: { cniVersion: '1.0.0', name: 'bench', type: 'loom', agentSocket: agent.socket } };
    const bridge: Plugin = {
      label: 'bridge',
      binDir: STD_CNI_DIR,
      type: 'bridge',
      conf: {
        cniVersion: '1.0.0',
        name: 'benchbr',
        type: 'bridge',
        bridge: 'cnibench0',
        isGateway: true,
        ipMasq: false,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: '198.19.0.0/16' }], ...(DUAL_STACK ? [[{ subnet: 'fd00:bf::/64' }]] : [])],
          routes: [{ dst: '0.0.0.0/0' }, ...(DUAL_STACK ? [{ dst: '::/0' }] : [])],
          dataDir: join(host.dir, 'host-local'),
        },
      },
    };
    const plugins = [loom, bridge];
    console.log(`loom vs bridge (host-local), ${DUAL_STACK ? 'IPv4 and IPv6' : 'IPv4'}, ${N} containers each`);
    const containers = new Map<Plugin, Container[]>(plugins.map((p) => [p, []]));
    for (let i = 0; i < N; i++) for (const p of plugins) containers.get(p)!.push(await host.addContainer(`${p.label[0]}${i}`, { empty: true }));
    // One warm-up ADD/DEL each, so the first sample does not pay for cold caches.
    for (const p of plugins) {
      const warm = await host.addContainer(`w${p.label[0]}`, { empty: true });
      await invoke(host.netns, p, 'ADD', warm, 'warm');
      await invoke(host.netns, p, 'DEL', warm, 'warm');
    }

    const samples = { ADD: new Map<Plugin, number[]>(), DEL: new Map<Plugin, number[]>() };
    for (const p of plugins) {
      samples.ADD.set(p, []);
      samples.DEL.set(p, []);
    }
    const step = async (command: 'ADD' | 'DEL', i: number) => {
      for (const p of i % 2 === 0 ? plugins : [...plugins].reverse()) {
        samples[command].get(p)!.push(await invoke(host.netns, p, command, containers.get(p)![i]!, `c${i}`));
      }
    };
    // The agent's own CPU (user + system, ms) over the ADDs and the DELs, per operation.
    const agentCpuMs = () => {
      const f = readFileSync(`/proc/${agent.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
    };
    const cpu0 = agentCpuMs();
    for (let i = 0; i < N; i++) {
      await step('ADD', i);
      if ((i + 1) % 25 === 0) process.stdout.write(`  ${i + 1}/${N} ADDs each\n`);
    }
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))?.[1]);
    const flows = (await host.ofctl('dump-flows', 'br-int')).split('\n').filter((l) => l.includes('actions=')).length;
    const cpu1 = agentCpuMs();
    for (let i = 0; i < N; i++) await step('DEL', i);
    await new Promise((r) => setTimeout(r, 500)); // the last releases
    const cpu2 = agentCpuMs();

    const p50 = (command: 'ADD' | 'DEL', p: Plugin) => percentile(samples[command].get(p)!, 50);
    for (const p of plugins) {
      const adds = samples.ADD.get(p)!;
      const dels = samples.DEL.get(p)!;
      console.log(`${p.label.padEnd(6)} ADD ms: p50 ${p50('ADD', p).toFixed(1)}, p90 ${percentile(adds, 90).toFixed(1)}, p99 ${percentile(adds, 99).toFixed(1)}, max ${Math.max(...adds).toFixed(1)}; DEL ms: p50 ${p50('DEL', p).toFixed(1)}, p99 ${percentile(dels, 99).toFixed(1)}`);
    }
    console.log(`flows with ${N} loom endpoints: ${flows}; agent CPU per ADD ${((cpu1 - cpu0) / N).toFixed(1)} ms, per DEL (with its release) ${((cpu2 - cpu1) / N).toFixed(1)} ms`);
    // Where the time goes inside the agent (cumulative milliseconds at each stage, medians).
    const stages = (msg: string) => agent.logs.split('\n').filter((l) => l.includes(`"${msg}"`)).map((l) => (JSON.parse(l) as { ms?: Record<string, number> }).ms ?? {});
    const median = (rows: Array<Record<string, number>>, k: string) => percentile(rows.map((s) => s[k] ?? 0), 50).toFixed(1);
    const attached = stages('container attached');
    const detached = stages('container detached');
    const answered = agent.logs.split('\n').filter((l) => l.includes('"CNI request answered"')).map((l) => JSON.parse(l) as { command: string; ms: number });
    const agentShare = (command: string) => {
      const ms = answered.filter((a) => a.command === command).map((a) => a.ms);
      return ms.length > 0 ? percentile(ms, 50).toFixed(1) : '?';
    };
    console.log(`agent's share of a loom call (request read to answer sent, p50): ADD ${agentShare('ADD')} ms, DEL ${agentShare('DEL')} ms`);
    console.log(`agent ADD, cumulative ms (p50): ${Object.keys(attached[0] ?? {}).map((k) => `${k} ${median(attached, k)}`).join(', ')}`);
    console.log(`agent DEL, cumulative ms (p50): ${Object.keys(detached[0] ?? {}).map((k) => `${k} ${median(detached, k)}`).join(', ')}`);
    console.log(`loom plugin process alone (VERSION, answered without the agent): ${await versionMs(host.netns, loom)} ms; bridge: ${await versionMs(host.netns, bridge)} ms; a bare \`node -e ''\`: ${await nodeStartMs()} ms`);
    const status = JSON.stringify({ ...loom.conf, cniVersion: '1.1.0' });
    console.log(`loom STATUS (plugin to agent and back, no work): ${await versionMs(host.netns, loom, 'STATUS', status)} ms`);
    await agent.stop();
    client.close();
    const loomMs = p50('ADD', loom) + p50('DEL', loom);
    const bridgeMs = p50('ADD', bridge) + p50('DEL', bridge);
    console.log(
      `RESULT adds=${N} add_p50_ms=${p50('ADD', loom).toFixed(1)} add_p99_ms=${percentile(samples.ADD.get(loom)!, 99).toFixed(1)} del_p50_ms=${p50('DEL', loom).toFixed(1)} agent_rss_mb=${(rssKb / 1024).toFixed(1)}` +
        ` bridge_add_p50_ms=${p50('ADD', bridge).toFixed(1)} bridge_del_p50_ms=${p50('DEL', bridge).toFixed(1)} ratio_vs_bridge=${(loomMs / bridgeMs).toFixed(2)}`,
    );
  } finally {
    ctl.kill('SIGTERM');
    await host.stop();
  }
}

/** A plugin's bare process cost through the same wrapper: VERSION needs neither agent nor kernel. */
async function versionMs(hostNetns: string, p: Plugin, command = 'VERSION', stdin = '{"cniVersion":"1.0.0"}'): Promise<string> {
  const runs = 5;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) {
    await new Promise<void>((done, fail) => {
      const child = spawn('nsenter', [`--net=/run/netns/${hostNetns}`, join(p.binDir, p.type)], { env: { CNI_COMMAND: command }, stdio: ['pipe', 'ignore', 'ignore'] });
      child.on('error', fail);
      child.on('close', () => done());
      child.stdin.on('error', () => undefined);
      child.stdin.end(stdin);
    });
  }
  return (Number(process.hrtime.bigint() - t0) / (runs * 1e6)).toFixed(1);
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
