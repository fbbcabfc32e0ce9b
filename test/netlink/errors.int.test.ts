import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inNetns, Netlink, NetlinkError, netnsInode } from '../../src/netlink/index.js';
import { netnsPathProblem } from '../../src/netlink/netns.js';
import { createNetns, deleteNetns, ipJson, type TestNetns } from './helpers.js';

// Each failure must be readable and must leave this thread in its own namespace.
describe.each([{ blocking: false }, { blocking: true }])('netlink errors (%o)', ({ blocking }) => {
  let ns: TestNetns;
  let nl: Netlink;
  let tmp: string;
  const ownInode = netnsInode();

  beforeAll(async () => {
    ns = createNetns('err');
    nl = await Netlink.open({ netns: ns.path, blocking });
    tmp = mkdtempSync(join(tmpdir(), 'lt-netlink-'));
  });

  afterAll(async () => {
    await nl?.close();
    deleteNetns(ns);
    rmSync(tmp, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(netnsInode()).toBe(ownInode);
  });

  async function failure(p: Promise<unknown>): Promise<NetlinkError> {
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    return err as NetlinkError;
  }

  it('names the operation, interface and namespace when the interface is missing', async () => {
    const err = await failure(nl.link.setMtu('nosuch0', 1400));
    expect(err).toMatchObject({ code: 'ENODEV', errno: 19, operation: 'link.setMtu', subject: 'nosuch0', netns: ns.path });
    expect(err.message).toBe(`link.setMtu 'nosuch0' in netns ${ns.path} failed: ENODEV (no such device)`);
    expect((await failure(nl.address.add('nosuch0', '198.18.0.2/24'))).code).toBe('ENODEV');
    expect((await failure(nl.link.get(4242))).code).toBe('ENODEV');
  });

  it('reports a duplicate interface name as EEXIST', async () => {
    await nl.link.createVeth({ name: 'dup0', peer: { name: 'dup1' } });
    const err = await failure(nl.link.createVeth({ name: 'dup0', peer: { name: 'dup2' } }));
    expect(err).toMatchObject({ code: 'EEXIST', operation: 'link.createVeth', subject: 'dup0<->dup2' });
    expect(ipJson(ns, 'link').map((l) => l.ifname)).not.toContain('dup2');
    await nl.link.delete('dup0');
  });

  it('passes on the kernel extended-ack text', async () => {
    await nl.link.setUp('lo');
    await nl.address.add('lo', '198.18.7.1/32');
    const err = await failure(nl.address.add('lo', '198.18.7.1/32'));
    expect(err.code).toBe('EEXIST');
    expect(err.detail).toMatch(/already/i);
    expect(err.message).toContain(err.detail as string);
  });

  it('reports deleting what is not there (address, route, neighbour)', async () => {
    expect((await failure(nl.address.delete('lo', '198.18.99.1/32'))).code).toBe('EADDRNOTAVAIL');
    expect((await failure(nl.route.delete({ dst: '203.0.113.0/24' }))).code).toBe('ESRCH');
    expect((await failure(nl.neighbour.delete('lo', '198.18.99.1'))).code).toBe('ENOENT');
  });

  it('rejects malformed input as EINVAL before sending anything', async () => {
    const bad = await failure(nl.address.add('lo', '198.18.0.300/24'));
    expect(bad).toMatchObject({ code: 'EINVAL', operation: 'address.add' });
    expect(bad.message).toContain('198.18.0.300');
    expect((await failure(nl.link.setMtu('lo', 70000))).detail).toMatch(/MTU/);
    expect((await failure(nl.link.rename('lo', 'much-too-long-name'))).detail).toMatch(/invalid interface name/);
    expect((await failure(nl.route.add({ dst: 'default' }))).detail).toMatch(/needs 'via' or 'family'/);
  });

  it('reports a namespace path that does not exist', async () => {
    const missing = `/run/netns/lt${process.pid}nl-missing`;
    const err = await failure(nl.at(missing));
    expect(err).toMatchObject({ code: 'ENOENT', operation: 'netns.open', netns: missing });
    const veth = await failure(nl.link.createVeth({ name: 'x0', peer: { name: 'x1', netns: missing } }));
    expect(veth.code).toBe('ENOENT');
    expect(veth.detail).toContain(missing);
  });

  it('reports a file that is not a network namespace', async () => {
    const notNs = join(tmp, 'not-a-netns');
    writeFileSync(notNs, 'x');
    const err = await failure(nl.at(notNs));
    expect(err).toMatchObject({ code: 'EINVAL', operation: 'netns.enter', netns: notNs });
    expect(err.message).toContain('not a network namespace');
  });

  it('returns to its own namespace when the work inside a namespace throws', () => {
    let inside = 0;
    expect(() => inNetns(ns.path, () => {
      inside = netnsInode();
      throw new Error('boom');
    })).toThrow('boom');
    expect(inside).not.toBe(ownInode);
    expect(inside).toBe(netnsInode(ns.path));
  });

  it('finishes requests made before close and refuses later ones with ECLOSED', async () => {
    const h = await nl.at(ns.path);
    const pending = [h.link.get('lo'), h.link.list()];
    await h.close();
    const [lo, all] = await Promise.all(pending);
    expect((lo as { name: string }).name).toBe('lo');
    expect(all).not.toHaveLength(0);
    const err = await failure(h.link.get('lo'));
    expect(err).toMatchObject({ code: 'ECLOSED', operation: 'link.get' });
  });

  it('refuses an async function for inNetns, since its awaits would run elsewhere', () => {
    expect(() => inNetns(ns.path, async () => 1)).toThrow(/synchronous function/);
  });

  it('refuses sysctl keys outside net/', () => {
    expect(() => nl.sysctl.set('kernel/hostname', 'x')).toThrow(/under net\//);
    expect(() => nl.sysctl.set('net/../kernel/hostname', 'x')).toThrow(/under net\//);
  });
});

describe('dumps', () => {
  let ns: TestNetns;
  let nl: Netlink;

  beforeAll(async () => {
    ns = createNetns('dump');
    nl = await Netlink.open({ netns: ns.path });
  });

  afterAll(async () => {
    await nl?.close();
    deleteNetns(ns);
  });

  it('lists hundreds of links spread over many netlink datagrams', async () => {
    // 150 veth pairs = 301 links with lo: far more than one 32 KiB datagram.
    const batch = Array.from({ length: 150 }, (_, i) => ['link', 'add', `a${i}`, 'type', 'veth', 'peer', 'name', `b${i}`].join(' '));
    execFileSync('ip', ['-n', ns.name, '-batch', '-'], { input: batch.join('\n') });
    const links = await nl.link.list();
    const oracle = ipJson(ns, 'link').map((l) => l.ifname as string);
    expect(oracle).toHaveLength(301);
    expect(links.map((l) => l.name).sort()).toEqual(oracle.sort());
    const a7 = links.find((l) => l.name === 'a7');
    expect(links.find((l) => l.index === a7?.parentIndex)?.name).toBe('b7');
  });

  it('gives each of many concurrent requests on one handle its own reply, failures included', async () => {
    const names = [...Array.from({ length: 40 }, (_, i) => `a${i}`), 'nosuch0', ...Array.from({ length: 40 }, (_, i) => `b${i}`)];
    const results = await Promise.allSettled(names.map((n) => nl.link.get(n)));
    results.forEach((r, i) => {
      if (names[i] === 'nosuch0') expect(r).toMatchObject({ status: 'rejected', reason: { code: 'ENODEV', subject: 'nosuch0' } });
      else expect(r).toMatchObject({ status: 'fulfilled', value: { name: names[i] } });
    });
  });
});

describe('netnsPathProblem', () => {
  let ns: TestNetns;
  let dir: string;

  beforeAll(() => {
    ns = createNetns('probe');
    dir = mkdtempSync(join(tmpdir(), 'lt-netns-'));
  });

  afterAll(() => {
    deleteNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a network namespace and names everything else', async () => {
    expect(await netnsPathProblem(ns.path)).toBeNull();
    expect(await netnsPathProblem('/proc/self/ns/net')).toBeNull();
    expect(await netnsPathProblem('/proc/self/ns/mnt')).toEqual({ reason: 'is a namespace of another kind, not a network namespace', certain: true });
    const file = join(dir, 'file');
    writeFileSync(file, '');
    expect(await netnsPathProblem(file)).toEqual({ reason: 'is a regular file, not a network namespace (not on nsfs)', certain: true });
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(await netnsPathProblem(fifo)).toEqual({ reason: 'is a FIFO, not a network namespace', certain: true });
    expect(await netnsPathProblem(dir)).toEqual({ reason: 'is a directory, not a network namespace', certain: true });
    expect(await netnsPathProblem(join(dir, 'none'))).toEqual({ reason: 'does not exist', certain: true });
    expect(await netnsPathProblem('relative/path')).toEqual({ reason: 'is not an absolute path', certain: true });
  });
});
