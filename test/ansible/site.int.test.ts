// ansible/site.yml against two simulated hosts reached over SSH: h1 runs the controller, both run
// agents. The roles install the release tarball `scripts/package.sh` builds; containers attached
// through the CNI plugin the roles installed ping across hosts; a second run changes nothing; a
// new version rolls out agent by agent, each healthy before the next. gRPC runs over mutual TLS
// with a certificate per host, as the inventory asks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, runCni, cniEnv, waitFor, type Container, type SimHost, type Underlay } from '../harness/index.js';
import { RUN_ROOT, track } from '../harness/registry.js';
import { makeCert } from '../harness/pki.js';
import type { SshServer } from './sshd.js';
import { ROOT, daemonPid, startLab, hostPaths, inventory, repackRelease, runPlaybook, stopDaemon, stopDaemonSync, taskEvents, type InventoryHost, type PlaybookRun } from './ansible.js';

interface HostStatus { name: string; up: boolean; connected: boolean; lag: number; appliedRevision: number }

const HOSTS = ['h1', 'h2'];

describe('ansible/site.yml on simulated hosts over SSH', () => {
  const work = join(RUN_ROOT, String(process.pid), `ansible-${Date.now().toString(36)}`);
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
  let pair: Array<{ c: Container; ip: string }> = [];

  const pki = join(work, 'pki');
  const certs = new Map<string, { cert: string; key: string }>();
  const plainLoomctl = async (...args: string[]): Promise<string> =>
    run('ip', ['netns', 'exec', underlay.netns, join(hostPaths(hosts[0]!).loom_install_dir, 'current/bin/loomctl'), '--controller', `${nodes[0]!.address}:7400`, ...args]);
  const loomctl = async (...args: string[]): Promise<string> => {
    const own = certs.get('h1')!;
    return plainLoomctl('--tls-ca', join(pki, 'ca.pem'), '--tls-cert', own.cert, '--tls-key', own.key, '--tls-server-name', 'loom-controller', ...args);
  };
  const status = async () => JSON.parse(await loomctl('status', '--output', 'json')) as { revision: number; hosts: HostStatus[] };
  const explain = (r: PlaybookRun) => r.output.slice(-6000);

  beforeAll(async () => {
    mkdirSync(work, { recursive: true });
    track({ kind: 'dir', path: work });
    // The release, built once per run, exactly as an operator builds it.
    ({ tarball, version, knownHosts, privateKey } = await startLab(work, HOSTS, { hosts, ssh, nodes, underlay: (u) => (underlay = u) }));
    expect(tarball).toMatch(new RegExp(`loom-${version.replaceAll('.', '\\.')}\\.tar\\.gz$`));
    // One CA; a certificate per host (CN = its host name: its agent acts for that host only),
    // valid for loom-controller so agents need not know addresses. The controller host's is also
    // an operator's (O=loom:operators): the role creates networks with it.
    mkdirSync(pki);
    await makeCert(pki, 'ca');
    for (const name of HOSTS) certs.set(name, await makeCert(pki, name, 'ca', name === 'h1' ? '/CN=h1/O=loom:operators' : undefined));
    inventoryFile = join(work, 'inventory.json');
    writeFileSync(
      inventoryFile,
      JSON.stringify(
        inventory({
          controller: nodes[0]!,
          agents: nodes,
          privateKey,
          knownHosts,
          version,
          tarball,
          vars: {
            loom_agent_datapath: 'netdev',
            loom_controller_networks: [{ name: 'blue', ipv4: '198.18.0.0/16', vni: 5001, tunnel: 'vxlan' }],
            loom_cni_networks: [{ name: 'blue', network: 'blue', priority: 10 }],
            loom_tls_ca: join(pki, 'ca.pem'),
            loom_tls_server_name: 'loom-controller',
          },
          hostVars: (h) => ({ loom_tls_cert: certs.get(h.host.name)!.cert, loom_tls_key: certs.get(h.host.name)!.key }),
        }),
        null,
        2,
      ),
    );
    process.on('exit', () => {
      for (const h of hosts) for (const s of ['loom-agent', 'loom-controller'] as const) stopDaemonSync(h, s);
    });
  }, 180_000);

  afterAll(async () => {
    for (const h of hosts) {
      await stopDaemon(h, 'loom-agent');
      await stopDaemon(h, 'loom-controller');
    }
    for (const s of ssh) await s.stop();
    for (const h of hosts) await h.stop();
    await underlay?.remove();
    nodes = [];
  });

  it('is ansible-lint clean', async () => {
    // It reports on stderr; a failure's message carries the findings.
    const out = await run('sh', ['-c', `cd ${ROOT} && ansible-lint --offline --nocolor ansible/ 2>&1`], { timeoutMs: 120_000 }).catch((e: Error) => e.message);
    expect(out).toMatch(/Passed with production profile: 0 failure\(s\), 0 warning\(s\)/);
  });

  it('stops with a clear message when a host has a Node.js older than 20.10', async () => {
    const oldNode = join(work, 'node18');
    writeFileSync(oldNode, '#!/bin/sh\necho 18.19.1\n', { mode: 0o755 });
    const r = await runPlaybook(underlay.netns, inventoryFile, work, ['--limit', 'h2', '-e', `loom_node=${oldNode}`]);
    expect(r.code).not.toBe(0);
    expect(r.output).toContain(`Loom needs Node.js >= 20.10.0 at ${oldNode}, found 18.19.1`);
    expect(r.recap.get('h2')).toMatchObject({ failed: 1, changed: 0 });
  });

  it('installs the controller and every agent over SSH; each agent registers and catches up', { timeout: 300_000 }, async () => {
    // A fresh install may go in one batch; the upgrade below checks the one-by-one default.
    first = await runPlaybook(underlay.netns, inventoryFile, work, ['-e', `loom_agent_serial=${HOSTS.length}`]);
    expect(first.code, explain(first)).toBe(0);
    expect([...first.recap.keys()].sort()).toEqual(HOSTS);
    for (const [host, counts] of first.recap) {
      expect(counts.failed, host).toBe(0);
      expect(counts.unreachable, host).toBe(0);
      expect(counts.changed, host).toBeGreaterThan(0);
    }
    // The agents run inside their hosts' namespaces, started by the init script over SSH.
    for (const h of hosts) {
      const pid = daemonPid(h, 'loom-agent');
      expect(pid, h.name).toBeDefined();
      track({ kind: 'pid', pid: pid!, exe: 'node' });
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toMatch(new RegExp(`/opt/loom/releases/loom-${version}/bin/\\.\\./dist/agent/main\\.js`));
    }
    track({ kind: 'pid', pid: daemonPid(hosts[0]!, 'loom-controller')!, exe: 'node' });
    const s = await status();
    expect(s.hosts.map((h) => h.name)).toEqual(HOSTS);
    for (const h of s.hosts) expect(h, h.name).toMatchObject({ up: true, connected: true, lag: 0 });
    // The network from the inventory exists on the controller.
    expect(JSON.parse(await loomctl('network', 'list', '--output', 'json'))).toEqual([expect.objectContaining({ name: 'blue', vni: 5001 })]);
    // Mutual TLS: the controller turns away a client without a certificate.
    const refused = await plainLoomctl('network', 'list').then(() => 'answered', (e: Error) => e.message);
    expect(refused).toContain('cannot reach the controller');
    // h2's certificate is its agent's, not an operator's.
    const h2 = certs.get('h2')!;
    const agentOnly = await plainLoomctl('--tls-ca', join(pki, 'ca.pem'), '--tls-cert', h2.cert, '--tls-key', h2.key, '--tls-server-name', 'loom-controller', 'network', 'create', 'red', '--ipv4', '198.19.0.0/16')
      .then(() => 'created', (e: Error) => e.message);
    expect(agentOnly).toContain('h2 (role agent) may not call CreateNetwork: it needs the operator role');
    const agentConf = JSON.parse(readFileSync(join(hostPaths(hosts[1]!).loom_config_dir, 'agent.json'), 'utf8')) as Record<string, string>;
    expect(agentConf).toMatchObject({ tlsServerName: 'loom-controller', tlsKey: join(hostPaths(hosts[1]!).loom_config_dir, 'tls/key.pem') });
    // Userspace datapath: ovs-vswitchd is told to keep no copy of the kernel routing table.
    expect(readFileSync(hostPaths(hosts[1]!).loom_ovs_defaults_file, 'utf8')).toContain("OVS_CTL_OPTS='--ovs-vswitchd-options=--disable-system-route'");
  });

  it('attaches containers on two hosts with the installed CNI plugin and they ping each other', async () => {
    expect(first?.code).toBe(0);
    const attach = async (host: SimHost, name: string): Promise<{ c: Container; ip: string }> => {
      const paths = hostPaths(host);
      // What a runtime does with a conflist: each plugin gets the list's name and version.
      const list = JSON.parse(readFileSync(join(paths.loom_cni_conf_dir, '10-blue.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: object[] };
      // loom takes podman's `-p` (runtimeConfig.portMappings) itself.
      expect(list.plugins[0]).toMatchObject({ type: 'loom', capabilities: { portMappings: true, dns: true, aliases: true } });
      const conf = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
      const c = await host.addContainer(name, { empty: true });
      const r = await runCni(paths.loom_cni_bin_dir, 'ADD', conf, cniEnv(c, `ansible-${name}`));
      expect(r.code, r.stdout).toBe(0);
      const ips = (r.json as { ips: Array<{ address: string }> }).ips;
      return { c, ip: ips[0]!.address.split('/')[0]! };
    };
    const a = await attach(hosts[0]!, 'ca');
    const b = await attach(hosts[1]!, 'cb');
    pair = [a, b];
    // The first packets to a new tunnel peer go while OVS resolves the peer's address.
    await waitFor('ping across the tunnel', async () => (await a.c.exec('ping', ['-c', '1', '-W', '1', b.ip])).includes('1 received'), 20_000, 200);
    expect(await a.c.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', b.ip])).toContain('3 received');
    expect(await b.c.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', a.ip])).toContain('3 received');
  });

  it('changes nothing when run a second time', { timeout: 300_000 }, async () => {
    expect(first?.code).toBe(0);
    const pids = hosts.map((h) => daemonPid(h, 'loom-agent'));
    const again = await runPlaybook(underlay.netns, inventoryFile, work);
    expect(again.code, explain(again)).toBe(0);
    expect([...again.recap.keys()].sort()).toEqual(HOSTS);
    for (const [host, counts] of again.recap) expect({ host, changed: counts.changed, failed: counts.failed }).toEqual({ host, changed: 0, failed: 0 });
    expect(hosts.map((h) => daemonPid(h, 'loom-agent'))).toEqual(pids);
  });

  it("stops before installing a host's certificate that names another host", async () => {
    expect(first?.code).toBe(0);
    const h1 = certs.get('h1')!;
    const r = await runPlaybook(underlay.netns, inventoryFile, work, ['--limit', 'h2', '-e', `loom_tls_cert=${h1.cert}`, '-e', `loom_tls_key=${h1.key}`]);
    expect(r.code).not.toBe(0);
    expect(r.output).toContain(`${h1.cert} (subject=O=loom:operators,CN=h1) must have the Common Name h2`);
    expect(r.recap.get('h2')).toMatchObject({ failed: 1, changed: 0 });
  });

  it('upgrades to a new release: controller first, then agent by agent, each healthy before the next', { timeout: 300_000 }, async () => {
    expect(first?.code).toBe(0);
    const next = `${version}-next`;
    const newTarball = await repackRelease(tarball, version, next, join(work, 'release'));
    const before = { controller: daemonPid(hosts[0]!, 'loom-controller'), agents: hosts.map((h) => daemonPid(h, 'loom-agent')) };
    const up = await runPlaybook(underlay.netns, inventoryFile, work, ['-e', `loom_version=${next}`, '-e', `loom_release_tarball=${newTarball}`]);
    expect(up.code, explain(up)).toBe(0);
    for (const [host, counts] of up.recap) expect({ host, failed: counts.failed, changed: counts.changed > 0 }).toEqual({ host, failed: 0, changed: true });
    // Every daemon was restarted onto the new release.
    expect(daemonPid(hosts[0]!, 'loom-controller')).not.toBe(before.controller);
    for (const [i, h] of hosts.entries()) {
      const pid = daemonPid(h, 'loom-agent')!;
      expect(pid, h.name).not.toBe(before.agents[i]);
      track({ kind: 'pid', pid, exe: 'node' });
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), h.name).toContain(`/releases/loom-${next}/`);
    }
    track({ kind: 'pid', pid: daemonPid(hosts[0]!, 'loom-controller')!, exe: 'node' });
    // Rolling: agent N's health check passed before agent N+1 was restarted.
    const events = taskEvents(up.output);
    const at = (task: RegExp, host: string) => events.findIndex((e) => task.test(e.task) && e.host === host && e.status !== 'skipping');
    const restarted = HOSTS.map((h) => at(/Restart loom-agent \(init script\)/, h));
    const healthy = HOSTS.map((h) => at(/Wait until the agent is registered/, h));
    expect(restarted.every((i) => i >= 0) && healthy.every((i) => i >= 0), explain(up)).toBe(true);
    for (let i = 0; i + 1 < HOSTS.length; i++) {
      expect(restarted[i]!).toBeLessThan(healthy[i]!);
      expect(healthy[i]!).toBeLessThan(restarted[i + 1]!);
    }
    const s = await status();
    for (const h of s.hosts) expect(h, h.name).toMatchObject({ up: true, connected: true, lag: 0 });
    // The containers attached before the upgrade still reach each other.
    expect(pair).toHaveLength(2);
    const [a, b] = pair as [{ c: Container; ip: string }, { c: Container; ip: string }];
    await waitFor('ping after the upgrade', async () => (await a.c.exec('ping', ['-c', '1', '-W', '1', b.ip])).includes('1 received'), 20_000, 200);
    // The old release stays for a rollback.
    expect(existsSync(join(hostPaths(hosts[1]!).loom_install_dir, 'releases', `loom-${version}`))).toBe(true);
  });

  it('rolls one agent back to the previous release and restarts nothing else', async () => {
    expect(first?.code).toBe(0);
    const before = { controller: daemonPid(hosts[0]!, 'loom-controller'), h1: daemonPid(hosts[0]!, 'loom-agent'), h2: daemonPid(hosts[1]!, 'loom-agent') };
    const back = await runPlaybook(underlay.netns, inventoryFile, work, ['--limit', 'h2', '-e', `loom_version=${version}`]);
    expect(back.code, explain(back)).toBe(0);
    expect([...back.recap.keys()]).toEqual(['h2']);
    const h2 = daemonPid(hosts[1]!, 'loom-agent')!;
    expect(h2).not.toBe(before.h2);
    track({ kind: 'pid', pid: h2, exe: 'node' });
    expect(readFileSync(`/proc/${h2}/cmdline`, 'utf8')).toContain(`/releases/loom-${version}/`);
    expect(daemonPid(hosts[0]!, 'loom-controller')).toBe(before.controller);
    expect(daemonPid(hosts[0]!, 'loom-agent')).toBe(before.h1);
    const s = await status();
    for (const h of s.hosts) expect(h, h.name).toMatchObject({ up: true, connected: true, lag: 0 });
  });
});
