// A simulated trace on one simulated host: Loom's own unixctl client asks the real ovs-vswitchd
// (`ofproto/trace`) about packets of containers plumbed by the agent, and the verdicts are read in
// Loom's terms.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, startAgent, cniBinDir, runCni, cniEnv, type AgentProcess, type SimHost } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';
import { controlSocketPath, unixctl, UnixctlClient, UnixctlError } from '../../src/ovsdb/unixctl.js';
import { endpointFlow, traceOnHost, type TraceContext } from '../../src/agent/trace.js';

interface Ep { ofport: number; mac: string; ip: string; vni: number; container: string; network: string }

describe('simulated trace on one host through the unixctl socket', () => {
  let ctl: TestController;
  let host: SimHost;
  let agent: AgentProcess;
  const ep: Record<string, Ep> = {};
  let ctx: TraceContext;

  beforeAll(async () => {
    ctl = await startController();
    await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN', vni: 5001 });
    await ctl.client.createNetwork({ name: 'red', ipv4Cidr: '198.19.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN', vni: 5002 });
    host = await startHost({ name: 'tr' });
    agent = await startAgent(host, { controller: ctl.target, vtep: '192.0.2.1', logLevel: 'info' });
    const bin = cniBinDir(host.dir);
    for (const [name, network, vni] of [['a', 'blue', 5001], ['b', 'blue', 5001], ['r', 'red', 5002]] as const) {
      const c = await host.addContainer(name, { empty: true });
      const r = await runCni(bin, 'ADD', { cniVersion: '1.0.0', name: network, type: 'loom', agentSocket: agent.socket }, cniEnv(c, `id-${name}`));
      expect(r.code, r.stdout).toBe(0);
      const j = r.json as { interfaces: Array<{ name: string; mac: string }>; ips: Array<{ address: string }> };
      const ofport = Number((await host.vsctl('get', 'interface', j.interfaces[0]!.name, 'ofport')).trim());
      ep[name] = { ofport, mac: j.interfaces[1]!.mac, ip: j.ips[0]!.address.split('/')[0]!, vni, container: `id-${name}`, network };
    }
    const byPort = new Map(Object.values(ep).map((e) => [e.ofport, { container: e.container, network: e.network }]));
    ctx = { bridge: 'br-int', tunnelPorts: { vxlan: 65001, gre: 65002 }, endpoint: (p) => byPort.get(p) };
  });

  afterAll(async () => {
    await agent?.stop();
    await host?.stop();
    await ctl?.stop();
  });

  it('finds the control socket and answers commands; errors come back as UnixctlError', async () => {
    const path = controlSocketPath(host.dir);
    expect(await unixctl(path, 'version')).toMatch(/ovs-vswitchd/);
    await expect(unixctl(path, 'no/such-command')).rejects.toBeInstanceOf(UnixctlError);
    await expect(unixctl(path, 'ofproto/trace', ['br-nope', 'in_port=1'])).rejects.toThrow('ofproto/trace: br-nope: unknown bridge');
    // One connection carries several commands.
    const client = await UnixctlClient.connect(path);
    try {
      const [v, help] = await Promise.all([client.call('version'), client.call('list-commands')]);
      expect(v).toMatch(/ovs-vswitchd/);
      expect(help).toContain('ofproto/trace');
    } finally {
      client.close();
    }
    expect(() => controlSocketPath(`${host.dir}/nowhere`)).toThrow(/no control socket of ovs-vswitchd/);
  });

  it('a packet between two endpoints of a network is delivered, table by table', async () => {
    const t = await traceOnHost(host.dir, endpointFlow({ proto: 'tcp', src: ep.a!.ip, dst: ep.b!.ip, port: 80 }, ep.a!), ctx);
    expect(t.steps.map((s) => s.tableName)).toEqual(['classifier', 'spoof_guard', 'l3_forwarding', 'policy', 'output']);
    expect(t.verdict).toMatchObject({ kind: 'delivered', ofport: ep.b!.ofport, container: 'id-b', network: 'blue' });
  });

  it('a spoofed source is dropped by the spoof guard', async () => {
    const t = await traceOnHost(host.dir, endpointFlow({ proto: 'icmp', src: '198.18.250.250', dst: ep.b!.ip }, ep.a!), ctx);
    expect(t.verdict).toMatchObject({ kind: 'dropped', reason: 'spoof_guard', table: 'spoof_guard' });
  });

  it('another network\'s endpoint on the same host is not routed on the bridge: it goes to the host, which never forwards between Loom networks', async () => {
    const t = await traceOnHost(host.dir, endpointFlow({ proto: 'icmp', src: ep.a!.ip, dst: ep.r!.ip }, ep.a!), ctx);
    expect(t.verdict).toMatchObject({ kind: 'to_host' });
    expect(t.verdict.explanation).toMatch(/never forwards between Loom networks/);
  });

  /** POST /v1/trace on the agent's local API. */
  const askAgent = (body: object) =>
    new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
      const req = http.request({ socketPath: agent.socket, path: '/v1/trace', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });

  it('the agent traces from one of its endpoints by container id (local API POST /v1/trace)', async () => {
    const ok = await askAgent({ containerId: 'id-a', destination: ep.b!.ip, proto: 'udp', port: 53 });
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    expect(ok.json.verdict).toMatchObject({ kind: 'delivered', container: 'id-b', network: 'blue' });
    expect(String(ok.json.flow)).toContain(`udp,in_port=${ep.a!.ofport}`);
    const spoofed = await askAgent({ containerId: 'id-a', destination: ep.b!.ip, source: '198.18.250.250' });
    expect(spoofed.json.verdict).toMatchObject({ kind: 'dropped', reason: 'spoof_guard' });
    const isolated = await askAgent({ containerId: 'id-a', destination: ep.r!.ip });
    expect(isolated.json.verdict).toMatchObject({ kind: 'to_host' });
    const unknown = await askAgent({ containerId: 'id-nope', destination: ep.b!.ip });
    expect(unknown.status).toBe(404);
    expect(JSON.stringify(unknown.json)).toContain('no endpoint of container id-nope');
    const noV6 = await askAgent({ containerId: 'id-a', destination: 'fd00::1' });
    expect(noV6.status).toBe(400);
    expect(JSON.stringify(noV6.json)).toContain('has no IPv6 address');
    const bad = await askAgent({ containerId: 'id-a', destination: ep.b!.ip, proto: 'sctp' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json)).toContain('field \\"proto\\" must be icmp, tcp or udp');
  });
});
