/** Output helpers for loomctl: aligned tables and JSON. */
import type { TraceEndpointRef, TraceResponse } from '../api/types.js';

/** Renders rows as space-aligned columns under upper-case headers. */
export function table(headers: string[], rows: (string | number | boolean)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => String(c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

/** Pretty JSON with a trailing newline. */
export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** "3s ago", "2m ago". */
export function ago(ms: number): string {
  if (ms < 1000) return `${ms}ms ago`;
  if (ms < 120_000) return `${Math.round(ms / 1000)}s ago`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)}m ago`;
  return `${Math.round(ms / 3_600_000)}h ago`;
}

/** A host's drops in one cell: total packets, then the largest reasons ("7: spoof_guard 5, no_route 2"). */
export function dropSummary(drops: ReadonlyArray<{ reason: string; packets: number }>): string {
  const nonzero = drops.filter((d) => d.packets > 0).sort((a, b) => b.packets - a.packets || a.reason.localeCompare(b.reason));
  if (nonzero.length === 0) return '0';
  const total = nonzero.reduce((n, d) => n + d.packets, 0);
  const shown = nonzero.slice(0, 3).map((d) => `${d.reason} ${d.packets}`).join(', ');
  return `${total}: ${shown}${nonzero.length > 3 ? ', ...' : ''}`;
}

/** A cross-host trace for an operator: each host's tables, the tunnel hop, the verdict, the live result. */
export function traceText(r: TraceResponse): string {
  const end = (e: TraceEndpointRef | null) => (e ? (e.name ? `${e.network}/${e.name} (${e.address} on ${e.host})` : e.address) : '?');
  const lines: string[] = [`trace ${end(r.source)} -> ${end(r.destination)}`, ''];
  for (const h of r.hosts) {
    lines.push(`host ${h.host} (${h.role}): ${h.flow}`);
    if (h.steps.length) {
      lines.push(
        table(
          ['TABLE', 'FEATURE', 'PRIORITY', 'ACTIONS'],
          h.steps.map((s) => [`${s.table} ${s.tableName}`, s.feature, s.priority, s.actions.join(',') || 'drop']),
        ).replace(/^/gm, '  ').trimEnd(),
      );
    }
    if (h.verdict) lines.push(`  => ${h.verdict.explanation}`);
    if (h.role === 'source' && r.tunnel) lines.push('', `tunnel: ${r.tunnel.tunnel}, VNI ${r.tunnel.vni}, to VTEP ${r.tunnel.remoteVtep}`);
    lines.push('');
  }
  lines.push(`VERDICT: ${r.verdict}${r.host ? ` (host ${r.host}${r.table ? `, table ${r.table}` : ''})` : ''}`, `  ${r.explanation}`);
  if (r.live) {
    lines.push('', `LIVE (DSCP ${r.live.dscp}): ${r.live.injected ? 'injected' : 'not injected'}; ${r.live.agrees ? 'agrees with the simulated trace' : 'DISAGREES with the simulated trace'}`, `  ${r.live.summary}`);
  }
  return `${lines.join('\n')}\n`;
}
