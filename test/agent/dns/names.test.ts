import { describe, expect, it } from 'vitest';
import { directoryOf, networkDomain, parseResolvConf } from '../../../src/agent/dns/names.js';
import { containerDns } from '../../../src/agent/attacher.js';
import type { EndpointInfo, Network } from '../../../src/api/types.js';

const network = (name: string, dns: Network['dns'] = null): Network => ({
  name, vni: 100, ipv4Cidr: '198.18.0.0/16', ipv6Cidr: '', tunnelType: 'TUNNEL_TYPE_VXLAN', mtu: 1450, gateways: ['198.18.0.1'], dns,
  ipv4BlockPrefix: 26, ipv6BlockPrefix: 120, createRevision: 1, modRevision: 1, egress: 'EGRESS_MODE_NAT', ipv6Routed: false, inboundSources: [], isolation: 'ISOLATION_OPEN',
});
const ep = (net: string, name: string, ipv4: string, ipv6 = ''): EndpointInfo => ({ network: net, containerId: `id-${name}`, name, host: 'h', mac: '02:42:00:00:00:01', ipv4, ipv6, hostGateway: false, ports: [], labels: {}, hostname: '', aliases: [], dns: null });

describe('DNS names from the view', () => {
  it("answers each endpoint's DNS name (from its runtime name), bare and under <network>.loom, on any host", () => {
    const d = directoryOf([
      { network: network('blue'), endpoints: [ep('blue', 'Web_1', '198.18.0.2/16', 'fd00:b::2/64'), ep('blue', 'api.v1', '198.18.0.3/16')] },
      { network: network('red'), endpoints: [ep('red', 'db', '198.19.0.2/16')] },
    ]);
    expect(networkDomain(network('blue'))).toBe('blue.loom');
    expect(networkDomain(network('blue', { nameservers: [], search: [], options: [], domain: 'corp.example' }))).toBe('corp.example');
    expect(d.lookup('web-1', 'A', ['blue'])).toMatchObject({ kind: 'local', addresses: ['198.18.0.2'] });
    expect(d.lookup('web-1.blue.loom', 'AAAA', ['blue'])).toMatchObject({ kind: 'local', addresses: ['fd00:b::2'] });
    expect(d.lookup('api.v1.blue.loom', 'A', ['blue'])).toMatchObject({ kind: 'local', addresses: ['198.18.0.3'] });
    expect(d.lookup('db.red.loom', 'A', ['blue'])).toEqual({ kind: 'nxdomain', zone: 'red.loom' });
    expect(d.lookup('2.0.18.198.in-addr.arpa', 'PTR', ['blue'])).toEqual({ kind: 'ptr', names: ['web-1.blue.loom'] });
  });

  it('answers an endpoint by its hostname and aliases too, in its own network only', () => {
    const d = directoryOf([
      { network: network('blue'), endpoints: [{ ...ep('blue', 'web', '198.18.0.2/16'), hostname: 'www', aliases: ['frontend', 'api.internal'] }] },
      { network: network('red'), endpoints: [ep('red', 'db', '198.19.0.2/16')] },
    ]);
    for (const name of ['web', 'www', 'frontend', 'www.blue.loom', 'frontend.blue.loom', 'api.internal', 'api.internal.blue.loom']) {
      expect(d.lookup(name, 'A', ['blue'])).toMatchObject({ kind: 'local', addresses: ['198.18.0.2'] });
    }
    expect(d.lookup('frontend.blue.loom', 'A', ['red'])).toEqual({ kind: 'nxdomain', zone: 'blue.loom' });
    expect(d.lookup('frontend', 'A', ['red'])).toEqual({ kind: 'forward' });
    expect(d.lookup('2.0.18.198.in-addr.arpa', 'PTR', ['blue'])).toEqual({ kind: 'ptr', names: ['web.blue.loom'] });
  });

  it('reads nameservers from resolv.conf, keeping loopback stubs and dropping zone ids and junk', () => {
    expect(parseResolvConf('# comment\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver  192.0.2.53 \nnameserver bogus\nsearch x\nnameserver 127.0.0.53\n')).toEqual(['127.0.0.53', 'fe80::1', '192.0.2.53']);
  });

  it("gives the container its gateways as nameservers, its network's domain first, its own searches and options over the network's", () => {
    const blue = network('blue', { nameservers: ['192.0.2.53'], search: ['corp.example'], options: ['rotate'], domain: '' });
    expect(containerDns({ dnsOverride: null }, blue, ['198.18.0.1', 'fd00:b::1'])).toEqual({ nameservers: ['198.18.0.1', 'fd00:b::1'], search: ['blue.loom', 'corp.example'], options: ['rotate'] });
    expect(containerDns({ dnsOverride: { nameservers: ['192.0.2.9'], search: ['a.test', 'blue.loom'], options: ['ndots:2'], domain: '' } }, blue, ['198.18.0.1'])).toEqual({
      nameservers: ['198.18.0.1'],
      search: ['blue.loom', 'a.test'],
      options: ['ndots:2'],
    });
  });
});
