import { describe, expect, it } from 'vitest';
import { rememberNeighbours, resolveNextHops } from '../../src/agent/ovs-nat-host.js';
import { codec } from '../../src/netlink/index.js';

const BR_PHY = 4;
const OTHER = 7;

describe('next hops of the NAT path from the kernel routes and neighbours', () => {
  const neighbours = [
    { index: BR_PHY, address: '192.0.2.254', mac: '0a:00:00:00:00:fe', state: codec.NUD_REACHABLE },
    { index: BR_PHY, address: '192.0.2.100', mac: '0a:00:00:00:00:64', state: codec.NUD_STALE },
    { index: BR_PHY, address: '192.0.2.101', state: 0x20 /* NUD_FAILED */ },
    { index: OTHER, address: '198.51.100.7', mac: '0a:00:00:00:00:07', state: codec.NUD_REACHABLE },
  ];

  it("sends a gateway's prefix to the gateway's MAC and on-link neighbours to their own", () => {
    const hops = resolveNextHops(
      BR_PHY,
      [
        { dst: 'default', gateway: '192.0.2.254', oif: BR_PHY },
        { dst: '192.0.2.0/24', oif: BR_PHY },
        { dst: '198.51.100.0/24', oif: OTHER },
      ],
      neighbours,
    );
    expect(hops).toEqual([
      { prefix: '0.0.0.0/0', mac: '0a:00:00:00:00:fe' },
      { prefix: '192.0.2.0/24' },
      { prefix: '192.0.2.100/32', mac: '0a:00:00:00:00:64' },
      { prefix: '192.0.2.254/32', mac: '0a:00:00:00:00:fe' },
      // Through another interface: the kernel path, whatever the neighbour.
      { prefix: '198.51.100.0/24' },
    ]);
  });

  it('leaves a route whose gateway is unresolved on the kernel path, and keeps the first route of a prefix', () => {
    expect(
      resolveNextHops(
        BR_PHY,
        [
          { dst: 'default', gateway: '192.0.2.1', oif: BR_PHY },
          { dst: 'default', gateway: '192.0.2.254', oif: BR_PHY },
        ],
        neighbours,
      ),
    ).toEqual([{ prefix: '0.0.0.0/0' }]);
  });

  it('bounds the /32 next hops of on-link neighbours (the rest keep the kernel path)', () => {
    const many = Array.from({ length: 10 }, (_, i) => ({ index: BR_PHY, address: `192.0.2.${i + 1}`, mac: `0a:00:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`, state: codec.NUD_REACHABLE }));
    const hops = resolveNextHops(BR_PHY, [{ dst: '192.0.2.0/24', oif: BR_PHY }], many, 4);
    expect(hops.filter((h) => h.mac)).toHaveLength(4);
    expect(hops).toContainEqual({ prefix: '192.0.2.0/24' });
  });

  it('mirrors no route of a table too large to mirror whole: everything keeps the kernel path', () => {
    const routes = [{ dst: 'default', gateway: '192.0.2.254', oif: BR_PHY }, ...Array.from({ length: 5 }, (_, i) => ({ dst: `10.${i}.0.0/16`, gateway: '192.0.2.254', oif: BR_PHY }))];
    expect(resolveNextHops(BR_PHY, routes, neighbours, 4096, 6).filter((h) => h.mac)).toHaveLength(6);
    expect(resolveNextHops(BR_PHY, routes, neighbours, 4096, 5)).toEqual([{ prefix: '0.0.0.0/0' }]);
  });

  it('remembers a neighbour the kernel garbage-collected for a while, and forgets a failed one at once', () => {
    const memory = new Map<string, { index: number; mac: string; at: number }>();
    const reachable = { index: BR_PHY, address: '192.0.2.100', mac: '0a:00:00:00:00:64', state: codec.NUD_REACHABLE };
    rememberNeighbours([reachable], memory, 0, 1000);
    // Gone from the kernel's table: still a next hop within the time.
    expect(rememberNeighbours([], memory, 500, 1000)).toEqual([{ ...reachable, state: codec.NUD_STALE }]);
    expect(rememberNeighbours([], memory, 1500, 1000)).toEqual([]);
    rememberNeighbours([reachable], memory, 2000, 1000);
    // Listed again but unresolved: forgotten.
    expect(rememberNeighbours([{ index: BR_PHY, address: '192.0.2.100', state: 0x20 }], memory, 2100, 1000)).toEqual([{ index: BR_PHY, address: '192.0.2.100', state: 0x20 }]);
    expect(rememberNeighbours([], memory, 2200, 1000)).toEqual([]);
  });
});
