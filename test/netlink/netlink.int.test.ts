import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Netlink, netnsInode } from '../../src/netlink/index.js';
import { createNetns, deleteNetns, inNs, ipJson, type TestNetns } from './helpers.js';

type IpLink = { ifname: string; mtu: number; address: string; flags: string[]; operstate: string; linkinfo?: { info_kind: string } };
type IpAddr = { ifname: string; addr_info: Array<{ family: string; local: string; prefixlen: number; nodad?: boolean; tentative?: boolean }> };
type IpRoute = { dst: string; gateway?: string; dev: string; flags: string[]; scope?: string };
type IpNeigh = { dst: string; dev: string; lladdr?: string; state: string[] };

// A "host" namespace and a "container" namespace, both created here; the root namespace is untouched.
// Twice: over node-netlink's asynchronous socket, and over the blocking one (blocking-socket.ts).
describe.each([{ blocking: false }, { blocking: true }])('container plumbing over rtnetlink, checked with ip -json (%o)', ({ blocking }) => {
  let hostNs: TestNetns;
  let ctrNs: TestNetns;
  let host: Netlink;
  let ctr: Netlink;
  const ownInode = netnsInode();

  beforeAll(async () => {
    hostNs = createNetns('h');
    ctrNs = createNetns('c');
    host = await Netlink.open({ netns: hostNs.path, blocking });
    ctr = await host.at(ctrNs.path, { blocking });
  });

  afterAll(async () => {
    await ctr?.close();
    await host?.close();
    deleteNetns(ctrNs);
    deleteNetns(hostNs);
  });

  afterEach(() => {
    expect(netnsInode()).toBe(ownInode);
  });

  it('creates a veth pair with the peer directly in the container namespace', async () => {
    await host.link.createVeth({ name: 'vc1', peer: { name: 'tmp0', netns: ctrNs.path } });
    const [hostEnd] = ipJson<IpLink[]>(hostNs, '-d', 'link', 'show', 'vc1');
    const [peer] = ipJson<IpLink[]>(ctrNs, '-d', 'link', 'show', 'tmp0');
    expect(hostEnd.linkinfo?.info_kind).toBe('veth');
    expect(peer.linkinfo?.info_kind).toBe('veth');
    expect(ipJson<IpLink[]>(hostNs, 'link').map((l) => l.ifname)).not.toContain('tmp0');
    const viaLib = await ctr.link.get('tmp0');
    expect(viaLib).toMatchObject({ name: 'tmp0', kind: 'veth', mac: peer.address });
  });

  it('renames the container end', async () => {
    await ctr.link.rename('tmp0', 'eth0');
    const names = ipJson<IpLink[]>(ctrNs, 'link').map((l) => l.ifname);
    expect(names).toContain('eth0');
    expect(names).not.toContain('tmp0');
  });

  it('sets MAC address and MTU', async () => {
    await ctr.link.setMac('eth0', '02:00:c6:12:00:02');
    await ctr.link.setMtu('eth0', 1450);
    await host.link.setMtu('vc1', 1450);
    const [eth0] = ipJson<IpLink[]>(ctrNs, 'link', 'show', 'eth0');
    expect(eth0).toMatchObject({ address: '02:00:c6:12:00:02', mtu: 1450 });
    expect(ipJson<IpLink[]>(hostNs, 'link', 'show', 'vc1')[0].mtu).toBe(1450);
    expect(await ctr.link.get('eth0')).toMatchObject({ mac: '02:00:c6:12:00:02', mtu: 1450 });
  });

  it('sets MAC, MTU and up in one request, and refuses a bad MTU naming it', async () => {
    await ctr.link.configure('eth0', { mac: '02:00:c6:12:00:03', mtu: 1400, up: true });
    const [eth0] = ipJson<IpLink[]>(ctrNs, 'link', 'show', 'eth0');
    expect(eth0).toMatchObject({ address: '02:00:c6:12:00:03', mtu: 1400 });
    expect(eth0.flags).toContain('UP');
    await ctr.link.configure('eth0', { mac: '02:00:c6:12:00:02', mtu: 1450, up: false });
    expect(await ctr.link.get('eth0')).toMatchObject({ mac: '02:00:c6:12:00:02', mtu: 1450, up: false });
    await expect(ctr.link.configure('eth0', { mtu: 70000 })).rejects.toThrow(/MTU/);
  });

  it('brings both ends and loopback up', async () => {
    await host.link.setUp('vc1');
    await ctr.link.setUp('lo');
    await ctr.link.setUp('eth0');
    const [eth0] = ipJson<IpLink[]>(ctrNs, 'link', 'show', 'eth0');
    expect(eth0.flags).toContain('UP');
    expect(ipJson<IpLink[]>(ctrNs, 'link', 'show', 'lo')[0].flags).toContain('UP');
    expect(ipJson<IpLink[]>(hostNs, 'link', 'show', 'vc1')[0].flags).toContain('UP');
    expect((await ctr.link.get('eth0')).up).toBe(true);
  });

  it('adds IPv4 and IPv6 addresses, the IPv6 one without DAD', async () => {
    await ctr.address.add('eth0', '198.18.0.2/24');
    await ctr.address.add('eth0', 'fd00:c6::2/64', { noDad: true });
    await host.address.add('vc1', '198.18.0.1/24');
    await host.address.add('vc1', 'fd00:c6::1/64', { noDad: true });
    const [eth0] = ipJson<IpAddr[]>(ctrNs, 'addr', 'show', 'dev', 'eth0');
    const global = eth0.addr_info.filter((a) => a.local.startsWith('198.') || a.local.startsWith('fd00'));
    expect(global.map((a) => `${a.local}/${a.prefixlen}`).sort()).toEqual(['198.18.0.2/24', 'fd00:c6::2/64']);
    const v6 = global.find((a) => a.family === 'inet6');
    expect(v6?.nodad).toBe(true);
    expect(v6?.tentative).toBeUndefined();
    const viaLib = await ctr.address.list({ link: 'eth0' });
    expect(viaLib.map((a) => a.cidr)).toEqual(expect.arrayContaining(['198.18.0.2/24', 'fd00:c6::2/64']));
    expect((await ctr.address.list({ link: 'eth0', family: 4 })).map((a) => a.cidr)).toEqual(['198.18.0.2/24']);
  });

  it('adds default routes via a gateway, a device route and an on-link route', async () => {
    await ctr.route.add({ dst: 'default', via: '198.18.0.1' });
    await ctr.route.add({ dst: 'default', via: 'fd00:c6::1' });
    await ctr.route.add({ dst: '203.0.113.0/24', dev: 'eth0' });
    await ctr.route.add({ dst: '198.51.100.0/24', via: '192.0.2.1', dev: 'eth0', onLink: true });
    const v4 = ipJson<IpRoute[]>(ctrNs, 'route', 'show');
    expect(v4).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: 'default', gateway: '198.18.0.1', dev: 'eth0' }),
      expect.objectContaining({ dst: '203.0.113.0/24', dev: 'eth0', scope: 'link' }),
      expect.objectContaining({ dst: '198.51.100.0/24', gateway: '192.0.2.1', dev: 'eth0', flags: expect.arrayContaining(['onlink']) }),
    ]));
    expect(ipJson<IpRoute[]>(ctrNs, '-6', 'route', 'show', 'default')).toEqual([
      expect.objectContaining({ dst: 'default', gateway: 'fd00:c6::1', dev: 'eth0' }),
    ]);
    const viaLib = await ctr.route.list({ family: 4 });
    expect(viaLib.find((r) => r.dst === '198.51.100.0/24')).toMatchObject({ gateway: '192.0.2.1', onLink: true });
  });

  it('replaces and deletes routes', async () => {
    await ctr.route.replace({ dst: 'default', via: '198.18.0.254' });
    expect(ipJson<IpRoute[]>(ctrNs, 'route', 'show', 'default')).toEqual([expect.objectContaining({ gateway: '198.18.0.254' })]);
    await ctr.route.replace({ dst: 'default', via: '198.18.0.1' });
    await ctr.route.delete({ dst: '203.0.113.0/24', dev: 'eth0' });
    await ctr.route.delete({ dst: '198.51.100.0/24' });
    const dsts = ipJson<IpRoute[]>(ctrNs, 'route', 'show').map((r) => r.dst);
    expect(dsts).not.toContain('203.0.113.0/24');
    expect(dsts).not.toContain('198.51.100.0/24');
    expect(dsts).toContain('default');
  });

  it('adds, replaces and deletes static ARP and ND entries', async () => {
    await ctr.neighbour.add('eth0', '198.18.0.9', '02:00:00:00:00:09');
    await ctr.neighbour.add('eth0', 'fd00:c6::9', '02:00:00:00:00:09');
    let neigh = ipJson<IpNeigh[]>(ctrNs, 'neigh', 'show', 'dev', 'eth0');
    expect(neigh).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: '198.18.0.9', lladdr: '02:00:00:00:00:09', state: ['PERMANENT'] }),
      expect.objectContaining({ dst: 'fd00:c6::9', lladdr: '02:00:00:00:00:09', state: ['PERMANENT'] }),
    ]));
    await ctr.neighbour.replace('eth0', '198.18.0.9', '02:00:00:00:00:0a');
    neigh = ipJson<IpNeigh[]>(ctrNs, 'neigh', 'show', 'dev', 'eth0');
    expect(neigh.find((n) => n.dst === '198.18.0.9')?.lladdr).toBe('02:00:00:00:00:0a');
    expect((await ctr.neighbour.list({ link: 'eth0', family: 4 })).find((n) => n.address === '198.18.0.9')).toMatchObject({
      mac: '02:00:00:00:00:0a', permanent: true,
    });
    await ctr.neighbour.delete('eth0', '198.18.0.9');
    await ctr.neighbour.delete('eth0', 'fd00:c6::9');
    expect(ipJson<IpNeigh[]>(ctrNs, 'neigh', 'show', 'dev', 'eth0').filter((n) => n.dst.endsWith('9'))).toEqual([]);
  });

  it('writes sysctls of the bound namespace only', () => {
    const rootValue = readFileSync('/proc/sys/net/ipv6/conf/default/accept_dad', 'utf8').trim();
    const other = rootValue === '0' ? '1' : '0';
    ctr.sysctl.set('net/ipv6/conf/default/accept_dad', other);
    ctr.sysctl.set('net/ipv6/conf/eth0/accept_dad', 0);
    expect(inNs(ctrNs, 'cat', '/proc/sys/net/ipv6/conf/default/accept_dad').trim()).toBe(other);
    expect(inNs(ctrNs, 'cat', '/proc/sys/net/ipv6/conf/eth0/accept_dad').trim()).toBe('0');
    expect(ctr.sysctl.get('net/ipv6/conf/eth0/accept_dad')).toBe('0');
    expect(readFileSync('/proc/sys/net/ipv6/conf/default/accept_dad', 'utf8').trim()).toBe(rootValue);
    host.sysctl.set('net/ipv6/conf/vc1/disable_ipv6', 1);
    expect(inNs(hostNs, 'cat', '/proc/sys/net/ipv6/conf/vc1/disable_ipv6').trim()).toBe('1');
    host.sysctl.set('net/ipv6/conf/vc1/disable_ipv6', 0);
    expect(host.sysctl.get('net/ipv6/conf/vc1/disable_ipv6')).toBe('0');
  });

  it('carries traffic between the namespaces it plumbed', async () => {
    // disable_ipv6 toggling flushed vc1's IPv6 address: put it back (replace is idempotent).
    await host.address.replace('vc1', 'fd00:c6::1/64', { noDad: true });
    expect(inNs(ctrNs, 'ping', '-c1', '-W2', '198.18.0.1')).toMatch(/1 received/);
    expect(inNs(ctrNs, 'ping', '-6', '-c1', '-W2', 'fd00:c6::1')).toMatch(/1 received/);
  });

  it('deletes IPv4 and IPv6 addresses', async () => {
    await ctr.address.add('eth0', '198.18.5.2/24');
    await ctr.address.add('eth0', 'fd00:c6:5::2/64', { noDad: true });
    await ctr.address.delete('eth0', '198.18.5.2/24');
    await ctr.address.delete('eth0', 'fd00:c6:5::2/64');
    const left = ipJson<IpAddr[]>(ctrNs, 'addr', 'show', 'dev', 'eth0')[0].addr_info.map((a) => a.local);
    expect(left).not.toContain('198.18.5.2');
    expect(left).not.toContain('fd00:c6:5::2');
    expect(left).toContain('198.18.0.2');
  });

  it('lists links and finds them by index, then brings one down', async () => {
    const links = await ctr.link.list();
    expect(links.map((l) => l.name).sort()).toEqual(ipJson<IpLink[]>(ctrNs, 'link').map((l) => l.ifname).sort());
    const eth0 = links.find((l) => l.name === 'eth0');
    expect((await ctr.link.get(eth0?.index as number)).name).toBe('eth0');
    await ctr.link.setDown(eth0?.index as number);
    expect(ipJson<IpLink[]>(ctrNs, 'link', 'show', 'eth0')[0].flags).not.toContain('UP');
    expect((await ctr.link.get('eth0')).up).toBe(false);
  });

  it('moves a link into another namespace', async () => {
    await host.link.createVeth({ name: 'mv0', peer: { name: 'mv1' } });
    await host.link.moveToNetns('mv1', ctrNs.path);
    expect(ipJson<IpLink[]>(hostNs, 'link').map((l) => l.ifname)).not.toContain('mv1');
    expect(ipJson<IpLink[]>(ctrNs, 'link', 'show', 'mv1')).toHaveLength(1);
    await host.link.delete('mv0');
    expect(ipJson<IpLink[]>(ctrNs, 'link').map((l) => l.ifname)).not.toContain('mv1');
  });

  it('deletes the veth pair, removing both ends', async () => {
    await host.link.delete('vc1');
    expect(ipJson<IpLink[]>(hostNs, 'link').map((l) => l.ifname)).not.toContain('vc1');
    expect(ipJson<IpLink[]>(ctrNs, 'link').map((l) => l.ifname)).not.toContain('eth0');
    expect(await ctr.link.find('eth0')).toBeUndefined();
  });
});
