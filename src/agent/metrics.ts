/** Prometheus metrics of the agent (prom-client), on a private registry. */
import client from 'prom-client';
import type { DnsMetrics } from './dns/resolver.js';
import type { DnsResponderMetrics } from './dns-responder.js';

export interface AgentMetrics {
  registry: client.Registry;
  appliedRevision: client.Gauge;
  flowChanges: client.Counter;
  syncSeconds: client.Histogram;
  /** One controller change from its arrival on Watch to the ack, by phase (see Agent.applyViewChange). */
  applyPhaseSeconds: client.Histogram<'phase'>;
  attachSeconds: client.Histogram;
  /** CNI ADD and DEL: seconds from the operation's start until each stage was done (stages overlap). */
  cniStageSeconds: client.Histogram<'op' | 'stage'>;
  apiRequests: client.Counter<'op' | 'result'>;
  endpointsReclaimed: client.Counter<'found'>;
  /** Host path: applying the gateway port or table inet loom, by result. */
  hostPathSyncs: client.Counter<'result'>;
  publishedPorts: client.Gauge;
  /** --nat-path ovs: the underlay's next hops mirrored into flows, resolved (a MAC) or left to the kernel path. */
  natNextHops: client.Gauge<'state'>;
  /** --nat-path ovs: published ports DNATed in the underlay bridge. */
  natPublishedPorts: client.Gauge;
  /** --log-denied: lines about denied attempts, logged or suppressed by the rate limit. */
  deniedLogLines: client.Counter<'outcome'>;
  /** The resolver's answers by rcode and source, and their latency. */
  dns: DnsMetrics;
  /** Containers' queries as they arrive, by outcome (answered, rate_limited, overloaded, ...). */
  dnsResponder: DnsResponderMetrics;
}

/** Packets counted by network policy flows (see pipeline/policy.ts). */
export type PolicyCounts = () => Promise<{ network: string; policy: string; verdict: string; packets: number }[]>;

export function createAgentMetrics(status: () => { endpoints: number; connected: boolean }, policyCounts?: PolicyCounts): AgentMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'loom_agent_' });
  const registers = [registry];
  new client.Gauge({
    name: 'loom_agent_endpoints',
    help: 'Containers attached on this host',
    registers,
    collect() {
      this.set(status().endpoints);
    },
  });
  new client.Gauge({
    name: 'loom_agent_controller_connected',
    help: '1 while the Watch stream to the controller is up',
    registers,
    collect() {
      this.set(status().connected ? 1 : 0);
    },
  });
  const dnsQueries = new client.Counter({
    name: 'loom_agent_dns_queries_total',
    help: "Containers' DNS queries to their gateway, by outcome: answered, rate_limited, overloaded (too many in flight), no_scope (not from a local endpoint), malformed",
    labelNames: ['outcome'] as const,
    registers,
  });
  const dnsAnswers = new client.Counter({
    name: 'loom_agent_dns_answers_total',
    help: 'DNS answers by rcode and source: local (endpoint directory), forwarded (upstream; SERVFAIL when none answered), error (the query was bad)',
    labelNames: ['rcode', 'source'] as const,
    registers,
  });
  const dnsForwarded = new client.Counter({ name: 'loom_agent_dns_forwarded_total', help: 'DNS queries forwarded to upstream servers', registers });
  const dnsSeconds = new client.Histogram({
    name: 'loom_agent_dns_answer_seconds',
    help: 'Time to answer a DNS query, by source (cached local answers count as 0)',
    labelNames: ['source'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5],
    registers,
  });
  new client.Gauge({
    name: 'loom_agent_policy_packets',
    help: 'Packets of isolated networks counted by the installed policy flows: allowed (policy = the rule that allowed the new connection) or denied (policy = "", the default). Counts restart when a flow is replaced (agent restart).',
    labelNames: ['network', 'policy', 'verdict'] as const,
    registers,
    async collect() {
      this.reset();
      if (!policyCounts) return;
      // A switch that does not answer leaves the series out rather than failing the scrape.
      const rows = await policyCounts().catch(() => []);
      for (const r of rows) this.set({ network: r.network, policy: r.policy, verdict: r.verdict }, r.packets);
    },
  });
  return {
    registry,
    dns: {
      observe(rcode, source, seconds) {
        dnsAnswers.inc({ rcode, source });
        if (source === 'forwarded') dnsForwarded.inc();
        dnsSeconds.observe({ source }, seconds);
      },
    },
    dnsResponder: { query: (outcome) => dnsQueries.inc({ outcome }) },
    appliedRevision: new client.Gauge({ name: 'loom_agent_applied_revision', help: 'Last controller revision applied to OVS', registers }),
    flowChanges: new client.Counter({ name: 'loom_agent_flow_changes_total', help: 'Flows added, replaced or removed', registers }),
    syncSeconds: new client.Histogram({
      name: 'loom_agent_flow_sync_seconds',
      help: 'Time to apply one change to the flow table (one bundle)',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    }),
    applyPhaseSeconds: new client.Histogram({
      name: 'loom_agent_apply_phase_seconds',
      help:
        'Time a controller change spends in each phase on this host, from its arrival on Watch to the ack: queue (behind other work), state (pipeline input), build (flows of changed chunks), diff, bundle (OpenFlow bundle sent and committed), revalidate (ovs-vswitchd revalidator/wait), host (gateway port, nftables), total',
      labelNames: ['phase'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    }),
    attachSeconds: new client.Histogram({
      name: 'loom_agent_attach_seconds',
      help: 'Time to attach a container (controller, netlink, OVSDB, flows)',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    cniStageSeconds: new client.Histogram({
      name: 'loom_agent_cni_stage_seconds',
      help: 'CNI ADD (op=add) and DEL (op=del): seconds from the start until each stage was done (add: netns, claimed, controller, veth, queued, ovsdb, openflow, netlink, ovs; del: queued, netlink, openflow, controller; stages overlap)',
      labelNames: ['op', 'stage'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    apiRequests: new client.Counter({
      name: 'loom_agent_api_requests_total',
      help: 'Local API requests by operation and result',
      labelNames: ['op', 'result'] as const,
      registers,
    }),
    endpointsReclaimed: new client.Counter({
      name: 'loom_agent_endpoints_reclaimed_total',
      help: 'Endpoints removed from OVS and the controller because their container was gone, by when it was found (recovery at start, sweep), and endpoints released at the controller after a CNI DEL answered (detach)',
      labelNames: ['found'] as const,
      registers,
    }),
    hostPathSyncs: new client.Counter({
      name: 'loom_agent_host_path_syncs_total',
      help: 'Host path syncs (gateway port, table inet loom) after a view or attachment change, by result (ok, error)',
      labelNames: ['result'] as const,
      registers,
    }),
    publishedPorts: new client.Gauge({ name: 'loom_agent_published_ports', help: 'Published ports (DNAT mappings) in table inet loom', registers }),
    natNextHops: new client.Gauge({
      name: 'loom_agent_nat_next_hops',
      help: "With --nat-path ovs: the underlay's routes and neighbours mirrored into br-int, by state: resolved (a next-hop MAC) or kernel (left to the host path)",
      labelNames: ['state'] as const,
      registers,
    }),
    natPublishedPorts: new client.Gauge({ name: 'loom_agent_nat_published_ports', help: 'With --nat-path ovs: published ports DNATed in OVS conntrack (the underlay bridge)', registers }),
    deniedLogLines: new client.Counter({
      name: 'loom_agent_policy_denied_log_lines_total',
      help: 'With --log-denied: denied connection attempts that reached the agent, by outcome: logged, or suppressed by --log-denied-rate',
      labelNames: ['outcome'] as const,
      registers,
    }),
  };
}
