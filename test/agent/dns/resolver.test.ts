import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import * as dnsPacket from 'dns-packet';
import { DnsDirectory, reverseName } from '../../../src/agent/dns/directory.js';
import { DnsResolver, type DnsMetrics } from '../../../src/agent/dns/resolver.js';

const directory = () =>
  new DnsDirectory(
    [
      { network: 'blue', domain: 'blue.loom' },
      { network: 'red', domain: 'red.loom' },
    ],
    [
      { network: 'blue', names: ['web', 'www'], ipv4: '198.18.0.2', ipv6: 'fd00:b::2' },
      { network: 'blue', names: ['db'], ipv4: '198.18.0.3' },
      { network: 'red', names: ['secret'], ipv4: '198.19.0.2' },
    ],
  );

/** dns-packet decodes the rcode, its types do not declare it. */
const rcode = (msg: Buffer | undefined) => (dnsPacket.decode(msg!) as dnsPacket.DecodedPacket & { rcode: string }).rcode;
const query = (name: string, type: dnsPacket.RecordType = 'A', id = 7) => dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
const BLUE = { networks: ['blue'], upstreams: [] as string[] };

describe('DnsDirectory', () => {
  it('answers bare names and names in the network domain, case-insensitively', () => {
    const d = directory();
    expect(d.lookup('web', 'A', ['blue'])).toEqual({ kind: 'local', name: 'web', addresses: ['198.18.0.2'] });
    expect(d.lookup('WWW.Blue.Loom.', 'AAAA', ['blue'])).toEqual({ kind: 'local', name: 'www.blue.loom', addresses: ['fd00:b::2'] });
    expect(d.lookup('db.blue.loom', 'AAAA', ['blue'])).toEqual({ kind: 'local', name: 'db.blue.loom', addresses: [] });
  });

  it("another network's names do not exist for the asker", () => {
    const d = directory();
    expect(d.lookup('secret.red.loom', 'A', ['blue'])).toEqual({ kind: 'nxdomain', zone: 'red.loom' });
    expect(d.lookup('secret', 'A', ['blue'])).toEqual({ kind: 'forward' });
    expect(d.lookup('nope.blue.loom', 'A', ['blue'])).toEqual({ kind: 'nxdomain', zone: 'blue.loom' });
    expect(d.lookup('example.org', 'A', ['blue'])).toEqual({ kind: 'forward' });
  });

  it('answers PTR for endpoint addresses of the asker networks only', () => {
    const d = directory();
    expect(reverseName('198.18.0.2')).toBe('2.0.18.198.in-addr.arpa');
    expect(reverseName('fd00:b::2')).toBe(`2.${'0.'.repeat(23)}b.0.0.0.0.0.d.f.ip6.arpa`);
    expect(d.lookup('2.0.18.198.in-addr.arpa', 'PTR', ['blue'])).toEqual({ kind: 'ptr', names: ['web.blue.loom'] }); // its first name only
    expect(d.lookup(reverseName('fd00:b::2'), 'PTR', ['blue'])).toEqual({ kind: 'ptr', names: ['web.blue.loom'] }); // its first name only
    expect(d.lookup('2.0.19.198.in-addr.arpa', 'PTR', ['blue'])).toEqual({ kind: 'forward' });
  });
});

describe('DnsResolver', () => {
  const servers: Array<dgram.Socket | net.Server> = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  const observed: string[] = [];
  const metrics: DnsMetrics = { observe: (rcode, source) => observed.push(`${source}:${rcode}`) };

  it('answers A, AAAA and PTR from the directory, authoritative, with the asker ID', async () => {
    const r = new DnsResolver(metrics);
    r.setDirectory(directory());
    const a = dnsPacket.decode((await r.handle(query('web.blue.loom', 'A', 1234), BLUE))!);
    expect(a).toMatchObject({ id: 1234, type: 'response', rcode: 'NOERROR', flag_aa: true, flag_rd: true });
    expect(a.answers).toEqual([expect.objectContaining({ type: 'A', name: 'web.blue.loom', data: '198.18.0.2', ttl: 5 })]);
    const aaaa = dnsPacket.decode((await r.handle(query('web', 'AAAA'), BLUE))!);
    expect(aaaa.answers?.map((x) => (x as dnsPacket.StringAnswer).data)).toEqual(['fd00:b::2']);
    const ptr = dnsPacket.decode((await r.handle(query('3.0.18.198.in-addr.arpa', 'PTR'), BLUE))!);
    expect(ptr.answers?.map((x) => (x as dnsPacket.StringAnswer).data)).toEqual(['db.blue.loom']);
  });

  it('answers repeated queries from its cache with each asker ID, and forgets on a new directory', async () => {
    const r = new DnsResolver();
    r.setDirectory(directory());
    await r.handle(query('web.blue.loom', 'A', 1), BLUE);
    const again = r.answerFromCache(query('web.blue.loom', 'A', 2), BLUE)!;
    expect(dnsPacket.decode(again)).toMatchObject({ id: 2, answers: [expect.objectContaining({ data: '198.18.0.2' })] });
    r.setDirectory(new DnsDirectory([{ network: 'blue', domain: 'blue.loom' }], []));
    expect(r.answerFromCache(query('web.blue.loom', 'A', 3), BLUE)).toBeUndefined();
    expect(rcode(await r.handle(query('web.blue.loom', 'A', 3), BLUE))).toBe('NXDOMAIN');
  });

  it('NXDOMAIN for a deleted endpoint and for another network, FORMERR for garbage', async () => {
    const r = new DnsResolver();
    r.setDirectory(directory());
    expect(rcode(await r.handle(query('secret.red.loom'), BLUE))).toBe('NXDOMAIN');
    const garbage = Buffer.concat([query('web.blue.loom').subarray(0, 12), Buffer.from([0xff, 0xff, 0xff])]);
    expect(rcode(await r.handle(garbage, BLUE))).toBe('FORMERR');
    expect(await r.handle(Buffer.from([1, 2, 3]), BLUE)).toBeUndefined();
  });

  it('forwards other names upstream and relays the answer', async () => {
    const upstream = await fakeUpstream((q) => dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers: [{ type: 'A', name: 'example.org', data: '192.0.2.80', ttl: 60 }] }));
    const r = new DnsResolver(metrics);
    r.setDirectory(directory());
    const a = dnsPacket.decode((await r.handle(query('example.org', 'A', 99), { networks: ['blue'], upstreams: [`127.0.0.1:${upstream.port}`] }))!);
    expect(a).toMatchObject({ id: 99, rcode: 'NOERROR', answers: [expect.objectContaining({ data: '192.0.2.80' })] });
    expect(observed).toContain('forwarded:NOERROR');
  });

  it('falls back to TCP when the UDP answer is truncated', async () => {
    const big = (q: dnsPacket.Packet) =>
      dnsPacket.encode({ type: 'response', id: q.id, flags: 0, questions: q.questions, answers: Array.from({ length: 100 }, (_, i) => ({ type: 'A', name: 'big.example', data: `192.0.2.${i}`, ttl: 60 }) as dnsPacket.Answer) });
    const upstream = await fakeUpstream((q) => {
      const header = Buffer.from(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.TRUNCATED_RESPONSE, questions: q.questions }));
      return header;
    }, big);
    const r = new DnsResolver();
    const a = dnsPacket.decode((await r.handle(query('big.example'), { networks: ['blue'], upstreams: [`127.0.0.1:${upstream.port}`] }))!);
    expect(a.answers).toHaveLength(100);
    expect(a.flag_tc).toBe(false);
  });

  it('SERVFAIL within the timeout when upstreams fail or stay silent', async () => {
    const silent = dgram.createSocket('udp4');
    servers.push(silent);
    await new Promise<void>((res) => silent.bind(0, '127.0.0.1', () => res()));
    const r = new DnsResolver(undefined, { attemptTimeoutMs: 100, totalTimeoutMs: 250 });
    const t0 = Date.now();
    const a = dnsPacket.decode((await r.handle(query('example.org', 'A', 5), { networks: ['blue'], upstreams: [`127.0.0.1:${silent.address().port}`, '127.0.0.1:1'] }))!);
    expect(a).toMatchObject({ id: 5, rcode: 'SERVFAIL' });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(rcode(await r.handle(query('example.org'), { networks: ['blue'], upstreams: [] }))).toBe('SERVFAIL');
  });

  /** A UDP (and TCP) DNS server on loopback answering with `udp` (and `tcp`), both on one port. */
  async function fakeUpstream(udp: (q: dnsPacket.Packet) => Buffer, tcp?: (q: dnsPacket.Packet) => Buffer): Promise<{ port: number }> {
    // A free TCP port first, then UDP on the same number (retried: that one may be taken).
    for (let attempt = 0; ; attempt++) {
      const srv = net.createServer((c) =>
        c.on('data', (d: Buffer) => {
          const answer = (tcp ?? udp)(dnsPacket.decode(d.subarray(2)));
          const len = Buffer.alloc(2);
          len.writeUInt16BE(answer.length);
          c.end(Buffer.concat([len, answer]));
        }),
      );
      await new Promise<void>((res, rej) => srv.once('error', rej).listen(0, '127.0.0.1', () => res()));
      const port = (srv.address() as net.AddressInfo).port;
      const sock = dgram.createSocket('udp4');
      sock.on('message', (msg, rinfo) => sock.send(udp(dnsPacket.decode(msg)), rinfo.port, rinfo.address));
      const bound = await new Promise<boolean>((res) => {
        sock.once('error', () => res(false));
        sock.bind(port, '127.0.0.1', () => res(true));
      });
      if (bound) {
        servers.push(sock, srv);
        return { port };
      }
      srv.close();
      try {
        sock.close();
      } catch {
        /* never bound */
      }
      if (attempt >= 20) throw new Error('no free port for a fake upstream');
    }
  }
});
