// loomctl trace across two simulated hosts: the controller asks the agents over their Watch
// streams, each runs ofproto/trace on its own ovs-vswitchd, and the verdict names Loom's
// concepts. --live injects a marked packet and observes it on both hosts.
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, runCni, cniEnv, waitFor, type Cluster } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';
import type { TraceResponse } from '../../src/api/types.js';

const ROOT = resolve(import.meta.dirname, '../..');

interface Placed {
  ipv4: string;
  ipv6: string;
}

describe('trace across hosts', () => {
  let ctl: TestController;
  let cluster: Cluster;
  const eps: Record<string, Placed> = {};

  const attach = async (name: string, network: string, host: number) => {
    const c = await cluster.hosts[host]!.addContainer(name, { empty: true });
    const conf = { cniVersion: '1.0.0', name: network, type: 'loom', agentSocket: cluster.agents[host]!.socket };
    const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, `id-${name}`, `K8S_POD_NAME=${name}`));
    expect(r.code, r.stdout).toBe(0);
    const ips = (r.json as { ips: Array<{ address: string }> }).ips.map((i) => i.address.split('/')[0]!);
    eps[name] = { ipv4: ips.find((a) => !a.includes(':'))!, ipv6: ips.find((a) => a.includes(':')) ?? '' };
  };
  const tables = (t: TraceResponse, i: number) => t.hosts[i]!.steps.map((s) => s.tableName);
  const dropsOf = async (host: string, reason: string) => {
    const h = (await ctl.client.getStatus()).hosts.find((x) => x.name === host);
    return h?.drops.find((d) => d.reason === reason)?.packets ?? 0;
  };

  beforeAll(async () => {
    ctl = await startController({ hostDownAfterMs: 2500, heartbeatIntervalMs: 300 });
    await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', ipv6Cidr: 'fd00:b::/64', tunnelType: 'TUNNEL_TYPE_VXLAN', vni: 5101 });
    await ctl.client.createNetwork({ name: 'red', ipv4Cidr: '198.19.0.0/16', tunnelType: 'TUNNEL_TYPE_GRE', vni: 5102 });
    cluster = await startCluster({ hosts: ['ta', 'tb'], controller: ctl.target });
    await attach('a1', 'blue', 0);
    await attach('b1', 'blue', 1);
    await attach('r1', 'red', 1);
    const { revision } = await ctl.client.getStatus();
    expect((await ctl.client.wait(revision, 15_000)).converged).toBe(true);
  });

  afterAll(async () => {
    await cluster?.stop();
    await ctl?.stop();
  });

  it('passes: table by table on the source host, the tunnel, table by table on the destination host, delivered (IPv4 and IPv6)', async () => {
    const t = await ctl.client.trace({ from: 'blue/a1', to: 'blue/b1', protocol: 'tcp', port: 80 });
    expect(t.verdict, t.explanation).toBe('delivered');
    expect(t.host).toBe('tb');
    expect(t.hosts.map((h) => [h.host, h.role])).toEqual([['ta', 'source'], ['tb', 'destination']]);
    expect(tables(t, 0)).toEqual(['classifier', 'spoof_guard', 'l3_forwarding', 'policy', 'output']);
    expect(tables(t, 1)).toEqual(['classifier', 'l3_forwarding', 'policy', 'output']);
    expect(t.tunnel).toMatchObject({ kind: 'tunnel', tunnel: 'vxlan', vni: 5101, remoteVtep: cluster.vteps.tb });
    expect(t.hosts[1]!.verdict).toMatchObject({ kind: 'delivered', container: 'id-b1', network: 'blue' });
    expect(t.hosts[1]!.flow).toContain(`tun_src=${cluster.vteps.ta}`);
    expect(t.explanation).toMatch(/vxlan tunnel \(VNI 5101\) to VTEP 192\.0\.2\.2 \(host tb\), delivered there to endpoint blue\/b1/);

    const v6 = await ctl.client.trace({ from: eps.a1!.ipv6, to: eps.b1!.ipv6, protocol: 'udp', port: 53 });
    expect(v6.verdict, v6.explanation).toBe('delivered');
    expect(v6.source).toMatchObject({ network: 'blue', name: 'a1', host: 'ta', address: eps.a1!.ipv6 });
    expect(v6.hosts[0]!.flow).toContain('udp6');
  });

  it('--live: the marked packet is seen leaving ta into the tunnel and arriving for b1 on tb, as simulated', async () => {
    const t = await ctl.client.trace({ from: 'id-a1', to: eps.b1!.ipv4, live: true });
    expect(t.verdict).toBe('delivered');
    expect(t.live?.summary).toBeTruthy();
    expect(t.live, t.live?.summary).toMatchObject({ injected: true, agrees: true });
    expect(t.live!.hosts).toEqual([
      { host: 'ta', seen: true, outcome: 'tunnel', ofport: 65001 },
      expect.objectContaining({ host: 'tb', seen: true, outcome: 'delivered' }),
    ]);
    const v6 = await ctl.client.trace({ from: 'blue/a1', to: eps.b1!.ipv6, protocol: 'udp', port: 5353, live: true });
    expect(v6.live, v6.live?.summary).toMatchObject({ injected: true, agrees: true });
    expect(v6.live!.hosts.map((h) => [h.host, h.outcome])).toEqual([['ta', 'tunnel'], ['tb', 'delivered']]);
    // The observation flows are gone afterwards.
    for (const h of cluster.hosts) expect(await h.exec('ovs-ofctl', ['-O', 'OpenFlow13', 'dump-flows', 'br-int', 'table=50'])).not.toMatch(/nw_tos=/);
  });

  it('isolation between networks: blue cannot reach red, the source host says so', async () => {
    const t = await ctl.client.trace({ from: 'blue/a1', to: 'red/r1' });
    expect(t.verdict, t.explanation).toBe('isolated_networks');
    expect(t.host).toBe('ta');
    expect(t.hosts).toHaveLength(1);
    expect(t.explanation).toMatch(/blue\/a1 and red\/r1 are in different networks/);
  });

  it('a spoofed source is dropped by the spoof guard on the source host; live agrees and the drop counter moves', async () => {
    const before = await dropsOf('ta', 'spoof_guard');
    const t = await ctl.client.trace({ from: 'blue/a1', to: 'blue/b1', sourceAddress: '198.18.250.250', live: true, timeoutMs: 1500 });
    expect(t.verdict, t.explanation).toBe('dropped');
    expect(t.host).toBe('ta');
    expect(t.table).toBe('spoof_guard');
    expect(tables(t, 0)).toEqual(['classifier', 'spoof_guard']);
    expect(t.explanation).toMatch(/spoof guard/);
    expect(t.live, t.live?.summary).toMatchObject({ injected: true, agrees: true });
    expect(t.live!.hosts).toEqual([{ host: 'ta', seen: false, outcome: '', ofport: 0 }]);
    // The injected packet was really dropped there: the host's spoof-guard drops (heartbeats carry them) moved.
    await waitFor('spoof_guard drops on ta to move', async () => (await dropsOf('ta', 'spoof_guard')) > before, 10_000, 100);
  });

  it('policy: an isolated network denies by default at the destination host; an allow rule is named when it passes', async () => {
    await attach('r2', 'red', 0);
    await ctl.client.updateNetwork({ name: 'red', isolation: 'ISOLATION_ISOLATED' });
    let { revision } = await ctl.client.getStatus();
    expect((await ctl.client.wait(revision, 15_000)).converged).toBe(true);
    const denied = await ctl.client.trace({ from: 'red/r2', to: 'red/r1', protocol: 'tcp', port: 8080 });
    expect(denied.verdict, denied.explanation).toBe('dropped');
    expect([denied.host, denied.table]).toEqual(['tb', 'policy']);
    expect(denied.tunnel).toMatchObject({ tunnel: 'gre', vni: 5102 });
    expect(denied.explanation).toMatch(/default deny of isolated network red: no policy rule allows this connection to endpoint red\/r1/);
    await ctl.client.createPolicy({ network: 'red', name: 'r2-to-r1', from: { endpoints: ['r2'], labels: {}, cidrs: [] }, to: { endpoints: ['r1'], labels: {}, cidrs: [] }, protocol: 'PROTOCOL_TCP', ports: [{ first: 8080, last: 0 }] });
    ({ revision } = await ctl.client.getStatus());
    expect((await ctl.client.wait(revision, 15_000)).converged).toBe(true);
    const allowed = await ctl.client.trace({ from: 'red/r2', to: 'red/r1', protocol: 'tcp', port: 8080 });
    expect(allowed.verdict, allowed.explanation).toBe('delivered');
    expect(allowed.explanation).toMatch(/allowed by policy rule r2-to-r1/);
  });

  it('loomctl trace prints the verdict as text and as JSON; an unknown endpoint is NOT_FOUND', async () => {
    const cli = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
        execFile(process.execPath, ['--import', 'tsx', 'src/cli/loomctl.ts', '--controller', ctl.target, ...args], { cwd: ROOT }, (err, stdout, stderr) =>
          done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const [text, asJson] = await Promise.all([cli('trace', 'blue/a1', 'blue/b1', '--proto', 'tcp', '--port', '443'), cli('trace', 'blue/a1', 'red/r1', '-o', 'json')]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/host ta \(source\)/);
    expect(text.stdout).toMatch(/tunnel: vxlan, VNI 5101, to VTEP 192\.0\.2\.2/);
    expect(text.stdout).toMatch(/VERDICT: delivered \(host tb, table output\)/);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ verdict: 'isolated_networks', host: 'ta' });
    const missing = await ctl.client.trace({ from: 'blue/nope', to: 'blue/b1' }).catch((e: grpc.ServiceError) => e);
    expect(missing).toMatchObject({ code: grpc.status.NOT_FOUND, details: 'trace: no endpoint nope in network blue' });
  });

  it('a destination agent too old to trace (no "trace" capability) gets a clear verdict, with the source part', async () => {
    await ctl.client.register({ name: 'old', vtep: '192.0.2.9', agentVersion: '0.0.9', capabilities: ['vxlan'] });
    const watch = ctl.client.watch();
    watch.on('error', () => undefined);
    watch.on('data', () => undefined);
    watch.write({ start: { host: 'old' } });
    try {
      await ctl.client.createEndpoint({ network: 'blue', host: 'old', containerId: 'id-o1', name: 'o1' });
      const { revision } = await ctl.client.getStatus();
      await waitFor('ta has the route to old', async () => ((await ctl.client.getStatus()).hosts.find((h) => h.name === 'ta')?.appliedRevision ?? 0) >= revision, 10_000, 50);
      const t = await ctl.client.trace({ from: 'blue/a1', to: 'blue/o1' });
      expect(t.verdict, t.explanation).toBe('agent_too_old');
      expect(t.host).toBe('old');
      expect(t.tunnel).toMatchObject({ remoteVtep: '192.0.2.9' });
      expect(t.hosts.map((h) => h.host)).toEqual(['ta']);
      expect(t.explanation).toMatch(/the agent of host old is too old to trace/);
    } finally {
      watch.cancel();
    }
  });

  it('an endpoint the controller places on a host whose agent does not have it: "endpoint not on this host"', async () => {
    await ctl.client.createEndpoint({ network: 'blue', host: 'ta', containerId: 'id-ghost', name: 'ghost' });
    const t = await ctl.client.trace({ from: 'blue/ghost', to: 'blue/b1' });
    expect(t.verdict, t.explanation).toBe('endpoint_not_on_host');
    expect(t.host).toBe('ta');
    expect(t.explanation).toMatch(/endpoint blue\/ghost \(container id-ghost\) is not on host ta/);
  });

  it('a host that is down: no route on the source host because tb is down; tracing from tb is UNAVAILABLE, not a hang', async () => {
    await cluster.agents[1]!.stop();
    await waitFor('tb down', async () => (await ctl.client.listHosts()).hosts.find((h) => h.name === 'tb')?.up === false, 15_000, 100);
    const { revision } = await ctl.client.getStatus();
    await waitFor('ta applied the withdrawal', async () => ((await ctl.client.getStatus()).hosts.find((h) => h.name === 'ta')?.appliedRevision ?? 0) >= revision, 10_000, 50);
    const t = await ctl.client.trace({ from: 'blue/a1', to: 'blue/b1' });
    expect(t.verdict, t.explanation).toBe('host_down');
    expect(t.host).toBe('ta');
    expect(t.table).toBe('l3_forwarding');
    expect(t.explanation).toMatch(/on host tb, which is down/);
    const started = Date.now();
    const err = await ctl.client.trace({ from: 'blue/b1', to: 'blue/a1', timeoutMs: 1000 }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(err?.details).toMatch(/cannot trace from host tb: host tb is down .*not connected/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
