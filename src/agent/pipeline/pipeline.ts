// The whole pipeline: every feature's flows for one host, and the difference between two sets of
// flows (what a reconciliation or an update must change, in one bundle).
import type { Flow, PipelineState } from './state.js';
import type { Match } from '../../openflow/types.js';
import { formatInstructions, formatMatch } from '../../openflow/printer.js';
import { Feature, Table, cookie } from './fields.js';
import { connectivityFlows } from './connectivity.js';
import { tunnelFlows } from './tunnels.js';
import { arpNdFlows } from './arp-nd.js';
import { policyFlows } from './policy.js';
import { hostPathFlows } from './host-path.js';

/** Every table ends in an explicit drop, so `dump-flows` shows where a packet died. */
function tableMissFlows(generation: number): Flow[] {
  return Object.values(Table)
    .filter((t) => t !== Table.Policy) // the policy table's miss is "allow" (policy.ts)
    .map((table) => ({ table, priority: 0, cookie: cookie(generation, Feature.Base), match: [], instructions: [] }));
}

export function buildPipeline(state: PipelineState): Flow[] {
  return [
    ...tableMissFlows(state.generation),
    ...connectivityFlows(state),
    ...tunnelFlows(state),
    ...arpNdFlows(state),
    ...policyFlows(state),
    ...hostPathFlows(state),
  ];
}

/**
 * Identity of a flow in OpenFlow terms: the same table, priority and match replace each other.
 * Flows are compared in ovs-ofctl text, so a flow read back from the switch (numbers as bigints,
 * default bit ranges left out) equals the one that was built.
 */
export function flowKey(f: Pick<Flow, 'table' | 'priority' | 'match'>): string {
  return `${f.table}/${f.priority}/${stable(f.match)}`;
}

export interface FlowDiff {
  /** Flows to add, or to replace (same key, other cookie or instructions). */
  upsert: Flow[];
  /** Flows to delete strictly (by table, priority and match). */
  remove: Flow[];
}

export function diffFlows(current: readonly Flow[], desired: readonly Flow[]): FlowDiff {
  const have = new Map(current.map((f) => [flowKey(f), f]));
  const upsert: Flow[] = [];
  for (const f of desired) {
    const old = have.get(flowKey(f));
    have.delete(flowKey(f));
    if (!old || old.cookie !== f.cookie || formatInstructions(old.instructions) !== formatInstructions(f.instructions)) {
      upsert.push(f);
    }
  }
  return { upsert, remove: [...have.values()] };
}

/** A match as text that ignores field order (a switch returns fields in its own order). */
function stable(match: Match): string {
  const name = (f: Match[number]) => `${f.field}/${'index' in f ? f.index : ''}`;
  return formatMatch([...match].sort((a, b) => name(a).localeCompare(name(b))));
}
