// A live trace on this host (loomctl trace --live), as Antrea's Traceflow does it: a real packet,
// marked with a DSCP value the controller reserves for this trace (the inner IP header keeps it
// through the tunnel), is injected at the source endpoint's port into table 0; short-lived
// observation flows (cookie feature 10, Trace) in the Output table catch it where it leaves the
// host and send it to the agent. Into a tunnel it is also forwarded, so the destination host
// sees it; delivered or to the host it is only reported, so no container gets the probe. Not
// seen at all means it was dropped (or consumed: ARP, DNS) before the Output table.
import type { FlowSpec, FlowFilter } from '../openflow/client.js';
import type { Action, Match, MatchField } from '../openflow/types.js';
import type { PacketIn } from '../openflow/messages.js';
import { ipToBytes, macToBytes } from '../common/ip.js';
import { internetChecksum, pseudoHeader } from '../common/checksum.js';
import { Feature, FEATURE_MASK, OBJECT_MASK, Table, cookie, gatewayMac } from './pipeline/fields.js';

export interface LiveIo {
  addFlows(flows: FlowSpec[]): Promise<void>;
  deleteFlows(filter: FlowFilter): Promise<void>;
  packetOut(p: { inPort?: number; actions: Action[]; data: Uint8Array }): Promise<void>;
  onPacketIn(handler: (p: PacketIn & { fields: Match }) => void): () => void;
}

/** The marked packet and where it leaves. */
export interface LiveSpec {
  dscp: number;
  source: string;
  destination: string;
  protocol: 'icmp' | 'tcp' | 'udp';
  port: number;
  windowMs: number;
}

export interface LiveObservation {
  seen: boolean;
  /** tunnel, delivered, to_host; '' when not seen. */
  outcome: string;
  ofport: number;
}

export class LiveTraceBusy extends Error {}

const OUTCOME = { tunnel: 1, to_host: 2, delivered: 3 } as const;
const OUTCOME_BY_CODE = new Map<number, string>(Object.entries(OUTCOME).map(([k, v]) => [v, k]));
/** Observation flows sit above every pipeline flow of the Output table. */
const OBSERVE_PRIORITY = 1000;

/** One live trace at a time on this host; flows removed when it ends or its window passes. */
export class LiveTracer {
  private current: { spec: LiveSpec; seen?: LiveObservation; wake: Array<() => void>; timer: NodeJS.Timeout; off: () => void } | undefined;

  constructor(
    private readonly io: LiveIo,
    private readonly generation: () => number,
    private readonly ports: () => { tunnels: number[]; gateway: number | undefined },
  ) {}

  /** Installs the observation flows for `spec` (removed after its window at the latest). */
  async arm(spec: LiveSpec): Promise<void> {
    if (this.current) {
      if (this.current.spec.dscp === spec.dscp) return;
      throw new LiveTraceBusy(`a live trace (DSCP ${this.current.spec.dscp}) is already running on this host`);
    }
    const off = this.io.onPacketIn((p) => this.packetIn(p));
    const timer = setTimeout(() => void this.disarm().catch(() => undefined), spec.windowMs + 1000);
    timer.unref();
    this.current = { spec, wake: [], timer, off };
    try {
      await this.io.addFlows(observationFlows(spec, this.generation(), this.ports()));
    } catch (err) {
      await this.disarm();
      throw err;
    }
  }

  /** Arms, injects the marked packet at `from` (into table 0) and waits for it to leave this host. */
  async inject(spec: LiveSpec, from: { ofport: number; mac: string; vni: number }): Promise<LiveObservation> {
    await this.arm(spec);
    try {
      await this.io.packetOut({ inPort: from.ofport, actions: [{ type: 'output', port: 'table' }], data: buildProbe(spec, from.mac, gatewayMac(from.vni)) });
      return await this.waitSeen(spec.windowMs);
    } finally {
      await this.disarm();
    }
  }

  /** Waits (at most the window) for the armed trace's packet, then removes the flows. */
  async collect(spec: LiveSpec): Promise<LiveObservation> {
    if (this.current?.spec.dscp !== spec.dscp) return { seen: false, outcome: '', ofport: 0 };
    try {
      return await this.waitSeen(spec.windowMs);
    } finally {
      await this.disarm();
    }
  }

  get running(): boolean {
    return this.current !== undefined;
  }

  private waitSeen(ms: number): Promise<LiveObservation> {
    const cur = this.current;
    if (!cur) return Promise.resolve({ seen: false, outcome: '', ofport: 0 });
    if (cur.seen) return Promise.resolve(cur.seen);
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve(cur!.seen ?? { seen: false, outcome: '', ofport: 0 });
      }
      cur.wake.push(done);
    });
  }

  private packetIn(p: PacketIn & { fields: Match }): void {
    const cur = this.current;
    if (!cur || ((p.cookie & FEATURE_MASK) >> 40n) !== BigInt(Feature.Trace)) return;
    const object = Number(p.cookie & OBJECT_MASK);
    if (object >> 8 !== cur.spec.dscp || cur.seen) return;
    const reg2 = p.fields.find((f) => f.field === 'reg' && f.index === 2)?.value;
    cur.seen = { seen: true, outcome: OUTCOME_BY_CODE.get(object & 0xff) ?? 'other', ofport: typeof reg2 === 'number' ? reg2 : 0 };
    for (const w of cur.wake.splice(0)) w();
  }

  private async disarm(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    this.current = undefined;
    clearTimeout(cur.timer);
    cur.off();
    for (const w of cur.wake.splice(0)) w();
    // Every generation's flows of this mark (all outcomes).
    await this.io.deleteFlows({ table: Table.Output, cookie: cookie(0, Feature.Trace, BigInt(cur.spec.dscp << 8)), cookieMask: FEATURE_MASK | (OBJECT_MASK & ~0xffn) });
  }
}

/** The observation flows of one live trace (pure). */
export function observationFlows(spec: LiveSpec, generation: number, ports: { tunnels: number[]; gateway: number | undefined }): FlowSpec[] {
  const v6 = spec.source.includes(':');
  const marked: MatchField[] = [
    { field: 'eth_type', value: v6 ? 0x86dd : 0x0800 },
    { field: 'ip_dscp', value: spec.dscp },
    ...(v6
      ? ([{ field: 'ipv6_src', value: spec.source }, { field: 'ipv6_dst', value: spec.destination }] as MatchField[])
      : ([{ field: 'ipv4_src', value: spec.source }, { field: 'ipv4_dst', value: spec.destination }] as MatchField[])),
  ];
  const c = (outcome: number) => cookie(generation, Feature.Trace, BigInt((spec.dscp << 8) | outcome));
  const toAgent: Action = { type: 'output', port: 'controller', maxLen: 128 };
  const flows: FlowSpec[] = ports.tunnels.map((p) => ({
    table: Table.Output,
    priority: OBSERVE_PRIORITY + 1,
    cookie: c(OUTCOME.tunnel),
    match: [...marked, { field: 'reg', index: 2, value: p }],
    // Reported and forwarded: the destination host observes it too.
    instructions: [{ type: 'apply_actions', actions: [toAgent, { type: 'output', port: p }] }],
  }));
  if (ports.gateway !== undefined) {
    flows.push({ table: Table.Output, priority: OBSERVE_PRIORITY + 1, cookie: c(OUTCOME.to_host), match: [...marked, { field: 'reg', index: 2, value: ports.gateway }], instructions: [{ type: 'apply_actions', actions: [toAgent] }] });
  }
  flows.push({ table: Table.Output, priority: OBSERVE_PRIORITY, cookie: c(OUTCOME.delivered), match: marked, instructions: [{ type: 'apply_actions', actions: [toAgent] }] });
  return flows;
}

// ---- the probe packet

/** An Ethernet frame from the endpoint to its gateway MAC: IPv4/IPv6 with the DSCP mark, then ICMP echo, a TCP SYN or UDP. */
export function buildProbe(spec: LiveSpec, srcMac: string, dstMac: string): Buffer {
  const v6 = spec.source.includes(':');
  const src = ipToBytes(spec.source);
  const dst = ipToBytes(spec.destination);
  const proto = spec.protocol === 'icmp' ? (v6 ? 58 : 1) : spec.protocol === 'tcp' ? 6 : 17;
  let l4: Buffer;
  if (spec.protocol === 'icmp') {
    l4 = Buffer.alloc(16);
    l4[0] = v6 ? 128 : 8;
    l4.writeUInt16BE(0x4c6d, 4); // identifier "Lm"
    l4.writeUInt16BE(spec.dscp, 6);
    l4.write('loomtrac', 8, 'latin1');
  } else if (spec.protocol === 'tcp') {
    l4 = Buffer.alloc(20);
    l4.writeUInt16BE(40000 + spec.dscp, 0);
    l4.writeUInt16BE(spec.port, 2);
    l4.writeUInt32BE(0x4c6f6f6d, 4);
    l4[12] = 5 << 4;
    l4[13] = 0x02; // SYN
    l4.writeUInt16BE(64240, 14);
  } else {
    l4 = Buffer.alloc(16);
    l4.writeUInt16BE(40000 + spec.dscp, 0);
    l4.writeUInt16BE(spec.port, 2);
    l4.writeUInt16BE(l4.length, 4);
    l4.write('loomtrac', 8, 'latin1');
  }
  const pseudo = pseudoHeader(src, dst, proto, l4.length);
  const sumAt = spec.protocol === 'icmp' ? 2 : spec.protocol === 'tcp' ? 16 : 6;
  const sum = spec.protocol === 'icmp' && !v6 ? internetChecksum(l4) : internetChecksum(pseudo, l4);
  l4.writeUInt16BE(spec.protocol === 'udp' && sum === 0 ? 0xffff : sum, sumAt);
  let ip: Buffer;
  if (v6) {
    ip = Buffer.alloc(40);
    ip.writeUInt32BE((6 << 28) | (spec.dscp << 22), 0);
    ip.writeUInt16BE(l4.length, 4);
    ip[6] = proto;
    ip[7] = 64;
    src.copy(ip, 8);
    dst.copy(ip, 24);
  } else {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip[1] = spec.dscp << 2;
    ip.writeUInt16BE(20 + l4.length, 2);
    ip.writeUInt16BE(0x4000, 6); // DF
    ip[8] = 64;
    ip[9] = proto;
    src.copy(ip, 12);
    dst.copy(ip, 16);
    ip.writeUInt16BE(internetChecksum(ip), 10);
  }
  const eth = Buffer.alloc(14);
  macToBytes(dstMac).copy(eth, 0);
  macToBytes(srcMac).copy(eth, 6);
  eth.writeUInt16BE(v6 ? 0x86dd : 0x0800, 12);
  return Buffer.concat([eth, ip, l4]);
}
