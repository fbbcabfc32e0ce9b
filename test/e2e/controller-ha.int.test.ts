// Three controllers on a 3-member etcd cluster (loopback), two simulated hosts whose agents are
// given all three addresses. kill -9 the leading controller, then the etcd leader, each during a
// burst of endpoint creates and a ping between containers on the two hosts: every answered create
// survives, no address is handed out twice, writes resume, a CNI ADD made during the failover
// succeeds, agents converge, 0 packets lost. Then all controllers restart at once; and a
// controller cut off from etcd fails its in-flight write instead of committing it.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, attachContainer, waitFor, type Cluster } from '../harness/index.js';
import { startDaemon, type Daemon } from '../harness/controller-daemon.js';
import { isLeader, startEtcdCluster, type EtcdServer } from '../harness/etcd.js';
import { startController } from '../harness/controller.js';
import { LoomClient } from '../../src/api/client.js';
import { FailoverClient } from '../../src/api/failover.js';
import { EtcdStore } from '../../src/controller/store/etcd.js';
import type { Endpoint } from '../../src/api/types.js';

const HOST_DOWN_MS = 3000;
const LEASE_TTL_S = 2;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** "N packets transmitted, M received" of a finished ping, as [N, M]. */
function pingCounts(out: string): [number, number] {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`no ping summary in: ${out}`);
  return [Number(m[1]), Number(m[2])];
}

describe('controllers on etcd: failover', () => {
  let members: EtcdServer[] = [];
  const daemons: (Daemon | undefined)[] = [];
  let apiPort = 0;
  let watchPort = 0;
  let prefix = '';
  let cluster: Cluster;
  let client: FailoverClient;
  const addresses = [1, 2, 3].map((n) => `127.0.0.${n}`);
  const acked: Endpoint[] = [];
  let seq = 0;

  const startOne = async (i: number): Promise<Daemon> => {
    const addr = `${addresses[i]}:${apiPort}`;
    const d = await startDaemon([
      '--listen', addr,
      '--watch-listen', `${addresses[i]}:${watchPort}`,
      '--store', 'etcd',
      '--etcd-endpoints', members.map((m) => m.endpoint).join(','),
      '--etcd-prefix', prefix,
      '--etcd-elect-as', addr,
      '--etcd-lease-ttl', String(LEASE_TTL_S),
      '--heartbeat-interval-ms', '1000',
      '--host-down-after-ms', String(HOST_DOWN_MS),
    ]);
    daemons[i] = d;
    return d;
  };
  /** Which daemon leads: the one whose own API accepts a write-free leader-only call (a heartbeat of an unknown host says NOT_FOUND, a follower UNAVAILABLE). */
  const leaderIndex = async (): Promise<number> => {
    for (;;) {
      for (const [i, d] of daemons.entries()) {
        if (!d) continue;
        const c = new LoomClient(`${addresses[i]}:${apiPort}`);
        const code = await c.heartbeat('nobody-' + randomUUID().slice(0, 8)).then(() => -1, (e: { code: number }) => e.code);
        c.close();
        if (code === 5) return i; // NOT_FOUND: it leads (a follower refuses with UNAVAILABLE)
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const attach = (host: number, name: string) => attachContainer(cluster, host, name);

  /**
   * Creates endpoints from 3 writers until `stop()`; answered ones are kept in `acked`. A create
   * that failed may or may not have committed; none is retried under another id. They go to a
   * network of a host without an agent: the failover is what is measured, not flow churn.
   */
  const burst = () => {
    let stopped = false;
    let refused = 0;
    const writer = async (): Promise<void> => {
      while (!stopped) {
        const i = seq++;
        try {
          acked.push(await client.createEndpoint({ network: 'burst', host: 'ha-ghost', containerId: `burst${i}` }));
        } catch {
          refused++;
        }
      }
    };
    const writers = Array.from({ length: 3 }, writer);
    return {
      stop: async () => {
        stopped = true;
        await Promise.all(writers);
        return refused;
      },
    };
  };

  /** Every answered create is stored as answered; no IPv4 address twice; agents converge. */
  const checkState = async (): Promise<void> => {
    const { endpoints } = await client.listEndpoints({ network: 'burst' });
    const byId = new Map(endpoints.map((e) => [e.containerId, e]));
    for (const e of acked) expect(byId.get(e.containerId)?.ipv4, e.containerId).toBe(e.ipv4);
    const v4 = endpoints.map((e) => e.ipv4);
    expect(new Set(v4).size).toBe(v4.length);
    const { revision } = await client.getStatus();
    const w = await client.wait(revision, 20_000);
    const { hosts } = await client.getStatus();
    // Both agents' hosts stayed up: no route was withdrawn (the ghost has no agent: it goes down).
    expect(hosts.filter((h) => h.name !== 'ha-ghost').map((h) => `${h.name} ${h.up}`)).toEqual(['ha-a true', 'ha-b true']);
    expect(w.converged, `pending: ${w.pendingHosts.join(',')} at ${revision}`).toBe(true);
  };

  beforeAll(async () => {
    members = await startEtcdCluster(3);
    prefix = `/loom-${randomUUID()}/`;
    apiPort = await freePort();
    watchPort = await freePort();
    for (let i = 0; i < 3; i++) await startOne(i);
    client = new FailoverClient(addresses.map((a) => `${a}:${apiPort}`), (a) => new LoomClient(a));
    await client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', ipv4BlockPrefix: 24, tunnelType: 'TUNNEL_TYPE_VXLAN' });
    await client.createNetwork({ name: 'burst', ipv4Cidr: '198.19.0.0/16', ipv4BlockPrefix: 24 });
    await client.register({ name: 'ha-ghost', vtep: '192.0.2.99' });
    cluster = await startCluster({
      hosts: ['ha-a', 'ha-b'],
      controller: addresses.map((a) => `${a}:${apiPort}`).join(','),
    });
  });

  afterAll(async () => {
    client?.close();
    await cluster?.stop();
    for (const d of daemons) await d?.kill9();
    await Promise.all(members.map((m) => m.stop()));
  });

  const across = async (what: string, fault: () => Promise<void>): Promise<void> => {
    const a = await attach(0, `${what}-a`);
    const b = await attach(1, `${what}-b`);
    const { revision } = await client.getStatus();
    expect((await client.wait(revision, 20_000)).converged).toBe(true);
    expect(await a.c.exec('ping', ['-c', '2', '-i', '0.1', '-W', '2', b.ipv4])).toContain('2 received');
    // 9 s of ping at 10 ms: the lease, an election and one host-down timeout fit in it.
    const ping = a.c.exec('ping', ['-q', '-c', '900', '-i', '0.01', '-W', '1', b.ipv4]);
    const writes = burst();
    const before = acked.length;
    await waitFor('creates before the fault', async () => acked.length >= before + 20 || undefined, 20_000, 10);
    await fault();
    const faultAt = acked.length;
    // A CNI ADD made now waits out the failover instead of failing.
    const during = await attach(1, `${what}-during`);
    await waitFor('writes to resume', async () => acked.length >= faultAt + 20 || undefined, 30_000, 20);
    const refused = await writes.stop();
    const [sent, received] = pingCounts(await ping);
    console.log(`${what}: ${acked.length - before} creates answered, ${refused} not answered; ping ${received}/${sent}`);
    expect(sent - received).toBe(0);
    await checkState();
    expect(await a.c.exec('ping', ['-c', '2', '-i', '0.1', '-W', '2', during.ipv4])).toContain('2 received');
  };

  it('kill -9 of the leading controller during a burst of creates', async () => {
    let killed = -1;
    await across('ctl', async () => {
      killed = await leaderIndex();
      await daemons[killed]!.kill9();
      daemons[killed] = undefined;
    });
    for (const d of daemons) expect(d?.output() ?? '').not.toMatch(/"host":"ha-[ab]".*host is down/);
    await startOne(killed);
  });

  it('kill -9 of the etcd leader during a burst of creates', async () => {
    let leader: EtcdServer | undefined;
    await across('etcd', async () => {
      const leaders = await Promise.all(members.map(isLeader));
      leader = members[leaders.indexOf(true)];
      await leader!.kill();
    });
    await leader!.restart();
  });

  it('all controllers restarted at once lose nothing', async () => {
    const list = async (): Promise<string[]> => (await Promise.all(['blue', 'burst'].map((network) => client.listEndpoints({ network })))).flatMap((r) => r.endpoints.map((e) => `${e.containerId} ${e.ipv4}`)).sort();
    const before = await list();
    await Promise.all(daemons.map((d) => d?.kill9()));
    for (let i = 0; i < 3; i++) await startOne(i);
    const after = await list();
    expect(after).toEqual(before);
    const added = await attach(0, 'after-restart');
    expect(added.ipv4).not.toBe('');
    await checkState();
  });

  it('loomctl with every controller: a write lands at the leader whichever is listed first', async () => {
    const leader = await leaderIndex();
    // The list starts with a follower: its refusal names the leader, loomctl goes there.
    const list = [1, 2, 3].map((k) => `${addresses[(leader + k) % 3]}:${apiPort}`).join(',');
    const run = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        execFile(process.execPath, ['--import', 'tsx', 'src/cli/loomctl.ts', ...(args[0] === '--controller' ? [] : ['--controller', list]), ...args], { cwd: process.cwd() }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const created = await run('network', 'create', 'green', '--ipv4', '198.51.100.0/24', '-o', 'json');
    expect(created.code, created.stderr).toBe(0);
    const shown = await run('network', 'show', 'green', '-o', 'json');
    expect(shown.code, shown.stderr).toBe(0);
    expect((JSON.parse(shown.stdout) as { ipv4Cidr: string }).ipv4Cidr).toBe('198.51.100.0/24');
    const bad = await run('--controller', 'a:1,,b:2', 'status');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--controller: "" is not host:port/);
  });

  it('traces between hosts from a controller neither agent streams to (it asks the others through etcd)', async () => {
    const a = await attach(0, 'trace-a');
    const b = await attach(1, 'trace-b');
    const { revision } = await client.getStatus();
    expect((await client.wait(revision, 20_000)).converged).toBe(true);
    // Three controllers, two agents: one controller holds no agent's Watch stream.
    const streams = await Promise.all(
      daemons.map(async (d) => {
        const text = await fetch(`http://127.0.0.1:${d!.httpPort}/metrics`).then((r) => r.text());
        return Number(/^loom_controller_connected_agents (\d+)/m.exec(text)?.[1]);
      }),
    );
    const idle = streams.indexOf(0);
    expect(idle, `agents per controller: ${streams.join(',')}`).toBeGreaterThanOrEqual(0);
    const direct = new LoomClient(`${addresses[idle]}:${apiPort}`);
    try {
      const t = await direct.trace({ from: a.ipv4, to: b.ipv4, protocol: 'tcp', port: 80, live: true });
      expect(t.verdict, t.explanation).toBe('delivered');
      expect(t.hosts.map((h) => h.host)).toEqual(['ha-a', 'ha-b']);
      expect(t.live?.agrees, JSON.stringify(t.live)).toBe(true);
    } finally {
      direct.close();
    }
  });

  it('a controller cut off from etcd fails its in-flight write rather than committing it', async () => {
    // In-process controller A reaches etcd only through a proxy this test cuts; B is direct.
    const sockets = new Set<Socket>();
    const proxies: Server[] = [];
    const proxied: string[] = [];
    for (const m of members) {
      const target = new URL(m.endpoint);
      const srv = createServer((s) => {
        const up = connect(Number(target.port), target.hostname);
        sockets.add(s).add(up);
        s.pipe(up).pipe(s);
        s.on('error', () => up.destroy());
        up.on('error', () => s.destroy());
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      proxies.push(srv);
      proxied.push(`http://127.0.0.1:${(srv.address() as { port: number }).port}`);
    }
    const cut = (): void => {
      for (const p of proxies) p.close();
      for (const s of sockets) s.destroy();
    };
    const pfx = `/loom-${randomUUID()}/`;
    const a = await startController({ store: await EtcdStore.open({ endpoints: proxied, prefix: pfx, timeoutMs: 1500, election: { address: 'a:7400', ttlSeconds: LEASE_TTL_S } }) });
    const b = await startController({ store: await EtcdStore.open({ endpoints: members.map((m) => m.endpoint), prefix: pfx, election: { address: 'b:7400', ttlSeconds: LEASE_TTL_S } }) });
    try {
      await a.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      await a.client.register({ name: 'h1', vtep: '192.0.2.1' });
      await a.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'before' });
      // The follower is hot: it has A's writes without any reload.
      await waitFor('the follower to follow', async () => b.controller.findEndpoint('blue', 'before') ?? undefined, 5000, 20);
      cut();
      await expect(a.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'cut-off' })).rejects.toMatchObject({ code: 14 });
      await waitFor('B to lead', async () => ((b.controller.store.leadership?.()?.term ?? 0) > 0) || undefined, 15_000, 50);
      await b.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'after' });
      const ids = (await b.client.listEndpoints({ network: 'blue' })).endpoints.map((e) => e.containerId).sort();
      expect(ids).toEqual(['after', 'before']);
      // A, still cut off, never commits again.
      await expect(a.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'late' })).rejects.toMatchObject({ code: 14 });
    } finally {
      cut();
      await b.stop();
      // A cannot resign (etcd is out of its reach): do not wait for that.
      await Promise.race([a.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 3000))]);
    }
  });
});
