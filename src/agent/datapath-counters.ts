// Datapath counters from the switch's own flow statistics: packets and bytes dropped, by the
// reason the dropping flow stands for (its table and the feature in its cookie), per local
// endpoint port (sent and received) and per tunnel peer (sent). Read on scrape, at most once per
// `minIntervalMs`, so a scraper cannot make the agent hammer ovs-vswitchd.
import client from 'prom-client';
import type { DumpedFlow, FlowFilter } from '../openflow/client.js';
import type { Instruction } from '../openflow/types.js';
import { DENY_OBJECT, FEATURE_MASK, Feature, INVALID_OBJECT, Table, cookieFeature } from './pipeline/fields.js';

/** What a drop flow stands for; from its cookie's feature, or for the table-miss flows its table. */
const MISS_REASON: Record<number, string> = {
  [Table.Classifier]: 'classifier_miss',
  [Table.SpoofGuard]: 'spoof_guard',
  [Table.ArpNd]: 'arp_nd',
  [Table.L3Forwarding]: 'no_route',
  [Table.Policy]: 'policy',
  [Table.Output]: 'no_output',
};

const snake = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
/** Feature number -> snake_case name; features other engineers add appear here by themselves. */
const FEATURE_NAMES = new Map<number, string>(Object.entries(Feature).map(([name, id]) => [id, snake(name)]));
const TABLE_NAMES = new Map<number, string>(Object.entries(Table).map(([name, id]) => [id, snake(name)]));

export function featureName(feature: number): string {
  return FEATURE_NAMES.get(feature) ?? `feature_${feature}`;
}
export function tableName(table: number): string {
  return TABLE_NAMES.get(table) ?? `table_${table}`;
}

/** The reason a drop flow in `table` with `cookie` drops: its feature, or for a base table-miss flow what the miss means. */
export function dropReason(table: number, cookie: bigint): string {
  const feature = cookieFeature(cookie);
  if (feature === Feature.Base) return MISS_REASON[table] ?? `${tableName(table)}_miss`;
  return featureName(feature);
}

/** A flow drops when nothing sends the packet on: no goto, output, group or resubmit. */
export function isDropFlow(instructions: readonly Instruction[]): boolean {
  for (const i of instructions) {
    if (i.type === 'goto_table') return false;
    if (i.type === 'apply_actions' || i.type === 'write_actions') {
      if (i.actions.some((a) => a.type === 'output' || a.type === 'group' || a.type === 'resubmit')) return false;
    }
  }
  return true;
}

export interface Count {
  packets: number;
  bytes: number;
}
export interface DropCount extends Count {
  reason: string;
  table: string;
}
export interface PortCount extends Count {
  ofport: number;
  direction: 'sent' | 'received';
}
export interface PeerCount extends Count {
  vtep: string;
}
export interface DatapathCounts {
  drops: DropCount[];
  endpoints: PortCount[];
  tunnelPeers: PeerCount[];
}

function add<T extends Count>(map: Map<string, T>, key: string, init: Omit<T, 'packets' | 'bytes'>, f: DumpedFlow): void {
  const c = map.get(key) ?? ({ ...init, packets: 0, bytes: 0 } as T);
  c.packets += Number(f.packetCount);
  c.bytes += Number(f.byteCount);
  map.set(key, c);
}

const tunnelDestination = (f: DumpedFlow): string | undefined => {
  for (const i of f.instructions) {
    if (i.type !== 'apply_actions') continue;
    for (const a of i.actions) if (a.type === 'set_field' && a.field.field === 'tun_ipv4_dst') return String(a.field.value);
  }
  return undefined;
};

/**
 * Sums flow statistics into Loom's counters. Endpoint traffic: what a port sends is what the
 * classifier's `in_port` flow counted; what it receives, its output flow. Tunnel peers: the routes
 * to remote prefixes, by the VTEP they set.
 */
export function summarize(flows: readonly DumpedFlow[], endpointPorts: ReadonlySet<number>): DatapathCounts {
  const drops = new Map<string, DropCount>();
  const ports = new Map<string, PortCount>();
  const peers = new Map<string, PeerCount>();
  for (const f of flows) {
    if (isDropFlow(f.instructions)) {
      const reason = dropReason(f.table, f.cookie);
      const table = tableName(f.table);
      add(drops, `${reason}/${table}`, { reason, table }, f);
      continue;
    }
    const inPort = f.table === Table.Classifier ? f.match.find((m) => m.field === 'in_port') : undefined;
    if (inPort && endpointPorts.has(Number(inPort.value))) {
      add(ports, `s${inPort.value}`, { ofport: Number(inPort.value), direction: 'sent' as const }, f);
      continue;
    }
    if (f.table === Table.Output) {
      const reg = f.match.find((m) => m.field === 'reg' && m.index === 2);
      if (reg && endpointPorts.has(Number(reg.value))) add(ports, `r${reg.value}`, { ofport: Number(reg.value), direction: 'received' as const }, f);
      continue;
    }
    if (f.table === Table.L3Forwarding) {
      const vtep = tunnelDestination(f);
      if (vtep) add(peers, vtep, { vtep }, f);
    }
  }
  return {
    drops: [...drops.values()],
    endpoints: [...ports.values()],
    tunnelPeers: [...peers.values()],
  };
}

/** Drops summed by reason over tables (what a heartbeat carries to the controller). */
export function dropsByReason(drops: readonly DropCount[]): Array<{ reason: string; packets: number; bytes: number }> {
  const by = new Map<string, { reason: string; packets: number; bytes: number }>();
  for (const d of drops) {
    const c = by.get(d.reason) ?? { reason: d.reason, packets: 0, bytes: 0 };
    c.packets += d.packets;
    c.bytes += d.bytes;
    by.set(d.reason, c);
  }
  return [...by.values()];
}

export interface CounterSource {
  dumpFlows(): Promise<DumpedFlow[]>;
}

/**
 * The flows the counters read, without the policy table's rule flows: at 1,000 rules those are
 * thousands (bench:policy: 5,300 of 6,600) that count nothing here (clause flows get no hits of
 * their own; allow flows are read by policyPacketCounts), and dumping and decoding them for every
 * heartbeat held rule changes up behind it for hundreds of ms on a loaded host. So: every other
 * table whole; from the policy table every feature's flows but network policy's, and of those the
 * drops only (default deny and invalid, by the flags in their cookies). One small request each.
 */
export function countedFlows(client: { dumpFlows(filter?: FlowFilter): Promise<DumpedFlow[]> }): CounterSource {
  return {
    async dumpFlows() {
      const reads: Promise<DumpedFlow[]>[] = [];
      const feature = (f: number) => BigInt(f) << 40n;
      for (const table of new Set<number>(Object.values(Table))) {
        if (table !== Table.Policy) {
          reads.push(client.dumpFlows({ table }));
          continue;
        }
        for (const f of new Set<number>(Object.values(Feature))) {
          if (f !== Feature.NetworkPolicy) reads.push(client.dumpFlows({ table, cookie: feature(f), cookieMask: FEATURE_MASK }));
        }
        for (const flag of [DENY_OBJECT, INVALID_OBJECT]) {
          reads.push(client.dumpFlows({ table, cookie: feature(Feature.NetworkPolicy) | flag, cookieMask: FEATURE_MASK | flag }));
        }
      }
      return (await Promise.all(reads)).flat();
    },
  };
}

/** Reads the switch at most once per `minIntervalMs`; concurrent readers share one read. */
export class DatapathCounters {
  private last?: { at: number; result: Promise<DatapathCounts> };
  private pending?: Promise<DatapathCounts>;
  /** Reads that failed (a failure is kept for the interval too: a dead switch is not hammered). */
  failures = 0;

  constructor(
    private readonly source: CounterSource,
    private readonly endpointPorts: () => ReadonlySet<number>,
    private readonly minIntervalMs = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  read(): Promise<DatapathCounts> {
    if (this.last && this.now() - this.last.at < this.minIntervalMs) return this.last.result;
    this.pending ??= this.source
      .dumpFlows()
      .then(
        (flows) => summarize(flows, this.endpointPorts()),
        (err: unknown) => {
          this.failures++;
          throw err;
        },
      )
      .finally(() => {
        this.last = { at: this.now(), result: this.pending! };
        this.pending = undefined;
      });
    return this.pending;
  }
}

/** Per-endpoint labels: the OpenFlow port and, when known, the container and network. */
export type EndpointLabels = (ofport: number) => { container: string; network: string } | undefined;

/**
 * Registers the counters on `registry`. They are counters read from the switch: a flow replaced
 * (agent restart) starts from zero again, which Prometheus' rate() treats as a counter reset.
 */
export function registerDatapathMetrics(registry: client.Registry, counters: DatapathCounters, labels: EndpointLabels): void {
  const registers = [registry];
  const dropPackets = new client.Counter({ name: 'loom_agent_dropped_packets_total', help: 'Packets dropped by the flow table, by reason (the dropping flow\'s feature, or which table missed) and table', labelNames: ['reason', 'table'] as const, registers });
  const dropBytes = new client.Counter({ name: 'loom_agent_dropped_bytes_total', help: 'Bytes dropped by the flow table, by reason and table', labelNames: ['reason', 'table'] as const, registers });
  const epPackets = new client.Counter({ name: 'loom_agent_endpoint_packets_total', help: 'Packets a local endpoint sent into or received from the bridge, by OpenFlow port', labelNames: ['ofport', 'container', 'network', 'direction'] as const, registers });
  const epBytes = new client.Counter({ name: 'loom_agent_endpoint_bytes_total', help: 'Bytes a local endpoint sent into or received from the bridge, by OpenFlow port', labelNames: ['ofport', 'container', 'network', 'direction'] as const, registers });
  const peerPackets = new client.Counter({ name: 'loom_agent_tunnel_peer_packets_total', help: 'Packets routed into a tunnel, by remote VTEP', labelNames: ['vtep'] as const, registers });
  const peerBytes = new client.Counter({ name: 'loom_agent_tunnel_peer_bytes_total', help: 'Bytes routed into a tunnel, by remote VTEP', labelNames: ['vtep'] as const, registers });
  new client.Counter({
    name: 'loom_agent_datapath_counter_read_errors_total',
    help: 'Reads of flow statistics from the switch that failed (the counters then keep their last values)',
    registers,
    async collect() {
      await counters.read().catch(() => undefined);
      this.reset();
      this.inc(counters.failures);
    },
  });
  // One collect reads the switch for all of them; the others then find the read cached.
  const collectors = [dropPackets, dropBytes, epPackets, epBytes, peerPackets, peerBytes];
  const fill = async () => {
    let counts: DatapathCounts;
    try {
      counts = await counters.read();
    } catch {
      return;
    }
    for (const c of collectors) c.reset();
    for (const d of counts.drops) {
      dropPackets.inc({ reason: d.reason, table: d.table }, d.packets);
      dropBytes.inc({ reason: d.reason, table: d.table }, d.bytes);
    }
    for (const e of counts.endpoints) {
      const l = { ofport: String(e.ofport), container: '', network: '', ...labels(e.ofport), direction: e.direction };
      epPackets.inc(l, e.packets);
      epBytes.inc(l, e.bytes);
    }
    for (const p of counts.tunnelPeers) {
      peerPackets.inc({ vtep: p.vtep }, p.packets);
      peerBytes.inc({ vtep: p.vtep }, p.bytes);
    }
  };
  // prom-client awaits each metric's collect(); the first fills all, the rest are cache hits.
  for (const c of collectors) (c as unknown as { collect: () => Promise<void> }).collect = fill;
}
