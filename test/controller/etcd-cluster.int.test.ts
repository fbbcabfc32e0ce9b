// The controller on a 3-member etcd cluster: kill -9 the etcd leader during a burst of creates.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../src/api/types.js';
import { EtcdStore } from '../../src/controller/store/etcd.js';
import { isLeader, startEtcdCluster, type EtcdServer } from '../harness/etcd.js';
import { startController } from './helpers.js';

let members: EtcdServer[] = [];
beforeAll(async () => {
  members = await startEtcdCluster(3);
});
afterAll(async () => {
  await Promise.all(members.map((m) => m.stop()));
});

describe('controller on a 3-member etcd cluster', () => {
  it('keeps every answered create and hands no address out twice when the etcd leader is killed', async () => {
    const prefix = `/loom-${randomUUID()}/`;
    const open = (): Promise<EtcdStore> => EtcdStore.open({ endpoints: members.map((m) => m.endpoint), prefix, timeoutMs: 2000 });
    const t = await startController({ store: await open() });
    const acked: Endpoint[] = [];
    let refused = 0;
    try {
      await t.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16', ipv4BlockPrefix: 28 });
      for (let h = 1; h <= 3; h++) await t.client.register({ name: `h${h}`, vtep: `192.0.2.${h}` });
      let seq = 0;
      let stop = false;
      const writer = async (): Promise<void> => {
        while (!stop) {
          const i = seq++;
          try {
            acked.push(await t.client.createEndpoint({ network: 'blue', host: `h${1 + (i % 3)}`, containerId: `c${i}` }));
          } catch {
            refused++; // not answered: may or may not have committed
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      };
      const writers = Array.from({ length: 4 }, writer);
      while (acked.length < 30) await new Promise((r) => setTimeout(r, 5));
      const leaders = await Promise.all(members.map(isLeader));
      const leader = members[leaders.indexOf(true)];
      await leader.kill();
      const killedAt = acked.length;
      // Writes must resume on the two members left.
      const deadline = Date.now() + 30_000;
      while (acked.length < killedAt + 60 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      stop = true;
      await Promise.all(writers);
      expect(acked.length).toBeGreaterThanOrEqual(killedAt + 60);
      await leader.restart();

      // A fresh controller on the same prefix sees every answered create, unchanged.
      const fresh = await open();
      const stored = new Map((await fresh.loadAll()).filter((kv) => kv.key.startsWith('endpoints/')).map((kv) => [kv.key, kv]));
      await fresh.close();
      for (const e of acked) expect(stored.get(`endpoints/blue/${e.containerId}`)?.modRevision).toBe(e.modRevision);
      const v4 = [...stored.values()].map((kv) => (kv.value as { ipv4: string }).ipv4);
      expect(new Set(v4).size).toBe(v4.length);
      expect((await t.client.listEndpoints({ network: 'blue' })).endpoints).toHaveLength(stored.size);
    } finally {
      await t.stop();
    }
    console.log(`etcd leader killed: ${acked.length} creates answered, ${refused} refused meanwhile`);
  });
});
