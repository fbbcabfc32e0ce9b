import { describe, expect, it } from 'vitest';
import { ovsNatFlows, ovsNatNetworkFlows, phyFlows, ipv4Sources, contains, type OvsNatState } from '../../../src/agent/pipeline/ovs-nat.js';
import { buildPipeline, pipelineChunks } from '../../../src/agent/pipeline/pipeline.js';
import { TO_HOST_PRIORITY } from '../../../src/agent/pipeline/host-path.js';
import { NAT_ZONE, PhyTable, Table, ctZone } from '../../../src/agent/pipeline/fields.js';
import { formatFlow } from '../../../src/openflow/printer.js';
import type { Flow, PipelineState } from '../../../src/agent/pipeline/state.js';

const GW = { ofport: 65003, mac: '12:00:00:00:00:01' };
const NAT: OvsNatState = {
  patchOfport: 65004,
  phyPatchOfport: 65004,
  uplinkOfport: 1,
  phyMac: '0a:00:00:00:00:02',
  vtep: '192.0.2.2',
  snatPorts: { low: 61440, high: 65535 },
  nextHops: [
    { prefix: '0.0.0.0/0', mac: '0a:00:00:00:00:fe' },
    { prefix: '192.0.2.0/24' },
    { prefix: '192.0.2.100/32', mac: '0a:00:00:00:00:64' },
    { prefix: '198.51.100.0/24' },
  ],
  hostAddresses: ['192.0.2.2', '203.0.113.9'],
  loomCidrs: ['10.1.0.0/24', '10.2.0.0/24', '10.9.0.0/24'],
  networks: [
    { vni: 100, ipv4Cidr: '10.1.0.0/24', egress: true, inboundSources: ['192.0.2.100/32', '2001:db8::/64'] },
    { vni: 200, ipv4Cidr: '10.2.0.0/24', egress: false, inboundSources: [] },
    { vni: 300, ipv4Cidr: '10.3.0.0/24', egress: true, inboundSources: ['2001:db8::/64'] },
  ],
  published: [
    { vni: 100, containerIpv4: '10.1.0.2', containerPort: 80, hostPort: 8080, protocol: 'tcp' },
    { vni: 200, containerIpv4: '10.2.0.2', containerPort: 53, hostPort: 5353, protocol: 'udp' },
    { vni: 300, containerIpv4: '10.3.0.2', containerPort: 22, hostPort: 2222, protocol: 'tcp' },
  ],
};

const text = (flows: Flow[], table?: number) => flows.filter((f) => table === undefined || f.table === table).map((f) => formatFlow({ ...f, cookie: 0n }));

describe('--nat-path ovs flows in br-int', () => {
  const flows = ovsNatFlows(3, GW, NAT);

  it('leaves Loom networks, host addresses and non-unicast destinations on the kernel path', () => {
    const kernel = text(flows, Table.NatConntrack).filter((f) => f.includes('priority=200'));
    for (const prefix of ['10.1.0.0/24', '10.9.0.0/24', '192.0.2.2', '203.0.113.9', '127.0.0.0/8', '224.0.0.0/3']) {
      expect(kernel.some((f) => f.includes(`nw_dst=${prefix} actions=output:65003`)), prefix).toBe(true);
    }
    expect(text(flows, Table.NatConntrack)).toContain(`table=60, priority=100,ip actions=ct(table=61,zone=${NAT_ZONE},nat)`);
  });

  it('starts only a TCP SYN without ACK or a UDP flow of an egress network on this path', () => {
    const state = text(flows, Table.NatState);
    expect(state).toContain('table=61, priority=150,ct_state=+new+trk,tcp,reg0=0x30/0x30,tcp_flags=0x2/0x12 actions=goto_table:62');
    expect(state).toContain('table=61, priority=150,ct_state=+new+trk,udp,reg0=0x30/0x30 actions=goto_table:62');
    expect(state).toContain('table=61, priority=200,ct_state=+est-rpl+trk,ip actions=goto_table:62');
    // A published port's reply goes to the client's MAC, kept in ct_label.
    expect(state).toContain('table=61, priority=300,ct_state=+est+rpl+trk,ip actions=move:NXM_NX_CT_LABEL[0..47]->NXM_OF_ETH_DST[],set_field:0a:00:00:00:00:02->eth_src,output:65004');
    // Anything else (not in the zone, ICMP, egress off): the kernel path.
    expect(state).toContain('table=61, priority=0 actions=output:65003');
  });

  it('picks the next hop by longest prefix; an unresolved one takes the kernel path', () => {
    const hops = text(flows, Table.NatNextHop);
    expect(hops).toContain('table=62, priority=100,ip actions=set_field:0a:00:00:00:00:02->eth_src,set_field:0a:00:00:00:00:fe->eth_dst,goto_table:63');
    expect(hops).toContain('table=62, priority=124,ip,nw_dst=192.0.2.0/24 actions=output:65003');
    expect(hops).toContain('table=62, priority=132,ip,nw_dst=192.0.2.100 actions=set_field:0a:00:00:00:00:02->eth_src,set_field:0a:00:00:00:00:64->eth_dst,goto_table:63');
    expect(hops).toContain('table=62, priority=0 actions=output:65003');
    expect(text(flows, Table.NatCommit)).toContain(
      `table=63, priority=100,ct_state=+new+trk,ip actions=ct(commit,zone=${NAT_ZONE},nat(src=192.0.2.2:61440-65535)),output:65004`,
    );
  });

  it('marks IPv4 packets of a network above the host path, with commit allowed only where egress is NAT', () => {
    const [classify, egress] = ovsNatNetworkFlows(3, GW, NAT, NAT.networks[0]!);
    expect(egress!.priority).toBe(TO_HOST_PRIORITY + 1);
    // IPv4 only: IPv6 keeps the host path's catch-all (priority 10).
    expect(egress!.match).toContainEqual({ field: 'eth_type', value: 0x0800 });
    expect(text([classify!])[0]).toBe('priority=200,ip,in_port=65004,nw_dst=10.1.0.0/24 actions=load:0x3->NXM_NX_REG0[0..3],load:0x64->NXM_NX_REG1[0..23],goto_table:30');
    expect(text([egress!])[0]).toContain('load:0x3->NXM_NX_REG0[4..5],goto_table:40');
    expect(text([ovsNatNetworkFlows(3, GW, NAT, NAT.networks[1]!)[1]!])[0]).toContain('load:0x1->NXM_NX_REG0[4..5],goto_table:40');
  });
});

describe('--nat-path ovs flows in br-phy', () => {
  const flows = text(phyFlows(3, NAT));

  it('sends only replies in the SNAT range through conntrack, and the patch port straight out', () => {
    expect(flows).toContain(`priority=1000,tcp,in_port=1,nw_dst=192.0.2.2,tp_dst=0xf000/0xf000 actions=ct(table=${PhyTable.NatReply},zone=${NAT_ZONE},nat)`);
    expect(flows).toContain(`priority=1000,udp,in_port=1,nw_dst=192.0.2.2,tp_dst=0xf000/0xf000 actions=ct(table=${PhyTable.NatReply},zone=${NAT_ZONE},nat)`);
    expect(flows).toContain('priority=1100,in_port=65004 actions=output:1');
    expect(flows).toContain(`priority=1000,icmp,in_port=1,nw_dst=192.0.2.2 actions=ct(table=${PhyTable.NatReply},zone=${NAT_ZONE},nat)`);
    expect(flows).toContain('table=201, priority=100,ct_state=+rel+trk,ip actions=output:65004');
    expect(flows).toContain('table=201, priority=0 actions=NORMAL');
  });

  it("admits a published port from the network's IPv4 sources only, drops the rest", () => {
    expect(flows).toContain(`priority=1020,tcp,in_port=1,nw_src=192.0.2.100,nw_dst=192.0.2.2,tp_dst=8080 actions=ct(table=${PhyTable.Publish},zone=${NAT_ZONE},nat)`);
    expect(flows).toContain('priority=1010,tcp,in_port=1,nw_dst=192.0.2.2,tp_dst=8080 actions=drop');
    // No source limit: anyone.
    expect(flows).toContain(`priority=1020,udp,in_port=1,nw_dst=192.0.2.2,tp_dst=5353 actions=ct(table=${PhyTable.Publish},zone=${NAT_ZONE},nat)`);
    // IPv6 sources only: no IPv4 client gets in.
    expect(flows.filter((f) => f.includes('tp_dst=2222'))).toEqual([
      'priority=1010,tcp,in_port=1,nw_dst=192.0.2.2,tp_dst=2222 actions=drop',
    ]);
    expect(flows).toContain(
      'table=202, priority=100,ct_state=+new+trk,tcp,nw_dst=192.0.2.2,tp_dst=8080 actions=ct(commit,table=203,zone=65534,nat(dst=10.1.0.2:80),exec(move:NXM_OF_ETH_SRC[]->NXM_NX_CT_LABEL[0..47]))',
    );
    expect(flows).toContain('table=203, priority=0 actions=output:65004');
  });

  it('reads source limits per family', () => {
    expect(ipv4Sources([])).toBeUndefined();
    expect(ipv4Sources(['2001:db8::/64'])).toBeNull();
    expect(ipv4Sources(['192.0.2.0/24', '2001:db8::/64'])).toEqual(['192.0.2.0/24']);
    // 0.0.0.0/0 is "any", with no nw_src field at all (a zero mask reads back from the switch as none).
    const any = text(phyFlows(3, { ...NAT, networks: [{ ...NAT.networks[0]!, inboundSources: ['0.0.0.0/0'] }] }));
    expect(any).toContain(`priority=1020,tcp,in_port=1,nw_dst=192.0.2.2,tp_dst=8080 actions=ct(table=${PhyTable.Publish},zone=${NAT_ZONE},nat)`);
    expect(contains('192.0.2.0/24', '192.0.2.77')).toBe(true);
    expect(contains('192.0.2.0/25', '192.0.2.177')).toBe(false);
    expect(contains('0.0.0.0/0', 'fd00::1')).toBe(false);
  });
});

describe('--nat-path ovs in the pipeline', () => {
  const base: PipelineState = {
    generation: 3,
    tunnelPorts: { vxlan: 65001, gre: 65002 },
    gatewayPort: GW,
    networks: [{ vni: 100, tunnel: 'vxlan', gateway4: '10.1.0.1', ipv4Cidr: '10.1.0.0/24', hostAddress4: '10.1.0.63', endpoints: [], remote: [] }],
  };

  it('adds the same flows whole or in chunks, and nothing without the setting or the gateway port', () => {
    const withNat = { ...base, ovsNat: NAT };
    const whole = text(buildPipeline(withNat)).sort();
    const chunked = text(pipelineChunks(withNat).flatMap((c) => c.build())).sort();
    expect(chunked).toEqual(whole);
    expect(whole.length - text(buildPipeline(base)).length).toBe(ovsNatFlows(3, GW, NAT).length + 3 * 2);
    const { gatewayPort: _gw, ...noGateway } = withNat;
    expect(text(buildPipeline(noGateway)).some((f) => f.includes('table=6'))).toBe(false);
  });

  it('never gives a network the NAT zone', () => {
    expect(ctZone(0xfffe)).not.toBe(NAT_ZONE);
    expect(ctZone(0x1fffe)).not.toBe(NAT_ZONE);
    expect(ctZone(5)).toBe(5);
  });
});
