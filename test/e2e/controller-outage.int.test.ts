// Agents keep forwarding while the controller is away, and catch up from their last applied
// revision when it returns (the daemon, restarted on the same port and database). A restarted
// controller never withdraws a healthy host's routes, even with a short host-down timeout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startCluster, attachContainer, waitFor, type Cluster } from '../harness/index.js';
import { startDaemon, tempDir, type Daemon } from '../harness/controller-daemon.js';
import { LoomClient } from '../../src/api/client.js';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const HOST_DOWN_MS = 3000;
const OUTAGE_MS = 3000;

/** "N packets transmitted, M received" of a finished ping, as [N, M]. */
function pingCounts(out: string): [number, number] {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`no ping summary in: ${out}`);
  return [Number(m[1]), Number(m[2])];
}

describe('controller outage', () => {
  const tmp = tempDir();
  let port: number;
  /** The Watch port, fixed across restarts as the API port is (its default, 7403 beside a fixed API port, may be taken). */
  let watchPort: number;
  let daemon: Daemon;
  let cluster: Cluster;
  let client: LoomClient;
  const start = () => startDaemon(['--listen', `127.0.0.1:${port}`, '--watch-listen', `127.0.0.1:${watchPort}`, '--db', join(tmp.dir, 'c.db'), '--heartbeat-interval-ms', '1000', '--host-down-after-ms', String(HOST_DOWN_MS)]);
  const attach = (host: number, name: string) => attachContainer(cluster, host, name);

  beforeAll(async () => {
    port = await freePort();
    watchPort = await freePort();
    daemon = await start();
    client = new LoomClient(`127.0.0.1:${port}`);
    await client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN' });
    cluster = await startCluster({ hosts: ['oa', 'ob'], controller: `127.0.0.1:${port}` });
  });

  afterAll(async () => {
    client?.close();
    await cluster?.stop();
    await daemon?.kill9();
    tmp.cleanup();
  });

  it('forwards on the last known state without the controller, and catches up after', async () => {
    const a = await attach(0, 'a1');
    const b = await attach(1, 'b1');
    expect(await a.c.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', b.ipv4])).toContain('2 received');

    await daemon.kill9();
    // Restarting an agent while the controller is down must not cost a packet either.
    await cluster.agents[1]!.stop();
    await cluster.agents[1]!.start();
    expect(await a.c.exec('ping', ['-c', '20', '-i', '0.05', '-W', '2', b.ipv4])).toContain('20 received');

    daemon = await start();
    await waitFor('both agents to reconnect', async () => {
      const s = await client.getStatus().catch(() => undefined);
      return (s?.hosts.length === 2 && s.hosts.every((h) => h.connected)) || undefined;
    }, 20_000, 100);
    // A change made after the controller returns reaches both agents, which ack it.
    const b2 = await attach(1, 'b2');
    const { revision } = await client.getStatus();
    const wait = await client.wait(revision, 15_000);
    expect(wait.converged, `pending: ${wait.pendingHosts.join(',')}`).toBe(true);
    expect(await a.c.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', b2.ipv4])).toContain('2 received');
    await waitFor('both agents to report the latest revision', async () => {
      const s = await client.getStatus();
      return s.hosts.every((h) => h.appliedRevision >= revision) || undefined;
    }, 10_000, 100);
  });

  it('a controller kill -9 and restart withdraws no healthy host\'s routes: 0 packets lost, 10 times', async () => {
    const a = await attach(0, 'r1');
    const b = await attach(1, 'r2');
    expect(await a.c.exec('ping', ['-c', '2', '-i', '0.1', '-W', '2', b.ipv4])).toContain('2 received');
    const lost: number[] = [];
    const withdrawn: boolean[] = [];
    for (let i = 0; i < 10; i++) {
      await daemon.kill9();
      // Away a few seconds (with start-up ~5 s), as a crashed service is: long enough for an
      // unbounded reconnect backoff to have grown past the host-down timeout.
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      daemon = await start();
      // Routes could only be withdrawn from now (nothing forwards through the controller) until
      // a host-down timeout plus one liveness tick later: ping right across that window.
      const [sent, received] = pingCounts(await a.c.exec('ping', ['-q', '-c', String((HOST_DOWN_MS + 1000) / 10), '-i', '0.01', '-W', '1', b.ipv4]));
      lost.push(sent - received);
      withdrawn.push(daemon.output().includes('host is down'));
    }
    console.log(`packets lost per restart (of ${(HOST_DOWN_MS + 1000) / 10} each): ${lost.join(' ')}`);
    expect({ lost, withdrawn }).toEqual({ lost: new Array(10).fill(0), withdrawn: new Array(10).fill(false) });
    const { hosts } = await client.getStatus();
    expect(hosts.map((h) => h.up)).toEqual([true, true]);
  });
});
