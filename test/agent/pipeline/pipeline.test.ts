import { describe, expect, it } from 'vitest';
import { buildPipeline, diffFlows, FlowTexts } from '../../../src/agent/pipeline/pipeline.js';
import { Feature, Source, Table, cookie, cookieFeature, cookieGeneration, gatewayMac } from '../../../src/agent/pipeline/fields.js';
import type { Flow, PipelineState } from '../../../src/agent/pipeline/state.js';
import type { Action, MatchField } from '../../../src/openflow/types.js';

const VXLAN_PORT = 10;
const GRE_PORT = 11;

function state(overrides: Partial<PipelineState> = {}): PipelineState {
  return {
    generation: 7,
    tunnelPorts: { vxlan: VXLAN_PORT, gre: GRE_PORT },
    networks: [
      {
        vni: 100,
        tunnel: 'vxlan',
        gateway4: '198.18.0.1',
        gateway6: 'fd00:100::1',
        endpoints: [
          { id: 'a', ofport: 1, mac: '02:42:c6:12:00:02', ipv4: '198.18.0.2', ipv6: 'fd00:100::2' },
          { id: 'b', ofport: 2, mac: '02:42:c6:12:00:03', ipv4: '198.18.0.3' },
        ],
        remote: [
          { prefix: '198.18.0.64/26', vtep: '192.0.2.2' },
          { prefix: '198.18.0.7/32', vtep: '192.0.2.3' },
          { prefix: 'fd00:100::100/120', vtep: '192.0.2.2' },
        ],
      },
      {
        vni: 200,
        tunnel: 'gre',
        gateway4: '198.19.0.1',
        endpoints: [{ id: 'c', ofport: 3, mac: '02:42:c6:13:00:02', ipv4: '198.19.0.2' }],
        remote: [{ prefix: '198.19.0.64/26', vtep: '192.0.2.2' }],
      },
    ],
    ...overrides,
  };
}

const actionsOf = (f: Flow): Action[] => f.instructions.flatMap((i) => ('actions' in i ? i.actions : []));
const field = (f: Flow, name: MatchField['field']) => f.match.find((m) => m.field === name);
const reg = (f: Flow, index: number) => f.match.find((m) => m.field === 'reg' && m.index === index);

describe('pipeline', () => {
  const flows = buildPipeline(state());

  it('ends every table but policy in an explicit drop, and policy in allow (the NAT tables: ovs-nat.test.ts)', () => {
    for (const table of Object.values(Table).filter((t) => t < Table.NatConntrack)) {
      const miss = flows.find((f) => f.table === table && f.priority === 0);
      expect(miss, `table ${table}`).toBeDefined();
      expect(miss!.instructions).toEqual(table === Table.Policy ? [{ type: 'goto_table', table: Table.Output }] : []);
    }
  });

  it('classifies a local port into its network and sends it through the spoof guard', () => {
    const f = flows.find((x) => x.table === Table.Classifier && field(x, 'in_port')?.value === 3)!;
    expect(actionsOf(f)).toContainEqual({ type: 'load', dst: expect.objectContaining({ index: 1 }), value: 200 });
    expect(f.instructions.at(-1)).toEqual({ type: 'goto_table', table: Table.SpoofGuard });
  });

  it('accepts tunnel traffic only with a known key on the network\'s own tunnel type', () => {
    const ingress = flows.filter((x) => x.table === Table.Classifier && field(x, 'tunnel_id'));
    expect(ingress.map((f) => [field(f, 'in_port')?.value, field(f, 'tunnel_id')?.value])).toEqual([
      [VXLAN_PORT, 100n],
      [GRE_PORT, 200n],
    ]);
  });

  it('lets an endpoint send only with its own MAC and addresses', () => {
    const guard = flows.filter((f) => f.table === Table.SpoofGuard && f.priority > 0 && field(f, 'in_port')?.value === 1);
    for (const f of guard) expect(field(f, 'eth_src')?.value).toBe('02:42:c6:12:00:02');
    const sources = guard.map((f) => (field(f, 'ipv4_src') ?? field(f, 'ipv6_src') ?? field(f, 'arp_spa'))?.value).filter(Boolean);
    expect(sources.sort()).toEqual(['198.18.0.2', '198.18.0.2', 'fd00:100::2']);
  });

  it('answers ARP for the gateway with the gateway MAC and floods nothing anywhere', () => {
    const arp = flows.find((f) => f.table === Table.ArpNd && field(f, 'arp_tpa')?.value === '198.18.0.1')!;
    expect(actionsOf(arp)).toContainEqual({ type: 'set_field', field: { field: 'arp_sha', value: gatewayMac(100) } });
    expect(actionsOf(arp).at(-1)).toEqual({ type: 'output', port: 'in_port' });
    const outputs = flows.flatMap(actionsOf).filter((a) => a.type === 'output').map((a) => (a as { port: unknown }).port);
    expect(outputs).not.toContain('flood');
    expect(outputs).not.toContain('all');
    expect(outputs).not.toContain('normal');
  });

  it('sends UDP to the gateway port 53 from a local endpoint to the agent, above every route', () => {
    const dns = flows.filter((f) => cookieFeature(f.cookie) === Feature.Dns);
    // IPv4 and IPv6 gateway of network 100, IPv4 only of network 200.
    expect(dns.map((f) => field(f, 'ipv4_dst')?.value ?? field(f, 'ipv6_dst')?.value)).toEqual(['198.18.0.1', 'fd00:100::1', '198.19.0.1']);
    for (const f of dns) {
      expect(f.table).toBe(Table.L3Forwarding);
      expect(field(f, 'udp_dst')?.value).toBe(53);
      expect(reg(f, 0)?.value).toBe(Source.LocalEndpoint); // never from a tunnel
      expect(actionsOf(f)).toEqual([{ type: 'output', port: 'controller', maxLen: 0xffff }]);
      const routes = flows.filter((r) => r.table === Table.L3Forwarding && cookieFeature(r.cookie) !== Feature.Dns);
      expect(Math.max(...routes.map((r) => r.priority))).toBeLessThan(f.priority);
    }
  });

  it('routes to other hosts by prefix, longest prefix first, never from a tunnel back into one', () => {
    const routes = flows.filter((f) => f.table === Table.L3Forwarding && field(f, 'tunnel_id') === undefined && actionsOf(f).some((a) => a.type === 'set_field' && a.field.field === 'tun_ipv4_dst'));
    expect(routes).toHaveLength(4);
    // Bit 0 of the source: entered on this host (an endpoint or the gateway port), never a tunnel.
    for (const r of routes) expect(reg(r, 0)).toEqual({ field: 'reg', index: 0, value: 1, mask: 0x1 });
    expect(Source.Tunnel & 1).toBe(0);
    expect(Source.LocalEndpoint & Source.GatewayPort & 1).toBe(1);
    const exception = routes.find((r) => field(r, 'ipv4_dst')?.value === '198.18.0.7')!;
    const block = routes.find((r) => field(r, 'ipv4_dst')?.value === '198.18.0.64')!;
    expect(exception.priority).toBeGreaterThan(block.priority);
    expect(actionsOf(block)).toContainEqual({ type: 'set_field', field: { field: 'tun_ipv4_dst', value: '192.0.2.2' } });
    expect(actionsOf(block)).toContainEqual({ type: 'set_field', field: { field: 'tunnel_id', value: 100n } });
    const gre = routes.find((r) => field(r, 'ipv4_dst')?.value === '198.19.0.64')!;
    expect(actionsOf(gre)).toContainEqual({ type: 'load', dst: expect.objectContaining({ index: 2 }), value: GRE_PORT });
  });

  it('isolates networks: every routing flow matches its own VNI', () => {
    const l3 = flows.filter((f) => f.table === Table.L3Forwarding && f.priority > 0);
    for (const f of l3) {
      const vni = reg(f, 1)?.value;
      const dst = String((field(f, 'ipv4_dst') ?? field(f, 'ipv6_dst'))?.value);
      expect(vni).toBe(dst.startsWith('198.19.') ? 200 : 100);
    }
  });

  it('grows with local endpoints and remote prefixes, not with remote endpoints', () => {
    const base = buildPipeline(state()).length;
    const s = state();
    s.networks[0]!.remote.push({ prefix: '198.18.0.128/26', vtep: '192.0.2.4' });
    expect(buildPipeline(s).length).toBe(base + 1);
  });

  it('stamps the generation and the owning feature into every cookie', () => {
    const s = state({ gatewayPort: { ofport: 65003, mac: '12:00:00:00:00:01' } });
    s.networks[0] = { ...s.networks[0]!, ipv4Cidr: '198.18.0.0/16', hostAddress4: '198.18.0.63' };
    const all = buildPipeline(s);
    for (const f of all) expect(cookieGeneration(f.cookie)).toBe(7);
    const features = new Set(all.map((f) => cookieFeature(f.cookie)));
    // Network policy flows exist only on isolated networks (test/agent/pipeline/policy.test.ts);
    // trace flows only while a live trace runs (live-trace.ts); NAT flows with --nat-path ovs (ovs-nat.test.ts).
    expect([...features].sort()).toEqual(Object.values(Feature).filter((f) => f !== Feature.NetworkPolicy && f !== Feature.Trace && f !== Feature.OvsNat).sort());
    expect(cookie(0xffff, Feature.Policy, 5)).toBe(0xffff_0600_0000_0005n);
    expect(() => cookie(0x10000, Feature.Base)).toThrow(RangeError);
  });
});

describe('diffFlows', () => {
  it('changes nothing when the state is the same', () => {
    expect(diffFlows(buildPipeline(state()), buildPipeline(state()))).toEqual({ upsert: [], remove: [] });
  });

  it('replaces every flow in place on a new generation and deletes none', () => {
    const d = diffFlows(buildPipeline(state()), buildPipeline(state({ generation: 8 })));
    expect(d.remove).toEqual([]);
    expect(d.upsert).toHaveLength(buildPipeline(state()).length);
  });

  it('removes exactly the flows of a detached endpoint', () => {
    const s = state();
    s.networks[0]!.endpoints = s.networks[0]!.endpoints.filter((e) => e.id !== 'b');
    const d = diffFlows(buildPipeline(state()), buildPipeline(s));
    expect(d.upsert).toEqual([]);
    expect(d.remove.length).toBeGreaterThan(0);
    for (const f of d.remove) expect(f.cookie & 0xff_ffff_ffffn).toBe(2n);
  });

  it('answers the same with remembered texts as without, through a sequence of changes', () => {
    const texts = new FlowTexts();
    const steps: PipelineState[] = [state(), state(), state({ generation: 8 })];
    const detached = state({ generation: 8 });
    detached.networks[0]!.endpoints = detached.networks[0]!.endpoints.filter((e) => e.id !== 'b');
    const moved = state({ generation: 8 });
    moved.networks[0]!.endpoints[0]!.ofport = 9; // same match elsewhere, other instructions
    steps.push(detached, moved, state({ generation: 8 }), state());
    let installed: Flow[] = [];
    for (const s of steps) {
      const desired = buildPipeline(s);
      expect(diffFlows(installed, desired, texts)).toEqual(diffFlows(installed, desired));
      installed = desired;
    }
  });
});
