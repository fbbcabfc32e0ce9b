import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src/common/backoff.js';

/** A seeded generator in [0, 1) (mulberry32), so the spread test is repeatable. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('Backoff', () => {
  it('grows by its factor from min up to max and stays there', () => {
    const b = new Backoff({ minMs: 100, maxMs: 1000, jitter: 0 });
    expect(Array.from({ length: 7 }, () => b.next())).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect(b.attempts).toBe(7);
  });

  it('keeps every jittered delay within [base * (1 - jitter), base]', () => {
    for (const r of [0, 0.5, 0.999999]) {
      const b = new Backoff({ minMs: 100, maxMs: 1000, jitter: 0.5, random: () => r });
      const bases = [100, 200, 400, 800, 1000, 1000];
      for (const base of bases) {
        const d = b.next();
        expect(d).toBeGreaterThanOrEqual(base / 2);
        expect(d).toBeLessThanOrEqual(base);
      }
    }
    expect(new Backoff({ minMs: 100, maxMs: 1000, random: () => 0 }).next()).toBe(100);
    expect(new Backoff({ minMs: 100, maxMs: 1000, random: () => 0.999999 }).next()).toBe(50);
  });

  it('starts again from min after reset', () => {
    const b = new Backoff({ minMs: 10, maxMs: 80, jitter: 0 });
    for (let i = 0; i < 10; i++) b.next();
    b.reset();
    expect(b.attempts).toBe(0);
    expect([b.next(), b.next()]).toEqual([10, 20]);
  });

  it('never overflows after very many failures', () => {
    const b = new Backoff({ minMs: 1, maxMs: 5000, jitter: 0 });
    for (let i = 0; i < 10_000; i++) b.next();
    expect(b.next()).toBe(5000);
  });

  it('refuses nonsense bounds', () => {
    expect(() => new Backoff({ minMs: 0, maxMs: 10 })).toThrow(RangeError);
    expect(() => new Backoff({ minMs: 100, maxMs: 10 })).toThrow(RangeError);
    expect(() => new Backoff({ minMs: 1, maxMs: 10, jitter: 2 })).toThrow(RangeError);
    expect(() => new Backoff({ minMs: 1, maxMs: 10, factor: 0.5 })).toThrow(RangeError);
  });

  it('spreads N sessions that lose the controller at the same instant over the backoff window', () => {
    // 1,000 agents, each with its own backoff, all disconnected at t=0 by one controller restart;
    // the controller is back at t=0 (so the first attempt of each succeeds). Count arrivals per
    // 50 ms slot of the first window [min/2, min] = [500, 1000] ms.
    const random = seeded(42);
    const n = 1000;
    const arrivals = Array.from({ length: n }, () => new Backoff({ minMs: 1000, maxMs: 10_000, random }).next());
    expect(Math.min(...arrivals)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...arrivals)).toBeLessThanOrEqual(1000);
    const slots = new Array<number>(10).fill(0);
    for (const t of arrivals) slots[Math.min(9, Math.floor((t - 500) / 50))]!++;
    // Uniform would be 100 per slot; lockstep would put all 1,000 in one.
    for (const s of slots) {
      expect(s).toBeGreaterThan(60);
      expect(s).toBeLessThan(140);
    }
    expect(new Set(arrivals).size).toBeGreaterThan(400);

    // Without jitter they would all arrive together: what the test guards against.
    const lockstep = Array.from({ length: n }, () => new Backoff({ minMs: 1000, maxMs: 10_000, jitter: 0 }).next());
    expect(new Set(lockstep).size).toBe(1);
  });

  it('keeps them spread when the controller stays away for several attempts', () => {
    // Each session retries until the controller returns at t=7 s; record when each gets through.
    const random = seeded(7);
    const back = 7000;
    const through: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const b = new Backoff({ minMs: 100, maxMs: 1000, random });
      let t = 0;
      while (t < back) t += b.next();
      through.push(t - back);
    }
    // Everyone is back within one maximum delay of the controller's return, and not in a burst:
    // no 50 ms slot holds more than a fifth of them.
    expect(Math.max(...through)).toBeLessThanOrEqual(1000);
    const slots = new Map<number, number>();
    for (const t of through) slots.set(Math.floor(t / 50), (slots.get(Math.floor(t / 50)) ?? 0) + 1);
    expect(Math.max(...slots.values())).toBeLessThan(200);
  });
});
