import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/logging.js';
import { Controller } from '../../src/controller/controller.js';
import { ApiError } from '../../src/controller/errors.js';
import { SqliteStore } from '../../src/controller/store/sqlite.js';
import type { StoreOp } from '../../src/controller/store/types.js';
import { memoryController, registerHosts } from './fixtures.js';

/** A store whose next batch write fails, like a full disk. */
class FailingOnceStore extends SqliteStore {
  failNext = false;
  override async commitBatch(batch: StoreOp[][]): Promise<number[]> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    return super.commitBatch(batch);
  }
}

describe('controller core', () => {
  it('refuses a batch the store could not write and keeps memory equal to the store', async () => {
    const store = new FailingOnceStore({ path: ':memory:' });
    const c = await Controller.open(store, { hostDownAfterMs: 60_000, heartbeatIntervalMs: 1000, changeLogSize: 100, storeHistory: 100, logger: silentLogger() });
    await registerHosts(c, 1);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
    const before = c.revision();
    store.failNext = true;
    const err = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('UNAVAILABLE');
    expect((err as ApiError).message).toMatch(/could not write its store: .*disk full/);
    expect(c.revision()).toBe(before);
    expect(c.state.networks.get('blue')!.endpoints.size).toBe(0);
    expect(c.state.networks.get('blue')!.blocks.size).toBe(0);
    // The same request succeeds afterwards, with the address it would have had.
    const ok = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' });
    expect(ok.ipv4).toBe('10.1.0.2/24');
    expect(ok.modRevision).toBe(before + 1);
  });

  it('answers each request of a concurrent burst with its own revision, in arrival order', async () => {
    const c = await memoryController();
    await registerHosts(c, 1);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
    const start = c.revision();
    const results = await Promise.allSettled([
      c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' }),
      c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' }), // duplicate: refused, no revision
      c.deleteEndpoint('blue', 'a'),
      c.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a', ipv4: '10.1.0.9' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    const [first, , del, last] = results as PromiseFulfilledResult<{ modRevision: number } | number>[];
    expect((first.value as { modRevision: number }).modRevision).toBe(start + 1);
    expect(del.value).toBe(start + 2);
    expect((last.value as { modRevision: number }).modRevision).toBe(start + 3);
    expect(c.getEndpoint('blue', 'a').ipv4).toBe('10.1.0.9/24');
  });

  it('falls back to a longer default name when the short one is taken', async () => {
    const c = await memoryController();
    await registerHosts(c, 1);
    await c.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
    const a = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: '0123456789abcdef01' });
    const b = await c.createEndpoint({ network: 'blue', host: 'h1', containerId: '0123456789abcdef02' });
    expect([a.name, b.name]).toEqual(['0123456789ab', '0123456789abcdef02']);
  });
});
