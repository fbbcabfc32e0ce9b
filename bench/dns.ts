// bench:dns: dnsperf against Loom's resolver answering from a directory of 10,000 endpoint names,
// and against dnsmasq serving the same names from a hosts file: same machine, same query list,
// interleaved rounds, loopback only. p99 comes from dnsperf's per-query latencies (-v).
// Last line: RESULT names=10000 qps=... p99_ms=... dnsmasq_qps=... ratio_vs_dnsmasq=...
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as dnsPacket from 'dns-packet';
import pino from 'pino';
import { DnsDirectory, type DnsEntry } from '../src/agent/dns/directory.js';
import { DnsResolver } from '../src/agent/dns/resolver.js';
import { DnsServer } from '../src/agent/dns/server.js';
import { forward } from '../src/agent/dns/upstream.js';

const NAMES = Number(process.env.BENCH_DNS_NAMES ?? 10_000);
const SECONDS = Number(process.env.BENCH_DNS_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_DNS_ROUNDS ?? 2);
const DOMAIN = 'bench.loom';

interface Run {
  qps: number;
  p99Ms: number;
  lost: number;
}

/** One dnsperf run; -v prints every answer with its latency in seconds as the last field. */
function dnsperf(port: number, queryFile: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn('dnsperf', ['-s', '127.0.0.1', '-p', String(port), '-d', queryFile, '-l', String(SECONDS), '-c', '4', '-q', '64', '-v'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const latencies: number[] = [];
    let tail = '';
    let text = '';
    p.stdout.on('data', (chunk: Buffer) => {
      const lines = (tail + chunk.toString()).split('\n');
      tail = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('> ')) {
          const secs = Number(line.slice(line.lastIndexOf(' ') + 1));
          if (Number.isFinite(secs)) latencies.push(secs * 1000);
        } else text += line + '\n';
      }
    });
    p.on('error', reject);
    p.on('close', (code) => {
      const qps = Number(/Queries per second:\s+([\d.]+)/.exec(text)?.[1]);
      const lost = Number(/Queries lost:\s+(\d+)/.exec(text)?.[1] ?? 0);
      if (code !== 0 || !Number.isFinite(qps) || latencies.length === 0) return reject(new Error(`dnsperf failed (exit ${code}):\n${text}`));
      latencies.sort((a, b) => a - b);
      resolve({ qps, p99Ms: latencies[Math.min(latencies.length - 1, Math.ceil(0.99 * latencies.length) - 1)]!, lost });
    });
  });
}

/** Asks `port` for one of the names until it answers (dnsmasq says nothing when it is ready). */
async function waitAnswering(port: number, child: ChildProcess): Promise<void> {
  const query = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `c00000.${DOMAIN}` }] });
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`dnsmasq exited with ${child.exitCode}`);
    try {
      await forward(query, [`127.0.0.1:${port}`], { attemptTimeoutMs: 100, totalTimeoutMs: 100 });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100)); // not bound yet
    }
  }
  throw new Error('dnsmasq did not answer within 10 s');
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'loom-bench-dns-'));
  const entries: DnsEntry[] = [];
  const hosts: string[] = [];
  const queries: string[] = [];
  for (let i = 0; i < NAMES; i++) {
    const name = `c${String(i).padStart(5, '0')}`;
    const ipv4 = `198.18.${(i >> 8) & 0xff}.${i & 0xff}`;
    entries.push({ network: 'bench', names: [name], ipv4 });
    hosts.push(`${ipv4} ${name}.${DOMAIN}`);
  }
  // A fixed pseudo-random order over all names, every name asked.
  let seed = 42;
  for (let i = 0; i < NAMES; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    queries.push(`c${String(seed % NAMES).padStart(5, '0')}.${DOMAIN} A`);
  }
  const queryFile = join(dir, 'queries.txt');
  const hostsFile = join(dir, 'hosts');
  writeFileSync(queryFile, queries.join('\n') + '\n');
  writeFileSync(hostsFile, hosts.join('\n') + '\n');

  const resolver = new DnsResolver();
  resolver.setDirectory(new DnsDirectory([{ network: 'bench', domain: DOMAIN }], entries));
  const loom = new DnsServer(resolver, { host: '127.0.0.1', port: 0, scopeOf: () => ({ networks: ['bench'], upstreams: [] }) }, pino({ level: 'warn' }));
  const { port: loomPort } = await loom.start();

  const dnsmasqPort = loomPort + 1;
  const dnsmasq = spawn('dnsmasq', ['-k', '-C', '/dev/null', `--port=${dnsmasqPort}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', `--addn-hosts=${hostsFile}`, '--cache-size=10000', '--pid-file=', '--user=root', '--log-facility=/dev/null'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await waitAnswering(dnsmasqPort, dnsmasq);
    const loomRuns: Run[] = [];
    const dnsmasqRuns: Run[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      loomRuns.push(await dnsperf(loomPort, queryFile));
      dnsmasqRuns.push(await dnsperf(dnsmasqPort, queryFile));
      console.log(`round ${r + 1}: loom ${loomRuns[r]!.qps.toFixed(0)} qps p99 ${loomRuns[r]!.p99Ms.toFixed(2)} ms lost ${loomRuns[r]!.lost}; dnsmasq ${dnsmasqRuns[r]!.qps.toFixed(0)} qps p99 ${dnsmasqRuns[r]!.p99Ms.toFixed(2)} ms lost ${dnsmasqRuns[r]!.lost}`);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const qps = median(loomRuns.map((x) => x.qps));
    const p99 = median(loomRuns.map((x) => x.p99Ms));
    const dq = median(dnsmasqRuns.map((x) => x.qps));
    console.log(`RESULT names=${NAMES} qps=${qps.toFixed(0)} p99_ms=${p99.toFixed(2)} dnsmasq_qps=${dq.toFixed(0)} ratio_vs_dnsmasq=${(qps / dq).toFixed(2)}`);
  } finally {
    dnsmasq.kill('SIGTERM');
    await loom.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
