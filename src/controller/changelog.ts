/**
 * Bounded in-memory log of (revision, key) pairs: what the watch needs to compute deltas.
 * Every change with revision > `floor` is present; older ones were dropped (whole revisions at
 * a time), and an agent behind `floor` gets a snapshot instead of a delta.
 */
export class ChangeLog {
  private revs: number[] = [];
  private keys: string[] = [];

  constructor(
    private floorRev: number,
    private readonly capacity: number,
  ) {}

  /** All changes after this revision are in the log. */
  get floor(): number {
    return this.floorRev;
  }

  get size(): number {
    return this.revs.length;
  }

  append(revision: number, keys: Iterable<string>): void {
    for (const k of keys) {
      this.revs.push(revision);
      this.keys.push(k);
    }
    if (this.size > this.capacity) this.trim();
  }

  /** Whether every change after `from` is still in the log. */
  covers(from: number): boolean {
    return from >= this.floorRev;
  }

  /** Distinct keys changed after `from`, or null when the log no longer reaches back that far. */
  keysSince(from: number): Set<string> | null {
    if (from < this.floorRev) return null;
    let lo = 0;
    let hi = this.revs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.revs[mid] <= from) lo = mid + 1;
      else hi = mid;
    }
    const out = new Set<string>();
    for (let i = lo; i < this.revs.length; i++) out.add(this.keys[i]);
    return out;
  }

  private trim(): void {
    let cut = this.revs.length - Math.floor(this.capacity * 0.75);
    // Never split a revision: drop through the end of the revision at the cut.
    while (cut < this.revs.length && this.revs[cut] === this.revs[cut - 1]) cut++;
    this.floorRev = this.revs[cut - 1];
    this.revs = this.revs.slice(cut);
    this.keys = this.keys.slice(cut);
  }
}
