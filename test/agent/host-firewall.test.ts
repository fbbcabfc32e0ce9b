import { describe, expect, it } from 'vitest';
import { renderRuleset, replaceScript, type FirewallNetwork, type FirewallState } from '../../src/agent/host-firewall.js';

const blue: FirewallNetwork = {
  name: 'blue',
  ipv4Cidr: '10.1.0.0/24',
  ipv6Cidr: 'fd00:1::/64',
  hostAddress4: '10.1.0.63',
  hostAddress6: 'fd00:1::ff',
  egress: true,
  ipv6Routed: false,
  inboundSources: [],
};
const red: FirewallNetwork = { ...blue, name: 'red', ipv4Cidr: '10.2.0.0/24', ipv6Cidr: '', hostAddress4: '10.2.0.63', hostAddress6: '', egress: false };
const state = (over: Partial<FirewallState> = {}): FirewallState => ({ gatewayPort: 'loom-gw0', networks: [blue, red], ports: [], ...over });
const lines = (s: string | null) => (s ?? '').split('\n').map((l) => l.trim());

describe('host firewall (table inet loom)', () => {
  it('renders no table when the host serves no network, and the replacement then only deletes it', () => {
    expect(renderRuleset(state({ networks: [] }))).toBeNull();
    expect(replaceScript(null)).toBe('table inet loom {}\ndelete table inet loom\n');
  });

  it('never forwards between Loom networks and masquerades only networks with egress', () => {
    const r = lines(renderRuleset(state()));
    expect(r).toContain('iifname "loom-gw0" oifname "loom-gw0" drop');
    expect(r).toContain('oifname != "loom-gw0" ip saddr 10.1.0.0/24 masquerade');
    expect(r).toContain('oifname != "loom-gw0" ip6 saddr fd00:1::/64 masquerade');
    expect(r.some((l) => l.includes('10.2.0.0/24 masquerade'))).toBe(false);
    expect(r).not.toContain('iifname "loom-gw0" ip saddr 10.2.0.0/24 accept');
    // A container of red does not reach the host through blue's address.
    expect(r).toContain('iifname "loom-gw0" ip saddr 10.2.0.0/24 ip daddr 10.1.0.63 drop');
    expect(r.at(-3)).toBe('oifname "loom-gw0" drop');
  });

  it('routes a routable IPv6 range without translation, from allowed sources only', () => {
    const r = lines(renderRuleset(state({ networks: [{ ...blue, ipv6Routed: true, inboundSources: ['2001:db8::/48'] }] })));
    expect(r.some((l) => l.includes('ip6 saddr fd00:1::/64 masquerade'))).toBe(false);
    expect(r).toContain('oifname "loom-gw0" ip6 daddr fd00:1::/64 ip6 saddr 2001:db8::/48 accept');
  });

  it('publishes ports with DNAT, limited to the network’s inbound sources, and drops the rest', () => {
    const port = { network: 'blue', endpoint: 'web', containerIpv4: '10.1.0.2', containerIpv6: 'fd00:1::2', hostPort: 8080, containerPort: 80, protocol: 'tcp' as const, hostIp: '' };
    const r = lines(renderRuleset(state({ networks: [{ ...blue, inboundSources: ['10.10.10.10/32'] }], ports: [port] })));
    expect(r).toContain('ip saddr 10.10.10.10/32 meta nfproto ipv4 fib daddr type local tcp dport 8080 dnat ip to 10.1.0.2:80 comment "blue/web"');
    // No IPv6 source is allowed: no IPv6 DNAT from outside; the host itself still reaches it.
    expect(r.filter((l) => l.includes('dnat ip6 to [fd00:1::2]:80'))).toHaveLength(1);
    expect(r).toContain('iifname != "loom-gw0" tcp dport 8080 drop');
    const udp = lines(renderRuleset(state({ ports: [{ ...port, protocol: 'udp', hostIp: '127.0.0.1' }] })));
    expect(udp).toContain('ip daddr 127.0.0.1 udp dport 8080 dnat ip to 10.1.0.2:80 comment "blue/web"');
    expect(udp).toContain('oifname "loom-gw0" ip saddr 127.0.0.0/8 ip daddr 10.1.0.0/24 snat ip to 10.1.0.63');
  });
});
