// Leader election on etcd: two controllers on one prefix; only the leader writes, a follower
// refuses with the leader's address, a deposed leader's commit fails, the follower takes over.
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore } from '../../src/controller/store/etcd.js';
import { LoomClient } from '../../src/api/client.js';
import { startDaemon } from '../harness/controller-daemon.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { SimAgent, startController } from './helpers.js';

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('controllers elected on etcd', () => {
  it('lets only the leader write, fences a deposed leader, and fails over with the state', async () => {
    const prefix = `/loom-${randomUUID()}/`;
    const open = (address: string, ttlSeconds: number): Promise<EtcdStore> => EtcdStore.open({ endpoints: [etcd.endpoint], prefix, election: { address, ttlSeconds } });
    // A renews its lease only every ~10 s: after its lease is revoked it keeps believing it leads.
    const storeA = await open('10.0.0.1:7400', 30);
    const storeB = await open('10.0.0.2:7400', 2);
    const a = await startController({ store: storeA });
    const b = await startController({ store: storeB });
    try {
      expect(storeA.leadership()).toMatchObject({ leader: '10.0.0.1:7400' });
      expect(storeA.leadership()!.term).toBeGreaterThan(0);
      expect(storeB.leadership()).toEqual({ term: 0, leader: '10.0.0.1:7400' });

      await a.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      await a.client.register({ name: 'h1', vtep: '192.0.2.1' });
      const e1 = await a.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c1' });
      await expect(b.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c2' })).rejects.toThrow(/follower; send writes to the leader at 10.0.0.1:7400/);

      // Depose A behind its back: its lease is revoked by someone else, so A still thinks it leads.
      const admin = new Etcd3({ hosts: etcd.endpoint });
      const leaderKv = (await admin.get(`${prefix}leader`).exec()).kvs[0];
      await admin.leaseClient.leaseRevoke({ ID: leaderKv.lease });
      admin.close();
      await until(() => (storeB.leadership()?.term ?? 0) > 0, 'B to lead');
      expect(storeB.leadership()!.leader).toBe('10.0.0.2:7400');

      // A's write fails rather than commits: A still believes it leads, the Txn's compare says no.
      expect(storeA.leadership()!.term).toBeGreaterThan(0);
      await expect(a.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'stale' })).rejects.toThrow(/could not write its store: this controller is not the leader; send writes to 10.0.0.2:7400/);
      expect(storeA.leadership()).toEqual({ term: 0, leader: '10.0.0.2:7400' });

      // B reloads what A committed, then writes: nothing lost, no address handed out twice.
      const e2 = await b.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c2' });
      expect(e2.ipv4).not.toBe(e1.ipv4);
      const listed = (await b.client.listEndpoints({ network: 'blue' })).endpoints.map((e) => e.containerId).sort();
      expect(listed).toEqual(['c1', 'c2']);
      await expect(a.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c3' })).rejects.toThrow(/send writes to the leader at 10.0.0.2:7400/);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('daemons: kill -9 the leader, the follower takes over after the lease and keeps what was answered', async () => {
    const prefix = `/loom-${randomUUID()}/`;
    const args = (n: number): string[] => ['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix, '--etcd-elect-as', `127.0.0.${n}:7400`, '--etcd-lease-ttl', '2'];
    const d1 = await startDaemon(args(1));
    const d2 = await startDaemon(args(2));
    const c1 = new LoomClient(d1.target);
    const c2 = new LoomClient(d2.target);
    try {
      await c1.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
      await c1.register({ name: 'h1', vtep: '192.0.2.1' });
      const e1 = await c1.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c1' });
      await expect(c2.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c2' })).rejects.toThrow(/leader at 127.0.0.1:7400/);
      await d1.kill9();
      const killedAt = Date.now();
      let e2 = null;
      while (!e2 && Date.now() - killedAt < 10_000) {
        e2 = await c2.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c2' }).catch(() => null);
        if (!e2) await new Promise((r) => setTimeout(r, 50));
      }
      expect(e2).not.toBeNull();
      expect(e2!.ipv4).not.toBe(e1.ipv4);
      expect((await c2.listEndpoints({ network: 'blue' })).endpoints.map((e) => e.containerId).sort()).toEqual(['c1', 'c2']);
    } finally {
      c1.close();
      c2.close();
      await d1.kill9();
      await d2.kill9();
    }
  });

  it("a follower's Watch streams carry the old leader's writes once it takes over", async () => {
    const prefix = `/loom-${randomUUID()}/`;
    const open = (address: string, ttlSeconds: number): Promise<EtcdStore> => EtcdStore.open({ endpoints: [etcd.endpoint], prefix, election: { address, ttlSeconds } });
    const storeA = await open('10.0.0.1:7400', 30);
    const a = await startController({ store: storeA });
    await a.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16' });
    await a.client.register({ name: 'h1', vtep: '192.0.2.1' });
    await a.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c0' });
    const storeB = await open('10.0.0.2:7400', 2);
    const b = await startController({ store: storeB });
    const agent = new SimAgent(b.target, 'h1', '192.0.2.1');
    try {
      agent.watch();
      await agent.until(() => agent.view.networks.get('blue')?.endpoints.has('c0') === true);
      await a.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c1' }); // B does not follow yet
      const admin = new Etcd3({ hosts: etcd.endpoint });
      await admin.leaseClient.leaseRevoke({ ID: (await admin.get(`${prefix}leader`).exec()).kvs[0].lease });
      admin.close();
      await until(() => (storeB.leadership()?.term ?? 0) > 0, 'B to lead');
      const c2 = await b.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c2' });
      await agent.untilRevision(c2.modRevision);
      expect([...agent.view.networks.get('blue')!.endpoints.keys()].sort()).toEqual(['c0', 'c1', 'c2']);
    } finally {
      agent.close();
      await a.stop();
      await b.stop();
    }
  });
});
