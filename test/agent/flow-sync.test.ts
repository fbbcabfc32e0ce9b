import { describe, expect, it } from 'vitest';
import { FlowSync } from '../../src/agent/flow-sync.js';
import type { FlowChange, OpenFlowClient } from '../../src/openflow/client.js';
import type { Flow, NetworkState, PipelineState, PolicyRule } from '../../src/agent/pipeline/state.js';
import { buildPipeline, flowKey, pipelineChunks } from '../../src/agent/pipeline/pipeline.js';
import { formatInstructions } from '../../src/openflow/printer.js';
import fc from 'fast-check';

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

/**
 * A switch's flow table as the bundles leave it: `add` replaces a flow with the same table,
 * priority and match, `delete_strict` removes it. Compared by ovs-ofctl text.
 */
function simulatedSwitch(): { client: OpenFlowClient; table: Map<string, string>; bundles: number } {
  const table = new Map<string, string>();
  const sim = { client: undefined as unknown as OpenFlowClient, table, bundles: 0 };
  sim.client = {
    applyBundle: (changes: FlowChange[]) => {
      sim.bundles++;
      for (const c of changes) {
        const key = flowKey({ table: c.table ?? 0, priority: c.priority ?? 0, match: c.match ?? [] });
        if (c.command === 'add') table.set(key, `cookie=${c.cookie} ${formatInstructions(c.instructions ?? [])}`);
        else if (c.command === 'delete_strict') table.delete(key);
        else throw new Error(`unexpected ${c.command}`);
      }
      return Promise.resolve();
    },
    dumpFlows: () => Promise.resolve([]),
  } as unknown as OpenFlowClient;
  return sim;
}

/** What a full rebuild wants on the switch, in the simulated switch's terms. */
function wanted(s: PipelineState): Map<string, string> {
  return new Map(buildPipeline(s).map((f) => [flowKey(f), `cookie=${f.cookie} ${formatInstructions(f.instructions)}`]));
}

// States drawn from small pools, so that steps add, remove and change the same endpoints,
// networks, routes and policies again and again.
const endpointPool = Array.from({ length: 8 }, (_, i) => ({
  id: `e${i}`,
  ofport: i + 1,
  mac: `02:42:c6:12:00:${(i + 2).toString(16).padStart(2, '0')}`,
  ipv4: `198.18.0.${i + 2}`,
  ...(i % 3 === 0 ? { ipv6: `fd00:100::${i + 2}` } : {}),
}));
// Rules that share clause flows (the db endpoints, the web sources, tcp/5432), one in two versions.
const peerOf = (p: Partial<PolicyRule['from']>): PolicyRule['from'] => ({ endpoints: [], labels: {}, cidrs: [], ...p });
const policyRules: PolicyRule[] = [
  { name: 'web-to-db', from: peerOf({ labels: { app: 'web' } }), to: peerOf({ labels: { app: 'db' } }), protocol: 'tcp', ports: [{ first: 5432, last: 5432 }] },
  { name: 'e1-to-db', from: peerOf({ endpoints: ['e1'] }), to: peerOf({ labels: { app: 'db' } }), protocol: 'tcp', ports: [{ first: 5432, last: 5433 }] },
  { name: 'cidr', from: peerOf({ cidrs: ['10.0.0.0/8'] }), to: peerOf({ endpoints: ['e2', 'e4'] }), protocol: 'udp', ports: [] },
  { name: 'cidr', from: peerOf({ cidrs: ['10.0.0.0/8'], outside: true }), to: peerOf({ endpoints: ['e2'] }), protocol: 'icmp', ports: [] },
];
const arbNetwork = (vni: number, tunnel: 'vxlan' | 'gre') =>
  fc.record({
    remote: fc.subarray([
      { prefix: '198.18.1.0/26', vtep: '192.0.2.2' },
      { prefix: '198.18.0.77/32', vtep: '192.0.2.3' },
      { prefix: 'fd00:100::100/120', vtep: '192.0.2.2' },
    ]),
    gateway6: fc.boolean(),
    hostAddress: fc.boolean(),
    isolated: fc.boolean(),
    rules: fc.subarray(policyRules),
  }).map(({ remote, gateway6, hostAddress, isolated, rules }) => (endpoints: NetworkState['endpoints']): NetworkState => ({
    vni,
    tunnel,
    gateway4: `198.${vni}.0.1`,
    ...(gateway6 ? { gateway6: `fd00:${vni}::1` } : {}),
    ipv4Cidr: `198.${vni}.0.0/16`,
    ...(hostAddress ? { hostAddress4: `198.${vni}.0.200` } : {}),
    endpoints,
    remote,
    ...(isolated
      ? {
          policy: {
            network: `n${vni}`,
            isolated: true,
            directory: endpoints.map((e) => ({ name: e.id, labels: { app: e.ofport % 2 ? 'web' : 'db' }, ...(e.ipv4 ? { ipv4: e.ipv4 } : {}), ofport: e.ofport })),
            rules,
          },
        }
      : {}),
  }));
// Each endpoint of the pool is in network a, b or neither: the same endpoint may move between
// networks from one step to the next.
const arbState = fc
  .record({
    generation: fc.constantFrom(3, 4),
    a: fc.option(arbNetwork(20, 'vxlan'), { nil: undefined }),
    b: fc.option(arbNetwork(30, 'gre'), { nil: undefined }),
    placement: fc.array(fc.constantFrom('a', 'b', '-'), { minLength: endpointPool.length, maxLength: endpointPool.length }),
    gatewayPort: fc.boolean(),
  })
  .map(({ generation, a, b, placement, gatewayPort }): PipelineState => ({
    generation,
    tunnelPorts: { vxlan: 65001, gre: 65002 },
    networks: [
      a?.(endpointPool.filter((_, i) => placement[i] === 'a')),
      b?.(endpointPool.filter((_, i) => placement[i] === 'b')),
    ].filter((n): n is NetworkState => n !== undefined),
    ...(gatewayPort ? { gatewayPort: { ofport: 65003, mac: '02:00:00:00:00:03' } } : {}),
  }));

describe('FlowSync, incremental updates', () => {
  it('leaves the switch exactly as a full rebuild would, through any sequence of states', async () => {
    await fc.assert(
      fc.asyncProperty(arbState, fc.array(arbState, { minLength: 1, maxLength: 8 }), async (first, steps) => {
        const sim = simulatedSwitch();
        const sync = new FlowSync(sim.client);
        await sync.reconcile(first);
        expect(sim.table).toEqual(wanted(first));
        for (const s of steps) {
          await sync.update(s);
          expect(sim.table).toEqual(wanted(s));
          expect(new Set(sync.installedKeys())).toEqual(new Set(wanted(s).keys()));
        }
      }),
      { numRuns: 30 },
    );
  });

  it('follows rule changes on a network whose endpoints stay, sending only the changed rules\' flows', async () => {
    // The agent keeps the directory array while no endpoint changes; rules come and go.
    const endpoints = endpointPool.slice(0, 6);
    const directory = endpoints.map((e) => ({ name: e.id, labels: { app: e.ofport % 2 ? 'web' : 'db' }, ...(e.ipv4 ? { ipv4: e.ipv4 } : {}), ofport: e.ofport }));
    const many: PolicyRule[] = Array.from({ length: 40 }, (_, i) => ({ name: `p${i}`, from: peerOf({ labels: { app: 'web' } }), to: peerOf({ labels: { app: 'db' } }), protocol: 'tcp', ports: [{ first: 2000 + i, last: 2000 + i }] }));
    const at = (rules: PolicyRule[]): PipelineState => ({
      generation: 3,
      tunnelPorts: { vxlan: 65001, gre: 65002 },
      networks: [{ vni: 20, tunnel: 'vxlan', gateway4: '198.20.0.1', ipv4Cidr: '198.20.0.0/16', endpoints, remote: [], policy: { network: 'n20', isolated: true, directory, rules } }],
    });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.subarray(policyRules), { minLength: 1, maxLength: 8 }), async (steps) => {
        const sim = simulatedSwitch();
        const sync = new FlowSync(sim.client);
        await sync.reconcile(at(many));
        for (const rules of steps) {
          const s = at([...many, ...rules]);
          const r = await sync.update(s);
          expect(sim.table).toEqual(wanted(s));
          // The 40 unchanged rules' flows (160 and more) are never sent again.
          expect(r.upserted + r.removed).toBeLessThan(40);
        }
      }),
      { numRuns: 20 },
    );
  });

  it('builds the same flows in chunks as in one piece', () => {
    fc.assert(
      fc.property(arbState, (s) => {
        const chunked = pipelineChunks(s).flatMap((c) => c.build());
        const key = (f: Flow) => `${flowKey(f)} cookie=${f.cookie} ${formatInstructions(f.instructions)}`;
        expect(chunked.map(key).sort()).toEqual(buildPipeline(s).map(key).sort());
      }),
      { numRuns: 60 },
    );
  });

  it('sends only the attached or detached endpoint\'s flows, in one bundle each', async () => {
    const sim = simulatedSwitch();
    const sync = new FlowSync(sim.client);
    await sync.reconcile(state(100));
    const before = sim.bundles;
    const added = await sync.update(state(101));
    expect(added.removed).toBe(0);
    expect(added.upserted).toBe(buildPipeline(state(101)).length - buildPipeline(state(100)).length);
    expect(await sync.update(state(100))).toMatchObject({ upserted: 0, removed: added.upserted });
    expect(sim.bundles - before).toBe(2);
    expect(sim.table).toEqual(wanted(state(100)));
  });

  it('records nothing when the switch refuses a bundle, so the next update sends it again', async () => {
    const sim = simulatedSwitch();
    const sync = new FlowSync(sim.client);
    await sync.reconcile(state(1));
    const apply = sim.client.applyBundle.bind(sim.client);
    sim.client.applyBundle = () => Promise.reject(new Error('switch refused'));
    await expect(sync.update(state(3))).rejects.toThrow('switch refused');
    sim.client.applyBundle = apply;
    await sync.update(state(3));
    expect(sim.table).toEqual(wanted(state(3)));
    await sync.update(state(0));
    expect(sim.table).toEqual(wanted(state(0)));
  });
});
