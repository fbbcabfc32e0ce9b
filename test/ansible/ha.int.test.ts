// ansible/site.yml for controllers that survive the loss of a machine: three simulated hosts, each
// an etcd member (role loom_etcd, peer and client TLS from the inventory's CA) and a controller on
// store etcd electing a leader; h1 also runs an agent. The playbook forms the etcd cluster, starts
// the controllers one at a time, a leader is elected and the agent registers; a second run (on h1)
// changes nothing; a new release then rolls over the controllers one at a time while a leader stays
// present and the agent's containers keep forwarding. The agent is given every controller (the
// role's default) and follows them through the upgrade.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, runCni, cniEnv, waitFor, type Container, type SimHost, type Underlay } from '../harness/index.js';
import { RUN_ROOT, track } from '../harness/registry.js';
import { makeCert } from '../harness/pki.js';
import type { SshServer } from './sshd.js';
import { daemonPid, startLab, hostPaths, inventory, repackRelease, runPlaybook, stopDaemon, stopDaemonSync, taskEvents, type InventoryHost, type LoomService, type PlaybookRun } from './ansible.js';

interface HostStatus { name: string; up: boolean; connected: boolean; lag: number }

const HOSTS = ['h1', 'h2', 'h3'];
const SERVICES: LoomService[] = ['loom-agent', 'loom-controller', 'loom-etcd'];

describe('ansible/site.yml: three controllers on a three-member etcd', () => {
  const work = join(RUN_ROOT, String(process.pid), `ansible-ha-${Date.now().toString(36)}`);
  let underlay: Underlay;
  const hosts: SimHost[] = [];
  const ssh: SshServer[] = [];
  let nodes: InventoryHost[] = [];
  let inventoryFile: string;
  let version: string;
  let tarball: string;
  let knownHosts: string;
  let privateKey: string;
  let first: PlaybookRun;
  const pair: Array<{ c: Container; ip: string }> = [];
  const pki = join(work, 'pki');
  const certs = new Map<string, { cert: string; key: string }>();
  const api = (i: number) => `192.0.2.${11 + i}:7400`;
  const allApis = () => [0, 1, 2].map(api).join(',');

  const loomctl = async (controller: string, ...args: string[]): Promise<string> =>
    run('ip', ['netns', 'exec', underlay.netns, join(hostPaths(hosts[0]!).loom_install_dir, 'current/bin/loomctl'), '--controller', controller, ...args]);
  /** etcd's JSON API, from the underlay, with h1's member certificate (it is a client certificate too). */
  const etcd = async (path: string, body: object): Promise<Record<string, unknown>> => {
    const own = certs.get('h1')!;
    const out = await run('ip', [
      'netns', 'exec', underlay.netns, 'curl', '-sS', '--max-time', '2', '--cacert', join(pki, 'etcd-ca.pem'), '--cert', own.cert, '--key', own.key,
      '-X', 'POST', '-d', JSON.stringify(body), `https://192.0.2.11:2379${path}`,
    ]);
    return JSON.parse(out) as Record<string, unknown>;
  };
  /** The API address in the leader key, '' when nobody leads. */
  const leader = async (): Promise<string> => {
    const r = (await etcd('/v3/kv/range', { key: Buffer.from('/loom/leader').toString('base64') })) as { kvs?: Array<{ value: string }> };
    return r.kvs?.[0] ? Buffer.from(r.kvs[0].value, 'base64').toString() : '';
  };
  const explain = (r: PlaybookRun) => r.output.slice(-6000);

  beforeAll(async () => {
    mkdirSync(work, { recursive: true });
    track({ kind: 'dir', path: work });
    ({ tarball, version, knownHosts, privateKey } = await startLab(work, HOSTS, { hosts, ssh, nodes, underlay: (u) => (underlay = u) }));
    // etcd's CA and one certificate per member for its underlay address: it serves etcd's
    // clients and peers, and the controller on the same host presents it to etcd.
    mkdirSync(pki);
    await makeCert(pki, 'etcd-ca');
    for (const [i, name] of HOSTS.entries()) certs.set(name, await makeCert(pki, `etcd-${name}`, 'etcd-ca', `/CN=${name}`, `IP:192.0.2.${11 + i}`));
    inventoryFile = join(work, 'inventory.json');
    writeFileSync(
      inventoryFile,
      JSON.stringify(
        inventory({
          controller: nodes[0]!,
          controllers: nodes,
          etcd: nodes,
          agents: [nodes[0]!],
          privateKey,
          knownHosts,
          version,
          tarball,
          vars: {
            loom_agent_datapath: 'netdev',
            loom_controller_networks: [{ name: 'blue', ipv4: '198.18.0.0/16', vni: 5001, tunnel: 'vxlan' }],
            loom_cni_networks: [{ name: 'blue', network: 'blue', priority: 10 }],
            loom_etcd_tls_ca: join(pki, 'etcd-ca.pem'),
            // One LAN segment of namespaces: elect in half a second.
            loom_etcd_heartbeat_interval: 50,
            loom_etcd_election_timeout: 500,
          },
          hostVars: (h) => ({ loom_etcd_tls_cert: certs.get(h.host.name)!.cert, loom_etcd_tls_key: certs.get(h.host.name)!.key }),
        }),
        null,
        2,
      ),
    );
    process.on('exit', () => {
      for (const h of hosts) for (const s of SERVICES) stopDaemonSync(h, s);
    });
  }, 180_000);

  afterAll(async () => {
    for (const h of hosts) for (const s of SERVICES) await stopDaemon(h, s);
    for (const s of ssh) await s.stop();
    for (const h of hosts) await h.stop();
    await underlay?.remove();
    nodes = [];
  });

  const trackDaemons = () => {
    for (const h of hosts) for (const s of SERVICES) {
      const pid = daemonPid(h, s);
      if (pid) track({ kind: 'pid', pid, exe: s === 'loom-etcd' ? 'etcd' : 'node' });
    }
  };

  it('forms the etcd cluster over TLS, starts three controllers, elects one leader; the agent registers', { timeout: 600_000 }, async () => {
    first = await runPlaybook(underlay.netns, inventoryFile, work);
    trackDaemons();
    expect(first.code, explain(first)).toBe(0);
    expect([...first.recap.keys()].sort()).toEqual(HOSTS);
    for (const [host, counts] of first.recap) expect({ host, failed: counts.failed, unreachable: counts.unreachable }).toEqual({ host, failed: 0, unreachable: 0 });
    // Three members, each started by the role's init script from its config.
    const members = (await etcd('/v3/cluster/member/list', {})) as { members: Array<{ name: string; clientURLs: string[] }> };
    expect(members.members.map((m) => m.name).sort()).toEqual(HOSTS);
    for (const m of members.members) expect(m.clientURLs[0]).toMatch(/^https:\/\/192\.0\.2\.1[123]:2379$/);
    // etcd turns away a client without a certificate of its CA.
    const anonymous = await run('ip', ['netns', 'exec', underlay.netns, 'curl', '-sS', '--max-time', '2', '--cacert', join(pki, 'etcd-ca.pem'), '-X', 'POST', '-d', '{}', 'https://192.0.2.12:2379/v3/cluster/member/list'])
      .then((out) => out, (e: Error) => e.message);
    expect(anonymous).not.toContain('clientURLs');
    // Every controller runs on etcd and elects; h1 started first and leads.
    for (const [i, h] of hosts.entries()) {
      const conf = JSON.parse(readFileSync(join(hostPaths(h).loom_config_dir, 'controller.json'), 'utf8')) as Record<string, string>;
      expect(conf).toMatchObject({
        store: 'etcd',
        etcdEndpoints: 'https://192.0.2.11:2379,https://192.0.2.12:2379,https://192.0.2.13:2379',
        etcdPrefix: '/loom/',
        etcdCa: join(hostPaths(h).loom_config_dir, 'etcd-client/ca.pem'),
        etcdElectAs: api(i),
      });
    }
    expect(await leader()).toBe(api(0));
    // Followers answer reads and refuse writes, naming the leader.
    for (const i of [1, 2]) expect(JSON.parse(await loomctl(api(i), 'network', 'list', '--output', 'json'))).toEqual([expect.objectContaining({ name: 'blue', vni: 5001 })]);
    const refused = await loomctl(api(1), 'network', 'create', 'red', '--ipv4', '198.19.0.0/16').then(() => 'created', (e: Error) => e.message);
    expect(refused).toContain(`send writes to the leader at ${api(0)}`);
    // The agent is given every controller (the role's default), registered with the leader and is
    // caught up (status is the leader's; loomctl finds it in the list).
    expect(JSON.parse(readFileSync(join(hostPaths(hosts[0]!).loom_config_dir, 'agent.json'), 'utf8'))).toMatchObject({ controller: allApis() });
    const s = JSON.parse(await loomctl(allApis(), 'status', '--output', 'json')) as { hosts: HostStatus[] };
    expect(s.hosts).toEqual([expect.objectContaining({ name: 'h1', up: true, lag: 0 })]);
  });

  it('attaches two containers through the installed CNI plugin and they ping each other', async () => {
    expect(first?.code).toBe(0);
    const paths = hostPaths(hosts[0]!);
    const list = JSON.parse(readFileSync(join(paths.loom_cni_conf_dir, '10-blue.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: object[] };
    const conf = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
    for (const name of ['ha', 'hb']) {
      const c = await hosts[0]!.addContainer(name, { empty: true });
      const r = await runCni(paths.loom_cni_bin_dir, 'ADD', conf, cniEnv(c, `ansible-${name}`));
      expect(r.code, r.stdout).toBe(0);
      pair.push({ c, ip: (r.json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]! });
    }
    const [a, b] = pair as [{ c: Container; ip: string }, { c: Container; ip: string }];
    await waitFor('ping between the containers', async () => (await a.c.exec('ping', ['-c', '1', '-W', '1', b.ip])).includes('1 received'), 20_000, 200);
  });

  // On h1, which runs all three roles (the others differ only in names and certificates): a run
  // over every host would add two more serial rounds to the slowest test of the suite.
  it('changes nothing when run a second time', { timeout: 600_000 }, async () => {
    expect(first?.code).toBe(0);
    const pids = hosts.map((h) => SERVICES.map((s) => daemonPid(h, s)));
    const again = await runPlaybook(underlay.netns, inventoryFile, work, ['--limit', 'h1']);
    expect(again.code, explain(again)).toBe(0);
    expect([...again.recap.keys()]).toEqual(['h1']);
    for (const [host, counts] of again.recap) expect({ host, changed: counts.changed, failed: counts.failed }).toEqual({ host, changed: 0, failed: 0 });
    expect(hosts.map((h) => SERVICES.map((s) => daemonPid(h, s)))).toEqual(pids);
  });

  it('rolls a new release over the controllers one at a time; a leader stays present and the containers keep forwarding', { timeout: 600_000 }, async () => {
    expect(first?.code).toBe(0);
    const next = `${version}-next`;
    const newTarball = await repackRelease(tarball, version, next, join(work, 'release'));
    const before = hosts.map((h) => daemonPid(h, 'loom-controller'));
    const [a, b] = pair as [{ c: Container; ip: string }, { c: Container; ip: string }];
    // Meanwhile: who leads, sampled from etcd, and a steady ping between the containers.
    let running = true;
    const samples: Array<{ at: number; leader: string }> = [];
    const sampler = (async () => {
      while (running) {
        samples.push({ at: Date.now(), leader: await leader().catch(() => '?') });
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    // `ip netns exec` execs ping: the child's PID is ping's, stopped below by that PID.
    const pinger = spawn('ip', ['netns', 'exec', a.c.netns, 'ping', '-i', '0.2', '-W', '1', b.ip], { stdio: ['ignore', 'pipe', 'pipe'] });
    track({ kind: 'pid', pid: pinger.pid!, exe: 'ping' });
    let pinged = '';
    pinger.stdout.on('data', (d: Buffer) => (pinged += d.toString()));
    const pingDone = new Promise((r) => pinger.once('close', r));
    const up = await runPlaybook(underlay.netns, inventoryFile, work, ['--tags', 'controllers', '-e', `loom_version=${next}`, '-e', `loom_release_tarball=${newTarball}`]);
    running = false;
    await sampler;
    pinger.kill('SIGINT');
    await pingDone;
    trackDaemons();
    expect(up.code, explain(up)).toBe(0);
    for (const [host, counts] of up.recap) expect({ host, failed: counts.failed, changed: counts.changed > 0 }).toEqual({ host, failed: 0, changed: true });
    // Every controller restarted onto the new release.
    for (const [i, h] of hosts.entries()) {
      const pid = daemonPid(h, 'loom-controller')!;
      expect(pid, h.name).not.toBe(before[i]);
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), h.name).toContain(`/releases/loom-${next}/`);
    }
    // One at a time: controller N answered and a leader answered before controller N+1 restarted.
    const events = taskEvents(up.output);
    const at = (task: RegExp, host: string) => events.findIndex((e) => task.test(e.task) && e.host === host && e.status !== 'skipping');
    const restarted = HOSTS.map((h) => at(/Restart loom-controller \(init script\)/, h));
    const led = HOSTS.map((h) => at(/Check that the leader answers/, h));
    expect([...restarted, ...led].every((i) => i >= 0), explain(up)).toBe(true);
    for (let i = 0; i < HOSTS.length; i++) {
      expect(restarted[i]!).toBeLessThan(led[i]!);
      if (i + 1 < HOSTS.length) expect(led[i]!).toBeLessThan(restarted[i + 1]!);
    }
    // A leader was present throughout, but for the moments of a hand-over (a stopping leader
    // revokes its lease and another takes the key at once).
    expect(samples.length).toBeGreaterThan(20);
    let longestGap = 0;
    let since: number | undefined;
    for (const s of samples) {
      if (s.leader === '' || s.leader === '?') since ??= s.at;
      else if (since !== undefined) {
        longestGap = Math.max(longestGap, s.at - since);
        since = undefined;
      }
    }
    expect(since, 'no leader at the end').toBeUndefined();
    expect(longestGap).toBeLessThan(3000);
    expect(HOSTS.map((_, i) => api(i))).toContain(await leader());
    // The agent followed the controllers through the restarts and is caught up.
    await waitFor('the agent up and caught up', async () => {
      const s = JSON.parse(await loomctl(allApis(), 'status', '--output', 'json')) as { hosts: HostStatus[] };
      return s.hosts.some((h) => h.name === 'h1' && h.up && h.lag === 0);
    }, 30_000, 250);
    // The containers forwarded all along.
    const stats = /(\d+) packets transmitted, (\d+) received/.exec(pinged);
    expect(stats, pinged).not.toBeNull();
    expect(Number(stats![1])).toBeGreaterThan(20);
    expect(Number(stats![2])).toBe(Number(stats![1]));
  });
});
