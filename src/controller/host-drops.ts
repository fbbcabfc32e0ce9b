// Each host's flow-table drops by reason, as its last heartbeat reported them: kept in memory
// only (they are the agent's counters, not state), and bounded, since an agent sends them.
import type { DropCount } from '../api/types.js';
import { invalid } from './errors.js';

export const MAX_DROP_REASONS = 64;
const REASON = /^[a-z0-9_]{1,64}$/;

/** Checks a heartbeat's drop counts; throws INVALID_ARGUMENT naming what is wrong. */
export function checkDrops(drops: readonly DropCount[]): DropCount[] {
  if (drops.length > MAX_DROP_REASONS) throw invalid(`drops: ${drops.length} reasons, at most ${MAX_DROP_REASONS}`);
  return drops.map((d, i) => {
    if (!REASON.test(d.reason)) throw invalid(`drops[${i}].reason ${JSON.stringify(d.reason.slice(0, 80))}: 1-64 of a-z, 0-9 and _`);
    if (!Number.isSafeInteger(d.packets) || d.packets < 0 || !Number.isSafeInteger(d.bytes) || d.bytes < 0) throw invalid(`drops[${i}]: counts must be non-negative integers`);
    return { reason: d.reason, packets: d.packets, bytes: d.bytes };
  });
}

export class HostDrops {
  private readonly byHost = new Map<string, DropCount[]>();

  /** Records a host's report; only call for a registered host (the map grows with hosts). */
  report(host: string, drops: readonly DropCount[] | undefined): void {
    if (drops === undefined) return;
    this.byHost.set(host, checkDrops(drops));
  }

  of(host: string): DropCount[] {
    return this.byHost.get(host) ?? [];
  }
}
