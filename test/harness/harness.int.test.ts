import { afterAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startHost, createUnderlay, alive, run, waitFor, type SimHost, type Underlay } from './index.js';
import { sweepDeadOwners } from './registry.js';

const netnsExists = (name: string) => existsSync(`/run/netns/${name}`);

describe('simulated hosts', () => {
  const hosts: SimHost[] = [];
  let underlay: Underlay | undefined;
  afterAll(async () => {
    for (const h of hosts) await h.stop();
    await underlay?.remove();
  });

  it('runs its own ovsdb-server and ovs-vswitchd with a userspace bridge', async () => {
    const h = await startHost({ name: 'h1' });
    hosts.push(h);
    await h.addBridge('br0');
    expect(await h.vsctl('get', 'bridge', 'br0', 'datapath_type')).toContain('netdev');
    expect(await h.ofctl('dump-flows', 'br0')).toContain('actions=NORMAL');
    // The bridge's interface lives in the host namespace, not in ours.
    await h.exec('ip', ['link', 'show', 'br0']);
    await expect(run('ip', ['link', 'show', 'br0'])).rejects.toThrow();
    // ovsdb-server answers on loopback TCP too.
    expect(await run('ovsdb-client', ['list-dbs', `tcp:127.0.0.1:${h.dbTcpPort}`])).toContain('Open_vSwitch');
  });

  it('connects hosts over an underlay held by an OVS bridge, and containers through it', async () => {
    underlay = await createUnderlay();
    const a = await startHost({ name: 'ha' });
    const b = await startHost({ name: 'hb' });
    hosts.push(a, b);
    await underlay.connect(a, '192.0.2.1/24', { ovsBridge: 'br-phy' });
    await underlay.connect(b, '192.0.2.2/24', { ovsBridge: 'br-phy' });
    await a.exec('ping', ['-c', '1', '-W', '5', '192.0.2.2']);

    const c1 = await a.addContainer('c1');
    const c2 = await a.addContainer('c2');
    await a.addBridge('br0', { failMode: 'standalone' });
    for (const [c, ip] of [[c1, '198.18.0.1/24'], [c2, '198.18.0.2/24']] as const) {
      await a.vsctl('add-port', 'br0', c.hostIf);
      await c.exec('ip', ['addr', 'add', ip, 'dev', c.ifname]);
    }
    expect(await c1.exec('ping', ['-c', '1', '-W', '5', '198.18.0.2'])).toContain('1 received');
  });

  it('restarts ovs-vswitchd and ovsdb-server by PID without losing the database', async () => {
    const h = await startHost({ name: 'hr' });
    hosts.push(h);
    await h.addBridge('br0');
    const [oldDb, oldSwitch] = [h.ovsdbPid!, h.vswitchdPid!];
    await h.restartOvsdb();
    await h.restartVswitchd();
    expect(alive(oldDb) || alive(oldSwitch)).toBe(false);
    expect(await h.vsctl('list-br')).toContain('br0');
  });

  it('stop() removes namespaces, processes and files', async () => {
    const h = await startHost({ name: 'hs' });
    const c = await h.addContainer('c');
    const pids = [h.ovsdbPid!, h.vswitchdPid!];
    await h.stop();
    expect(pids.some(alive)).toBe(false);
    expect(netnsExists(h.netns) || netnsExists(c.netns) || existsSync(h.dir)).toBe(false);
  });
});

describe('cleanup after a crash', () => {
  it('the sweep removes what a killed process left behind', async () => {
    // A separate process starts a host and is killed with SIGKILL: no exit handler runs. (Its
    // daemons stay zombies if PID 1 does not reap orphans; they no longer run.)
    const script = fileURLToPath(new URL('./fixtures/start-and-hang.ts', import.meta.url));
    const child = spawn('npx', ['tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => resolve(b.toString().trim()));
      child.once('exit', (code) => reject(new Error(`fixture exited early (${code})`)));
    });
    const { netns, pids, hostPid } = JSON.parse(line) as { netns: string; pids: number[]; hostPid: number };
    process.kill(hostPid, 'SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(netnsExists(netns)).toBe(true);

    const removed = sweepDeadOwners();
    expect(removed).toContain(netns);
    expect(netnsExists(netns)).toBe(false);
    await waitFor('killed daemons to exit', () => !pids.some(alive), 5000);
  });
});
