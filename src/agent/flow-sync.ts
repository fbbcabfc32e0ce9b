// Keeps a bridge's flow table equal to the pipeline: every change is the difference between what
// is installed and what is wanted, applied as one atomic, ordered bundle.
import type { DumpedFlow, OpenFlowClient, FlowChange } from '../openflow/client.js';
import { diffFlows, FlowTexts, pipelineChunks, type FlowChunk, type FlowDiff } from './pipeline/pipeline.js';
import type { Flow, PipelineState } from './pipeline/state.js';
import { PolicyCompilers } from './pipeline/policy.js';

export interface SyncResult {
  upserted: number;
  removed: number;
  /** Milliseconds spent building the pipeline, diffing it, and applying the bundle. */
  ms?: { build: number; diff: number; bundle: number };
}

/** A flow read from the switch, as the pipeline describes one (statistics dropped). */
export function asFlow(f: DumpedFlow): Flow {
  return { table: f.table, priority: f.priority, cookie: f.cookie, match: f.match, instructions: f.instructions };
}

/** A diff as one ordered bundle: adds first (a replaced flow changes in place, so traffic never meets a gap), then removals. */
export function bundleOf(diff: FlowDiff): FlowChange[] {
  return [
    ...diff.upsert.map((f): FlowChange => ({ command: 'add', ...f })),
    ...diff.remove.map((f): FlowChange => ({ command: 'delete_strict', table: f.table, priority: f.priority, match: f.match })),
  ];
}

export class FlowSync {
  /**
   * The pipeline's chunks installed last, by key (see `pipelineChunks`), with the flows built for
   * them. A chunk's key is its whole input: an update builds and compares only the chunks whose
   * key is new or gone (an attach or detach: one endpoint's), not the whole pipeline.
   */
  private chunks = new Map<string, Flow[]>();
  /**
   * Installed flows by flow key: the chunk flows that claim the key, in the order they came; the
   * last one is on the switch. Chunks do not share keys in practice; the list keeps a removed
   * chunk from deleting a flow another chunk still wants.
   */
  private owners = new Map<string, Flow[]>();
  /** The key of the chunk installed last in each slot (see FlowChunk.slot). */
  private slots = new Map<string, string>();
  private readonly texts = new FlowTexts();
  /** Each isolated network's rule flows, compiled incrementally (see NetworkPolicyCompiler). */
  private readonly compilers = new PolicyCompilers();

  constructor(private readonly client: OpenFlowClient) {}

  /**
   * Reads the switch's flows and makes them equal to the pipeline for `state`: flows that are
   * already right stay untouched, wrong or missing ones are (re)installed and the rest removed,
   * including every flow of an older generation. Used at start-up and after ovs-vswitchd restarts.
   */
  async reconcile(state: PipelineState, commitAfter?: Promise<unknown>): Promise<SyncResult> {
    await commitAfter;
    const current = (await this.client.dumpFlows()).map(asFlow);
    const chunks = new Map<string, Flow[]>();
    const slots = new Map<string, string>();
    for (const c of pipelineChunks(state, this.compilers)) {
      if (chunks.has(c.key)) continue;
      chunks.set(c.key, c.build());
      if (c.slot !== undefined) slots.set(c.slot, c.key);
    }
    const desired = [...chunks.values()].flat();
    const diff = diffFlows(current, desired, this.texts);
    await this.send(diff);
    this.owners = new Map();
    for (const f of desired) {
      const key = this.texts.of(f).key;
      const list = this.owners.get(key);
      if (list) list.push(f);
      else this.owners.set(key, [f]);
    }
    this.chunks = chunks;
    this.slots = slots;
    this.texts.rotate();
    return { upserted: diff.upsert.length, removed: diff.remove.length };
  }

  /**
   * Applies a new state as a difference against what this process installed last, built from the
   * chunks that changed only. Nothing is recorded until the switch took the bundle, so a failed
   * update is retried in full by the next one.
   */
  async update(state: PipelineState, commitAfter?: Promise<unknown>): Promise<SyncResult> {
    const t0 = performance.now();
    const chunks = new Map<string, Flow[]>();
    const slots = new Map<string, string>();
    const built: Array<{ chunk: FlowChunk; flows: Flow[] }> = [];
    for (const c of pipelineChunks(state, this.compilers)) {
      if (chunks.has(c.key)) continue;
      if (c.slot !== undefined) slots.set(c.slot, c.key);
      const have = this.chunks.get(c.key);
      if (have) {
        chunks.set(c.key, have);
      } else {
        const flows = c.build();
        chunks.set(c.key, flows);
        built.push({ chunk: c, flows });
      }
    }
    let added: Flow[] = [];
    // A chunk that replaces the one installed in its slot and can tell what changed since (a
    // policy chunk after a rule change) brings only that; the old chunk gives up only that.
    const replaced = new Map<string, Flow[]>();
    for (const { chunk, flows } of built) {
      const old = chunk.slot !== undefined ? this.slots.get(chunk.slot) : undefined;
      const delta = old !== undefined && this.chunks.has(old) && !chunks.has(old) && !replaced.has(old) ? chunk.since?.(old) : undefined;
      if (delta) replaced.set(old!, delta.removed);
      for (const f of delta ? delta.added : flows) added.push(f);
    }
    const t1 = performance.now();
    let removed: Flow[] = [];
    for (const [key, flows] of this.chunks) if (!chunks.has(key)) for (const f of replaced.get(key) ?? flows) removed.push(f);
    if (added.length > 0 && removed.length > 0) {
      // A chunk rebuilt from kept objects (a policy chunk after a rule change) gives back most
      // of its flows as the very same objects: those did not change, and are not looked at.
      const gone = new Set(removed);
      const kept = new Set<Flow>();
      for (const f of added) if (gone.has(f)) kept.add(f);
      if (kept.size > 0) {
        added = added.filter((f) => !kept.has(f));
        removed = removed.filter((f) => !kept.has(f));
      }
    }
    if (added.length === 0 && removed.length === 0) {
      this.chunks = chunks;
      this.slots = slots;
      return { upserted: 0, removed: 0 };
    }
    // The owner lists of the keys touched, changed on copies until the switch took the bundle.
    const touched = new Map<string, { before: Flow | undefined; owners: Flow[] }>();
    const entry = (f: Flow) => {
      const key = this.texts.of(f).key;
      let t = touched.get(key);
      if (!t) {
        const owners = this.owners.get(key) ?? [];
        t = { before: owners.at(-1), owners: [...owners] };
        touched.set(key, t);
      }
      return t;
    };
    for (const f of removed) {
      const t = entry(f);
      const i = t.owners.indexOf(f);
      if (i >= 0) t.owners.splice(i, 1);
    }
    for (const f of added) entry(f).owners.push(f);
    const diff: FlowDiff = { upsert: [], remove: [] };
    for (const t of touched.values()) {
      const after = t.owners.at(-1);
      if (!after) {
        if (t.before) diff.remove.push(t.before);
      } else if (!t.before || !this.same(t.before, after)) {
        diff.upsert.push(after);
      }
    }
    const t2 = performance.now();
    await this.send(diff, commitAfter);
    for (const [key, t] of touched) {
      if (t.owners.length > 0) this.owners.set(key, t.owners);
      else this.owners.delete(key);
    }
    this.chunks = chunks;
    this.slots = slots;
    this.texts.rotate();
    const ms = { build: t1 - t0, diff: t2 - t1, bundle: performance.now() - t2 };
    return { upserted: diff.upsert.length, removed: diff.remove.length, ms };
  }

  private same(a: Flow, b: Flow): boolean {
    return a.cookie === b.cookie && this.texts.of(a).instructions === this.texts.of(b).instructions;
  }

  private async send(diff: FlowDiff, commitAfter?: Promise<unknown>): Promise<void> {
    const changes = bundleOf(diff);
    if (changes.length > 0) await this.client.applyBundle(changes, commitAfter ? { commitAfter } : {});
    else await commitAfter;
  }

  /** Keys of the flows installed last (for tests and debugging). */
  installedKeys(): string[] {
    return [...this.owners.keys()];
  }

  /** The flows installed last, one per key (for tests and debugging). */
  installedFlows(): Flow[] {
    return [...this.owners.values()].map((o) => o.at(-1)!);
  }
}
