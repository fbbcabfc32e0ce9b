// Client failover over several controllers, on fake controllers: writes follow refusals naming
// the leader, reads move on from a controller that does not answer, every call is bounded in time.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ControllerSet, FailoverClient, homeIndex, leaderHint, parseControllerList, type FailoverOptions } from '../../src/api/failover.js';
import type { LoomClient } from '../../src/api/client.js';

type Fake = { address: string; call: () => Promise<string>; close(): void };

function serviceError(code: grpc.status, details: string, leader = ''): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  if (leader) metadata.set('loom-leader', leader);
  return Object.assign(new Error(details), { code, details, metadata });
}

/** Three fake controllers; `behave[address]` answers each call; a virtual clock counts the waits. */
function cluster(behave: Record<string, () => Promise<string>>, o: FailoverOptions = {}) {
  let t = 0;
  const waits: number[] = [];
  const calls: string[] = [];
  const set = new ControllerSet<Fake>(
    ['a:7400', 'b:7400', 'c:7400'],
    (address) => ({
      address,
      call: () => {
        calls.push(address);
        return behave[address]();
      },
      close: () => undefined,
    }),
    {
      now: () => t,
      sleep: async (ms) => {
        waits.push(ms);
        t += ms;
      },
      backoff: { minMs: 100, maxMs: 1000, random: () => 0 },
      ...o,
    },
  );
  return { set, calls, waits, elapsed: () => t };
}

const down = () => Promise.reject(serviceError(grpc.status.UNAVAILABLE, 'No connection established'));
const follower = (leader: string) => () => Promise.reject(serviceError(grpc.status.UNAVAILABLE, `this controller is a follower; send writes to the leader at ${leader}`, leader));
const ok = (v: string) => () => Promise.resolve(v);

describe('controller failover (client side)', () => {
  it('parses a comma-separated list, one address still works, and refuses bad entries', () => {
    expect(parseControllerList('a:7400,b:7400,c:7400')).toEqual(['a:7400', 'b:7400', 'c:7400']);
    expect(parseControllerList('127.0.0.1:7400')).toEqual(['127.0.0.1:7400']);
    expect(parseControllerList('[::1]:7400, b:1')).toEqual(['[::1]:7400', 'b:1']);
    expect(() => parseControllerList('a:7400,,b:7400')).toThrow(/is not host:port/);
    expect(() => parseControllerList('a')).toThrow(/is not host:port/);
    expect(() => parseControllerList('a:99999')).toThrow(/is not host:port/);
    expect(() => parseControllerList('a:1,a:1')).toThrow(/twice/);
  });

  it('reads the leader from the trailer, else from the message; nothing from other errors', () => {
    expect(leaderHint(serviceError(grpc.status.UNAVAILABLE, 'x', 'b:7400'))).toBe('b:7400');
    expect(leaderHint(serviceError(grpc.status.UNAVAILABLE, 'follower; send writes to the leader at c:7400'))).toBe('c:7400');
    expect(leaderHint(serviceError(grpc.status.NOT_FOUND, 'the leader at c:7400'))).toBe('');
    expect(leaderHint(new Error('leader at c:7400'))).toBe('');
  });

  it('a write refused by a follower goes straight to the leader it names, and stays there', async () => {
    const c = cluster({ 'a:7400': follower('c:7400'), 'b:7400': follower('c:7400'), 'c:7400': ok('done') });
    expect(await c.set.atLeader((f) => f.call())).toBe('done');
    expect(c.calls).toEqual(['a:7400', 'c:7400']);
    expect(c.waits).toEqual([]);
    expect(await c.set.atLeader((f) => f.call())).toBe('done');
    expect(c.calls.slice(2)).toEqual(['c:7400']);
    expect(c.set.leader).toBe('c:7400');
  });

  it('a leader that dies: the next controller, with backoff, until the new leader answers', async () => {
    const behave: Record<string, () => Promise<string>> = { 'a:7400': ok('a'), 'b:7400': follower('a:7400'), 'c:7400': follower('a:7400') };
    const c = cluster(behave);
    expect(await c.set.atLeader((f) => f.call())).toBe('a');
    behave['a:7400'] = down;
    let elections = 0;
    // b still names the dead leader twice, then wins the election.
    behave['b:7400'] = () => (++elections > 2 ? Promise.resolve('b') : follower('a:7400')());
    expect(await c.set.atLeader((f) => f.call())).toBe('b');
    expect(c.set.leader).toBe('b:7400');
    expect(c.waits.length).toBeGreaterThan(0);
    expect(c.waits.every((w) => w >= 100 && w <= 1000)).toBe(true);
  });

  it('a follower naming a leader outside the list is not followed: the next address is tried', async () => {
    const c = cluster({ 'a:7400': follower('10.9.9.9:7400'), 'b:7400': ok('b'), 'c:7400': down });
    expect(await c.set.atLeader((f) => f.call())).toBe('b');
    expect(c.calls).toEqual(['a:7400', 'b:7400']);
  });

  it('gives up after failoverMs with the last error, and passes other errors through at once', async () => {
    const c = cluster({ 'a:7400': down, 'b:7400': down, 'c:7400': down }, { failoverMs: 3000 });
    await expect(c.set.atLeader((f) => f.call())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(c.elapsed()).toBeLessThanOrEqual(3000);
    expect(c.calls.length).toBeGreaterThan(3);

    const d = cluster({ 'a:7400': () => Promise.reject(serviceError(grpc.status.ALREADY_EXISTS, 'exists')), 'b:7400': ok('b'), 'c:7400': ok('c') });
    await expect(d.set.atLeader((f) => f.call())).rejects.toMatchObject({ code: grpc.status.ALREADY_EXISTS });
    expect(d.calls).toEqual(['a:7400']);
  });

  it('one address and failoverMs 0: one attempt, as without failover', async () => {
    const c = cluster({ 'a:7400': down, 'b:7400': ok('b'), 'c:7400': ok('c') }, { failoverMs: 0 });
    await expect(c.set.atLeader((f) => f.call())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(c.calls).toEqual(['a:7400']);
  });

  it('reads stay on the home (a follower) and move on when it does not answer; a write deadline is not retried', async () => {
    const behave: Record<string, () => Promise<string>> = { 'a:7400': ok('a'), 'b:7400': ok('b'), 'c:7400': ok('c') };
    const c = cluster(behave, { home: 1 });
    expect(await c.set.atHome((f) => f.call())).toBe('b');
    behave['b:7400'] = () => Promise.reject(serviceError(grpc.status.DEADLINE_EXCEEDED, 'deadline'));
    expect(await c.set.atHome((f) => f.call())).toBe('c');
    expect(c.set.home).toBe('c:7400');
    const w = cluster({ 'a:7400': () => Promise.reject(serviceError(grpc.status.DEADLINE_EXCEEDED, 'deadline')), 'b:7400': ok('b'), 'c:7400': ok('c') });
    await expect(w.set.atLeader((f) => f.call())).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
  });

  it('a broken Watch moves the home once (not again for a stale report); agents spread by host name', () => {
    const moves: string[] = [];
    const c = cluster({}, { onMove: (target, address) => moves.push(`${target} ${address}`) });
    c.set.homeFailed('a:7400', 'stream lost');
    c.set.homeFailed('a:7400', 'stream lost'); // the same failure reported late
    expect(c.set.home).toBe('b:7400');
    expect(moves).toEqual(['home b:7400']);
    const homes = new Set(Array.from({ length: 30 }, (_, i) => homeIndex(`node${i}`, 3)));
    expect(homes).toEqual(new Set([0, 1, 2]));
    expect(homeIndex('node7', 3)).toBe(homeIndex('node7', 3));
  });

  it('routes writes and leader-only calls to the leader, reads to the home (or the leader with readsAtLeader), arguments intact', async () => {
    // a leads; b is the home and a follower that refuses writes naming a.
    const calls: string[] = [];
    const make = (address: string) =>
      new Proxy({} as LoomClient, {
        get: (_t, name: string) =>
          name === 'close'
            ? () => undefined
            : (...args: unknown[]) => {
                calls.push(`${address} ${name} ${JSON.stringify(args)}`);
                const refuse = address === 'b:7400' && !name.startsWith('get') && !name.startsWith('list') && name !== 'explainPolicy';
                return refuse ? follower('a:7400')() : Promise.resolve(address);
              },
      });
    const client = new FailoverClient(['a:7400', 'b:7400'], make, { home: 1 });
    expect(await client.getNetwork('blue')).toBe('b:7400');
    expect(await client.listEndpoints({ network: 'blue' })).toBe('b:7400');
    expect(await client.createNetwork({ name: 'red' })).toBe('a:7400');
    expect(await client.wait(7, 1000)).toBe('a:7400');
    expect(await client.trace({ from: 'blue/x', to: 'blue/y' })).toBe('a:7400');
    expect(calls).toEqual([
      'b:7400 getNetwork ["blue"]',
      'b:7400 listEndpoints [{"network":"blue"}]',
      'b:7400 createNetwork [{"name":"red"}]',
      'a:7400 createNetwork [{"name":"red"}]',
      'a:7400 wait [7,1000]',
      'a:7400 trace [{"from":"blue/x","to":"blue/y"}]',
    ]);
    const agent = new FailoverClient(['a:7400', 'b:7400'], make, { home: 1, readsAtLeader: true });
    await agent.createEndpoint({ network: 'blue', host: 'h', containerId: 'c' });
    expect(await agent.getEndpoint('blue', 'c')).toBe('a:7400');
  });
});
