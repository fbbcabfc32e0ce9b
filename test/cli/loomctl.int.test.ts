import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoomClient } from '../../src/api/client.js';
import { startDaemon, tempDir, type Daemon } from '../harness/controller-daemon.js';
import { SimAgent } from '../controller/helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
let d: Daemon;
let tmp: { dir: string; cleanup: () => void };
let agent: SimAgent;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function loomctl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/loomctl.ts', '--controller', d.target, ...args], { cwd: ROOT }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  tmp = tempDir();
  // h1 and h2 never heartbeat: keep them up however long a loaded machine takes to run loomctl.
  d = await startDaemon(['--db', `${tmp.dir}/c.db`, '--host-down-after-ms', '3600000']);
  const c = new LoomClient(d.target);
  await c.register({ name: 'h1', vtep: '192.0.2.1', agentVersion: '0.1.0' });
  await c.register({ name: 'h2', vtep: '192.0.2.2' });
  c.close();
  agent = new SimAgent(d.target, 'h1', '192.0.2.1');
  agent.watch();
});
afterAll(async () => {
  agent.close();
  await d.kill9();
  tmp.cleanup();
});

describe('loomctl against a running controller', () => {
  it('creates, lists and shows networks, in table and JSON', async () => {
    const created = await loomctl('network', 'create', 'blue', '--ipv4', '10.1.0.0/16', '--ipv6', 'fd00:1::/64', '--tunnel', 'gre', '--dns-server', '10.1.0.2', '--dns-search', 'corp.example', '--dns-domain', 'Blue.Example.');
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toMatch(/^NAME\s+VNI\s+IPV4\s+IPV6\s+TUNNEL\s+MTU\s+GATEWAYS\s+EGRESS\s+ISOLATION\nblue\s+1\s+10\.1\.0\.0\/16\s+fd00:1::\/64\s+gre\s+1458\s+10\.1\.0\.1,fd00:1::1\s+nat\s+open\n$/);
    const list = await loomctl('network', 'list', '-o', 'json');
    expect(list.code).toBe(0);
    const nets = JSON.parse(list.stdout) as { name: string; vni: number; dns: { search: string[]; domain: string } }[];
    expect(nets.map((n) => [n.name, n.vni, n.dns.search, n.dns.domain])).toEqual([['blue', 1, ['corp.example'], 'blue.example']]);
    const show = await loomctl('network', 'show', 'blue');
    expect(show.stdout).toMatch(/block prefixes: \/26 and \/120; dns: 10\.1\.0\.2 search corp\.example domain blue\.example;/);
  });

  it('lists hosts and endpoints and shows one endpoint', async () => {
    const c = new LoomClient(d.target);
    const ep = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'abc123', name: 'web' });
    c.close();
    const hosts = await loomctl('host', 'list');
    expect(hosts.stdout).toMatch(/h1\s+192\.0\.2\.1\s+up\s+0\.1\.0/);
    const eps = JSON.parse((await loomctl('endpoint', 'list', '--network', 'blue', '-o', 'json')).stdout) as { containerId: string; ipv4: string }[];
    expect(eps).toEqual([expect.objectContaining({ containerId: 'abc123', ipv4: ep.ipv4 })]);
    const show = await loomctl('endpoint', 'show', 'blue', 'abc123');
    expect(show.stdout).toContain(`ipv4       ${ep.ipv4}`);
    expect(show.stdout).toMatch(/routes\s+0\.0\.0\.0\/0 via 10\.1\.0\.1, ::\/0 via fd00:1::1/);
  });

  it('isolates a network, links two endpoints, explains and deletes the rule', async () => {
    const c = new LoomClient(d.target);
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'db1', name: 'db' });
    c.close();
    expect((await loomctl('network', 'update', 'blue', '--isolation', 'isolated')).stdout).toMatch(/blue\s.*isolated\n$/);
    expect(await loomctl('policy', 'explain', 'web', 'db', '5432')).toMatchObject({ code: 1, stdout: 'denied: network blue is isolated and no policy allows web -> db tcp/5432: new connections are dropped\n' });
    const linked = await loomctl('link', 'web', 'db', '--port', '5432');
    expect(linked).toMatchObject({ code: 0, stderr: '' });
    expect(linked.stdout).toMatch(/^web may open 5432\/tcp on db \(policy link\.web\.db\.tcp5432 of network blue, revision \d+\)\n$/);
    const explained = await loomctl('policy', 'explain', 'web', 'db', '5432', '-o', 'json');
    expect(JSON.parse(explained.stdout)).toMatchObject({ allowed: true, policies: ['link.web.db.tcp5432'] });
    expect((await loomctl('policy', 'explain', 'db', 'web', '5432')).code).toBe(1);
    const created = await loomctl('policy', 'create', 'from-lan', '--network', 'blue', '--from-cidr', '10.1.0.0/16', '--to-endpoint', 'web', '--port', '80-89');
    expect(created.stdout).toMatch(/blue\s+from-lan\s+10\.1\.0\.0\/16\s+web\s+80-89\/tcp/);
    expect((await loomctl('policy', 'list', '--network', 'blue')).stdout.split('\n').filter(Boolean)).toHaveLength(3);
    const bad = await loomctl('policy', 'create', 'x', '--network', 'blue', '--to-endpoint', 'web');
    expect(bad).toMatchObject({ code: 1, stderr: expect.stringContaining('INVALID_ARGUMENT: policy x: from names nothing') });
    expect((await loomctl('policy', 'delete', 'blue', 'link.web.db.tcp5432')).stdout).toMatch(/^policy link\.web\.db\.tcp5432 of network blue deleted/);
    expect((await loomctl('policy', 'show', 'blue', 'link.web.db.tcp5432')).code).toBe(1);
    await loomctl('network', 'update', 'blue', '--isolation', 'open');
  });

  it("creates and updates an endpoint's hostname, aliases and DNS settings, shows them, and adds a link alias", async () => {
    const created = await loomctl('endpoint', 'create', 'blue', 'cache1', '--host', 'h1', '--name', 'cache', '--alias', 'redis', '--dns-server', '192.0.2.53', '--dns-option', 'ndots:2', '-o', 'json');
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(created.stdout)).toMatchObject({ hostname: 'cache', aliases: ['redis'], dnsOverride: { nameservers: ['192.0.2.53'], options: ['ndots:2'] } });
    const updated = await loomctl('endpoint', 'update', 'blue', 'cache1', '--hostname', 'kv', '--dns-search', 'lab.example');
    expect(updated).toMatchObject({ code: 0, stdout: expect.stringMatching(/^endpoint cache on blue updated \(revision \d+;/) });
    const show = await loomctl('endpoint', 'show', 'blue', 'cache1');
    expect(show.stdout).toMatch(/hostname\s+kv\n/);
    expect(show.stdout).toMatch(/aliases\s+redis\n/);
    // The search domains were replaced, the server and options kept.
    expect(show.stdout).toMatch(/own dns\s+192\.0\.2\.53 search lab\.example options ndots:2\n/);
    const clash = await loomctl('endpoint', 'update', 'blue', 'abc123', '--alias', 'REDIS');
    expect(clash).toMatchObject({ code: 1, stderr: 'loomctl: ALREADY_EXISTS: alias redis is already a DNS name of endpoint cache (container cache1) on network blue\n' });
    const bad = await loomctl('endpoint', 'update', 'blue', 'abc123', '--alias', 'no_underscores');
    expect(bad).toMatchObject({ code: 1, stderr: expect.stringContaining('INVALID_ARGUMENT: alias "no_underscores" is not a DNS name') });
    expect(await loomctl('endpoint', 'update', 'blue', 'abc123')).toMatchObject({ code: 2, stderr: expect.stringContaining('endpoint update needs --hostname') });
    const linked = await loomctl('link', 'web', 'cache', '--alias', 'store');
    expect(linked).toMatchObject({ code: 0, stdout: expect.stringMatching(/^cache answers to store in network blue \(revision \d+\)\n$/) });
    const c = new LoomClient(d.target);
    expect((await c.getEndpoint('blue', 'cache1')).aliases).toEqual(['redis', 'store']);
    await c.deleteEndpoint('blue', 'cache1');
    c.close();
  });

  it('shows status per agent and waits for convergence', async () => {
    const status = JSON.parse((await loomctl('status', '-o', 'json')).stdout) as { revision: number; hosts: { name: string; connected: boolean; lag: number }[] };
    const wait = await loomctl('wait', '--revision', String(status.revision), '--timeout', '10');
    expect(wait).toMatchObject({ code: 0, stdout: `revision ${status.revision} applied by every interested agent\n` });
    const after = JSON.parse((await loomctl('status', '-o', 'json')).stdout) as typeof status;
    expect(after.hosts.find((h) => h.name === 'h1')).toMatchObject({ connected: true, lag: 0 });
    const table = await loomctl('status');
    expect(table.stdout).toMatch(/hosts 2 up \/ 0 down/);
    expect(table.stdout).toMatch(/h1\s+192\.0\.2\.1\s+up\s+connected/);
  });

  it('exits 3 with the pending hosts when wait times out', async () => {
    // h2 has an endpoint but no agent watching: it can never apply.
    const c = new LoomClient(d.target);
    const ep = await c.createEndpoint({ network: 'blue', host: 'h2', containerId: 'on-h2' });
    c.close();
    const r = await loomctl('wait', '--revision', String(ep.modRevision), '--timeout', '1');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/timed out after 1s waiting for revision \d+; pending: h2/);
  });

  it('reports refused requests, usage errors and an unreachable controller with distinct exit codes', async () => {
    const dup = await loomctl('network', 'create', 'other', '--ipv4', '10.1.5.0/24');
    expect(dup.code).toBe(1);
    expect(dup.stderr).toBe('loomctl: ALREADY_EXISTS: ipv4 CIDR 10.1.5.0/24 overlaps network blue (10.1.0.0/16)\n');
    const gone = await loomctl('network', 'delete', 'nope');
    expect(gone).toMatchObject({ code: 1, stderr: 'loomctl: NOT_FOUND: network nope does not exist\n' });
    const usage = await loomctl('network', 'create', 'x');
    expect(usage).toMatchObject({ code: 2, stderr: 'loomctl: missing --ipv4 CIDR (see loomctl --help)\n' });
    expect((await loomctl('frobnicate')).code).toBe(2);
    expect(await loomctl('host', 'list', '--ipv4', '10.0.0.0/8')).toMatchObject({ code: 2, stdout: '', stderr: "loomctl: unknown flag --ipv4 for 'host list' (see loomctl --help)\n" });
    const help = await loomctl('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: loomctl');
    const down = await new Promise<Run>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'src/cli/loomctl.ts', '--controller', '127.0.0.1:1', 'status'], { cwd: ROOT }, (err, stdout, stderr) =>
        resolve({ code: (err as { code?: number } | null)?.code ?? 0, stdout, stderr }),
      );
    });
    expect(down.code).toBe(4);
    expect(down.stderr).toMatch(/cannot reach the controller at 127\.0\.0\.1:1/);
  });
  it('shows a network\'s egress mode and host addresses, and an endpoint\'s published ports', async () => {
    const created = await loomctl('network', 'create', 'red', '--ipv4', '10.9.0.0/24', '--egress', 'off', '--inbound-source', '10.10.10.10');
    expect(created.stdout).toMatch(/red\s+\d+\s+10\.9\.0\.0\/24\s+-\s+vxlan\s+1450\s+10\.9\.0\.1\s+off\s+open\n$/);
    const c = new LoomClient(d.target);
    await c.register({ name: 'h3', vtep: '192.0.2.3', capabilities: ['gateway-port'] });
    await c.createEndpoint({ network: 'red', host: 'h3', containerId: 'web1', ports: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIp: '' }, { hostPort: 53, containerPort: 53, protocol: 'udp', hostIp: '127.0.0.1' }] });
    c.close();
    const show = await loomctl('network', 'show', 'red');
    expect(show.stdout).toContain('no egress; inbound sources: 10.10.10.10/32');
    expect(show.stdout, show.stdout).toMatch(/h3\s+10\.9\.0\.63\/24\s+-/);
    const list = await loomctl('endpoint', 'list', '--network', 'red');
    expect(list.stdout).toMatch(/web1\s+web1\s+h3\s+\S+\s+10\.9\.0\.2\/24\s+-\s+8080->80\/tcp,127\.0\.0\.1:53->53\/udp/);
    expect(list.stdout).toMatch(/\(host gateway\)\s+_gw\.h3\s+h3/);
    const bad = await loomctl('network', 'create', 'x', '--ipv4', '10.8.0.0/24', '--egress', 'maybe');
    expect(bad).toMatchObject({ code: 2, stderr: 'loomctl: --egress must be nat or off, got "maybe"\n' });
  });

});
