import { describe, expect, it } from 'vitest';
import { hostView } from '../../src/controller/routes.js';
import { memoryController, registerHosts } from './fixtures.js';

describe('per-host view', () => {
  it('contains only networks with a local endpoint', async () => {
    const c = await memoryController();
    await registerHosts(c, 2);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
    await c.createNetwork({ name: 'red', ipv4Cidr: '10.2.0.0/24' });
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    await c.createEndpoint({ network: 'red', host: 'h2', containerId: 'b' });
    expect(hostView(c.state, 'h1').networks.map((n) => n.network.name)).toEqual(['blue']);
    expect(hostView(c.state, 'h2').networks.map((n) => n.network.name)).toEqual(['red']);
    expect(hostView(c.state, 'h3').networks).toEqual([]);
  });

  it('routes other hosts blocks and exceptions to their VTEPs, never its own', async () => {
    const c = await memoryController();
    await registerHosts(c, 3);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv4BlockPrefix: 28, tunnelType: 'TUNNEL_TYPE_GRE' });
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    await c.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b' });
    await c.createEndpoint({ network: 'blue', host: 'h3', containerId: 's', ipv4: '10.1.0.5' }); // inside h1's block
    const v1 = hostView(c.state, 'h1').networks[0];
    expect(v1.network).toMatchObject({ name: 'blue', tunnelType: 'TUNNEL_TYPE_GRE', mtu: 1458, gateways: ['10.1.0.1'] });
    expect(v1.routes).toEqual([
      { network: 'blue', prefix: '10.1.0.16/28', host: 'h2', vtep: '192.0.2.2', kind: 'ROUTE_KIND_BLOCK' },
      { network: 'blue', prefix: '10.1.0.5/32', host: 'h3', vtep: '192.0.2.3', kind: 'ROUTE_KIND_EXCEPTION' },
    ]);
    expect(v1.endpoints.map((e) => [e.containerId, e.host, e.ipv4])).toEqual([
      ['a', 'h1', '10.1.0.2'],
      ['b', 'h2', '10.1.0.16'],
      ['s', 'h3', '10.1.0.5'],
    ]);
    // h3 has no block of its own, and its own exception is local to it.
    expect(hostView(c.state, 'h3').networks[0].routes.map((r) => r.prefix)).toEqual(['10.1.0.0/28', '10.1.0.16/28']);
  });

  it('grows forwarding state with hosts, not endpoints', async () => {
    const c = await memoryController();
    await registerHosts(c, 3);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/16', ipv4BlockPrefix: 25 });
    for (let h = 1; h <= 3; h++) {
      for (let i = 0; i < 60; i++) await c.createEndpoint({ network: 'blue', host: `h${h}`, containerId: `h${h}-${i}` });
    }
    const v = hostView(c.state, 'h1').networks[0];
    expect(v.routes).toHaveLength(2);
    expect(v.endpoints).toHaveLength(180);
  });

  it('withdraws a down host routes from every view and restores them on heartbeat', async () => {
    const c = await memoryController(1000);
    await registerHosts(c, 3);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv4BlockPrefix: 28 });
    for (let h = 1; h <= 3; h++) await c.createEndpoint({ network: 'blue', host: `h${h}`, containerId: `e${h}` });
    await c.createEndpoint({ network: 'blue', host: 'h3', containerId: 's', ipv4: '10.1.0.200' });
    await c.heartbeat('h1');
    await c.heartbeat('h2');
    // h3 silent past the timeout (simulated clock): marked down.
    const later = Date.now() + 1500;
    expect(await c.checkLiveness(later)).toEqual(['h1', 'h2', 'h3']);
    await c.heartbeat('h1');
    await c.heartbeat('h2');
    expect(c.state.hosts.get('h3')!.rec.up).toBe(false);
    expect(hostView(c.state, 'h1').networks[0].routes.map((r) => r.host)).toEqual(['h2']);
    await c.heartbeat('h3');
    expect(hostView(c.state, 'h1').networks[0].routes.map((r) => r.host)).toEqual(['h2', 'h3', 'h3']);
  });
});
