// Keeps a bridge's flow table equal to the pipeline: every change is the difference between what
// is installed and what is wanted, applied as one atomic, ordered bundle.
import type { OpenFlowClient, FlowChange } from '../openflow/client.js';
import { buildPipeline, diffFlows, flowKey, FlowTexts, type FlowDiff } from './pipeline/pipeline.js';
import type { Flow, PipelineState } from './pipeline/state.js';
import { FlowReuse } from './pipeline/policy.js';

export interface SyncResult {
  upserted: number;
  removed: number;
  /** Milliseconds spent building the pipeline, diffing it, and applying the bundle. */
  ms?: { build: number; diff: number; bundle: number };
}

export class FlowSync {
  /** What this process installed last, by flow key; the switch is read only on reconcile. */
  private installed: Flow[] = [];
  /**
   * The state `installed` was built from, as JSON. The pipeline is a function of the state, so
   * an update with the same state (a Watch change that concerns only this host's own endpoints,
   * say, right after an attach) has nothing to do and skips building and diffing.
   */
  private installedFrom: string | undefined;
  private readonly texts = new FlowTexts();
  private readonly reuse = new FlowReuse();

  constructor(private readonly client: OpenFlowClient) {}

  /**
   * Reads the switch's flows and makes them equal to the pipeline for `state`: flows that are
   * already right stay untouched, wrong or missing ones are (re)installed and the rest removed,
   * including every flow of an older generation. Used at start-up and after ovs-vswitchd restarts.
   */
  async reconcile(state: PipelineState): Promise<SyncResult> {
    const current: Flow[] = (await this.client.dumpFlows()).map((f) => ({
      table: f.table,
      priority: f.priority,
      cookie: f.cookie,
      match: f.match,
      instructions: f.instructions,
    }));
    const desired = buildPipeline(state, this.reuse);
    return this.apply(diffFlows(current, desired, this.texts), desired, JSON.stringify(state));
  }

  /** Applies a new state as a difference against what this process installed last. */
  async update(state: PipelineState): Promise<SyncResult> {
    const t0 = performance.now();
    const from = JSON.stringify(state);
    if (from === this.installedFrom) return { upserted: 0, removed: 0 };
    const desired = buildPipeline(state, this.reuse);
    const t1 = performance.now();
    const diff = diffFlows(this.installed, desired, this.texts);
    const t2 = performance.now();
    const result = await this.apply(diff, desired, from);
    return { ...result, ms: { build: Math.round(t1 - t0), diff: Math.round(t2 - t1), bundle: Math.round(performance.now() - t2) } };
  }

  private async apply(diff: FlowDiff, desired: Flow[], from: string): Promise<SyncResult> {
    // Adds first: a replaced flow changes in place, so traffic never meets a gap.
    const changes: FlowChange[] = [
      ...diff.upsert.map((f): FlowChange => ({ command: 'add', ...f })),
      ...diff.remove.map((f): FlowChange => ({ command: 'delete_strict', table: f.table, priority: f.priority, match: f.match })),
    ];
    if (changes.length > 0) await this.client.applyBundle(changes);
    this.installed = desired;
    this.installedFrom = from;
    return { upserted: diff.upsert.length, removed: diff.remove.length };
  }

  /** Keys of the flows installed last (for tests and debugging). */
  installedKeys(): string[] {
    return this.installed.map(flowKey);
  }
}
