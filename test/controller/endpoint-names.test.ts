import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/controller/errors.js';
import { toEndpointInfo } from '../../src/controller/convert.js';
import { memoryController, registerHosts } from './fixtures.js';

async function blue() {
  const c = await memoryController();
  await registerHosts(c, 1);
  await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24', dns: { nameservers: ['192.0.2.53'], search: ['corp.example'], options: ['rotate'], domain: '' } });
  return c;
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return `${(err as ApiError).code}: ${(err as ApiError).message}`;
}

describe('endpoint hostname, aliases and DNS override', () => {
  it('keeps a hostname and aliases given at create (lower case, the own name dropped) and shows them to agents', async () => {
    const c = await blue();
    const ep = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a1', name: 'Web', hostname: 'WWW.', aliases: ['frontend', 'web', 'FrontEnd', 'api.internal'] });
    expect(ep.hostname).toBe('www');
    expect(ep.aliases).toEqual(['frontend', 'api.internal']);
    const rec = c.state.networks.get('blue')!.endpoints.get('a1')!.rec;
    expect(toEndpointInfo(rec)).toMatchObject({ hostname: 'www', aliases: ['frontend', 'api.internal'], dns: null });
    // Without one, the hostname is the derived name.
    expect((await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a2', name: 'Db_1' })).hostname).toBe('db-1');
  });

  it('refuses aliases and hostnames that are not DNS names, and names another endpoint answers to', async () => {
    const c = await blue();
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a1', name: 'web', aliases: ['frontend'] });
    expect(await refusal(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b1', aliases: ['under_score'] }))).toMatch(/INVALID_ARGUMENT: alias "under_score" is not a DNS name/);
    expect(await refusal(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b1', aliases: ['-x'] }))).toMatch(/alias "-x" is not a DNS name/);
    expect(await refusal(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b1', aliases: ['1.0.0.10.in-addr.arpa'] }))).toMatch(/may not be under \.arpa/);
    expect(await refusal(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b1', hostname: 'a'.repeat(64) }))).toMatch(/hostname "a{64}" is not a DNS name/);
    expect(await refusal(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b1', aliases: Array.from({ length: 33 }, (_, i) => `n${i}`) }))).toMatch(/at most 32 aliases/);
    expect(await refusal(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b1', aliases: ['frontend'] }))).toMatch(
      /ALREADY_EXISTS: alias frontend is already a DNS name of endpoint web \(container a1\) on network blue/,
    );
    expect(await refusal(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b1', hostname: 'web' }))).toMatch(/hostname web is already a DNS name of endpoint web/);
    expect(await refusal(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b1', dns: { domain: 'x.example' } }))).toMatch(/may not set a domain/);
    expect(await refusal(c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'b1', dns: { nameservers: ['not-an-ip'] } }))).toMatch(/nameserver "not-an-ip" is not an IP address/);
    // Nothing of the refused requests was kept; another network may use the same alias.
    expect(c.listEndpoints({ network: 'blue' }).map((e) => e.containerId)).toEqual(['a1']);
    await c.createNetwork({ name: 'red', ipv4Cidr: '10.2.0.0/24' });
    expect((await c.createEndpoint({ network: 'red', host: 'h1', containerId: 'r1', aliases: ['frontend'] })).aliases).toEqual(['frontend']);
  });

  it("gives an endpoint's DNS override as its own and merged over the network's", async () => {
    const c = await blue();
    const plain = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a1' });
    expect(plain.dnsOverride).toBeNull();
    expect(plain.dns).toEqual({ nameservers: ['192.0.2.53'], search: ['corp.example'], options: ['rotate'], domain: '' });
    const own = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a2', dns: { nameservers: ['198.51.100.53'], search: ['Lab.Example'] } });
    expect(own.dnsOverride).toEqual({ nameservers: ['198.51.100.53'], search: ['lab.example'], options: [], domain: '' });
    expect(own.dns).toEqual({ nameservers: ['198.51.100.53'], search: ['lab.example'], options: ['rotate'], domain: '' });
    // podman's --dns-search . (no search domains) keeps nothing.
    expect((await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a3', dns: { search: ['.'] } })).dnsOverride).toBeNull();
  });

  it('updates only the fields the mask names, clears what it names empty, and refuses clashes', async () => {
    const c = await blue();
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a1', name: 'web', aliases: ['frontend'] });
    await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a2', name: 'db' });
    const before = c.revision();
    const u = await c.updateEndpoint({ network: 'blue', containerId: 'a2', updateMask: ['dns', 'aliases'], dns: { nameservers: ['198.51.100.53'] }, aliases: ['store', 'pg'] });
    expect(u).toMatchObject({ aliases: ['store', 'pg'], hostname: 'db', dnsOverride: { nameservers: ['198.51.100.53'] } });
    expect(u.modRevision).toBe(before + 1);
    const h = await c.updateEndpoint({ network: 'blue', containerId: 'a2', updateMask: ['hostname'], hostname: 'database' });
    expect(h).toMatchObject({ hostname: 'database', aliases: ['store', 'pg'], dnsOverride: { nameservers: ['198.51.100.53'] } });
    expect(await refusal(c.updateEndpoint({ network: 'blue', containerId: 'a2', updateMask: ['aliases'], aliases: ['frontend'] }))).toMatch(/ALREADY_EXISTS: alias frontend is already a DNS name of endpoint web/);
    expect(await refusal(c.updateEndpoint({ network: 'blue', containerId: 'a1', updateMask: ['hostname'], hostname: 'pg' }))).toMatch(/hostname pg is already a DNS name of endpoint db/);
    expect(await refusal(c.updateEndpoint({ network: 'blue', containerId: 'a2', updateMask: [] }))).toMatch(/INVALID_ARGUMENT: update_mask must name at least one/);
    expect(await refusal(c.updateEndpoint({ network: 'blue', containerId: 'a2', updateMask: ['mac'] }))).toMatch(/"mac" cannot be updated/);
    expect(await refusal(c.updateEndpoint({ network: 'blue', containerId: 'nope', updateMask: ['aliases'] }))).toMatch(/NOT_FOUND/);
    // Cleared: aliases gone, hostname back to the derived one, no override; the old names are free again.
    const cleared = await c.updateEndpoint({ network: 'blue', containerId: 'a2', updateMask: ['dns', 'aliases', 'hostname'] });
    expect(cleared).toMatchObject({ aliases: [], hostname: 'db', dnsOverride: null });
    expect((await c.updateEndpoint({ network: 'blue', containerId: 'a1', updateMask: ['aliases'], aliases: ['frontend', 'store'] })).aliases).toEqual(['frontend', 'store']);
    // An update that changes nothing commits nothing.
    const rev = c.revision();
    await c.updateEndpoint({ network: 'blue', containerId: 'a1', updateMask: ['aliases'], aliases: ['frontend', 'store'] });
    expect(c.revision()).toBe(rev);
  });
});
