import { describe, expect, it } from 'vitest';
import client from 'prom-client';
import { buildPipeline } from '../../src/agent/pipeline/pipeline.js';
import type { PipelineState } from '../../src/agent/pipeline/state.js';
import { Feature, Table, cookie, cookieFeature } from '../../src/agent/pipeline/fields.js';

const cookieFeatureOf = (f: { cookie: bigint }) => cookieFeature(f.cookie);
import { DatapathCounters, countedFlows, dropReason, isDropFlow, registerDatapathMetrics, summarize } from '../../src/agent/datapath-counters.js';
import type { DumpedFlow, FlowFilter } from '../../src/openflow/client.js';
import type { PolicyRule } from '../../src/agent/pipeline/state.js';

const state: PipelineState = {
  generation: 3,
  tunnelPorts: { vxlan: 65001, gre: 65002 },
  networks: [
    {
      vni: 5001,
      tunnel: 'vxlan',
      gateway4: '198.18.0.1',
      endpoints: [{ id: 'e1', ofport: 7, mac: '02:00:00:00:00:07', ipv4: '198.18.0.7' }],
      remote: [{ prefix: '198.18.1.0/26', vtep: '192.0.2.2' }, { prefix: '198.18.2.0/26', vtep: '192.0.2.3' }],
    },
  ],
};

/** The pipeline as the switch would report it, each flow with packets = 10 + its index and bytes = 100x that. */
function dumped(): DumpedFlow[] {
  return buildPipeline(state).map((f, i) => ({ ...f, durationSec: 1, durationNsec: 0, packetCount: BigInt(10 + i), byteCount: BigInt(100 * (10 + i)) }));
}

describe('datapath counters', () => {
  it('names every table-miss drop by what it means, and feature drops by their feature', () => {
    expect(dropReason(Table.SpoofGuard, cookie(3, Feature.Base))).toBe('spoof_guard');
    expect(dropReason(Table.Classifier, cookie(3, Feature.Base))).toBe('classifier_miss');
    expect(dropReason(Table.L3Forwarding, cookie(3, Feature.Base))).toBe('no_route');
    expect(dropReason(Table.Policy, cookie(3, Feature.Policy, 9))).toBe('policy');
    expect(dropReason(Table.ArpNd, cookie(3, Feature.ArpNd, 5001))).toBe('arp_nd');
    expect(dropReason(99, 0x0000_7700_0000_0000n)).toBe('feature_119');
    expect(isDropFlow([])).toBe(true);
    expect(isDropFlow([{ type: 'goto_table', table: 10 }])).toBe(false);
    expect(isDropFlow([{ type: 'apply_actions', actions: [{ type: 'output', port: 3 }] }])).toBe(false);
  });

  it('sums drop flows by reason, endpoint traffic by port and direction, tunnel routes by VTEP', () => {
    const flows = dumped();
    const counts = summarize(flows, new Set([7]));
    const expected = (pred: (f: DumpedFlow) => boolean) => flows.filter(pred).reduce((n, f) => n + Number(f.packetCount), 0);
    const spoof = counts.drops.find((d) => d.reason === 'spoof_guard')!;
    expect(spoof).toMatchObject({ table: 'spoof_guard', packets: expected((f) => f.table === Table.SpoofGuard && f.instructions.length === 0) });
    expect(spoof.bytes).toBe(spoof.packets * 100);
    expect(counts.drops.map((d) => d.reason).sort()).toEqual(['arp_nd', 'classifier_miss', 'no_output', 'no_route', 'spoof_guard']);
    expect(counts.endpoints).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ ofport: 7, direction: 'sent', packets: expected((f) => f.table === Table.Classifier && f.match.some((m) => m.field === 'in_port' && m.value === 7)) }),
        expect.objectContaining({ ofport: 7, direction: 'received' }),
      ]),
    );
    expect(counts.tunnelPeers.map((p) => p.vtep).sort()).toEqual(['192.0.2.2', '192.0.2.3']);
  });

  it('reads the switch at most once per interval and shares a read in flight', async () => {
    let reads = 0;
    let now = 0;
    const counters = new DatapathCounters({ dumpFlows: async () => (reads++, dumped()) }, () => new Set([7]), 1000, () => now);
    await Promise.all([counters.read(), counters.read()]);
    expect(reads).toBe(1);
    now = 999;
    await counters.read();
    expect(reads).toBe(1);
    now = 1000;
    await counters.read();
    expect(reads).toBe(2);
  });

  it('exposes them as Prometheus counters, labelled with container and network, and counts failed reads', async () => {
    const registry = new client.Registry();
    let fail = false;
    const counters = new DatapathCounters({ dumpFlows: async () => { if (fail) throw new Error('switch gone'); return dumped(); } }, () => new Set([7]), 0);
    registerDatapathMetrics(registry, counters, (p) => (p === 7 ? { container: 'c7', network: 'blue' } : undefined));
    const text = await registry.metrics();
    expect(text).toMatch(/loom_agent_dropped_packets_total\{reason="spoof_guard",table="spoof_guard"\} \d+/);
    expect(text).toMatch(/loom_agent_endpoint_packets_total\{ofport="7",container="c7",network="blue",direction="sent"\} \d+/);
    expect(text).toMatch(/loom_agent_tunnel_peer_bytes_total\{vtep="192.0.2.2"\} \d+/);
    fail = true;
    expect(await registry.metrics()).toMatch(/loom_agent_datapath_counter_read_errors_total [1-9]\d*\n/);
  });

  it('reads every flow that counts but not the policy table\'s rule flows', async () => {
    // An isolated network with rules: the switch below answers filters as OVS does.
    const rule: PolicyRule = { name: 'r', from: { endpoints: [], labels: {}, cidrs: ['10.0.0.0/8'] }, to: { endpoints: ['e1'], labels: {}, cidrs: [] }, protocol: 'tcp', ports: [{ first: 80, last: 80 }] };
    const net = state.networks[0]!;
    const isolated: PipelineState = {
      ...state,
      networks: [{ ...net, policy: { network: 'n', isolated: true, directory: [{ name: 'e1', labels: {}, ipv4: '198.18.0.7', ofport: 7 }], rules: [rule] } }],
    };
    const table = buildPipeline(isolated).map((f): DumpedFlow => ({ ...f, idleTimeout: 0, hardTimeout: 0, flags: 0, durationSec: 0, durationNsec: 0, packetCount: 1n, byteCount: 1n }));
    const filters: FlowFilter[] = [];
    const source = countedFlows({
      dumpFlows: (filter: FlowFilter = {}) => {
        filters.push(filter);
        const mask = filter.cookieMask ?? 0n;
        return Promise.resolve(table.filter((f) => (filter.table === undefined || f.table === filter.table) && (f.cookie & mask) === ((filter.cookie ?? 0n) & mask)));
      },
    });
    const read = await source.dumpFlows();
    const isRuleFlow = (f: DumpedFlow) => f.table === Table.Policy && f.priority === 150;
    expect(table.filter(isRuleFlow).length).toBeGreaterThan(0);
    expect(read.filter(isRuleFlow)).toEqual([]);
    expect(read).toHaveLength(new Set(read).size);
    // Everything else is read: all other tables and features, and the policy drops (deny, invalid).
    const flagged = (f: DumpedFlow) => (f.cookie & ((1n << 39n) | (1n << 38n))) !== 0n;
    const wantedFlows = table.filter((f) => !(f.table === Table.Policy && cookieFeatureOf(f) === Feature.NetworkPolicy && !flagged(f)));
    expect(new Set(read)).toEqual(new Set(wantedFlows));
    const drops = read.filter((f) => f.table === Table.Policy && cookieFeatureOf(f) === Feature.NetworkPolicy);
    expect(drops.map((f) => f.priority).sort()).toEqual([10, 210]);
    expect(filters.every((f) => f.table !== undefined)).toBe(true);
  });
});
