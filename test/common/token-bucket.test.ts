import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src/common/token-bucket.js';

describe('token bucket', () => {
  it('lets a burst through, then refills at the rate', () => {
    let t = 0;
    const bucket = new TokenBucket(10, 10, () => t);
    const burst = Array.from({ length: 15 }, () => bucket.take());
    expect(burst.filter(Boolean)).toHaveLength(10);
    t += 100; // 0.1 s at 10/s: one token
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    t += 10_000; // never more than the burst
    expect(Array.from({ length: 20 }, () => bucket.take()).filter(Boolean)).toHaveLength(10);
  });
});
