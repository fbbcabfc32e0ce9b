import { describe, expect, it } from 'vitest';
import { buildPipeline } from '../../../src/agent/pipeline/pipeline.js';
import { hostPathFlows, TO_HOST_PRIORITY } from '../../../src/agent/pipeline/host-path.js';
import { dnsFlows } from '../../../src/agent/pipeline/dns.js';
import { Source, Table } from '../../../src/agent/pipeline/fields.js';
import type { Flow, PipelineState } from '../../../src/agent/pipeline/state.js';
import type { Action, MatchField } from '../../../src/openflow/types.js';

const GW = { ofport: 65003, mac: '12:00:00:00:00:01' };

function state(overrides: Partial<PipelineState> = {}): PipelineState {
  return {
    generation: 3,
    tunnelPorts: { vxlan: 65001, gre: 65002 },
    gatewayPort: GW,
    networks: [
      {
        vni: 100,
        tunnel: 'vxlan',
        gateway4: '10.1.0.1',
        gateway6: 'fd00:1::1',
        ipv4Cidr: '10.1.0.0/24',
        ipv6Cidr: 'fd00:1::/64',
        hostAddress4: '10.1.0.63',
        hostAddress6: 'fd00:1::ff',
        endpoints: [{ id: 'a', ofport: 1, mac: '02:42:0a:01:00:02', ipv4: '10.1.0.2' }],
        remote: [{ prefix: '10.1.0.64/26', vtep: '192.0.2.2' }],
      },
      {
        vni: 200,
        tunnel: 'vxlan',
        gateway4: '10.2.0.1',
        ipv4Cidr: '10.2.0.0/24',
        hostAddress4: '10.2.0.63',
        endpoints: [{ id: 'b', ofport: 2, mac: '02:42:0a:02:00:02', ipv4: '10.2.0.2' }],
        remote: [],
      },
    ],
    ...overrides,
  };
}

const actionsOf = (f: Flow): Action[] => f.instructions.flatMap((i) => ('actions' in i ? i.actions : []));
const field = (f: Flow, name: MatchField['field']) => f.match.find((m) => m.field === name);
const reg = (f: Flow, index: number) => f.match.find((m) => m.field === 'reg' && m.index === index);

describe('host path flows', () => {
  const flows = hostPathFlows(state());

  it('adds nothing without a gateway port, so the pipeline is as before', () => {
    const { gatewayPort: _, ...without } = state();
    expect(hostPathFlows(without)).toEqual([]);
  });

  it('classifies what the host sends into a network by its destination, never by the port alone', () => {
    const cls = flows.filter((f) => f.table === Table.Classifier);
    expect(cls).toHaveLength(3); // 10.1/24, fd00:1::/64, 10.2/24
    for (const f of cls) {
      expect(field(f, 'in_port')?.value).toBe(GW.ofport);
      const dst = field(f, 'ipv4_dst') ?? field(f, 'ipv6_dst');
      expect(dst).toBeDefined();
      const vni = String(dst!.value).startsWith('10.2.') ? 200 : 100;
      expect(actionsOf(f)).toContainEqual({ type: 'load', dst: expect.objectContaining({ index: 1 }), value: vni });
      expect(actionsOf(f)).toContainEqual({ type: 'load', dst: expect.objectContaining({ index: 0 }), value: Source.GatewayPort });
    }
  });

  it('delivers the host its address in each network, with the port MAC', () => {
    const f = flows.find((x) => x.table === Table.L3Forwarding && field(x, 'ipv4_dst')?.value === '10.2.0.63')!;
    expect(reg(f, 1)?.value).toBe(200);
    expect(actionsOf(f)).toContainEqual({ type: 'set_field', field: { field: 'eth_dst', value: GW.mac } });
    expect(actionsOf(f)).toContainEqual({ type: 'load', dst: expect.objectContaining({ index: 2 }), value: GW.ofport });
  });

  it('sends only local endpoints’ other traffic to the host, below every route', () => {
    const out = flows.filter((f) => f.table === Table.L3Forwarding && f.priority === TO_HOST_PRIORITY);
    expect(out).toHaveLength(3);
    for (const f of out) expect(reg(f, 0)).toEqual({ field: 'reg', index: 0, value: Source.LocalEndpoint, mask: 0xf });
    const routes = buildPipeline(state()).filter((f) => f.table === Table.L3Forwarding && f.priority > 0 && f.priority !== TO_HOST_PRIORITY);
    for (const r of routes) expect(r.priority).toBeGreaterThan(TO_HOST_PRIORITY);
  });

  it('serves no network the host has no address in', () => {
    const s = state();
    delete s.networks[1]!.hostAddress4;
    expect(hostPathFlows(s).some((f) => reg(f, 1)?.value === 200 || actionsOf(f).some((a) => a.type === 'load' && a.value === 200))).toBe(false);
  });
});

describe('DNS over TCP through the host path', () => {
  const tcp = (flows: Flow[]) => flows.filter((f) => f.match.some((m) => m.field === 'ip_proto' && m.value === 6));
  const field = (f: Flow, name: string) => f.match.find((m) => m.field === name)?.value;
  const actions = (f: Flow) => f.instructions.flatMap((i) => (i.type === 'apply_actions' ? i.actions : []));

  it("steers a container's TCP to gateway:53 to the host's address, and rewrites the answer back, skipping Policy", () => {
    const flows = tcp(dnsFlows(state()));
    const query = flows.find((f) => field(f, 'tcp_dst') === 53 && field(f, 'ipv4_dst') === '10.1.0.1')!;
    expect(query.table).toBe(Table.L3Forwarding);
    expect(actions(query)).toEqual(expect.arrayContaining([{ type: 'set_field', field: { field: 'ipv4_dst', value: '10.1.0.63' } }, { type: 'set_field', field: { field: 'eth_dst', value: GW.mac } }]));
    expect(query.instructions.at(-1)).toEqual({ type: 'goto_table', table: Table.Output });
    const answer = flows.find((f) => field(f, 'tcp_src') === 53 && field(f, 'ipv4_src') === '10.1.0.63')!;
    expect(field(answer, 'ipv4_dst')).toBe('10.1.0.2');
    expect(actions(answer)).toEqual(
      expect.arrayContaining([
        { type: 'set_field', field: { field: 'ipv4_src', value: '10.1.0.1' } },
        { type: 'set_field', field: { field: 'eth_dst', value: '02:42:0a:01:00:02' } },
      ]),
    );
    expect(answer.instructions.at(-1)).toEqual({ type: 'goto_table', table: Table.Output });
    // IPv6 query steering exists (the endpoint has no IPv6 address: no IPv6 answer flow); network 200 has its own.
    expect(flows.some((f) => field(f, 'ipv6_dst') === 'fd00:1::1')).toBe(true);
    expect(flows.some((f) => field(f, 'ipv4_dst') === '10.2.0.1')).toBe(true);
    expect(flows).toHaveLength(5);
  });

  it('has no TCP flows without a host path', () => {
    expect(tcp(dnsFlows(state({ gatewayPort: undefined })))).toEqual([]);
  });
});
