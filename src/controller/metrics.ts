/** Prometheus metrics of the controller (prom-client), on a private registry. */
import client from 'prom-client';
import type { Controller } from './controller.js';
import type { Convergence } from './convergence.js';

export interface ControllerMetrics {
  registry: client.Registry;
  requests: client.Counter<'method' | 'code'>;
  propagation: client.Histogram;
}

/** What the dedicated Watch server has open, when there is one. */
export type WatchServerLoad = () => { connections: number; streams: number; limitsHit: Readonly<Record<string, number>> } | null;

export function createMetrics(controller: Controller, convergence: Convergence, watchServer: WatchServerLoad = () => null): ControllerMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'loom_controller_' });
  const requests = new client.Counter({
    name: 'loom_controller_requests_total',
    help: 'gRPC requests by method and status code',
    labelNames: ['method', 'code'] as const,
    registers: [registry],
  });
  const propagation = new client.Histogram({
    name: 'loom_controller_propagation_seconds',
    help: 'Time from a commit to an agent acknowledging it (per agent ack)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  new client.Gauge({
    name: 'loom_controller_revision',
    help: 'Current store revision',
    registers: [registry],
    collect() {
      this.set(controller.revision());
    },
  });
  new client.Gauge({
    name: 'loom_controller_connected_agents',
    help: 'Agents with an open Watch stream',
    registers: [registry],
    collect() {
      this.set(convergence.connected);
    },
  });
  new client.Gauge({
    name: 'loom_controller_hosts',
    help: 'Registered hosts by liveness',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      let up = 0;
      for (const h of controller.state.hosts.values()) if (h.rec.up) up++;
      this.set({ state: 'up' }, up);
      this.set({ state: 'down' }, controller.state.hosts.size - up);
    },
  });
  new client.Gauge({
    name: 'loom_controller_endpoints',
    help: 'Endpoints over all networks',
    registers: [registry],
    collect() {
      let n = 0;
      for (const net of controller.state.networks.values()) n += net.endpoints.size;
      this.set(n);
    },
  });
  new client.Gauge({
    name: 'loom_controller_watch_lag_revisions',
    help: 'Revisions between the current one and what up agents applied: max and sum',
    labelNames: ['agg'] as const,
    registers: [registry],
    collect() {
      let max = 0;
      let sum = 0;
      for (const s of convergence.status()) {
        if (!s.up) continue;
        max = Math.max(max, s.lag);
        sum += s.lag;
      }
      this.set({ agg: 'max' }, max);
      this.set({ agg: 'sum' }, sum);
    },
  });
  new client.Gauge({
    name: 'loom_controller_watch_server_connections',
    help: 'Open connections (and, by kind, calls) on the dedicated Watch server',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const load = watchServer();
      this.set({ kind: 'connections' }, load?.connections ?? 0);
      this.set({ kind: 'streams' }, load?.streams ?? 0);
    },
  });
  new client.Counter({
    name: 'loom_controller_watch_server_limits_hit_total',
    help: 'Times a peer hit one of the Watch server limits (the connection or the connection attempt was cut)',
    labelNames: ['limit'] as const,
    registers: [registry],
    collect() {
      const load = watchServer();
      if (load === null) return;
      this.reset();
      for (const [limit, n] of Object.entries(load.limitsHit)) this.inc({ limit }, n);
    },
  });
  return { registry, requests, propagation };
}
