// docs/grafana/loom.json and the metrics the code registers stay in sync: every Loom metric
// (not the process defaults) has a panel, and every metric a panel queries exists.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/controller/metrics.js';
import type { Controller } from '../../src/controller/controller.js';
import type { Convergence } from '../../src/controller/convergence.js';
import { createAgentMetrics } from '../../src/agent/metrics.js';
import { DatapathCounters, registerDatapathMetrics } from '../../src/agent/datapath-counters.js';

interface Panel { title: string; targets?: Array<{ expr: string }> }
const dashboard = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../docs/grafana/loom.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: Array<{ query: unknown }> };
};

/** Registered metrics by name and type; nothing is collected (registration only). */
function registered(): Map<string, string> {
  const out = new Map<string, string>();
  // Metric objects only: collect() is never called, so the controller and convergence are not touched.
  const controller = createMetrics({} as Controller, {} as Convergence);
  const agent = createAgentMetrics(() => ({ endpoints: 0, connected: false }));
  registerDatapathMetrics(agent.registry, new DatapathCounters({ dumpFlows: () => Promise.resolve([]) }, () => new Set()), () => undefined);
  for (const r of [controller.registry, agent.registry]) {
    for (const m of r.getMetricsAsArray()) out.set(m.name, (m as unknown as { type: string }).type);
  }
  return out;
}

/** The process metrics collectDefaultMetrics adds under a prefix: not Loom's own. */
function defaults(prefix: string): Set<string> {
  const r = new client.Registry();
  client.collectDefaultMetrics({ register: r, prefix });
  return new Set(r.getMetricsAsArray().map((m) => m.name));
}

const queried = (): Set<string> => {
  const exprs = [...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)), ...dashboard.templating.list.map((t) => String(t.query))];
  return new Set(exprs.flatMap((e) => e.match(/\bloom_[a-z0-9_]+/g) ?? []));
};

describe('Grafana dashboard', () => {
  const metrics = registered();
  const own = [...metrics.keys()].filter((n) => !defaults('loom_controller_').has(n) && !defaults('loom_agent_').has(n));

  it('has a panel for every metric the controller and the agent register', () => {
    expect(own.length).toBeGreaterThan(15);
    const used = queried();
    const base = new Set([...used].map((n) => n.replace(/_(bucket|sum|count)$/, '')));
    expect(own.filter((n) => !used.has(n) && !base.has(n))).toEqual([]);
  });

  it('queries only metrics that exist (histogram series by their base name)', () => {
    const missing = [...queried()].filter((n) => {
      if (metrics.has(n)) return false;
      const h = /^(.*)_(bucket|sum|count)$/.exec(n);
      return !(h && metrics.get(h[1]!) === 'histogram');
    });
    expect(missing).toEqual([]);
  });

  it('lays panels out without overlap', () => {
    const cells = new Set<string>();
    for (const p of dashboard.panels as Array<Panel & { gridPos: { x: number; y: number; w: number; h: number } }>) {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
  });
});
