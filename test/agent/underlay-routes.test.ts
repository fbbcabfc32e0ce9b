import { describe, expect, it } from 'vitest';
import { parseRouteShow, pinnedFromKernel, UnderlayRoutes, type UnderlayRoutesDeps } from '../../src/agent/underlay-routes.js';

const SHOW = `Route Table:
Cached: 127.0.0.1/32 dev lo SRC 127.0.0.1 local
Cached: 10.0.0.0/8 dev eth0 SRC 10.1.1.1
User: 192.0.2.0/24 dev br-phy SRC 192.0.2.1
User: 0.0.0.0/0 dev br-phy GW 192.0.2.254 SRC 192.0.2.1
User: 2001:db8::/64 dev br-phy SRC 2001:db8::1
User: 203.0.113.0/24 dev br-other SRC 203.0.113.1
`;

/** ovs-vswitchd's route table as the fake keeps it: what `show` prints and what add/del change. */
type KernelRoutes = Array<{ dst: string; gateway?: string; family: 4 | 6 }>;
function fakeSwitch(initial: string, kernel: KernelRoutes | undefined, refuse = new Set<string>()) {
  let lines = initial.split('\n').filter((l) => l.startsWith('Cached') || l.startsWith('User'));
  const calls: string[] = [];
  const deps: UnderlayRoutesDeps = {
    underlay: async () => kernel && { bridge: 'br-phy', routes: kernel },
    appctl: async (command, args) => {
      if (command === 'ovs/route/show') return `Route Table:\n${lines.join('\n')}\n`;
      calls.push(`${command} ${args.join(' ')}`);
      if (command === 'ovs/route/add') {
        if (refuse.has(args[0]!)) throw new Error('Error while inserting route.');
        lines.push(`User: ${args[0]} dev ${args[1]}${args[2] ? ` GW ${args[2]}` : ''} SRC 192.0.2.1`);
      } else if (command === 'ovs/route/del') {
        lines = lines.filter((l) => !(l.startsWith('User') && l.includes(` ${args[0]} `)));
      }
      return 'OK';
    },
  };
  return { deps, calls, table: () => lines };
}

describe('underlay routes pinned in ovs-vswitchd', () => {
  it('parses ovs/route/show: kind, prefix, bridge and gateway', () => {
    expect(parseRouteShow(SHOW)).toEqual([
      { prefix: '127.0.0.1/32', bridge: 'lo', kind: 'cached' },
      { prefix: '10.0.0.0/8', bridge: 'eth0', kind: 'cached' },
      { prefix: '192.0.2.0/24', bridge: 'br-phy', kind: 'user' },
      { prefix: '0.0.0.0/0', bridge: 'br-phy', kind: 'user', gateway: '192.0.2.254' },
      { prefix: '2001:db8::/64', bridge: 'br-phy', kind: 'user' },
      { prefix: '203.0.113.0/24', bridge: 'br-other', kind: 'user' },
    ]);
  });

  it('takes the kernel routes as OVS spells them, without link-local ones', () => {
    expect(
      pinnedFromKernel([
        { dst: 'default', gateway: '192.0.2.254', family: 4 },
        { dst: '192.0.2.0/24', family: 4 },
        { dst: 'default', gateway: 'fe80::1', family: 6 },
        { dst: 'fe80::/64', family: 6 },
        { dst: '192.0.2.0/24', family: 4 }, // a second metric: OVS keeps one per prefix
      ]),
    ).toEqual([{ prefix: '0.0.0.0/0', gateway: '192.0.2.254' }, { prefix: '192.0.2.0/24' }, { prefix: '::/0', gateway: 'fe80::1' }]);
  });

  it('adds what is missing and touches nothing when it matches', async () => {
    const sw = fakeSwitch('Cached: 192.0.2.0/24 dev br-phy SRC 192.0.2.1', [{ dst: '192.0.2.0/24', family: 4 }]);
    const routes = new UnderlayRoutes(sw.deps);
    const first = await routes.sync();
    expect(first.added).toEqual([{ prefix: '192.0.2.0/24' }]);
    expect(first.systemRoutes).toBe(1); // ovs-vswitchd still copies the kernel: the race is on, the agent warns
    expect(sw.calls).toEqual(['ovs/route/add 192.0.2.0/24 br-phy']);
    const second = await routes.sync();
    expect(second.added).toEqual([]);
    expect(second.removed).toEqual([]);
    expect(sw.calls).toHaveLength(1);
  });

  it('removes its stale routes and replaces a changed gateway, leaving other bridges and cached routes alone', async () => {
    const sw = fakeSwitch(SHOW, [
      { dst: '192.0.2.0/24', family: 4 },
      { dst: 'default', gateway: '192.0.2.1', family: 4 },
    ]);
    const r = await new UnderlayRoutes(sw.deps).sync();
    expect(r.removed).toEqual([{ prefix: '0.0.0.0/0', gateway: '192.0.2.254' }, { prefix: '2001:db8::/64' }]);
    expect(r.added).toEqual([{ prefix: '0.0.0.0/0', gateway: '192.0.2.1' }]);
    expect(r.systemRoutes).toBe(0);
    expect(sw.table()).toContain('User: 203.0.113.0/24 dev br-other SRC 203.0.113.1');
    expect(sw.table()).toContain('Cached: 10.0.0.0/8 dev eth0 SRC 10.1.1.1');
    expect(sw.calls).toEqual(['ovs/route/del 0.0.0.0/0', 'ovs/route/del 2001:db8::/64', 'ovs/route/add 0.0.0.0/0 br-phy 192.0.2.1']);
  });

  it('pins nothing while no interface holds the VTEP address', async () => {
    const sw = fakeSwitch(SHOW, undefined);
    const r = await new UnderlayRoutes(sw.deps).sync();
    expect(r).toEqual({ bridge: '', added: [], removed: [], systemRoutes: 0, failed: [] });
    expect(sw.calls).toEqual([]);
  });

  it('reports a route ovs-vswitchd refuses and still pins the others', async () => {
    const sw = fakeSwitch('', [{ dst: '2001:db8::/64', family: 6 }, { dst: '192.0.2.0/24', family: 4 }], new Set(['2001:db8::/64']));
    const r = await new UnderlayRoutes(sw.deps).sync();
    expect(r.failed).toEqual([{ prefix: '2001:db8::/64', error: 'Error while inserting route.' }]);
    expect(r.added).toEqual([{ prefix: '192.0.2.0/24' }]);
  });
});
