// The host's gateway-port address per network (allocated with its first endpoint there), network
// egress settings and published ports: validation, allocation and release in the controller core.
import { describe, expect, it } from 'vitest';
import { GATEWAY_PORT_CAPABILITY } from '../../src/controller/controller.js';
import { ApiError } from '../../src/controller/errors.js';
import { hostGatewayId } from '../../src/controller/model.js';
import { memoryController } from './fixtures.js';

async function setup() {
  const c = await memoryController();
  await c.register({ name: 'h1', vtep: '192.0.2.1', capabilities: [GATEWAY_PORT_CAPABILITY] });
  await c.register({ name: 'h2', vtep: '192.0.2.2', capabilities: [] });
  await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv6Cidr: 'fd00:1::/64' });
  return c;
}

const code = (e: unknown) => (e as ApiError).code;

describe('host gateway addresses', () => {
  it('gives a host with a gateway port an address from the top of its block, containers keep theirs', async () => {
    const c = await setup();
    const a = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    expect(a.ipv4).toBe('10.1.0.2/24');
    const gw = c.getEndpoint('blue', hostGatewayId('h1'));
    expect(gw.hostGateway).toBe(true);
    expect(gw.ipv4).toBe('10.1.0.63/24');
    expect(gw.ipv6).toBe('fd00:1::ff/64');
    expect(c.state.networks.get('blue')!.blocks.size).toBe(2); // one IPv4 and one IPv6 block, leased once
    const b = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b' });
    expect(b.ipv4).toBe('10.1.0.3/24');
    expect(c.listEndpoints({ network: 'blue' }).filter((e) => e.hostGateway)).toHaveLength(1);
  });

  it('gives none to a host whose agent has no gateway port', async () => {
    const c = await setup();
    await c.createEndpoint({ network: 'blue', host: 'h2', containerId: 'a' });
    expect(c.listEndpoints({ network: 'blue' }).some((e) => e.hostGateway)).toBe(false);
  });

  it('releases it, and the block, with the host’s last endpoint; refuses to delete it alone', async () => {
    const c = await setup();
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b' });
    expect(code(await c.deleteEndpoint('blue', hostGatewayId('h1')).catch((e: unknown) => e))).toBe('FAILED_PRECONDITION');
    await c.deleteEndpoint('blue', 'a');
    expect(c.state.networks.get('blue')!.endpoints.has(hostGatewayId('h1'))).toBe(true);
    await c.deleteEndpoint('blue', 'b');
    const net = c.state.networks.get('blue')!;
    expect(net.endpoints.size).toBe(0);
    expect(net.blocks.size).toBe(0);
    await c.deleteNetwork('blue');
  });
});

describe('egress settings and published ports', () => {
  it('defaults egress to NAT and validates source limits', async () => {
    const c = await setup();
    const blue = c.getNetwork('blue');
    expect(blue.egress).toBe('EGRESS_MODE_NAT');
    expect(blue.ipv6Routed).toBe(false);
    const red = await c.createNetwork({ name: 'red', ipv4Cidr: '10.2.0.0/24', egress: 'EGRESS_MODE_OFF', inboundSources: ['10.10.10.10', '2001:db8::/48'] });
    expect(red.egress).toBe('EGRESS_MODE_OFF');
    expect(red.inboundSources).toEqual(['10.10.10.10/32', '2001:db8::/48']);
    await expect(c.createNetwork({ name: 'x', ipv4Cidr: '10.3.0.0/24', inboundSources: ['10.0.0.1/8'] })).rejects.toThrow(/host bits/);
    await expect(c.createNetwork({ name: 'y', ipv4Cidr: '10.4.0.0/24', ipv6Routed: true })).rejects.toThrow(/needs an ipv6 CIDR/);
  });

  it('keeps an endpoint’s published ports and refuses bad ones', async () => {
    const c = await setup();
    const e = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a', ports: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIp: '' }, { hostPort: 8080, containerPort: 80, protocol: 'udp', hostIp: '127.0.0.1' }] });
    expect(e.ports).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIp: '' },
      { hostPort: 8080, containerPort: 80, protocol: 'udp', hostIp: '127.0.0.1' },
    ]);
    const bad = [
      { hostPort: 0, containerPort: 80, protocol: 'tcp' as const, hostIp: '' },
      { hostPort: 80, containerPort: 70000, protocol: 'tcp' as const, hostIp: '' },
      { hostPort: 80, containerPort: 80, protocol: 'sctp' as 'tcp', hostIp: '' },
      { hostPort: 80, containerPort: 80, protocol: 'tcp' as const, hostIp: 'nope' },
    ];
    for (const p of bad) expect(code(await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b', ports: [p] }).catch((x: unknown) => x))).toBe('INVALID_ARGUMENT');
    const twice = [
      { hostPort: 80, containerPort: 80, protocol: 'tcp' as const, hostIp: '' },
      { hostPort: 80, containerPort: 81, protocol: 'tcp' as const, hostIp: '' },
    ];
    await expect(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b', ports: twice })).rejects.toThrow(/published twice/);
  });

  it('refuses the IPv6 loopback as a host address, in any spelling, and keeps IPv4 loopback', async () => {
    const c = await setup();
    for (const hostIp of ['::1', '0:0:0:0:0:0:0:1']) {
      const err = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b', ports: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIp }] }).catch((x: unknown) => x);
      expect(code(err)).toBe('INVALID_ARGUMENT');
      expect(String(err)).toMatch(/::1 is not supported.*127\.0\.0\.1/);
    }
    const e = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'c', ports: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIp: '127.0.0.1' }] });
    expect(e.ports[0]!.hostIp).toBe('127.0.0.1');
  });
});
