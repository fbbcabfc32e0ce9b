// Names across hosts: containers ask their gateway, the agent on their own host answers from the
// endpoint directory the controller streams to every agent, and forwards other names to the
// network's upstream (a dnsmasq in an "outside" namespace on the underlay) or the container's own.
// resolv.conf is written from the CNI result into /etc/netns/<ns>/ (which `ip netns exec` mounts
// over /etc/resolv.conf), as podman writes it from the same result. The plugin gets runtimeConfig
// `dns` and `aliases` in its stdin config the way podman's CNI backend passes --dns/--dns-search/
// --dns-option and --network-alias (with the container's name among the aliases, as podman adds
// it); podman itself is not run here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startCluster, runCni, cniEnv, run, waitFor, type Cluster, type Container } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';
import { track, untrack } from '../harness/registry.js';

const QUERY = resolve(import.meta.dirname, 'fixtures/dns-query.mjs');
const OUTSIDE_ADDR = '192.0.2.250';
/** Nobody has it: the red network's upstream is down. */
const DEAD_UPSTREAM = '192.0.2.251';
/** A second server in the outside namespace: an endpoint's own upstream (its DNS override). */
const OWN_UPSTREAM = '192.0.2.252';
/** Addresses of many.outside.test: its answer (over 512 octets) needs EDNS0 to come whole over UDP. */
const MANY = Array.from({ length: 60 }, (_, i) => `203.0.113.${i + 100}`);

interface Answer {
  name: string;
  type: string;
  rcode?: string;
  answers?: string[];
  ms?: number;
  error?: string;
}

interface Placed {
  c: Container;
  host: number;
  net: string;
  ipv4: string;
  ipv6: string;
  gw4: string;
  dns: { nameservers?: string[]; search?: string[]; options?: string[] };
}

describe('DNS for containers across hosts', () => {
  let ctl: TestController;
  let cluster: Cluster;
  let outsideNs = '';
  const dnsmasqs: ChildProcess[] = [];
  const eps: Record<string, Placed> = {};
  const etcDirs: string[] = [];

  /** Conflist plugin config as podman hands it to the plugin: capabilities, and runtimeConfig for those it uses. */
  const pluginConf = (host: number, net: string, runtimeConfig: object = {}) => ({
    cniVersion: '1.0.0',
    name: net,
    type: 'loom',
    agentSocket: cluster.agents[host]!.socket,
    capabilities: { dns: true, aliases: true, portMappings: true },
    ...(Object.keys(runtimeConfig).length ? { runtimeConfig } : {}),
  });
  const attach = async (name: string, host: number, net: string, runtimeDns?: object, more: { aliases?: string[]; args?: string } = {}) => {
    const c = await cluster.hosts[host]!.addContainer(name, { empty: true });
    const conf = pluginConf(host, net, { ...(runtimeDns ? { dns: runtimeDns } : {}), ...(more.aliases ? { aliases: { [net]: more.aliases } } : {}) });
    const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, `id-${name}`, `IgnoreUnknown=1;K8S_POD_NAME=${name}${more.args ? `;${more.args}` : ''}`));
    expect(r.code, r.stdout).toBe(0);
    const res = r.json as { ips: Array<{ address: string; gateway?: string }>; dns: Placed['dns'] };
    const bare = (i: number) => res.ips[i]?.address.split('/')[0] ?? '';
    eps[name] = { c, host, net, ipv4: bare(0), ipv6: bare(1), gw4: res.ips[0]!.gateway!, dns: res.dns };
    // What podman does with the result's dns: the container's resolv.conf.
    const dir = `/etc/netns/${c.netns}`;
    mkdirSync(dir, { recursive: true });
    track({ kind: 'dir', path: dir });
    etcDirs.push(dir);
    const lines = [
      ...(res.dns.nameservers ?? []).map((s) => `nameserver ${s}`),
      ...(res.dns.search?.length ? [`search ${res.dns.search.join(' ')}`] : []),
      ...(res.dns.options?.length ? [`options ${res.dns.options.join(' ')}`] : []),
    ];
    writeFileSync(join(dir, 'resolv.conf'), `${lines.join('\n')}\n`);
    return res;
  };
  const ask = async (from: string, questions: string[], timeoutMs = 4000): Promise<Answer[]> => {
    const out = await eps[from]!.c.exec(process.execPath, [QUERY, eps[from]!.gw4, String(timeoutMs), ...questions]);
    return out.trim().split('\n').map((l) => JSON.parse(l) as Answer);
  };
  const converge = async () => {
    const { revision } = await ctl.client.getStatus();
    const wait = await ctl.client.wait(revision, 10_000);
    expect(wait.converged, `pending: ${wait.pendingHosts.join(',')}`).toBe(true);
  };

  beforeAll(async () => {
    ctl = await startController({ hostDownAfterMs: 5000, heartbeatIntervalMs: 300 });
    await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', ipv6Cidr: 'fd00:b::/64', tunnelType: 'TUNNEL_TYPE_VXLAN', dns: { nameservers: [OUTSIDE_ADDR], search: [], options: [], domain: '' } });
    // Isolated (icc=false): names and DNS over TCP must not depend on allow rules.
    await ctl.client.createNetwork({ name: 'red', ipv4Cidr: '198.19.0.0/16', tunnelType: 'TUNNEL_TYPE_GRE', dns: { nameservers: [DEAD_UPSTREAM], search: [], options: [], domain: 'red.example' }, isolation: 'ISOLATION_ISOLATED' });
    cluster = await startCluster({ hosts: ['ha', 'hb'], controller: ctl.target });

    // The outside world: a namespace on the underlay with a DNS server for names Loom does not own.
    outsideNs = `${cluster.underlay.netns.slice(0, -3)}-out`;
    track({ kind: 'netns', name: outsideNs });
    await run('ip', ['netns', 'add', outsideNs]);
    const peer = `${cluster.underlay.tag}o`.slice(0, 15);
    await run('ip', ['-n', cluster.underlay.netns, 'link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outsideNs]);
    await run('ip', ['-n', cluster.underlay.netns, 'link', 'set', peer, 'master', 'br-ul', 'up']);
    await run('ip', ['-n', outsideNs, 'addr', 'add', `${OUTSIDE_ADDR}/24`, 'dev', 'eth0']);
    await run('ip', ['-n', outsideNs, 'link', 'set', 'eth0', 'up']);
    await run('ip', ['-n', outsideNs, 'link', 'set', 'lo', 'up']);
    // Its answers cross the hosts' userspace datapath (br-phy): checksums must be complete.
    await run('ip', ['netns', 'exec', outsideNs, 'ethtool', '-K', 'eth0', 'tx', 'off']);
    await run('ip', ['-n', outsideNs, 'addr', 'add', `${OWN_UPSTREAM}/24`, 'dev', 'eth0']);
    const startDnsmasq = (listen: string, records: string[]) => {
      const p = spawn('ip', [
        'netns', 'exec', outsideNs, 'dnsmasq', '--keep-in-foreground', '--no-resolv', '--no-hosts', '--bind-interfaces',
        `--listen-address=${listen}`, '--pid-file=', '--user=root', ...records.map((r) => `--host-record=${r}`),
      ], { stdio: 'ignore' });
      track({ kind: 'pid', pid: p.pid!, exe: 'ip' });
      dnsmasqs.push(p);
    };
    startDnsmasq(OUTSIDE_ADDR, ['www.outside.test,203.0.113.7', ...MANY.map((a) => `many.outside.test,${a}`)]);
    // The same name, another answer: tells which upstream answered.
    startDnsmasq(OWN_UPSTREAM, ['www.outside.test,203.0.113.8']);

    await attach('a1', 0, 'blue', { servers: [], searches: ['example.test'], options: ['ndots:1'] });
    // podman --network-alias cache --hostname bee: podman's aliases carry the container's name too.
    await attach('b1', 1, 'blue', undefined, { aliases: ['b1', 'cache'], args: 'HOSTNAME=bee' });
    await attach('b2', 1, 'red');
    // Red's upstream is down; this one brings its own (podman --dns).
    await attach('a3', 0, 'red', { servers: [OUTSIDE_ADDR] });
    await converge();
  }, 60_000);

  afterAll(async () => {
    for (const p of dnsmasqs) {
      if (!p.pid) continue;
      p.kill('SIGTERM');
      untrack({ kind: 'pid', pid: p.pid, exe: 'ip' });
    }
    await cluster?.stop();
    await ctl?.stop();
    if (outsideNs) {
      await run('ip', ['netns', 'del', outsideNs]).catch(() => undefined);
      untrack({ kind: 'netns', name: outsideNs });
    }
    for (const d of etcDirs) {
      await run('rm', ['-rf', d]).catch(() => undefined);
      untrack({ kind: 'dir', path: d });
    }
  });

  it('gives the gateway as nameserver and the network domain as first search domain (CNI result)', () => {
    const a1 = eps.a1!;
    expect(a1.dns.nameservers).toEqual([a1.gw4, 'fd00:b::1']);
    expect(a1.dns.search).toEqual(['blue.loom', 'example.test']);
    expect(a1.dns.options).toEqual(['ndots:1']);
    expect(eps.b2!.dns).toEqual({ nameservers: [eps.b2!.gw4], search: ['red.example'] }); // red's own domain
  });

  it('resolves a container on another host by name and name.domain: A, AAAA, PTR', async () => {
    const b1 = eps.b1!;
    const [bare, fqdn, aaaa, ptr] = await ask('a1', ['b1:A', 'b1.blue.loom:A', 'b1.blue.loom:AAAA', `${b1.ipv4.split('.').reverse().join('.')}.in-addr.arpa:PTR`]);
    expect(bare).toMatchObject({ rcode: 'NOERROR', answers: [b1.ipv4] });
    expect(fqdn).toMatchObject({ rcode: 'NOERROR', answers: [b1.ipv4] });
    expect(aaaa).toMatchObject({ rcode: 'NOERROR', answers: [b1.ipv6] });
    expect(ptr).toMatchObject({ rcode: 'NOERROR', answers: ['b1.blue.loom'] });
  });

  it('answers over IPv6 too (the gateway fd00:b::1)', async () => {
    const out = await eps.a1!.c.exec(process.execPath, [QUERY, 'fd00:b::1', '4000', 'b1.blue.loom:A']);
    expect(JSON.parse(out.trim())).toMatchObject({ rcode: 'NOERROR', answers: [eps.b1!.ipv4] });
  });

  it('connects to it by name through the resolv.conf of the CNI result (glibc, search domain)', async () => {
    expect(await eps.a1!.c.exec('getent', ['ahostsv4', 'b1'])).toContain(eps.b1!.ipv4);
    await eps.a1!.c.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', 'b1']);
    await eps.a1!.c.exec('ping', ['-6', '-c', '1', '-W', '2', 'b1.blue.loom']);
  });

  it('a name of another network does not exist', async () => {
    const [other, ptr] = await ask('a1', ['b2.red.example:A', `${eps.b2!.ipv4.split('.').reverse().join('.')}.in-addr.arpa:PTR`]);
    expect(other).toMatchObject({ rcode: 'NXDOMAIN', answers: [] });
    // Not answered from red's directory: forwarded upstream, which knows nothing of it.
    expect(ptr!.answers).toEqual([]);
  });

  it("answers under a network's own domain (red.example) across hosts", async () => {
    const [b2] = await ask('a3', ['b2.red.example:A']);
    expect(b2).toMatchObject({ rcode: 'NOERROR', answers: [eps.b2!.ipv4] });
  });

  it('forwards names outside Loom to the upstream in the outside namespace', async () => {
    const [www] = await ask('a1', ['www.outside.test:A']);
    expect(www).toMatchObject({ rcode: 'NOERROR', answers: ['203.0.113.7'] });
  });

  it("uses a container's own servers (runtimeConfig dns.servers) over its network's", async () => {
    const [www] = await ask('a3', ['www.outside.test:A']);
    expect(www).toMatchObject({ rcode: 'NOERROR', answers: ['203.0.113.7'] });
  });

  it('answers SERVFAIL within the upstream timeout when the upstream is down', async () => {
    const [www] = await ask('b2', ['www.outside.test:A'], 5000);
    expect(www).toMatchObject({ rcode: 'SERVFAIL' });
    expect(www!.ms).toBeLessThan(3000); // the forwarder's whole-query timeout is 2.5 s
  });

  it("resolves a container on another host by its hostname and its aliases (CNI aliases capability)", async () => {
    const b1 = eps.b1!;
    const [alias, aliasFqdn, host, ptr] = await ask('a1', ['cache:A', 'cache.blue.loom:AAAA', 'bee.blue.loom:A', `${b1.ipv4.split('.').reverse().join('.')}.in-addr.arpa:PTR`]);
    expect(alias).toMatchObject({ rcode: 'NOERROR', answers: [b1.ipv4] });
    expect(aliasFqdn).toMatchObject({ rcode: 'NOERROR', answers: [b1.ipv6] });
    expect(host).toMatchObject({ rcode: 'NOERROR', answers: [b1.ipv4] });
    expect(ptr).toMatchObject({ answers: ['b1.blue.loom'] }); // the endpoint's own name only
    expect(await ctl.client.getEndpoint('blue', 'id-b1')).toMatchObject({ hostname: 'bee', aliases: ['cache'] });
    // Another network's asker: the alias does not exist for it.
    const [other] = await ask('b2', ['cache.blue.loom:A']);
    expect(other).toMatchObject({ rcode: 'NXDOMAIN' });
  });

  it('refuses an ADD whose alias another container of the network has, with a CNI error, leaving nothing behind', async () => {
    const c = await cluster.hosts[0]!.addContainer('a4', { empty: true });
    const r = await runCni(cluster.cniBin, 'ADD', pluginConf(0, 'blue', { aliases: { blue: ['a4', 'Cache'] } }), cniEnv(c, 'id-a4', 'IgnoreUnknown=1;K8S_POD_NAME=a4'));
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 100, msg: expect.stringContaining('alias cache is already a DNS name of endpoint b1') });
    await expect(ctl.client.getEndpoint('blue', 'id-a4')).rejects.toMatchObject({ code: 5 });
    const bad = await runCni(cluster.cniBin, 'ADD', pluginConf(0, 'blue', { aliases: { blue: 'cache' } }), cniEnv(c, 'id-a4'));
    expect(bad.json).toMatchObject({ code: 7, msg: expect.stringContaining('"runtimeConfig.aliases.blue" must be a list') });
  });

  it("sends UDP answers as large as the client's EDNS0 size allows, truncated without EDNS0", async () => {
    const [classic, edns] = await ask('b1', ['many.outside.test:A', 'many.outside.test:A:1232']);
    expect(classic).toMatchObject({ rcode: 'NOERROR', tc: true, answers: [] });
    expect(edns).toMatchObject({ rcode: 'NOERROR', tc: false });
    expect([...edns!.answers!].sort()).toEqual([...MANY].sort());
  });

  it('answers over TCP at the gateway (through the host path), so a client retries a truncated answer there (glibc)', async () => {
    const [local, outside] = await ask('a1', ['cache.blue.loom:A:0:tcp', 'many.outside.test:A:0:tcp']);
    expect(local).toMatchObject({ rcode: 'NOERROR', answers: [eps.b1!.ipv4] });
    expect(outside).toMatchObject({ rcode: 'NOERROR', tc: false });
    expect(outside!.answers).toHaveLength(MANY.length);
    const v6 = await eps.a1!.c.exec(process.execPath, [QUERY, 'fd00:b::1', '4000', 'cache.blue.loom:AAAA:0:tcp']);
    expect(JSON.parse(v6.trim())).toMatchObject({ rcode: 'NOERROR', answers: [eps.b1!.ipv6] });
    // glibc without edns0: the UDP answer comes truncated, it asks again over TCP and gets every address.
    const listed = await eps.b1!.c.exec('getent', ['ahostsv4', 'many.outside.test']);
    expect(new Set(listed.trim().split('\n').map((l) => l.split(/\s+/)[0]))).toEqual(new Set(MANY));
    // On an isolated network too (the answer passes conntrack as the reply it is).
    const [isolated] = await ask('a3', ['b2.red.example:A:0:tcp']);
    expect(isolated).toMatchObject({ rcode: 'NOERROR', answers: [eps.b2!.ipv4] });
  });

  it("sends an endpoint's outside names to its own upstream once an update (DNS override) is applied, and a new alias resolves as wait returns", async () => {
    const [before] = await ask('a1', ['www.outside.test:A']);
    expect(before).toMatchObject({ rcode: 'NOERROR', answers: ['203.0.113.7'] }); // its network's upstream
    const updated = await ctl.client.updateEndpoint({ network: 'blue', containerId: 'id-a1', updateMask: ['dns'], dns: { nameservers: [OWN_UPSTREAM] } });
    expect(updated.dnsOverride).toMatchObject({ nameservers: [OWN_UPSTREAM] });
    await ctl.client.updateEndpoint({ network: 'blue', containerId: 'id-b1', updateMask: ['aliases'], aliases: ['cache', 'store'] });
    await converge();
    const [own, store, b1own] = await ask('a1', ['www.outside.test:A', 'store.blue.loom:A']).then(async (r) => [...r, ...(await ask('b1', ['www.outside.test:A']))]);
    expect(own).toMatchObject({ rcode: 'NOERROR', answers: ['203.0.113.8'] });
    expect(store).toMatchObject({ rcode: 'NOERROR', answers: [eps.b1!.ipv4] });
    expect(b1own).toMatchObject({ rcode: 'NOERROR', answers: ['203.0.113.7'] }); // only a1 was changed
  });

  it('keeps answering across an agent restart (the gap is measured)', async () => {
    // While no agent runs, queries to the gateway go unanswered (the packet-in has no taker); the
    // restarted agent answers once it has its first complete view. Most of the gap is the agent
    // process starting (tsx compiles the source here; the release runs compiled JavaScript).
    const agent = cluster.agents[0]!;
    await agent.stop();
    const stopped = performance.now();
    let up = 0;
    const started = agent.start().then(() => (up = performance.now()));
    let answered: number;
    try {
      answered = await waitFor('a1 to resolve b1 again', async () => {
        const [a] = await ask('a1', ['b1.blue.loom:A'], 300);
        return a!.rcode === 'NOERROR' && a!.answers!.includes(eps.b1!.ipv4) ? performance.now() : undefined;
      }, 60_000, 0);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nagent log tail:\n${agent.logs.slice(-3000)}`, { cause: err });
    }
    await started;
    console.log(`DNS gap across an agent restart: ${Math.round(answered - stopped)} ms from stop to first answer; the agent served its local API after ${Math.round(up - stopped)} ms`);
    // The restarted agent kept the container's own servers (OVSDB port record).
    const [www] = await ask('a3', ['www.outside.test:A']);
    expect(www).toMatchObject({ rcode: 'NOERROR', answers: ['203.0.113.7'] });
  }, 90_000);

  it('a deleted endpoint is NXDOMAIN on every host once wait returns', async () => {
    const b1 = eps.b1!;
    const conf = { cniVersion: '1.0.0', name: 'blue', type: 'loom', agentSocket: cluster.agents[1]!.socket };
    expect((await runCni(cluster.cniBin, 'DEL', conf, cniEnv(b1.c, 'id-b1'))).code).toBe(0);
    // DEL answers once the container is cut off; the release at the controller follows at once.
    await waitFor('b1 released at the controller', () => ctl.client.getEndpoint('blue', 'id-b1').then(() => false, (err: { code?: number }) => err.code === 5), 5000, 20);
    await converge();
    const [gone] = await ask('a1', ['b1.blue.loom:A']);
    expect(gone).toMatchObject({ rcode: 'NXDOMAIN' });
  });
});
