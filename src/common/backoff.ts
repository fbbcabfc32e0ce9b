/**
 * Exponential backoff with jitter, for every reconnect loop (OVSDB, OpenFlow, the agent's
 * controller session). Jitter matters: after a controller restart every agent loses its
 * connection at the same instant, and without it they would all retry in lockstep.
 *
 * Delay of attempt n (0-based): base = min(maxMs, minMs * factor^n), drawn uniformly from
 * [base * (1 - jitter), base]. `reset()` after a success starts again at minMs.
 */
export interface BackoffOptions {
  /** First delay's upper bound (ms). */
  minMs: number;
  /** Cap on any delay (ms). */
  maxMs: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
  /** Fraction of the delay that is random, 0..1. Default 0.5. */
  jitter?: number;
  /** Source of randomness in [0, 1) (tests pass their own). Default Math.random. */
  random?: () => number;
}

export class Backoff {
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private failures = 0;

  constructor(opts: BackoffOptions) {
    if (!(opts.minMs > 0) || !(opts.maxMs >= opts.minMs)) throw new RangeError(`backoff needs 0 < minMs <= maxMs (got ${opts.minMs}, ${opts.maxMs})`);
    const factor = opts.factor ?? 2;
    const jitter = opts.jitter ?? 0.5;
    if (!(factor >= 1)) throw new RangeError(`backoff factor must be >= 1 (got ${factor})`);
    if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`backoff jitter must be in [0, 1] (got ${jitter})`);
    this.minMs = opts.minMs;
    this.maxMs = opts.maxMs;
    this.factor = factor;
    this.jitter = jitter;
    this.random = opts.random ?? Math.random;
  }

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next attempt (ms); each call counts one more failure. */
  next(): number {
    const base = Math.min(this.maxMs, this.minMs * this.factor ** Math.min(this.failures, 64));
    this.failures++;
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  /** After a success: the next delay starts again from minMs. */
  reset(): void {
    this.failures = 0;
  }
}
