// Host liveness never counts the controller's own absence: a restart, a slow start or a stall of
// its event loop withdraws no healthy host's routes. Simulated clock (Date and the liveness timer).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Controller } from '../../src/controller/controller.js';
import { memoryController, registerHosts } from './fixtures.js';

const DOWN_AFTER = 3000;
const TICK = DOWN_AFTER / 4;
/** Lets the liveness check's mutation commit (it runs on setImmediate, which stays real). */
const settle = () => new Promise((r) => setImmediate(() => setImmediate(r)));
const upHosts = (c: Controller) => [...c.state.hosts.values()].filter((h) => h.rec.up).map((h) => h.rec.name);

describe('host liveness', () => {
  let c: Controller;
  beforeEach(async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
    c = await memoryController(DOWN_AFTER);
    await registerHosts(c, 2);
  });
  afterEach(async () => {
    await c.close();
    vi.useRealTimers();
  });

  it('counts silence from when the controller starts serving, not from the hosts last message', async () => {
    // A restarted controller that took 10 s to load: hosts were last heard long ago.
    vi.setSystemTime(Date.now() + 10_000);
    c.start();
    vi.advanceTimersByTime(DOWN_AFTER - TICK);
    await settle();
    expect(upHosts(c)).toEqual(['h1', 'h2']);
    await c.heartbeat('h1');
    vi.advanceTimersByTime(2 * TICK);
    await settle();
    // h2 stayed silent for a whole timeout while the controller could hear it.
    expect(upHosts(c)).toEqual(['h1']);
  });

  it('a stall of its own event loop starts hearing over', async () => {
    c.start();
    await c.heartbeat('h1');
    await c.heartbeat('h2');
    // The loop blocks for 10 s: no tick runs and heartbeats wait unread in the sockets.
    vi.setSystemTime(Date.now() + 10_000);
    vi.advanceTimersByTime(TICK);
    await settle();
    expect(upHosts(c)).toEqual(['h1', 'h2']);
    vi.advanceTimersByTime(DOWN_AFTER + TICK);
    await settle();
    expect(upHosts(c)).toEqual([]);
  });
});
