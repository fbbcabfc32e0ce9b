// The client against a real ovs-vswitchd bridge, with ovs-ofctl as the oracle.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startHost, type SimHost } from '../harness/index.js';
import { BundleError, FlowModError, OpenFlowClient, type FlowChange, type FlowSpec } from '../../src/openflow/client.js';
import { OpenFlowError } from '../../src/openflow/errors.js';
import { OpenFlowVersionError } from '../../src/openflow/connection.js';
import { formatFlow } from '../../src/openflow/printer.js';
import { OFPP } from '../../src/openflow/consts.js';
import type { PacketIn } from '../../src/openflow/messages.js';
import type { Match } from '../../src/openflow/types.js';

let host: SimHost;
let client: OpenFlowClient;

/** dump-flows --no-stats, one normalized line per flow, sorted. */
async function dumpFlowsText(...filter: string[]): Promise<string[]> {
  const out = await host.ofctl('--no-stats', 'dump-flows', 'br0', ...filter);
  return out.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('OFPST_FLOW')).sort();
}

function expected(flows: FlowSpec[]): string[] {
  return flows.map((f) => formatFlow({ ...f, match: f.match ?? [], instructions: f.instructions ?? [] })).sort();
}

const ipFlow = (i: number, extra: Partial<FlowSpec> = {}): FlowSpec => ({
  table: 0,
  priority: 100,
  cookie: 0x1000n + BigInt(i),
  match: [{ field: 'eth_type', value: 0x0800 }, { field: 'ipv4_dst', value: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }],
  instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: 1 }] }],
  ...extra,
});

beforeAll(async () => {
  host = await startHost({ name: 'of' });
  await host.addBridge('br0', { failMode: 'secure' });
  client = await OpenFlowClient.connect(`unix:${host.mgmtSocket('br0')}`);
});

afterAll(async () => {
  await client?.close();
  await host?.stop();
});

beforeEach(async () => {
  await client.deleteFlows();
  await host.ofctl('del-groups', 'br0');
});

describe('flows', () => {
  const varied: FlowSpec[] = [
    ipFlow(1),
    {
      table: 0, priority: 200, cookie: 0xabcdn, idleTimeout: 60, hardTimeout: 600, flags: 1,
      match: [
        { field: 'in_port', value: 3 }, { field: 'eth_type', value: 0x0800 }, { field: 'ip_proto', value: 6 },
        { field: 'ipv4_src', value: '192.168.0.0', mask: '255.255.0.0' }, { field: 'tcp_dst', value: 443 },
      ],
      instructions: [
        { type: 'apply_actions', actions: [{ type: 'set_field', field: { field: 'tunnel_id', value: 5001n } },
          { type: 'set_field', field: { field: 'tun_ipv4_dst', value: '172.16.0.2' } }, { type: 'output', port: 7 }] },
      ],
    },
    {
      table: 1, priority: 50, cookie: 0x2n,
      match: [{ field: 'eth_type', value: 0x0806 }, { field: 'arp_op', value: 1 }, { field: 'reg', index: 3, value: 7, mask: 0xff }],
      instructions: [
        { type: 'apply_actions', actions: [{ type: 'load', dst: { field: 'reg', index: 1, ofs: 0, nBits: 16 }, value: 99 }] },
        { type: 'write_metadata', metadata: 0x10n, mask: 0xffn },
        { type: 'goto_table', table: 5 },
      ],
    },
    {
      table: 5, priority: 10, cookie: 0x3n,
      match: [{ field: 'eth_dst', value: '0a:00:00:00:00:01' }],
      instructions: [{ type: 'apply_actions', actions: [{ type: 'resubmit', table: 6 }, { type: 'output', port: 'in_port' }] }],
    },
  ];

  it('installs flows that dump-flows shows exactly as the printer renders them', async () => {
    await client.addFlows(varied);
    expect(await dumpFlowsText()).toEqual(expected(varied));
  });

  it('installs Nicira extension actions and fields exactly as dump-flows shows them', async () => {
    const nicira: FlowSpec[] = [
      {
        table: 10, priority: 100, cookie: 0x10n,
        match: [{ field: 'eth_type', value: 0x0800 }, { field: 'ct_state', value: 0x01, mask: 0x21 }],
        instructions: [{ type: 'apply_actions', actions: [{ type: 'ct', zone: 7, table: 11 }] }],
      },
      {
        table: 11, priority: 100, cookie: 0x11n,
        match: [{ field: 'eth_type', value: 0x0800 }, { field: 'ct_state', value: 0x23, mask: 0x23 }, { field: 'ct_zone', value: 7 }],
        instructions: [{ type: 'apply_actions', actions: [
          { type: 'ct', commit: true, zone: 7, actions: [{ type: 'set_field', field: { field: 'ct_mark', value: 5 } }] },
          { type: 'move', src: { field: 'reg', index: 0, ofs: 0, nBits: 16 }, dst: { field: 'reg', index: 1, ofs: 16, nBits: 16 } },
          { type: 'dec_ttl' }, { type: 'output', port: 2 }] }],
      },
      {
        table: 12, priority: 90, cookie: 0x12n,
        match: [{ field: 'tunnel_id', value: 5001n }, { field: 'tun_ipv4_src', value: '172.16.0.1' }, { field: 'metadata', value: 0x1n, mask: 0xffn }],
        instructions: [{ type: 'apply_actions', actions: [{ type: 'push_vlan' }, { type: 'set_field', field: { field: 'vlan_vid', value: 0x1000 | 10 } }, { type: 'output', port: 3 }] }],
      },
      {
        table: 13, priority: 80, cookie: 0x13n,
        match: [{ field: 'eth_type', value: 0x0800 }, { field: 'ipv4_src', value: '10.0.0.1' }],
        instructions: [{ type: 'apply_actions', actions: [{ type: 'conjunction', id: 9, clause: 1, nClauses: 2 }] }],
      },
      {
        table: 14, priority: 70, cookie: 0x14n,
        match: [{ field: 'eth_type', value: 0x86dd }, { field: 'ip_proto', value: 58 }, { field: 'icmpv6_type', value: 135 },
          { field: 'ipv6_nd_target', value: 'fd00::1' }],
        instructions: [{ type: 'write_actions', actions: [{ type: 'output', port: 'controller' }] }],
      },
      {
        table: 15, priority: 60, cookie: 0x15n,
        match: [{ field: 'eth_type', value: 0x0806 }, { field: 'arp_tpa', value: '10.0.0.0', mask: '255.255.255.0' }],
        instructions: [{ type: 'apply_actions', actions: [{
          type: 'learn', table: 20, priority: 5, idleTimeout: 30,
          specs: [{ kind: 'match', dst: { field: 'eth_dst' }, src: { field: 'eth_src' } }, { kind: 'output', src: { field: 'in_port' } }],
        }] }],
      },
    ];
    await client.addFlows(nicira);
    expect(await dumpFlowsText()).toEqual(expected(nicira));
  });

  it('reads flows back through flow stats, matching dump-flows, filtered by table and cookie', async () => {
    await client.addFlows(varied);
    const read = await client.dumpFlows();
    const noStats = read.map(({ durationSec: _d, durationNsec: _n, packetCount: _p, byteCount: _b, ...f }) => formatFlow(f));
    expect(noStats.sort()).toEqual(await dumpFlowsText());
    expect((await client.dumpFlows({ table: 5 })).map((f) => f.cookie)).toEqual([0x3n]);
    expect((await client.dumpFlows({ cookie: 0xabcdn, cookieMask: 0xffffn })).map((f) => f.priority)).toEqual([200]);
  });

  it('reassembles a flow stats reply of several parts (2,000 flows)', async () => {
    const many = Array.from({ length: 2000 }, (_, i) => ipFlow(i));
    await client.addFlows(many);
    const read = await client.dumpFlows();
    expect(read).toHaveLength(2000);
    expect(new Set(read.map((f) => f.cookie)).size).toBe(2000);
  });

  it('deletes by cookie and mask, leaving other flows', async () => {
    await client.addFlows([ipFlow(1, { cookie: 0x100n }), ipFlow(2, { cookie: 0x1ffn }), ipFlow(3, { cookie: 0x200n })]);
    await client.deleteFlows({ cookie: 0x100n, cookieMask: 0xff00n });
    expect(await dumpFlowsText()).toEqual(expected([ipFlow(3, { cookie: 0x200n })]));
  });

  it('modifies by cookie (non-strict) and one flow by match and priority (strict), deletes strict', async () => {
    await client.addFlows([ipFlow(1, { cookie: 0x5n }), ipFlow(2, { cookie: 0x5n }), ipFlow(3, { cookie: 0x6n })]);
    const drop: FlowSpec = { cookie: 0x5n, cookieMask: 0xffffffffffffffffn, instructions: [] };
    await client.modifyFlows([drop]);
    await client.modifyFlows([{ ...ipFlow(3, { cookie: 0x6n }), instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: 9 }] }] }], { strict: true });
    const out9 = { type: 'apply_actions' as const, actions: [{ type: 'output' as const, port: 9 }] };
    expect(await dumpFlowsText()).toEqual(expected([
      ipFlow(1, { cookie: 0x5n, instructions: [] }), ipFlow(2, { cookie: 0x5n, instructions: [] }),
      ipFlow(3, { cookie: 0x6n, instructions: [out9] })]));
    await client.deleteFlows({ ...ipFlow(2), strict: true });
    expect(await dumpFlowsText()).toHaveLength(2);
  });

  it('names the failing change of a non-atomic batch, and applies the others', async () => {
    const bad: FlowSpec = { table: 4, priority: 1, instructions: [{ type: 'goto_table', table: 2 }] };
    const err = await client.addFlows([ipFlow(1), bad, ipFlow(2)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlowModError);
    expect((err as FlowModError).failures.map((f) => [f.index, f.error?.name])).toEqual([[1, 'OFPBIC_BAD_TABLE_ID']]);
    expect(await dumpFlowsText()).toEqual(expected([ipFlow(1), ipFlow(2)]));
  });
});

describe('bundles', () => {
  it('commits 1,000 flows atomically', async () => {
    const flows = Array.from({ length: 1000 }, (_, i): FlowChange => ({ ...ipFlow(i), command: 'add' }));
    await client.applyBundle(flows);
    expect(await dumpFlowsText()).toHaveLength(1000);
  });

  it('with commitAfter, sends at once and commits only once it resolves; discards when it rejects', async () => {
    const flows = Array.from({ length: 10 }, (_, i): FlowChange => ({ ...ipFlow(i), command: 'add' }));
    let go!: () => void;
    const gate = new Promise<void>((r) => (go = r));
    const applied = client.applyBundle(flows, { commitAfter: gate });
    await new Promise((r) => setTimeout(r, 50));
    expect(await dumpFlowsText()).toEqual([]);
    go();
    await applied;
    expect(await dumpFlowsText()).toHaveLength(10);
    const more = Array.from({ length: 10 }, (_, i): FlowChange => ({ ...ipFlow(100 + i), command: 'add' }));
    const refused = client.applyBundle(more, { commitAfter: Promise.reject(new Error('port number taken')) });
    await expect(refused).rejects.toThrow('port number taken');
    expect(await dumpFlowsText()).toHaveLength(10);
  });

  it('installs nothing from 1,000 flows with one goto_table backwards, and names it', async () => {
    await client.addFlows([ipFlow(99999)]);
    const before = await dumpFlowsText();
    const flows = Array.from({ length: 1000 }, (_, i): FlowChange => ({ ...ipFlow(i), command: 'add' }));
    flows[637] = { command: 'add', table: 3, priority: 1, instructions: [{ type: 'goto_table', table: 1 }] };
    const err = await client.applyBundle(flows).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BundleError);
    const b = err as BundleError;
    expect(b.index).toBe(637);
    expect(b.error?.name).toBe('OFPBIC_BAD_TABLE_ID');
    expect(b.message).toContain('change #637 (add table=3, priority=1 actions=goto_table:1)');
    expect(await dumpFlowsText()).toEqual(before);
  });

  it('installs nothing when a flow outputs to a group that does not exist', async () => {
    const flows = Array.from({ length: 1000 }, (_, i): FlowChange => ({ ...ipFlow(i), command: 'add' }));
    flows[12] = { ...ipFlow(12), command: 'add', instructions: [{ type: 'apply_actions', actions: [{ type: 'group', groupId: 77 }] }] };
    const err = (await client.applyBundle(flows).catch((e: unknown) => e)) as BundleError;
    expect([err.index, err.error?.name]).toEqual([12, 'OFPBAC_BAD_OUT_GROUP']);
    expect(await dumpFlowsText()).toEqual([]);
  });

  it('rolls back when a change fails at commit time (check_overlap), naming it', async () => {
    await client.addFlows([ipFlow(5, { priority: 300 })]);
    const flows = Array.from({ length: 1000 }, (_, i): FlowChange => ({ ...ipFlow(i + 10), command: 'add' }));
    // Overlaps the installed flow at the same priority, with CHECK_OVERLAP: OVS refuses it when committing.
    flows[900] = { command: 'add', priority: 300, flags: 2, match: [{ field: 'eth_type', value: 0x0800 }] };
    const err = (await client.applyBundle(flows).catch((e: unknown) => e)) as BundleError;
    expect(err).toBeInstanceOf(BundleError);
    expect([err.index, err.error?.name]).toEqual([900, 'OFPFMFC_OVERLAP']);
    expect(await dumpFlowsText()).toEqual(expected([ipFlow(5, { priority: 300 })]));
  });

  it('reports a change that cannot be encoded (missing prerequisite) and installs nothing', async () => {
    const flows = Array.from({ length: 3000 }, (_, i): FlowChange => ({ ...ipFlow(i), command: 'add' }));
    flows[2500] = { command: 'add', match: [{ field: 'tcp_dst', value: 80 }] };
    const err = (await client.applyBundle(flows).catch((e: unknown) => e)) as BundleError;
    expect(err).toBeInstanceOf(BundleError);
    expect(err.index).toBe(2500);
    expect(err.error).toBeUndefined();
    expect(err.reason).toMatch(/tcp_dst/);
    expect(await dumpFlowsText()).toEqual([]);
  });

  it('mixes adds, modifies and deletes in one bundle', async () => {
    await client.addFlows([ipFlow(1), ipFlow(2)]);
    await client.applyBundle([
      { command: 'delete_strict', ...ipFlow(1) },
      { command: 'modify_strict', ...ipFlow(2), instructions: [] },
      { command: 'add', ...ipFlow(3) },
    ]);
    expect(await dumpFlowsText()).toEqual(expected([ipFlow(2, { instructions: [] }), ipFlow(3)]));
  });
});

describe('groups, packets, echo, ports', () => {
  it('adds select and all groups that dump-groups shows, and refuses a duplicate', async () => {
    await client.groupMod({
      command: 'add', type: 'select', groupId: 1,
      buckets: [{ weight: 3, actions: [{ type: 'output', port: 1 }] }, { weight: 1, actions: [{ type: 'output', port: 2 }] }],
    });
    await client.groupMod({ command: 'add', type: 'all', groupId: 2, buckets: [{ actions: [{ type: 'output', port: 1 }] }, { actions: [{ type: 'output', port: 2 }] }] });
    const groups = (await host.ofctl('dump-groups', 'br0')).split('\n').map((l) => l.trim()).filter((l) => l.startsWith('group_id'));
    expect(groups.sort()).toEqual([
      'group_id=1,type=select,bucket=weight:3,actions=output:1,bucket=actions=output:2',
      'group_id=2,type=all,bucket=actions=output:1,bucket=actions=output:2',
    ]);
    const dup = await client.groupMod({ command: 'add', type: 'all', groupId: 2, buckets: [] }).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(OpenFlowError);
    expect((dup as OpenFlowError).code).toBe('OFPGMFC_GROUP_EXISTS');
    // Now a flow may output to the group.
    await client.addFlows([ipFlow(1, { instructions: [{ type: 'apply_actions', actions: [{ type: 'group', groupId: 1 }] }] })]);
    expect(await dumpFlowsText()).toHaveLength(1);
  });

  it('sends a packet_out through the table, counted by a flow that sends it back as packet_in', async () => {
    await client.addFlows([{
      table: 0, priority: 10, cookie: 0x77n, match: [{ field: 'in_port', value: OFPP.LOCAL }, { field: 'eth_type', value: 0x0800 }],
      instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: 'controller' }] }],
    }]);
    const frame = Buffer.alloc(64);
    Buffer.from('ffffffffffff0a00000000010800', 'hex').copy(frame, 0);
    frame[14] = 0x45;
    const got = new Promise<PacketIn & { fields: Match }>((resolve) => {
      const off = client.onPacketIn((p) => {
        off();
        resolve(p);
      });
    });
    await client.packetOut({ inPort: OFPP.LOCAL, actions: [{ type: 'output', port: 'table' }], data: frame });
    const pin = await got;
    expect(pin.cookie).toBe(0x77n);
    expect(pin.reasonName).toBe('action');
    expect(pin.data).toEqual(frame);
    expect(pin.fields).toContainEqual({ field: 'in_port', value: OFPP.LOCAL });
    const [flow] = await client.dumpFlows({ cookie: 0x77n, cookieMask: 0xffn });
    expect(flow.packetCount).toBe(1n);
  });

  it('answers echo and lists the bridge port', async () => {
    expect(await client.echo()).toBeGreaterThanOrEqual(0);
    const ports = await client.portDesc();
    expect(ports.map((p) => [p.name, p.portNo])).toContainEqual(['br0', OFPP.LOCAL]);
  });
});

describe('connection lifecycle', () => {
  it('reconnects after ovs-vswitchd restarts; a change issued meanwhile waits and is installed', async () => {
    const down = new Promise((resolve) => client.connection.once('disconnected', resolve));
    const up = new Promise((resolve) => client.connection.once('reconnected', resolve));
    const restarted = host.restartVswitchd();
    await down;
    // Issued while disconnected: waits for the reconnection instead of failing.
    const added = client.addFlows([ipFlow(42)]);
    await restarted;
    await up;
    await added;
    expect(await dumpFlowsText()).toEqual(expected([ipFlow(42)]));
  });

  it('refuses a bridge that does not allow OpenFlow 1.3, saying which versions it offers', async () => {
    await host.addBridge('br10', { protocols: ['OpenFlow10'] });
    const err = await OpenFlowClient.connect(`unix:${host.mgmtSocket('br10')}`, { reconnect: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenFlowVersionError);
    expect((err as Error).message).toMatch(/OpenFlow10/);
  });
});
