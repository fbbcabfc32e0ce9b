// The ofproto/trace parser and Loom's reading of it, on answers captured from a real
// ovs-vswitchd running Loom's pipeline (two hosts, networks blue VNI 5001 VXLAN and red VNI 5002 GRE).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseOfprotoTrace, TraceParseError } from '../../src/openflow/ofproto-trace.js';
import { endpointFlow, interpretTrace, tunnelFlow, type TraceContext } from '../../src/agent/trace.js';

const fixture = (name: string) => readFileSync(resolve(import.meta.dirname, 'fixtures/trace', `${name}.txt`), 'utf8');
const ctx: TraceContext = {
  bridge: 'br-int',
  tunnelPorts: { vxlan: 65001, gre: 65002 },
  endpoint: (p) => (p === 1 ? { container: 'id-b', network: 'blue' } : undefined),
};
const read = (name: string) => interpretTrace(parseOfprotoTrace(fixture(name)), ctx);

describe('ofproto/trace parser', () => {
  it('splits a trace into bridges and tables with match, priority, cookie, actions and notes', () => {
    const t = parseOfprotoTrace(fixture('local-to-tunnel'));
    expect(t.flow).toMatch(/^icmp,in_port=1,/);
    expect(t.steps.map((s) => `${s.bridge}:${s.table}`)).toEqual(['br-int:0', 'br-int:10', 'br-int:30', 'br-int:40', 'br-int:50', 'br-phy:0']);
    expect(t.steps[2]).toMatchObject({ match: 'ip,reg0=0x1/0xf,reg1=0x1389/0xffffff,nw_dst=198.18.0.64/26', priority: 126, cookie: 0x1050000001389n });
    expect(t.steps[2]!.actions).toContain('set_field:192.0.2.2->tun_dst');
    expect(t.steps[3]).toMatchObject({ match: '', priority: 0, cookie: 0x1060000000000n, actions: ['goto_table:50'] });
    expect(t.steps[4]!.notes).toContain('tunneling to 192.0.2.2 via br-phy');
    expect(t.steps[5]).toMatchObject({ bridge: 'br-phy', priority: 0, actions: ['NORMAL'] });
    expect(t.steps[5]!.cookie).toBeUndefined();
    expect(t.datapathActions).toMatch(/^set\(eth/);
    expect(parseOfprotoTrace(fixture('spoofed')).datapathActions).toBe('drop');
  });

  it('keeps the trailing remarks out of the last table, and refuses what is no trace', () => {
    const arp = parseOfprotoTrace(fixture('gateway-arp'));
    expect(arp.steps.at(-1)!.actions.at(-1)).toBe('IN_PORT');
    expect(arp.steps.at(-1)!.notes).toContain('NXM_OF_ARP_TPA[] is now 198.18.0.2');
    expect(() => parseOfprotoTrace('ovs-vswitchd: no bridge named br-x')).toThrow(TraceParseError);
    expect(() => parseOfprotoTrace('Flow: icmp\n\nbridge("b")\n----\n 0. what is this\n')).toThrow(/unrecognised table line/);
  });
});

describe('a trace in Loom terms', () => {
  it('names tables and the features owning each flow', () => {
    const t = read('local-to-tunnel');
    expect(t.steps.map((s) => `${s.tableName}/${s.feature}`)).toEqual(['classifier/connectivity', 'spoof_guard/spoof_guard', 'l3_forwarding/tunnel', 'policy/policy', 'output/tunnel']);
    expect(t.steps[0]!.cookie).toBe('0x1020000000001');
  });

  it('local endpoint to another host: into the VXLAN tunnel, VNI and remote VTEP', () => {
    expect(read('local-to-tunnel').verdict).toEqual({ kind: 'tunnel', tunnel: 'vxlan', vni: 5001, remoteVtep: '192.0.2.2', explanation: 'into the vxlan tunnel with VNI 5001 to VTEP 192.0.2.2' });
    expect(read('tcp-local-to-tunnel').verdict).toMatchObject({ kind: 'tunnel', vni: 5001 });
    expect(read('ipv6-local-to-tunnel').verdict).toMatchObject({ kind: 'tunnel', tunnel: 'vxlan', remoteVtep: '192.0.2.2' });
    expect(read('gre-local-to-tunnel').verdict).toMatchObject({ kind: 'tunnel', tunnel: 'gre', vni: 5002, remoteVtep: '192.0.2.2' });
  });

  it('from the tunnel on the destination host: delivered to the endpoint', () => {
    const t = read('tunnel-to-endpoint');
    expect(t.steps.map((s) => s.tableName)).toEqual(['classifier', 'l3_forwarding', 'policy', 'output']);
    expect(t.verdict).toMatchObject({ kind: 'delivered', ofport: 1, container: 'id-b', network: 'blue' });
  });

  it('drops: spoofed source, another network, a host that is down, an unknown port', () => {
    expect(read('spoofed').verdict).toMatchObject({ kind: 'dropped', reason: 'spoof_guard', table: 'spoof_guard' });
    expect(read('other-network').verdict).toMatchObject({ kind: 'dropped', reason: 'no_route', table: 'l3_forwarding' });
    expect(read('peer-down').verdict).toMatchObject({ kind: 'dropped', reason: 'no_route' });
    expect(read('unknown-port').verdict).toMatchObject({ kind: 'dropped', reason: 'classifier_miss', table: 'classifier' });
  });

  it('gateway ARP is answered in place', () => {
    expect(read('gateway-arp').verdict).toMatchObject({ kind: 'gateway_answered', protocol: 'arp' });
  });
});

describe('flows to trace', () => {
  it('an endpoint\'s packet enters via its port, addressed to the gateway MAC', () => {
    expect(endpointFlow({ proto: 'tcp', src: '198.18.0.2', dst: '198.18.0.64', port: 80 }, { ofport: 3, mac: '02:42:c6:12:00:02', vni: 5001 })).toBe(
      'in_port=3,dl_src=02:42:c6:12:00:02,dl_dst=02:4c:00:00:13:89,tcp,nw_src=198.18.0.2,nw_dst=198.18.0.64,nw_ttl=64,tcp_dst=80,tcp_flags=0x002',
    );
    expect(endpointFlow({ proto: 'icmp', src: 'fd00:b::2', dst: 'fd00:b::100' }, { ofport: 3, mac: '02:42:c6:12:00:02', vni: 5001 })).toContain('icmp6,ipv6_src=fd00:b::2,ipv6_dst=fd00:b::100,nw_ttl=64,icmpv6_type=128');
    expect(() => endpointFlow({ proto: 'icmp', src: 'fd00:b::2', dst: '198.18.0.1' }, { ofport: 3, mac: '02:42:c6:12:00:02', vni: 1 })).toThrow(/address families/);
  });

  it('on the far side it arrives from the tunnel with the VNI as key', () => {
    expect(tunnelFlow({ proto: 'udp', src: '198.18.0.2', dst: '198.18.0.64', port: 53 }, { tunnelPort: 65001, vni: 5001, srcVtep: '192.0.2.1', dstVtep: '192.0.2.2' })).toBe(
      'in_port=65001,tun_id=5001,tun_src=192.0.2.1,tun_dst=192.0.2.2,dl_src=02:4c:00:00:13:89,dl_dst=02:4c:00:00:13:89,udp,nw_src=198.18.0.2,nw_dst=198.18.0.64,nw_ttl=64,udp_dst=53',
    );
  });
});
