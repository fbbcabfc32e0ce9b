import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/controller/errors.js';
import { memoryController, registerHosts } from './fixtures.js';

describe('IPAM', () => {
  it('hands each host its own block and allocates inside it, skipping only the network address and gateway', async () => {
    const c = await memoryController();
    await registerHosts(c, 2);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv4BlockPrefix: 28 });
    const a1 = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a1' });
    const a2 = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a2' });
    const b1 = await c.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b1' });
    expect([a1.ipv4, a2.ipv4, b1.ipv4]).toEqual(['10.1.0.2/24', '10.1.0.3/24', '10.1.0.16/24']);
    const blocks = [...c.state.networks.get('blue')!.blocks.values()].map((b) => [b.rec.cidr, b.rec.host]);
    expect(blocks).toEqual([
      ['10.1.0.0/28', 'h1'],
      ['10.1.0.16/28', 'h2'],
    ]);
    expect(a1.mac).toBe('02:42:0a:01:00:02');
    expect(a1.gateways).toEqual(['10.1.0.1']);
    expect(a1.routes).toEqual([{ destination: '0.0.0.0/0', gateway: '10.1.0.1' }]);
  });

  it('leases another block when a host fills its first, and releases blocks when empty', async () => {
    const c = await memoryController();
    await registerHosts(c, 1);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv4BlockPrefix: 29 });
    // First /29 loses network address and gateway: 6 usable.
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      await c.createEndpoint({ network: 'blue', host: 'h1', containerId: `e${i}` });
      ids.push(`e${i}`);
    }
    const net = c.state.networks.get('blue')!;
    expect([...net.blocks.keys()]).toEqual(['10.1.0.0/29', '10.1.0.8/29']);
    await c.deleteEndpoint('blue', 'e6');
    await c.deleteEndpoint('blue', 'e7');
    expect([...net.blocks.keys()]).toEqual(['10.1.0.0/29']);
    for (const id of ids.slice(0, 6)) await c.deleteEndpoint('blue', id);
    expect(net.blocks.size).toBe(0);
  });

  it('never gives an address twice under concurrent requests', async () => {
    const c = await memoryController();
    await registerHosts(c, 4);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/22', ipv4BlockPrefix: 28, ipv6Cidr: 'fd00:1::/64' });
    const eps = await Promise.all(
      Array.from({ length: 400 }, (_, i) => c.createEndpoint({ network: 'blue', host: `h${1 + (i % 4)}`, containerId: `c${i}` })),
    );
    expect(new Set(eps.map((e) => e.ipv4)).size).toBe(400);
    expect(new Set(eps.map((e) => e.ipv6)).size).toBe(400);
    expect(new Set(eps.map((e) => e.mac)).size).toBe(400);
    expect(new Set(eps.map((e) => e.modRevision)).size).toBe(400);
  });

  it('honours a static address in another host block as an exception the owner never hands out', async () => {
    const c = await memoryController();
    await registerHosts(c, 2);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv4BlockPrefix: 28 });
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' }); // h1 leases 10.1.0.0/28
    const s = await c.createEndpoint({ network: 'blue', host: 'h2', containerId: 's', ipv4: '10.1.0.3' });
    expect(s.ipv4).toBe('10.1.0.3/24');
    const net = c.state.networks.get('blue')!;
    expect([...net.exceptions.values()].map((e) => [e.rec.address, e.rec.host])).toEqual([['10.1.0.3', 'h2']]);
    const next = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b' });
    expect(next.ipv4).toBe('10.1.0.4/24');
    await c.deleteEndpoint('blue', 's');
    expect(net.exceptions.size).toBe(0);
  });

  it('needs no exception for a static address inside the host own block', async () => {
    const c = await memoryController();
    await registerHosts(c, 1);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv4BlockPrefix: 28 });
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 's', ipv4: '10.1.0.9' });
    expect(c.state.networks.get('blue')!.exceptions.size).toBe(0);
  });

  it('borrows a free address as an exception when no block is left, then reports exhaustion', async () => {
    const c = await memoryController();
    await registerHosts(c, 3);
    // A /28 in /29 blocks: two blocks; h1 and h2 take them, h3 must borrow.
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/28', ipv4BlockPrefix: 29 });
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    await c.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b' });
    const borrowed = await c.createEndpoint({ network: 'blue', host: 'h3', containerId: 'c' });
    const net = c.state.networks.get('blue')!;
    expect(net.exceptions.get(borrowed.ipv4.split('/')[0])?.rec.host).toBe('h3');
    // 16 - network - broadcast - gateway = 13 usable in total.
    for (let i = 0; i < 10; i++) await c.createEndpoint({ network: 'blue', host: 'h3', containerId: `x${i}` });
    const err = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'full' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('RESOURCE_EXHAUSTED');
  });

  it('allocates IPv6 from per-host blocks too, and derives nothing from the MAC', async () => {
    const c = await memoryController();
    await registerHosts(c, 2);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', ipv6Cidr: 'fd00:1::/64' });
    const a = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    const b = await c.createEndpoint({ network: 'blue', host: 'h2', containerId: 'b' });
    expect(a.ipv6).toBe('fd00:1::2/64');
    expect(b.ipv6).toBe('fd00:1::100/64'); // block boundaries are ordinary addresses
    expect(a.gateways).toEqual(['10.1.0.1', 'fd00:1::1']);
    expect(a.routes).toContainEqual({ destination: '::/0', gateway: 'fd00:1::1' });
    const blocks = [...c.state.networks.get('blue')!.blocks.values()].map((x) => [x.rec.cidr, x.rec.host]);
    expect(blocks).toContainEqual(['fd00:1::/120', 'h1']);
    expect(blocks).toContainEqual(['fd00:1::100/120', 'h2']);
    const s = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 's', ipv6: 'fd00:1::abcd' });
    expect(s.ipv6).toBe('fd00:1::abcd/64');
  });

  it('keeps a given MAC', async () => {
    const c = await memoryController();
    await registerHosts(c, 1);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
    const a = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a', mac: '0A:00:00:00:00:01' });
    expect(a.mac).toBe('0a:00:00:00:00:01');
  });
});
