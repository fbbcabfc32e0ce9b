// The controller on a real etcd shared with another writer: revisions with gaps, Txns shared by
// several mutations and split at --max-txn-ops; replies, agents' views and Wait stay right.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../src/api/types.js';
import { EtcdStore } from '../../src/controller/store/etcd.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { SimAgent, startController } from './helpers.js';

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd({ maxTxnOps: 16 });
});
afterAll(async () => {
  await etcd?.stop();
});

describe('controller on etcd', () => {
  it('answers with etcd revisions through gaps and shared Txns; agents converge; a restart loses nothing', async () => {
    const prefix = `/loom-${randomUUID()}/`;
    const open = (): Promise<EtcdStore> => EtcdStore.open({ endpoints: [etcd.endpoint], prefix, maxTxnOps: 16 });
    const other = await EtcdStore.open({ endpoints: [etcd.endpoint], prefix: `/other-${randomUUID()}/` });
    const t = await startController({ store: await open() });
    const agent = new SimAgent(t.target, 'h1', '192.0.2.1');
    const peers = [2, 3].map((h) => new SimAgent(t.target, `h${h}`, `192.0.2.${h}`));
    try {
      await t.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16', ipv6Cidr: 'fd00:1::/64', ipv4BlockPrefix: 28 });
      for (let h = 1; h <= 3; h++) await t.client.register({ name: `h${h}`, vtep: `192.0.2.${h}` });
      agent.watch();
      for (const p of peers) p.watch();
      // Another tenant of the same etcd writes throughout: our revisions skip its numbers.
      let stop = false;
      const noise = (async () => {
        for (let i = 0; !stop; i++) await other.commit([{ type: 'put', key: `n${i % 10}`, value: i }]);
      })();
      const created: Endpoint[] = [];
      await Promise.all(
        Array.from({ length: 6 }, async (_, w) => {
          for (let i = 0; i < 25; i++) created.push(await t.client.createEndpoint({ network: 'blue', host: `h${1 + (i % 3)}`, containerId: `c${w}-${i}` }));
        }),
      );
      stop = true;
      await noise;

      // Every reply carries the revisions etcd committed it at.
      const stored = new Map((await (await open()).loadAll()).map((kv) => [kv.key, kv]));
      for (const e of created) {
        const kv = stored.get(`endpoints/blue/${e.containerId}`)!;
        expect([e.createRevision, e.modRevision]).toEqual([kv.createRevision, kv.modRevision]);
      }
      const revs = [...new Set(created.map((e) => e.modRevision))].sort((a, b) => a - b);
      expect(revs[revs.length - 1] - revs[0]).toBeGreaterThan(revs.length); // gaps happened
      const v4 = created.map((e) => e.ipv4);
      expect(new Set(v4).size).toBe(v4.length);

      // The agent converges on the last revision; Wait answers for a revision inside a gap.
      const last = t.controller.revision();
      await Promise.all([agent, ...peers].map((a) => a.untilRevision(last)));
      expect(agent.view.networks.get('blue')!.endpoints.size).toBe(created.length);
      expect((await t.client.wait(last - 1, 5000)).converged).toBe(true);
      const byId = (l: Endpoint[]): Endpoint[] => [...l].sort((a, b) => a.containerId.localeCompare(b.containerId));
      const listed = byId((await t.client.listEndpoints({ network: 'blue' })).endpoints);
      expect(listed).toEqual(byId(created));
      const storeId = agent.view.storeId;
      const seen = agent.view.revision;
      agent.close();
      for (const p of peers) p.close();
      await t.stop();

      // Restart on the same prefix: same state, same store id, the agent resumes with a delta.
      const t2 = await startController({ store: await open() });
      try {
        expect(t2.controller.storeId()).toBe(storeId);
        expect(byId((await t2.client.listEndpoints({ network: 'blue' })).endpoints)).toEqual(listed);
        const more = await t2.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'after' });
        expect(v4).not.toContain(more.ipv4);
        const a2 = new SimAgent(t2.target, 'h1', '192.0.2.1');
        for (const [k, v] of agent.view.networks) a2.view.networks.set(k, v);
        a2.view.revision = seen;
        a2.watch(seen, ['blue'], storeId);
        await a2.untilRevision(more.modRevision);
        expect(a2.messages.some((m) => m.reset)).toBe(false);
        expect(a2.view.networks.get('blue')!.endpoints.get('after')?.ipv4).toBe(more.ipv4.split('/')[0]);
        a2.close();
      } finally {
        await t2.stop();
      }
    } finally {
      agent.close();
      for (const p of peers) p.close();
      await other.close();
    }
  });
});
