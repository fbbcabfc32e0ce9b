import { describe, expect, it } from 'vitest';
import { ChangeLog } from '../../src/controller/changelog.js';

describe('ChangeLog', () => {
  it('returns distinct keys changed after a revision', () => {
    const log = new ChangeLog(0, 100);
    log.append(1, ['a', 'b']);
    log.append(2, ['a']);
    log.append(3, ['c']);
    expect([...log.keysSince(0)!]).toEqual(['a', 'b', 'c']);
    expect([...log.keysSince(1)!]).toEqual(['a', 'c']);
    expect([...log.keysSince(3)!]).toEqual([]);
  });

  it('drops whole revisions when full and says so for older requests', () => {
    const log = new ChangeLog(0, 8);
    for (let r = 1; r <= 10; r++) log.append(r, [`k${r}`, `x${r}`]);
    expect(log.size).toBeLessThanOrEqual(8);
    expect(log.keysSince(0)).toBeNull();
    const floor = log.floor;
    expect(floor).toBeGreaterThan(0);
    expect(log.keysSince(floor)!.size).toBe((10 - floor) * 2);
    expect(log.keysSince(floor - 1)).toBeNull();
  });
});
