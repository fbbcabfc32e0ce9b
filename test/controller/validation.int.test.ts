import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isServiceError, type LoomClient } from '../../src/api/client.js';
import type { Network } from '../../src/api/types.js';
import { SimAgent, startController, type TestController } from './helpers.js';

let tc: TestController;
let c: LoomClient;

beforeAll(async () => {
  tc = await startController();
  c = tc.client;
  await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', vni: 100 });
  await c.createNetwork({ name: 'tiny', ipv4Cidr: '10.9.0.0/29', ipv6Cidr: 'fd00:9::/64' });
  await c.register({ name: 'h1', vtep: '192.0.2.1' });
  await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'taken', name: 'web', mac: '02:00:00:00:00:01', ipv4: '10.1.0.50' });
});
afterAll(async () => {
  await tc.stop();
});

/** Expects the call to fail with `code` and a message matching `msg`. */
async function expectStatus(p: Promise<unknown>, code: status, msg: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!isServiceError(err)) throw new Error(`expected gRPC ${status[code]}, got ${err === null ? 'success' : String(err)}`);
  expect(status[err.code]).toBe(status[code]);
  expect(err.details).toMatch(msg);
}

const net = (n: Partial<Network>): Partial<Network> => ({ name: 'x', ipv4Cidr: '10.50.0.0/24', ...n });

describe('network validation', () => {
  it.each([
    ['a name that is not a DNS label', net({ name: 'Bad_Name' }), status.INVALID_ARGUMENT, /not a DNS label/],
    ['a missing IPv4 CIDR', net({ ipv4Cidr: '' }), status.INVALID_ARGUMENT, /ipv4 CIDR is required/],
    ['CIDR syntax', net({ ipv4Cidr: '10.50.0.0/33' }), status.INVALID_ARGUMENT, /not an IPv4 CIDR/],
    ['host bits set', net({ ipv4Cidr: '10.50.0.1/24' }), status.INVALID_ARGUMENT, /did you mean 10\.50\.0\.0\/24/],
    ['IPv6 in the IPv4 field', net({ ipv4Cidr: 'fd00::/64' }), status.INVALID_ARGUMENT, /not an IPv4 CIDR/],
    ['an overlapping IPv4 CIDR', net({ ipv4Cidr: '10.1.0.128/25' }), status.ALREADY_EXISTS, /overlaps network blue/],
    ['an overlapping IPv6 CIDR', net({ ipv6Cidr: 'fd00:9::/48' }), status.ALREADY_EXISTS, /overlaps network tiny/],
    ['a VNI out of range', net({ vni: 16_777_216 }), status.INVALID_ARGUMENT, /out of range 1\.\.16777215/],
    ['a VNI in use', net({ vni: 100 }), status.ALREADY_EXISTS, /VNI 100 is already used by network blue/],
    ['an existing name', net({ name: 'blue' }), status.ALREADY_EXISTS, /network blue already exists/],
    ['an MTU too small', net({ mtu: 100 }), status.INVALID_ARGUMENT, /MTU 100 is out of range/],
    ['a gateway outside the range', net({ gateways: ['10.99.0.1'] }), status.INVALID_ARGUMENT, /outside the network/],
    ['a bad DNS domain', net({ dns: { nameservers: [], search: [], options: [], domain: 'bad_domain' } }), status.INVALID_ARGUMENT, /DNS domain "bad_domain" is not a domain name/],
    ['a DNS domain under .arpa', net({ dns: { nameservers: [], search: [], options: [], domain: '10.in-addr.arpa' } }), status.INVALID_ARGUMENT, /under \.arpa/],
    ['a bad DNS server', net({ dns: { nameservers: ['dns.example'], search: [], options: [], domain: '' } }), status.INVALID_ARGUMENT, /nameserver "dns.example"/],
    ['a block prefix larger than the network', net({ ipv4BlockPrefix: 20 }), status.INVALID_ARGUMENT, /block prefix \/20/],
    ['"this network" 0.0.0.0/8', net({ ipv4Cidr: '0.1.0.0/16' }), status.INVALID_ARGUMENT, /ipv4 CIDR "0\.1\.0\.0\/16" overlaps a reserved range: 0\.0\.0\.0\/8/],
    ['loopback 127.0.0.0/8', net({ ipv4Cidr: '127.5.0.0/16' }), status.INVALID_ARGUMENT, /ipv4 CIDR .* reserved range: 127\.0\.0\.0\/8, loopback/],
    ['a range containing link-local', net({ ipv4Cidr: '169.0.0.0/8' }), status.INVALID_ARGUMENT, /"169\.0\.0\.0\/8" overlaps a reserved range: 169\.254\.0\.0\/16/],
    ['link-local 169.254.0.0/16', net({ ipv4Cidr: '169.254.1.0/24' }), status.INVALID_ARGUMENT, /reserved range: 169\.254\.0\.0\/16, link-local/],
    ['multicast 224.0.0.0/4', net({ ipv4Cidr: '239.1.0.0/16' }), status.INVALID_ARGUMENT, /reserved range: 224\.0\.0\.0\/4, multicast/],
    ['reserved 240.0.0.0/4', net({ ipv4Cidr: '240.0.0.0/8' }), status.INVALID_ARGUMENT, /reserved range: 240\.0\.0\.0\/4/],
    ['the range of the limited broadcast', net({ ipv4Cidr: '255.255.255.0/24' }), status.INVALID_ARGUMENT, /255\.255\.255\.255/],
    ['IPv6 multicast ff00::/8', net({ ipv6Cidr: 'ff05::/64' }), status.INVALID_ARGUMENT, /ipv6 CIDR "ff05::\/64" overlaps a reserved range: ff00::\/8, multicast/],
    ['IPv6 link-local fe80::/10', net({ ipv6Cidr: 'fe80::/64' }), status.INVALID_ARGUMENT, /ipv6 CIDR .* fe80::\/10, link-local/],
    ['IPv4-mapped IPv6', net({ ipv6Cidr: '::ffff:0:0/96' }), status.INVALID_ARGUMENT, /ipv6 CIDR .* ::ffff:0:0\/96, IPv4-mapped/],
    ['a range holding ::1 and ::', net({ ipv6Cidr: '::/64' }), status.INVALID_ARGUMENT, /ipv6 CIDR "::\/64" overlaps a reserved range: ::\/128/],
    ['a range containing a host\'s VTEP', net({ ipv4Cidr: '192.0.2.0/24' }), status.INVALID_ARGUMENT, /ipv4 CIDR 192\.0\.2\.0\/24 contains the VTEP 192\.0\.2\.1 of host h1/],
  ])('refuses %s', async (_what, spec, code, msg) => {
    await expectStatus(c.createNetwork(spec), code, msg);
  });

  it('reports unknown networks as NOT_FOUND', async () => {
    await expectStatus(c.getNetwork('nope'), status.NOT_FOUND, /network nope does not exist/);
    await expectStatus(c.deleteNetwork('nope'), status.NOT_FOUND, /does not exist/);
  });

  it('refuses to delete a network that still has endpoints', async () => {
    await expectStatus(c.deleteNetwork('blue'), status.FAILED_PRECONDITION, /still has 1 endpoint/);
  });

  it('allocates a free VNI when none is given', async () => {
    const n = await c.createNetwork({ name: 'auto', ipv4Cidr: '10.60.0.0/24' });
    expect(n.vni).toBe(2); // the lowest free: tiny was given 1, blue has 100
    expect(n.mtu).toBe(1450);
    expect(n.gateways).toEqual(['10.60.0.1']);
    await c.deleteNetwork('auto');
  });
});

describe('host validation', () => {
  it('refuses a VTEP that is not a unicast address', async () => {
    await expectStatus(c.register({ name: 'h9', vtep: 'not-an-ip' }), status.INVALID_ARGUMENT, /VTEP "not-an-ip" is not an IP address/);
    await expectStatus(c.register({ name: 'h9', vtep: '239.1.1.1' }), status.INVALID_ARGUMENT, /multicast/);
  });
  it.each([
    ['127.0.0.1', /VTEP 127\.0\.0\.1 is in 127\.0\.0\.0\/8, loopback/],
    ['127.1.2.3', /loopback/],
    ['::1', /VTEP ::1 is in ::1\/128, loopback/],
    ['0.0.0.0', /VTEP 0\.0\.0\.0 is in 0\.0\.0\.0\/8, unspecified/],
    ['::', /VTEP :: is in ::\/128, unspecified/],
    ['255.255.255.255', /broadcast/],
    ['ff02::1', /ff00::\/8, multicast/],
    ['fe80::1', /fe80::\/10, IPv6 link-local .* zone/],
    ['::ffff:192.0.2.7', /IPv4-mapped .* give the IPv4 address itself/],
    ['10.1.0.9', /VTEP 10\.1\.0\.9 is inside the range 10\.1\.0\.0\/24 of overlay network blue/],
    ['fd00:9::5', /inside the range fd00:9::\/64 of overlay network tiny/],
  ])('refuses the VTEP %s', async (vtep, msg) => {
    await expectStatus(c.register({ name: 'h9', vtep }), status.INVALID_ARGUMENT, msg);
  });
  it('accepts an IPv4 link-local VTEP (one layer-2 underlay)', async () => {
    await c.register({ name: 'h-ll', vtep: '169.254.10.1' });
  });
  it('refuses a VTEP registered by another host', async () => {
    await expectStatus(c.register({ name: 'h9', vtep: '192.0.2.1' }), status.ALREADY_EXISTS, /already registered by host h1/);
  });
  it('refuses heartbeats and watches of unregistered hosts', async () => {
    await expectStatus(c.heartbeat('ghost'), status.NOT_FOUND, /not registered/);
    const a = new SimAgent(tc.target, 'ghost', '192.0.2.99');
    a.watch();
    await a.until(() => a.error !== null);
    expect(a.error!.code).toBe(status.NOT_FOUND);
    a.close();
  });
});

describe('endpoint validation', () => {
  const ep = { network: 'blue', host: 'h1', containerId: 'c1' };
  it.each([
    ['an unknown network', { ...ep, network: 'nope' }, status.NOT_FOUND, /network nope does not exist/],
    ['an unregistered host', { ...ep, host: 'h7' }, status.FAILED_PRECONDITION, /host h7 is not registered/],
    ['a malformed container id', { ...ep, containerId: 'a b' }, status.INVALID_ARGUMENT, /container id "a b"/],
    ['a duplicate container id', { ...ep, containerId: 'taken' }, status.ALREADY_EXISTS, /container taken already has an endpoint/],
    ['a duplicate name', { ...ep, name: 'web' }, status.ALREADY_EXISTS, /name web is already used by container taken/],
    ['a name with whitespace', { ...ep, name: 'my web' }, status.INVALID_ARGUMENT, /endpoint name "my web" contains U\+0020/],
    ['a name with a slash', { ...ep, name: 'ns/web' }, status.INVALID_ARGUMENT, /contains '\/'/],
    ['a name over 253 bytes', { ...ep, name: 'a'.repeat(254) }, status.INVALID_ARGUMENT, /254 bytes long; at most 253/],
    ['a malformed MAC', { ...ep, mac: '02:00:00:00:01' }, status.INVALID_ARGUMENT, /MAC "02:00:00:00:01"/],
    ['a multicast MAC', { ...ep, mac: '01:00:5e:00:00:01' }, status.INVALID_ARGUMENT, /multicast/],
    ['a MAC in use', { ...ep, mac: '02:00:00:00:00:01' }, status.ALREADY_EXISTS, /MAC 02:00:00:00:00:01 is already used/],
    ['an address outside the range', { ...ep, ipv4: '10.2.0.5' }, status.INVALID_ARGUMENT, /outside network blue's range 10\.1\.0\.0\/24/],
    ['an address in use', { ...ep, ipv4: '10.1.0.50' }, status.ALREADY_EXISTS, /10\.1\.0\.50 is already in use by endpoint taken/],
    ['the gateway address', { ...ep, ipv4: '10.1.0.1' }, status.INVALID_ARGUMENT, /is the gateway/],
    ['the broadcast address', { ...ep, ipv4: '10.1.0.255' }, status.INVALID_ARGUMENT, /broadcast/],
    ['a malformed address', { ...ep, ipv4: '10.1.0' }, status.INVALID_ARGUMENT, /not a valid IPv4 address/],
    ['IPv6 on an IPv4-only network', { ...ep, ipv6: 'fd00::5' }, status.INVALID_ARGUMENT, /has no IPv6 CIDR/],
  ])('refuses %s', async (_what, req, code, msg) => {
    await expectStatus(c.createEndpoint(req), code, msg);
  });

  it('reports RESOURCE_EXHAUSTED when a network is full, and frees addresses on delete', async () => {
    // 10.9.0.0/29: 8 addresses minus network, broadcast and gateway = 5.
    for (let i = 0; i < 5; i++) await c.createEndpoint({ network: 'tiny', host: 'h1', containerId: `t${i}` });
    await expectStatus(c.createEndpoint({ network: 'tiny', host: 'h1', containerId: 't5' }), status.RESOURCE_EXHAUSTED, /no free IPv4 address left/);
    await c.deleteEndpoint('tiny', 't2');
    const again = await c.createEndpoint({ network: 'tiny', host: 'h1', containerId: 't5' });
    expect(again.ipv4).toBe('10.9.0.4/29');
  });

  it('reports unknown endpoints as NOT_FOUND', async () => {
    await expectStatus(c.getEndpoint('blue', 'nope'), status.NOT_FOUND, /container nope has no endpoint on network blue/);
    await expectStatus(c.deleteEndpoint('blue', 'nope'), status.NOT_FOUND, /no endpoint/);
  });
});

describe('transport limits', () => {
  it('refuses oversized requests and garbage bytes without falling over', async () => {
    await expectStatus(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'x'.repeat(2 << 20) }), status.RESOURCE_EXHAUSTED, /larger than max/);
    const garbage = await new Promise<unknown>((resolve) => {
      c.raw.makeUnaryRequest(
        '/loom.v1.EndpointService/CreateEndpoint',
        () => Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]),
        (b: Buffer) => b,
        {},
        (err) => resolve(err),
      );
    });
    expect(isServiceError(garbage) && garbage.code).not.toBe(status.OK);
    // Still serving.
    expect((await c.getNetwork('blue')).name).toBe('blue');
  });
});
