// The pipeline on real Open vSwitch: two simulated hosts on an underlay, containers in two
// networks (VXLAN and GRE), flows installed with Loom's OpenFlow client in one bundle per host.
// Container plumbing is done with `ip` here; the agent does it through netlink.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, createUnderlay, type Container, type SimHost, type Underlay } from '../../harness/index.js';
import { OpenFlowClient } from '../../../src/openflow/client.js';
import { buildPipeline } from '../../../src/agent/pipeline/pipeline.js';
import { FlowSync } from '../../../src/agent/flow-sync.js';
import { gatewayMac } from '../../../src/agent/pipeline/fields.js';
import type { LocalEndpoint, NetworkState, PipelineState } from '../../../src/agent/pipeline/state.js';

const PORTS = { vxlan: 100, gre: 101 } as const;
const NETS = {
  blue: { vni: 5001, tunnel: 'vxlan', cidr4: '198.18.0.0/16', gw4: '198.18.0.1', cidr6: 'fd00:b::/64', gw6: 'fd00:b::1', mtu: 1450 },
  red: { vni: 5002, tunnel: 'gre', cidr4: '198.19.0.0/16', gw4: '198.19.0.1', cidr6: 'fd00:c::/64', gw6: 'fd00:c::1', mtu: 1458 },
} as const;
type NetName = keyof typeof NETS;

interface Placed {
  c: Container;
  net: NetName;
  ep: LocalEndpoint;
}

async function plumb(c: Container, net: NetName, ep: LocalEndpoint): Promise<void> {
  const n = NETS[net];
  const sh = (...args: string[]) => c.exec('ip', args);
  await sh('link', 'set', 'eth0', 'address', ep.mac, 'mtu', String(n.mtu));
  await c.exec('ethtool', ['-K', 'eth0', 'tx', 'off']);
  await c.exec('sysctl', ['-qw', 'net.ipv6.conf.eth0.disable_ipv6=0']);
  await sh('addr', 'add', `${ep.ipv4}/16`, 'dev', 'eth0', 'noprefixroute');
  await sh('-6', 'addr', 'add', `${ep.ipv6}/64`, 'dev', 'eth0', 'noprefixroute', 'nodad');
  await sh('neigh', 'replace', n.gw4, 'lladdr', gatewayMac(n.vni), 'dev', 'eth0', 'nud', 'permanent');
  await sh('-6', 'neigh', 'replace', n.gw6, 'lladdr', gatewayMac(n.vni), 'dev', 'eth0', 'nud', 'permanent');
  await sh('route', 'add', n.cidr4, 'via', n.gw4, 'dev', 'eth0', 'onlink');
  await sh('-6', 'route', 'add', n.cidr6, 'via', n.gw6, 'dev', 'eth0', 'onlink');
}

describe('pipeline on real OVS across two hosts', () => {
  let underlay: Underlay;
  const hosts: SimHost[] = [];
  const placed = new Map<string, Placed>();
  const blocks: Record<string, Record<NetName, { v4: string; v6: string }>> = {
    a: { blue: { v4: '198.18.1.0/24', v6: 'fd00:b::100/120' }, red: { v4: '198.19.1.0/24', v6: 'fd00:c::100/120' } },
    b: { blue: { v4: '198.18.2.0/24', v6: 'fd00:b::200/120' }, red: { v4: '198.19.2.0/24', v6: 'fd00:c::200/120' } },
  };
  const vteps = { a: '192.0.2.1', b: '192.0.2.2' };
  const clients: OpenFlowClient[] = [];
  const states: PipelineState[] = [];
  const flowCounts: number[] = [];

  beforeAll(async () => {
    underlay = await createUnderlay();
    let ofport = 1;
    for (const name of ['a', 'b'] as const) {
      const h = await startHost({ name });
      hosts.push(h);
      await underlay.connect(h, `${vteps[name]}/24`, { ovsBridge: 'br-phy' });
      await h.addBridge('br-int', { failMode: 'secure' });
      await h.vsctl(
        'add-port', 'br-int', 'vxlan0', '--', 'set', 'interface', 'vxlan0', 'type=vxlan',
        'options:remote_ip=flow', 'options:key=flow', `ofport_request=${PORTS.vxlan}`, '--',
        'add-port', 'br-int', 'gre0', '--', 'set', 'interface', 'gre0', 'type=gre',
        'options:remote_ip=flow', 'options:key=flow', `ofport_request=${PORTS.gre}`,
      );
    }
    // Seed each host's tunnel neighbour cache with the other's underlay MAC: no lost first packets.
    const mac = async (h: SimHost) => (await h.exec('cat', ['/sys/class/net/br-phy/address'])).trim();
    await hosts[0]!.appctl('tnl/arp/set', 'br-phy', vteps.b, await mac(hosts[1]!));
    await hosts[1]!.appctl('tnl/arp/set', 'br-phy', vteps.a, await mac(hosts[0]!));

    const layout: Array<[string, 'a' | 'b', NetName, number]> = [
      ['a1', 'a', 'blue', 2], ['a2', 'a', 'blue', 3], ['a3', 'a', 'red', 2],
      ['b1', 'b', 'blue', 2], ['b3', 'b', 'red', 2],
    ];
    for (const [name, hostName, net, last] of layout) {
      const h = hosts[hostName === 'a' ? 0 : 1]!;
      const c = await h.addContainer(name);
      const third = hostName === 'a' ? 1 : 2;
      const prefix4 = net === 'blue' ? '198.18' : '198.19';
      const prefix6 = net === 'blue' ? 'fd00:b' : 'fd00:c';
      const port = ofport++;
      await h.vsctl('add-port', 'br-int', c.hostIf, '--', 'set', 'interface', c.hostIf, `ofport_request=${port}`);
      const ep: LocalEndpoint = {
        id: name, ofport: port, mac: `02:42:c6:${net === 'blue' ? '12' : '13'}:0${third}:0${last}`,
        ipv4: `${prefix4}.${third}.${last}`, ipv6: `${prefix6}::${third}0${last}`,
      };
      await plumb(c, net, ep);
      placed.set(name, { c, net, ep });
    }

    for (const [i, name] of (['a', 'b'] as const).entries()) {
      const other = name === 'a' ? 'b' : 'a';
      const networks: NetworkState[] = (Object.keys(NETS) as NetName[]).map((net) => ({
        vni: NETS[net].vni,
        tunnel: NETS[net].tunnel,
        gateway4: NETS[net].gw4,
        gateway6: NETS[net].gw6,
        endpoints: [...placed.values()].filter((p) => p.net === net && p.c.host === hosts[i]).map((p) => p.ep),
        remote: [
          { prefix: blocks[other]![net].v4, vtep: vteps[other] },
          { prefix: blocks[other]![net].v6, vtep: vteps[other] },
        ],
      }));
      const state: PipelineState = { generation: 1, tunnelPorts: { ...PORTS }, networks };
      states.push(state);
      const flows = buildPipeline(state);
      flowCounts.push(flows.length);
      const client = await OpenFlowClient.connect(`unix:${hosts[i]!.mgmtSocket('br-int')}`);
      clients.push(client);
      await client.applyBundle(flows.map((f) => ({ command: 'add', ...f })));
    }
  });

  afterAll(async () => {
    for (const c of clients) await c.close();
    for (const h of hosts) await h.stop();
    await underlay?.remove();
  });

  const ping = (from: string, to: string, v6 = false) => {
    const dst = v6 ? placed.get(to)!.ep.ipv6! : placed.get(to)!.ep.ipv4!;
    return placed.get(from)!.c.exec('ping', [...(v6 ? ['-6'] : []), '-c', '2', '-i', '0.2', '-W', '2', dst]);
  };

  it('installs exactly the computed flows (ovs-ofctl as oracle)', async () => {
    for (const [i, h] of hosts.entries()) {
      const dump = await h.ofctl('dump-flows', 'br-int', '--no-stats');
      const lines = dump.split('\n').filter((l) => l.includes('actions='));
      expect(lines).toHaveLength(flowCounts[i]!);
      expect(dump).toContain(`arp_tpa=${NETS.blue.gw4}`);
      expect(dump).toContain(`set_field:${i === 0 ? vteps.b : vteps.a}->tun_dst`);
    }
  });

  it('routes between containers on the same host', async () => {
    expect(await ping('a1', 'a2')).toContain('2 received');
    expect(await ping('a1', 'a2', true)).toContain('2 received');
  });

  it('carries IPv4 and IPv6 across hosts over VXLAN', async () => {
    expect(await ping('a1', 'b1')).toContain('2 received');
    expect(await ping('b1', 'a2', true)).toContain('2 received');
  });

  it('carries IPv4 and IPv6 across hosts over GRE', async () => {
    expect(await ping('a3', 'b3')).toContain('2 received');
    expect(await ping('b3', 'a3', true)).toContain('2 received');
  });

  it('isolates networks, on one host and across hosts', async () => {
    // Give the blue container a route to red's range so the packet really leaves it.
    await placed.get('a1')!.c.exec('ip', ['route', 'add', NETS.red.cidr4, 'via', NETS.blue.gw4, 'dev', 'eth0', 'onlink']);
    await expect(ping('a1', 'a3')).rejects.toThrow(/100% packet loss/);
    await expect(ping('a1', 'b3')).rejects.toThrow(/100% packet loss/);
  });

  it('answers ARP for the gateway from the bridge', async () => {
    const a1 = placed.get('a1')!.c;
    await a1.exec('ip', ['neigh', 'del', NETS.blue.gw4, 'dev', 'eth0']);
    expect(await ping('a1', 'a2')).toContain('2 received');
    expect(await a1.exec('ip', ['neigh', 'show', NETS.blue.gw4])).toContain(gatewayMac(NETS.blue.vni));
  });

  it('reconciling a switch that is already right changes nothing', async () => {
    const sync = new FlowSync(clients[0]!);
    expect(await sync.reconcile(states[0]!)).toEqual({ upserted: 0, removed: 0 });
  });

  it('repairs drift: a flow deleted behind its back is restored, nothing else touched', async () => {
    const sync = new FlowSync(clients[0]!);
    const a2 = placed.get('a2')!.ep;
    await hosts[0]!.ofctl('del-flows', 'br-int', `table=30,ipv6,ipv6_dst=${a2.ipv6}`);
    await expect(ping('a1', 'a2', true)).rejects.toThrow(/100% packet loss/);
    expect(await sync.reconcile(states[0]!)).toEqual({ upserted: 1, removed: 0 });
    expect(await ping('a1', 'a2', true)).toContain('2 received');
  });

  it('replaces a generation under traffic without losing a packet', async () => {
    const a1 = placed.get('a1')!;
    const b1 = placed.get('b1')!.ep;
    const pinging = a1.c.exec('ping', ['-c', '300', '-i', '0.01', '-W', '1', b1.ipv4!]);
    await new Promise((r) => setTimeout(r, 500));
    for (const [i, client] of clients.entries()) {
      const next = { ...states[i]!, generation: 2 };
      const result = await new FlowSync(client).reconcile(next);
      expect(result.removed).toBe(0); // every flow replaced in place
      states[i] = next;
    }
    const out = await pinging;
    expect(out).toContain('300 received');
    for (const h of hosts) {
      const cookies = (await h.ofctl('dump-flows', 'br-int')).match(/cookie=0x[0-9a-f]+/g) ?? [];
      expect(cookies.every((c) => BigInt(c.slice(7)) >> 48n === 2n)).toBe(true);
    }
  });

  it('removes exactly a detached endpoint\'s flows', async () => {
    const sync = new FlowSync(clients[0]!);
    await sync.reconcile(states[0]!);
    const next = structuredClone(states[0]!);
    next.networks[0]!.endpoints = next.networks[0]!.endpoints.filter((e) => e.id !== 'a2');
    const result = await sync.update(next);
    expect(result.upserted).toBe(0);
    const dump = await hosts[0]!.ofctl('dump-flows', 'br-int');
    const a2 = placed.get('a2')!.ep;
    expect(dump).not.toMatch(new RegExp(`in_port=${a2.ofport}\\b|reg2=0x${a2.ofport}\\b`));
    expect(dump).not.toContain(a2.ipv4!);
    expect(result.removed).toBe(8); // classifier, output, 2 deliveries, 4 spoof-guard flows
    expect(await ping('a1', 'b1')).toContain('2 received');
  });
});
