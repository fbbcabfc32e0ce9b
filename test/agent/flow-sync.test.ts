import { describe, expect, it } from 'vitest';
import { FlowSync } from '../../src/agent/flow-sync.js';
import type { FlowChange, OpenFlowClient } from '../../src/openflow/client.js';
import type { PipelineState } from '../../src/agent/pipeline/state.js';

/** Records the bundles FlowSync sends; the switch side is tested in agent.int.test.ts. */
function recordingClient(): { client: OpenFlowClient; bundles: FlowChange[][] } {
  const bundles: FlowChange[][] = [];
  const client = {
    applyBundle: (changes: FlowChange[]) => {
      bundles.push(changes);
      return Promise.resolve();
    },
    dumpFlows: () => Promise.resolve([]),
  } as unknown as OpenFlowClient;
  return { client, bundles };
}

function state(endpoints: number): PipelineState {
  return {
    generation: 3,
    tunnelPorts: { vxlan: 65001, gre: 65002 },
    networks: [
      {
        vni: 100,
        tunnel: 'vxlan',
        gateway4: '198.18.0.1',
        endpoints: Array.from({ length: endpoints }, (_, i) => ({ id: `e${i}`, ofport: i + 1, mac: `02:42:c6:12:00:${(i + 2).toString(16).padStart(2, '0')}`, ipv4: `198.18.0.${i + 2}` })),
        remote: [],
      },
    ],
  };
}

describe('FlowSync', () => {
  it('sends nothing for an update with the state it installed last, and the difference for a new one', async () => {
    const { client, bundles } = recordingClient();
    const sync = new FlowSync(client);
    const first = await sync.reconcile(state(2));
    expect(first.upserted).toBeGreaterThan(0);
    expect(await sync.update(state(2))).toEqual({ upserted: 0, removed: 0 });
    expect(bundles).toHaveLength(1);

    const added = await sync.update(state(3));
    expect(added.upserted).toBeGreaterThan(0);
    expect(added.removed).toBe(0);
    expect(await sync.update(state(3))).toEqual({ upserted: 0, removed: 0 });
    const removed = await sync.update(state(2));
    expect(removed).toMatchObject({ upserted: 0, removed: added.upserted });
    expect(bundles).toHaveLength(3);
  });

  it('retries a state whose bundle failed', async () => {
    const { client, bundles } = recordingClient();
    const sync = new FlowSync(client);
    await sync.reconcile(state(1));
    const failing = client.applyBundle;
    client.applyBundle = () => Promise.reject(new Error('switch refused'));
    await expect(sync.update(state(2))).rejects.toThrow('switch refused');
    client.applyBundle = failing;
    expect((await sync.update(state(2))).upserted).toBeGreaterThan(0);
    expect(bundles).toHaveLength(2);
  });
});
