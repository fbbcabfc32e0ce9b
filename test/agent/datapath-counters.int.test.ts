// The agent's datapath counters on a simulated host: a container sends with a spoofed source
// address, and the spoof guard's drop counter on /metrics moves by those packets.
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, startAgent, cniBinDir, runCni, cniEnv, waitFor, type AgentProcess, type Container, type SimHost } from '../harness/index.js';
import { run } from '../harness/exec.js';
import { startController, type TestController } from '../harness/controller.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

const sample = (text: string, name: string, labels: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
};

describe('datapath counters of the agent', () => {
  let ctl: TestController;
  let host: SimHost;
  let agent: AgentProcess;
  let metricsUrl: string;
  const c: Record<string, Container> = {};
  const ip: Record<string, string> = {};

  beforeAll(async () => {
    ctl = await startController();
    await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN', vni: 5001 });
    host = await startHost({ name: 'dc' });
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    agent = await startAgent(host, { controller: ctl.target, vtep: '192.0.2.1', extraArgs: ['--metrics-listen', `127.0.0.1:${port}`], logLevel: 'info' });
    const bin = cniBinDir(host.dir);
    for (const name of ['a', 'b']) {
      c[name] = await host.addContainer(name, { empty: true });
      const r = await runCni(bin, 'ADD', { cniVersion: '1.0.0', name: 'blue', type: 'loom', agentSocket: agent.socket }, cniEnv(c[name]!, `id-${name}`));
      expect(r.code, r.stdout).toBe(0);
      ip[name] = (r.json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]!;
    }
  });

  afterAll(async () => {
    await agent?.stop();
    await host?.stop();
    await ctl?.stop();
  });

  const scrape = async () => {
    const res = await fetch(metricsUrl);
    expect(res.status).toBe(200);
    return res.text();
  };

  it('counts packets a container sends with a spoofed source as spoof-guard drops, and its own as endpoint traffic', async () => {
    // Reads are cached for a second: wait for a fresh one rather than trusting a stale one.
    const fresh = async () => {
      await new Promise((r) => setTimeout(r, 1100));
      return scrape();
    };
    const before = await fresh();
    const dropped = sample(before, 'loom_agent_dropped_packets_total', 'reason="spoof_guard",table="spoof_guard"');
    // A good ping first: the sender's endpoint counter moves, the spoof guard's does not.
    expect(await c.a!.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', ip.b!])).toContain('3 received');
    // Now the same container claims an address that is not its own.
    await c.a!.exec('ip', ['addr', 'add', '198.18.250.250/32', 'dev', 'eth0']);
    const out = await c.a!.exec('sh', ['-c', `ping -c 5 -i 0.2 -W 1 -I 198.18.250.250 ${ip.b} || true`]);
    expect(out).toContain('0 received');
    const after = await fresh();
    // At least the five spoofed pings (the kernel's own IPv6 link-local chatter drops there too).
    expect(sample(after, 'loom_agent_dropped_packets_total', 'reason="spoof_guard",table="spoof_guard"') - dropped).toBeGreaterThanOrEqual(5);
    expect(sample(after, 'loom_agent_dropped_bytes_total', 'reason="spoof_guard",table="spoof_guard"')).toBeGreaterThanOrEqual(5 * 98);
    const sent = after.split('\n').find((l) => l.startsWith('loom_agent_endpoint_packets_total{') && l.includes('container="id-a"') && l.includes('direction="sent"'));
    expect(Number(sent?.split(' ').pop())).toBeGreaterThanOrEqual(3);
  });

  it('the host\'s heartbeats carry its drops to the controller, and loomctl status shows them', async () => {
    const loomctl = async (...args: string[]) =>
      (await run(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, '../../src/cli/loomctl.ts'), '--controller', ctl.target, ...args])).trim();
    let spoofed = 0;
    await waitFor('a heartbeat with the spoof guard drops', async () => {
      const s = await ctl.client.getStatus();
      spoofed = s.hosts.find((h) => h.name === 'dc')?.drops.find((d) => d.reason === 'spoof_guard')?.packets ?? 0;
      return spoofed >= 5;
    }, 10_000, 200);
    const asJson = JSON.parse(await loomctl('status', '--output', 'json')) as { hosts: Array<{ name: string; drops: Array<{ reason: string; packets: number; bytes: number }> }> };
    expect(asJson.hosts[0]!.drops.find((d) => d.reason === 'spoof_guard')!.packets).toBeGreaterThanOrEqual(5);
    expect(await loomctl('status')).toMatch(/DROPPED[\s\S]*\bdc\b.*\d+: .*spoof_guard \d+/);
  });
});
