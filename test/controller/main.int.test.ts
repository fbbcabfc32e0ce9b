import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LoomClient } from '../../src/api/client.js';
import { startDaemon, tempDir } from '../harness/controller-daemon.js';
import { SimAgent } from './helpers.js';
import { waitFor } from '../harness/exec.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function runMain(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/controller/main.ts', ...args], { cwd: ROOT }, (err, stdout, stderr) =>
      resolve({ code: (err as { code?: number } | null)?.code ?? 0, stdout, stderr }),
    );
  });
}

describe('loom-controller daemon', () => {
  it('explains itself with --help and refuses bad configuration with exit 2', async () => {
    const help = await runMain(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--host-down-after-ms');
    const bad = await runMain(['--heartbeat-interval-ms', '9000', '--host-down-after-ms', '5000']);
    expect(bad).toMatchObject({ code: 2, stdout: '' });
    expect(bad.stderr).toBe('loom-controller: configuration error: heartbeatIntervalMs (9000) must be smaller than hostDownAfterMs (5000)\n');
  });

  it('serves /healthz and Prometheus /metrics, and stops cleanly on SIGTERM', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const d = await startDaemon(['--db', `${dir}/c.db`]);
    cleanups.push(() => d.kill9());
    const c = new LoomClient(d.target);
    cleanups.push(() => c.close());
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
    const { watchPort } = await c.register({ name: 'h1', vtep: '192.0.2.1' });
    const a = new SimAgent(d.target, 'h1', '192.0.2.1', 'h1', `127.0.0.1:${watchPort}`);
    cleanups.push(() => a.close());
    a.watch();
    const ep = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'x' });
    await a.untilRevision(ep.modRevision);
    expect((await c.wait(ep.modRevision, 5000)).converged).toBe(true);

    const health = await fetch(`http://127.0.0.1:${d.httpPort}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', revision: ep.modRevision });
    const metrics = await (await fetch(`http://127.0.0.1:${d.httpPort}/metrics`)).text();
    expect(metrics).toContain('loom_controller_requests_total{method="CreateEndpoint",code="OK"} 1');
    expect(metrics).toContain('loom_controller_connected_agents 1');
    expect(metrics).toContain('loom_controller_watch_server_connections{kind="connections"} 1');
    expect(metrics).toContain('loom_controller_watch_server_connections{kind="streams"} 1');
    expect(metrics).toContain('loom_controller_hosts{state="up"} 1');
    expect(metrics).toContain('loom_controller_endpoints 1');
    expect(metrics).toMatch(/loom_controller_propagation_seconds_count [1-9]/);
    expect(metrics).toContain('loom_controller_watch_lag_revisions{agg="max"} 0');
    expect(metrics).toContain('loom_controller_process_resident_memory_bytes');
    a.close();
    expect(await d.stop()).toBe(0);
    expect(d.output()).toContain('"msg":"stopping"');
  });

  it('without mutual TLS listens on loopback only, unless --insecure-listen-any, and then warns', async () => {
    const refused = await runMain(['--db', ':memory:', '--listen', '0.0.0.0:0', '--metrics-listen', '']);
    expect(refused).toMatchObject({ code: 2, stdout: '' });
    expect(refused.stderr).toMatch(/^loom-controller: configuration error: listen 0\.0\.0\.0:0 and watchListen 0\.0\.0\.0:0: not loopback, .* insecureListenAny \(--insecure-listen-any\)\n$/);
    const d = await startDaemon(['--db', ':memory:', '--listen', '0.0.0.0:0', '--insecure-listen-any']);
    cleanups.push(() => d.kill9());
    const c = new LoomClient(d.target);
    cleanups.push(() => c.close());
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' }); // no identity: anything goes
    expect(d.output()).toContain('"listen":"0.0.0.0:0"');
    expect(d.output()).toMatch(/"level":40,.*"exposed":\["listen 0\.0\.0\.0:0","watchListen 0\.0\.0\.0:0"\].*"msg":"no mutual TLS on a non-loopback address/);
    // The log line is written as the call is answered: wait for it to cross the pipe.
    const mutation = /"method":"CreateNetwork","caller":\{"identity":"","role":"unauthenticated","peer":"[^"]+"\},"network":"blue","code":"OK","msg":"mutation"/;
    await waitFor('the mutation log line', () => mutation.test(d.output()), 5_000).catch(() => undefined);
    expect(d.output()).toMatch(mutation);
  });
});
