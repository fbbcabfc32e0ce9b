// Policy and the host path: on an isolated network a published port is refused from the outside
// (a namespace on the underlay) until a rule allows `outside` -> that endpoint:port, and with
// --log-denied the agent logs the refused attempt (source, destination, port, network).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { startCluster, runCni, cniEnv, createOutside, startEchoServer, stopEchoServer, waitFor, type Cluster, type Container, type Outside } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';

const OUT4 = '192.0.2.100';

describe('policy: outside sources and the denied-attempts log', () => {
  let ctl: TestController;
  let cluster: Cluster;
  let outside: Outside;
  let web: Container;
  let webIp = '';
  let client: Container;
  const servers: ChildProcess[] = [];

  /** Connects to the echo server; resolves with the source address it saw, or undefined. */
  const seenBy = async (exec: (cmd: string, args: string[]) => Promise<string>, address: string, port: number) => {
    const out = await exec('sh', ['-c', `echo hello | nc -w 1 -4 ${address} ${port} | head -n 1`]).catch(() => '');
    return /^peer (\S+)/.exec(out)?.[1];
  };
  const fromOutside = (cmd: string, args: string[]) => outside.exec(cmd, args);
  const converge = async () => {
    const { revision } = await ctl.client.getStatus();
    expect((await ctl.client.wait(revision, 10_000)).converged).toBe(true);
  };

  beforeAll(async () => {
    ctl = await startController({ hostDownAfterMs: 10_000, heartbeatIntervalMs: 300 });
    await ctl.client.createNetwork({ name: 'iso', ipv4Cidr: '10.94.0.0/24', isolation: 'ISOLATION_ISOLATED' });
    cluster = await startCluster({ hosts: ['ha'], controller: ctl.target, agentArgs: ['--log-denied', '--log-denied-rate', '50'] });
    outside = await createOutside(cluster.underlay, [`${OUT4}/24`]);
    // web publishes 8080 -> 80 the way podman asks for `-p 8080:80`.
    web = await cluster.hosts[0]!.addContainer('web', { empty: true });
    const plugin = { type: 'loom', agentSocket: cluster.agents[0]!.socket, capabilities: { portMappings: true } };
    const conf = { ...plugin, cniVersion: '1.0.0', name: 'iso', runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }] } };
    let r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(web, 'id-web', 'K8S_POD_NAME=web'));
    expect(r.code, r.stdout).toBe(0);
    webIp = (r.json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]!;
    client = await cluster.hosts[0]!.addContainer('cli', { empty: true });
    r = await runCni(cluster.cniBin, 'ADD', { cniVersion: '1.0.0', name: 'iso', type: 'loom', agentSocket: cluster.agents[0]!.socket }, cniEnv(client, 'id-cli', 'K8S_POD_NAME=cli'));
    expect(r.code, r.stdout).toBe(0);
    servers.push(await startEchoServer(web.netns, 80));
    await converge();
  });

  afterAll(async () => {
    for (const s of servers) await stopEchoServer(s);
    await outside?.remove();
    await cluster?.stop();
    await ctl?.stop();
  });

  it('refuses the published port from outside while no rule allows it, and logs the attempt', async () => {
    expect(await seenBy(fromOutside, cluster.vteps.ha!, 8080)).toBeUndefined();
    // The agent's log: the SYN after DNAT, from the outside address to web:80, default deny.
    await waitFor('a denied-attempt line', async () => cluster.agents[0]!.logs.includes('denied connection attempt'), 5000, 50);
    const line = cluster.agents[0]!.logs
      .split('\n')
      .filter((l) => l.includes('denied connection attempt'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.source === OUT4);
    expect(line).toMatchObject({ network: 'iso', source: OUT4, destination: webIp, protocol: 'tcp', port: 80, rule: 'default deny' });
    expect(ctl.controller.explainPolicy({ from: 'outside', to: 'web', port: 80 })).toMatchObject({ allowed: false });
    // Bounded in the switch: the deny flow goes through the agent's meter (OVS 3.1 userspace datapath).
    expect(await cluster.hosts[0]!.ofctl('dump-flows', 'br-int', 'table=40')).toMatch(/priority=10,ct_state=\+trk.* actions=meter:1,CONTROLLER:128/);
    expect(await cluster.hosts[0]!.ofctl('dump-meters', 'br-int')).toMatch(/meter=1 pktps burst bands=\s*type=drop rate=200 burst_size=200/);
    expect(cluster.agents[0]!.logs).not.toContain('refused a meter');
  });

  it('lets outside in once a rule allows outside -> web:80, and nothing more', async () => {
    await ctl.client.createPolicy({ network: 'iso', name: 'web-public', from: { endpoints: [], labels: {}, cidrs: [], outside: true }, to: { endpoints: ['web'], labels: {}, cidrs: [] }, protocol: 'PROTOCOL_TCP', ports: [{ first: 80, last: 0 }] });
    await converge();
    expect(await seenBy(fromOutside, cluster.vteps.ha!, 8080)).toBe(OUT4);
    expect(ctl.controller.explainPolicy({ from: 'outside', to: 'web', port: 80 })).toMatchObject({ allowed: true, policies: ['web-public'] });
    // An endpoint of the network is not "outside": cli still does not reach web.
    expect(await seenBy((c, a) => client.exec(c, a), webIp, 80)).toBeUndefined();
    await ctl.client.deletePolicy('iso', 'web-public');
    await converge();
    expect(await seenBy(fromOutside, cluster.vteps.ha!, 8080)).toBeUndefined();
  });
});
