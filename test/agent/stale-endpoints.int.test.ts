// Endpoints whose container vanished behind the agent's back: an agent started after the
// container's namespace was deleted removes the endpoint from the controller and its port from
// OVS, and so does the periodic sweep while the agent runs. Real OVS, controller, agent and CNI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startHost, startAgent, cniBinDir, runCni, cniEnv, waitFor, freeLoopbackPort, AgentProcess, type Container, type SimHost } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';

/** How long reclaiming may take: at start, after the agent serves its API; by the sweep, after the namespace is gone. */
const AT_START_WITHIN_MS = 5_000;
const SWEEP_INTERVAL_MS = 300;
const BY_SWEEP_WITHIN_MS = SWEEP_INTERVAL_MS + 5_000;


describe('stale endpoints', () => {
  let ctl: TestController;
  let host: SimHost;
  let agent: AgentProcess;
  let bin: string;
  let metricsUrl: string;
  const conf = () => ({ cniVersion: '1.0.0', name: 'red', type: 'loom', agentSocket: agent.socket });

  let dbPath: string;

  beforeAll(async () => {
    host = await startHost({ name: 'hs' });
    dbPath = join(host.dir, 'controller.db');
    ctl = await startController({ dbPath });
    await ctl.client.createNetwork({ name: 'red', ipv4Cidr: '198.19.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN', vni: 5101 });
    const metricsPort = await freeLoopbackPort();
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    agent = await startAgent(host, {
      controller: ctl.target,
      vtep: '192.0.2.1',
      extraArgs: ['--endpoint-sweep-interval-ms', String(SWEEP_INTERVAL_MS), '--metrics-listen', `127.0.0.1:${metricsPort}`],
    });
    bin = cniBinDir(host.dir);
  });

  afterAll(async () => {
    await agent?.stop();
    await host?.stop();
    await ctl?.stop();
  });

  async function attach(name: string): Promise<{ container: Container; id: string; port: string }> {
    const container = await host.addContainer(name, { empty: true });
    const id = `id-${name}`;
    const r = await runCni(bin, 'ADD', conf(), cniEnv(container, id));
    expect(r.code, r.stdout).toBe(0);
    return { container, id, port: (r.json as { interfaces: Array<{ name: string }> }).interfaces[0]!.name };
  }

  const ports = () => host.vsctl('list-ports', 'br-int');
  const endpointGone = (id: string) =>
    ctl.client.getEndpoint('red', id).then(
      () => false,
      (err: { code?: number }) => err.code === 5,
    );
  const reclaimedCount = async (found: string) => {
    const text = await (await fetch(metricsUrl)).text();
    return Number(new RegExp(`^loom_agent_endpoints_reclaimed_total\\{found="${found}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  };

  it(`an agent started after its container's namespace vanished reclaims the endpoint within ${AT_START_WITHIN_MS / 1000} s; others stay`, async () => {
    const stale = await attach('gone');
    const healthy = await attach('stays');
    const ofport = (await host.vsctl('get', 'interface', stale.port, 'ofport')).trim();
    await agent.stop();
    // The runtime's DEL fails while the agent is down (and podman does not retry it).
    const del = await runCni(bin, 'DEL', conf(), cniEnv(stale.container, stale.id));
    expect(del.json).toMatchObject({ code: 11 });
    await stale.container.remove();
    expect(await ports()).toContain(stale.port);

    await agent.start();
    const t0 = Date.now();
    await waitFor('the stale endpoint to leave the controller and OVS', async () => (await endpointGone(stale.id)) && !(await ports()).includes(stale.port), AT_START_WITHIN_MS, 50);
    expect(Date.now() - t0).toBeLessThan(AT_START_WITHIN_MS);
    await waitFor('flows of the stale port to go', async () => !new RegExp(`in_port=${ofport}\\b`).test(await host.ofctl('dump-flows', 'br-int')), AT_START_WITHIN_MS, 50);
    expect(agent.logs).toMatch(new RegExp(`"containerId":"${stale.id}","network":"red".*"reason":"[^"]*${stale.container.netnsPath} does not exist.*"msg":"container gone; reclaiming its endpoint"`));
    // Logged and counted once the port's removal returned, a moment after the switch shows it.
    await waitFor('the reclaim logged', async () => new RegExp(`"containerId":"${stale.id}".*"controller":"deleted".*"msg":"stale endpoint reclaimed"`).test(agent.logs), AT_START_WITHIN_MS, 20);
    expect(await reclaimedCount('recovery')).toBe(1);

    // The healthy container is untouched and still attached.
    expect((await ctl.client.getEndpoint('red', healthy.id)).host).toBe('hs');
    expect(await ports()).toContain(healthy.port);
    const check = await runCni(bin, 'CHECK', conf(), cniEnv(healthy.container, healthy.id));
    expect(check.code, check.stdout).toBe(0);
  });

  it(`the sweep reclaims an endpoint whose namespace is deleted while the agent runs, within ${BY_SWEEP_WITHIN_MS / 1000} s`, async () => {
    const stale = await attach('swept');
    const ofport = (await host.vsctl('get', 'interface', stale.port, 'ofport')).trim();
    expect(await host.ofctl('dump-flows', 'br-int', `table=0,in_port=${ofport}`)).toContain('goto_table:10');
    await stale.container.remove();
    const t0 = Date.now();
    await waitFor('the sweep to reclaim the endpoint', async () => (await endpointGone(stale.id)) && !(await ports()).includes(stale.port), BY_SWEEP_WITHIN_MS, 50);
    expect(Date.now() - t0).toBeLessThan(BY_SWEEP_WITHIN_MS);
    expect(await host.ofctl('dump-flows', 'br-int')).not.toMatch(new RegExp(`in_port=${ofport}\\b`));
    expect(agent.logs).toMatch(new RegExp(`"containerId":"${stale.id}".*"found":"sweep".*"msg":"container gone; reclaiming its endpoint"`));
    expect(await reclaimedCount('sweep')).toBe(1);
    // A DEL the runtime sends late still succeeds (idempotent).
    const del = await runCni(bin, 'DEL', conf(), { containerId: stale.id, ifname: 'eth0' });
    expect(del.code, del.stdout).toBe(0);
  });

  it(`a DEL answered before its release at the controller is not lost when the agent stops: released within ${AT_START_WITHIN_MS / 1000} s of the next start`, async () => {
    const c = await attach('deferred');
    const other = await attach('other');
    // The controller goes away: DEL still answers (veth and flows gone), the port records the release.
    await ctl.stop();
    const del = await runCni(bin, 'DEL', conf(), cniEnv(c.container, c.id));
    expect(del.code, del.stdout).toBe(0);
    expect(await host.exec('ip', ['link', 'show', c.port]).then(() => 'present', () => 'gone')).toBe('gone');
    expect(await ports()).toContain(c.port);
    expect(agent.logs).toMatch(new RegExp(`"containerId":"${c.id}".*"release":"deferred".*"msg":"container detached"`));
    // A second DEL meanwhile succeeds and keeps the port.
    expect((await runCni(bin, 'DEL', conf(), cniEnv(c.container, c.id))).code).toBe(0);
    expect(await ports()).toContain(c.port);
    await agent.stop('SIGKILL');

    ctl = await startController({ dbPath });
    expect((await ctl.client.getEndpoint('red', c.id)).host).toBe('hs');
    // Also an ADD the agent stopped in: the port went in (marked with the request, no MAC yet)
    // while the controller created the endpoint, and the ADD never answered.
    await ctl.client.createEndpoint({ network: 'red', host: 'hs', containerId: 'id-half' });
    const marks = { 'loom-owner': 'agent', 'loom-network': 'red', 'loom-container-id': 'id-half', 'loom-ifname': 'eth0', 'loom-netns': c.container.netnsPath, 'loom-mac': '""' };
    await host.vsctl('add-port', 'br-int', 'lmhalf', '--', 'set', 'port', 'lmhalf', ...Object.entries(marks).map(([k, v]) => `external_ids:${k}=${v}`));
    agent = new AgentProcess(host, { ...agent.opts, controller: ctl.target });
    await agent.start();
    const t0 = Date.now();
    await waitFor('the released endpoint to leave the controller and OVS', async () => (await endpointGone(c.id)) && !(await ports()).includes(c.port), AT_START_WITHIN_MS, 50);
    await waitFor('the unfinished ADD to be undone', async () => (await endpointGone('id-half')) && !(await ports()).includes('lmhalf'), AT_START_WITHIN_MS, 50);
    expect(agent.logs).toMatch(/"containerId":"id-half".*"reason":"its CNI ADD did not finish[^"]*".*"msg":"container gone; reclaiming its endpoint"/);
    expect(Date.now() - t0).toBeLessThan(AT_START_WITHIN_MS);
    // The container not deleted is still attached; an ADD of the same id attaches afresh.
    expect((await ctl.client.getEndpoint('red', other.id)).host).toBe('hs');
    const again = await runCni(bin, 'ADD', conf(), cniEnv(c.container, c.id));
    expect(again.code, again.stdout).toBe(0);
    const delAgain = await runCni(bin, 'DEL', conf(), cniEnv(c.container, c.id));
    expect(delAgain.code, delAgain.stdout).toBe(0);
    await waitFor('the second release', async () => (await endpointGone(c.id)) && !(await ports()).includes(c.port), AT_START_WITHIN_MS, 20);
  });
});
