// The agent on one simulated host with a real OVS and a real controller; containers attached
// through the `loom` CNI plugin binary, invoked as a runtime invokes it.
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, startAgent, cniBinDir, runCni, cniEnv, waitFor, tcpTransfer, type AgentProcess, type Container, type SimHost } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';
import { run } from '../harness/exec.js';

const ROOT = resolve(import.meta.dirname, '../..');

interface IpAddr { ifname: string; mtu: number; address: string; addr_info: Array<{ local: string; prefixlen: number; family: string }> }

describe('agent and CNI plugin on one host', () => {
  let ctl: TestController;
  let host: SimHost;
  let agent: AgentProcess;
  let bin: string;
  const conf = (extra: object = {}) => ({ cniVersion: '1.0.0', name: 'blue', type: 'loom', agentSocket: agent.socket, ...extra });
  const containers: Record<string, Container> = {};

  beforeAll(async () => {
    ctl = await startController();
    await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', ipv6Cidr: 'fd00:b::/64', tunnelType: 'TUNNEL_TYPE_VXLAN', vni: 5001 });
    host = await startHost({ name: 'h1' });
    agent = await startAgent(host, { controller: ctl.target, vtep: '192.0.2.1' });
    bin = cniBinDir(host.dir);
    for (const name of ['c1', 'c2', 'c3']) containers[name] = await host.addContainer(name, { empty: true });
  });

  afterAll(async () => {
    await agent?.stop();
    await host?.stop();
    await ctl?.stop();
  });

  const loomctl = async (...args: string[]) =>
    (await run(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src/cli/loomctl.ts'), '--controller', ctl.target, ...args])).trim();
  const add = (name: string, args?: string) => runCni(bin, 'ADD', conf(), cniEnv(containers[name]!, `id-${name}`, args));
  const addrOf = async (name: string) => JSON.parse(await containers[name]!.exec('ip', ['-json', 'addr', 'show', 'eth0'])) as IpAddr[];

  it('ADD returns a spec result and plumbs the container', async () => {
    const r = await add('c1');
    expect(r.code, r.stdout).toBe(0);
    const result = r.json as { cniVersion: string; interfaces: Array<{ name: string; mac?: string; sandbox?: string }>; ips: Array<{ address: string; gateway: string; interface: number }> };
    expect(result.cniVersion).toBe('1.0.0');
    expect(result.interfaces[1]).toMatchObject({ name: 'eth0', sandbox: containers.c1!.netnsPath });
    expect(result.ips.map((i) => i.address.split('/')[1])).toEqual(['16', '64']);
    const [link] = await addrOf('c1');
    expect(link!.mtu).toBe(1450);
    expect(link!.address).toBe(result.interfaces[1]!.mac);
    const v4 = result.ips[0]!.address;
    expect(link!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain(v4);
    const routes = await containers.c1!.exec('ip', ['route']);
    expect(routes).toContain(`default via ${result.ips[0]!.gateway} dev eth0 onlink`);
    // The host side is an OVS port with the endpoint recorded, and flows classify it.
    const port = result.interfaces[0]!.name;
    expect(await host.vsctl('get', 'port', port, 'external_ids:loom-container-id')).toContain('id-c1');
    const ofport = (await host.vsctl('get', 'interface', port, 'ofport')).trim();
    expect(await host.ofctl('dump-flows', 'br-int', `table=0,in_port=${ofport}`)).toContain('goto_table:10');
  });

  it('two containers on the host reach each other, IPv4 and IPv6, TCP included', async () => {
    const r2 = await add('c2');
    expect(r2.code, r2.stdout).toBe(0);
    const [ip4, ip6] = (r2.json as { ips: Array<{ address: string }> }).ips.map((i) => i.address.split('/')[0]!);
    expect(await containers.c1!.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', ip4!])).toContain('2 received');
    expect(await containers.c1!.exec('ping', ['-6', '-c', '2', '-i', '0.2', '-W', '2', ip6!])).toContain('2 received');
    const t = await tcpTransfer(containers.c1!, containers.c2!, ip4!, 2_000_000);
    expect(t.received).toBe(t.sent);
  });

  it('honours a static address from CNI_ARGS IP=', async () => {
    const r = await add('c3', 'IgnoreUnknown=1;IP=198.18.200.7');
    expect(r.code, r.stdout).toBe(0);
    expect((r.json as { ips: Array<{ address: string }> }).ips[0]!.address).toBe('198.18.200.7/16');
  });

  it('attaches under the names runtimes give: podman\'s generated name and a 253-character dotted pod name', async () => {
    const podName = ['web-frontend', 'v1', 'a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63)].join('.').padEnd(253, 'd');
    expect(Buffer.byteLength(podName)).toBe(253);
    const named = [
      { name: 'elated_lewin', id: 'id-podman', container: await host.addContainer('podman', { empty: true }) },
      { name: podName, id: 'id-pod', container: await host.addContainer('pod', { empty: true }) },
    ];
    const addresses = new Map<string, string>();
    for (const n of named) {
      const args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${n.name};K8S_POD_INFRA_CONTAINER_ID=${n.id}`;
      const r = await runCni(bin, 'ADD', conf(), cniEnv(n.container, n.id, args));
      expect(r.code, r.stdout).toBe(0);
      const result = r.json as { interfaces: Array<{ name: string; sandbox?: string }>; ips: Array<{ address: string }> };
      expect(result.interfaces[1]).toMatchObject({ name: 'eth0', sandbox: n.container.netnsPath });
      const v4 = result.ips[0]!.address;
      expect(await n.container.exec('ip', ['-4', '-o', 'addr', 'show', 'eth0'])).toContain(v4);
      addresses.set(n.name, v4.split('/')[0]!);
    }
    const [asJson, table] = await Promise.all([loomctl('endpoint', 'list', '--network', 'blue', '--output', 'json'), loomctl('endpoint', 'list', '--network', 'blue')]);
    const listed = JSON.parse(asJson) as Array<{ name: string; containerId: string; host: string; ipv4: string }>;
    for (const n of named) {
      expect(listed.find((e) => e.name === n.name)).toMatchObject({ containerId: n.id, host: 'h1', ipv4: `${addresses.get(n.name)}/16` });
      expect(table).toMatch(new RegExp(`\\s${n.name.replace(/\./g, '\\.')}\\s+h1\\s.*\\s${addresses.get(n.name)!.replace(/\./g, '\\.')}/16\\s`));
      const del = await runCni(bin, 'DEL', conf(), cniEnv(n.container, n.id));
      expect(del.code, del.stdout).toBe(0);
    }
  });

  it('CHECK passes on a healthy container and reports drift', async () => {
    const ok = await runCni(bin, 'CHECK', conf(), cniEnv(containers.c3!, 'id-c3'));
    expect(ok.code, ok.stdout).toBe(0);
    await containers.c3!.exec('ip', ['addr', 'flush', 'dev', 'eth0']);
    const bad = await runCni(bin, 'CHECK', conf(), cniEnv(containers.c3!, 'id-c3'));
    expect(bad.code).not.toBe(0);
    expect(bad.json).toMatchObject({ code: 101 });
    expect(String(bad.json!.details)).toContain('lacks address 198.18.200.7/16');
  });

  it('DEL removes the port and its flows, and a second DEL still succeeds', async () => {
    const port = (await host.vsctl('--bare', '--columns=name', 'find', 'port', 'external_ids:loom-container-id=id-c3')).trim();
    const ofport = (await host.vsctl('get', 'interface', port, 'ofport')).trim();
    const del = await runCni(bin, 'DEL', conf(), cniEnv(containers.c3!, 'id-c3'));
    expect(del.code, del.stdout).toBe(0);
    // Answered: the flows and the veth are gone; the release at the controller, then the port, follow at once.
    expect(await host.ofctl('dump-flows', 'br-int')).not.toMatch(new RegExp(`in_port=${ofport}\\b`));
    expect(await host.exec('ip', ['link', 'show', port]).then(() => 'present', () => 'gone')).toBe('gone');
    await waitFor('the port to go once the endpoint is released', async () => !(await host.vsctl('list-ports', 'br-int')).includes(port), 5000, 20);
    await expect(ctl.client.getEndpoint('blue', 'id-c3')).rejects.toMatchObject({ code: 5 });
    const again = await runCni(bin, 'DEL', conf(), cniEnv(containers.c3!, 'id-c3'));
    expect(again.code, again.stdout).toBe(0);
  });

  it('answers bad input with CNI error objects', async () => {
    const garbage = await runCni(bin, 'ADD', '{not json', cniEnv(containers.c3!, 'id-x'));
    expect(garbage.json).toMatchObject({ code: 6 });
    const noNetwork = await runCni(bin, 'ADD', conf({ name: 'nosuch' }), cniEnv(containers.c3!, 'id-x'));
    expect(noNetwork.json).toMatchObject({ code: 100 });
    expect(String(noNetwork.json!.msg)).toContain('nosuch');
    const version = await runCni(bin, 'ADD', conf({ cniVersion: '9.9.9' }), cniEnv(containers.c3!, 'id-x'));
    expect(version.json).toMatchObject({ code: 1 });
    const noEnv = await runCni(bin, 'ADD', conf(), {});
    expect(noEnv.json).toMatchObject({ code: 4 });
    const v = await runCni(bin, 'VERSION', '{"cniVersion":"1.0.0"}');
    expect(v.json).toMatchObject({ cniVersion: '1.0.0', supportedVersions: expect.arrayContaining(['1.0.0']) });
    const noAgent = await runCni(bin, 'ADD', conf({ agentSocket: `${host.dir}/no-agent.sock` }), cniEnv(containers.c3!, 'id-x'));
    expect(noAgent.json).toMatchObject({ cniVersion: '1.0.0', code: 11 });
    expect(String(noAgent.json!.msg)).toContain('not running');
  });

  it('names a CNI_NETNS that is not a network namespace (code 4), and a FIFO there does not block the agent', async () => {
    const fifo = `${host.dir}/not-a-netns.fifo`;
    await run('mkfifo', [fifo]);
    const file = `${host.dir}/not-a-netns.file`;
    await run('touch', [file]);
    for (const [path, problem] of [
      [fifo, 'is a FIFO, not a network namespace'],
      [file, 'is a regular file, not a network namespace (not on nsfs)'],
      [host.dir, 'is a directory, not a network namespace'],
      [`${host.dir}/nope`, 'does not exist'],
    ] as const) {
      const r = await runCni(bin, 'ADD', conf(), { containerId: 'id-badns', netns: path, ifname: 'eth0' });
      expect(r.json, r.stdout).toEqual({ cniVersion: '1.0.0', code: 4, msg: `CNI_NETNS "${path}" ${problem}` });
    }
    // The agent still serves, and nothing was created for the refused container.
    const ok = await runCni(bin, 'STATUS', conf({ cniVersion: '1.1.0' }));
    expect(ok.code, ok.stdout).toBe(0);
    await expect(ctl.client.getEndpoint('blue', 'id-badns')).rejects.toMatchObject({ code: 5 });
  });

  it('STATUS reports a connected agent; GC removes only attachments the runtime no longer has', async () => {
    const status = await runCni(bin, 'STATUS', conf({ cniVersion: '1.1.0' }));
    expect(status.code, status.stdout).toBe(0);
    const gone = await host.addContainer('gone', { empty: true });
    const added = await runCni(bin, 'ADD', conf(), cniEnv(gone, 'id-gone'));
    expect(added.code, added.stdout).toBe(0);
    const port = (added.json as { interfaces: Array<{ name: string }> }).interfaces[0]!.name;
    const noList = await runCni(bin, 'GC', conf({ cniVersion: '1.1.0' }));
    expect(noList.json).toMatchObject({ code: 7 });
    const valid = ['c1', 'c2'].map((n) => ({ containerID: `id-${n}`, ifname: 'eth0' }));
    const gc = await runCni(bin, 'GC', conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid }));
    expect(gc.code, gc.stdout).toBe(0);
    // As for DEL: the veth goes at once, the release and then the port follow in the background.
    await waitFor('the collected port to go once its endpoint is released', async () => !(await host.vsctl('list-ports', 'br-int')).includes(port), 5000, 20);
    await expect(ctl.client.getEndpoint('blue', 'id-gone')).rejects.toMatchObject({ code: 5 });
    for (const n of ['c1', 'c2']) expect((await ctl.client.getEndpoint('blue', `id-${n}`)).host).toBe('h1');
  });

  it('answers ARP and neighbour solicitations for the gateway when a container asks', async () => {
    const c1 = containers.c1!;
    const [ip4, ip6] = (await addrOf('c2'))[0]!.addr_info.filter((a) => a.prefixlen < 128 && !a.local.startsWith('fe80')).map((a) => a.local);
    const gateways = (await c1.exec('ip', ['-json', 'neigh', 'show', 'dev', 'eth0']));
    const entries = JSON.parse(gateways) as Array<{ dst: string; lladdr: string }>;
    expect(entries).toHaveLength(2);
    // Forget the permanent entries: the bridge (ARP) and the agent (ND) must answer instead.
    for (const e of entries) await c1.exec('ip', ['neigh', 'del', e.dst, 'dev', 'eth0']);
    expect(await c1.exec('ping', ['-c', '1', '-W', '2', ip4!])).toContain('1 received');
    expect(await c1.exec('ping', ['-6', '-c', '1', '-W', '2', ip6!])).toContain('1 received');
    const learned = JSON.parse(await c1.exec('ip', ['-json', 'neigh', 'show', 'dev', 'eth0'])) as Array<{ dst: string; lladdr: string }>;
    for (const e of entries) expect(learned.find((l) => l.dst === e.dst)?.lladdr, e.dst).toBe(e.lladdr);
  });

  it('an agent restart loses no packet between running containers', async () => {
    const ip2 = (await addrOf('c2'))[0]!.addr_info.find((a) => a.family === 'inet')!.local;
    const pinging = containers.c1!.exec('ping', ['-c', '400', '-i', '0.01', '-W', '1', ip2]);
    await new Promise((r) => setTimeout(r, 500));
    await agent.stop();
    await agent.start();
    const out = await pinging;
    expect(out).toContain('400 received');
    expect(await host.vsctl('get', 'bridge', 'br-int', 'external_ids:loom-generation')).toContain('2');
  });

  it('restores the flows within 5 s when ovs-vswitchd restarts', async () => {
    const ip2 = (await addrOf('c2'))[0]!.addr_info.find((a) => a.family === 'inet')!.local;
    await host.restartVswitchd();
    const t0 = Date.now();
    await waitFor('flows to be back', async () => (await host.ofctl('dump-flows', 'br-int')).includes('goto_table:10'), 5000, 100);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await containers.c1!.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', ip2])).toContain('2 received');
  });

  it('watches on the Watch port, and on the API port when the Watch port fails while the API answers', async () => {
    expect(agent.logs).toMatch(/"watchPort":[1-9][0-9]*,"msg":"registered with the controller"/);
    await ctl.stopWatchServer();
    await waitFor('the agent to fall back to the API port', () => agent.logs.includes('watching on the API port'), 20_000, 100);
    const ep = await ctl.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'id-after-fallback' });
    expect(await ctl.client.wait(ep.modRevision, 10_000)).toMatchObject({ converged: true });
    await ctl.client.deleteEndpoint('blue', 'id-after-fallback');
  });
});
