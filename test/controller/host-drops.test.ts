import { describe, expect, it } from 'vitest';
import { HostDrops, MAX_DROP_REASONS, checkDrops } from '../../src/controller/host-drops.js';
import { dropSummary } from '../../src/cli/format.js';

describe('host drops from heartbeats', () => {
  it('keeps each host\'s last report', () => {
    const d = new HostDrops();
    expect(d.of('h1')).toEqual([]);
    d.report('h1', [{ reason: 'spoof_guard', packets: 5, bytes: 490 }]);
    d.report('h1', undefined);
    expect(d.of('h1')).toEqual([{ reason: 'spoof_guard', packets: 5, bytes: 490 }]);
    d.report('h1', []);
    expect(d.of('h1')).toEqual([]);
  });

  it('refuses what an agent must not send, naming it', () => {
    const many = Array.from({ length: MAX_DROP_REASONS + 1 }, (_, i) => ({ reason: `r${i}`, packets: 1, bytes: 1 }));
    expect(() => checkDrops(many)).toThrow(/65 reasons, at most 64/);
    expect(() => checkDrops([{ reason: 'Bad Reason', packets: 1, bytes: 1 }])).toThrow(/drops\[0\]\.reason "Bad Reason"/);
    expect(() => checkDrops([{ reason: 'x'.repeat(65), packets: 1, bytes: 1 }])).toThrow(/1-64 of a-z/);
    expect(() => checkDrops([{ reason: 'ok', packets: -1, bytes: 1 }])).toThrow(/non-negative integers/);
    expect(() => checkDrops([{ reason: 'ok', packets: 1, bytes: 1 }])).not.toThrow();
  });

  it('loomctl shows them in one cell, largest first', () => {
    expect(dropSummary([])).toBe('0');
    expect(dropSummary([{ reason: 'no_route', packets: 2 }, { reason: 'spoof_guard', packets: 5 }, { reason: 'arp_nd', packets: 0 }])).toBe('7: spoof_guard 5, no_route 2');
    expect(dropSummary(['a', 'b', 'c', 'd'].map((reason, i) => ({ reason, packets: i + 1 })))).toBe('10: d 4, c 3, b 2, ...');
  });
});
