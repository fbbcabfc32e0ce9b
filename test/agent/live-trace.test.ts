// The live trace's pieces on fakes: the marked probe (checksums a receiver accepts), the
// observation flows, the one-at-a-time tracer, and the session carrying trace requests apart
// from view changes.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { buildProbe, LiveTraceBusy, LiveTracer, observationFlows, type LiveIo, type LiveSpec } from '../../src/agent/live-trace.js';
import { Feature, cookieFeature } from '../../src/agent/pipeline/fields.js';
import { ControllerSession, systemClock, type WatchStream } from '../../src/agent/controller-session.js';
import type { PacketIn } from '../../src/openflow/messages.js';
import type { Match } from '../../src/openflow/types.js';
import type * as api from '../../src/api/types.js';

/** RFC 1071 sum over `parts`: 0 when a checksum inside them is right. */
function verify(...parts: Buffer[]): number {
  let sum = 0;
  for (const b of parts) for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const spec = (over: Partial<LiveSpec> = {}): LiveSpec => ({ dscp: 52, source: '198.18.0.2', destination: '198.18.0.66', protocol: 'icmp', port: 0, windowMs: 200, ...over });

describe('buildProbe', () => {
  it('IPv4: the DSCP in the TOS byte, valid IP and ICMP/TCP/UDP checksums', () => {
    for (const protocol of ['icmp', 'tcp', 'udp'] as const) {
      const f = buildProbe(spec({ protocol, port: 80 }), '02:42:c6:12:00:02', '02:4c:00:00:13:ed');
      expect(f.subarray(0, 6).toString('hex')).toBe('024c000013ed');
      expect(f.readUInt16BE(12)).toBe(0x0800);
      const ip = f.subarray(14, 34);
      expect(ip[1]! >> 2).toBe(52);
      expect(verify(ip)).toBe(0);
      const l4 = f.subarray(34);
      const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, ip[9]!, l4.length >> 8, l4.length & 0xff])]);
      expect(verify(...(protocol === 'icmp' ? [l4] : [pseudo, l4])), protocol).toBe(0);
    }
  });

  it('IPv6: the DSCP in the traffic class, a valid ICMPv6 checksum', () => {
    const f = buildProbe(spec({ source: 'fd00:b::2', destination: 'fd00:b::42' }), '02:42:c6:12:00:02', '02:4c:00:00:13:ed');
    const ip = f.subarray(14, 54);
    expect((ip.readUInt32BE(0) >>> 22) & 0x3f).toBe(52);
    const l4 = f.subarray(54);
    expect(l4[0]).toBe(128);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(l4.length);
    expect(verify(ip.subarray(8, 40), len, Buffer.from([0, 0, 0, 58]), l4)).toBe(0);
  });
});

describe('observationFlows', () => {
  it('one flow per tunnel port (reported and forwarded), one for the gateway port, one for local delivery (reported only), all feature trace', () => {
    const flows = observationFlows(spec(), 3, { tunnels: [65001, 65002], gateway: 65100 });
    expect(flows).toHaveLength(4);
    for (const f of flows) {
      expect(cookieFeature(f.cookie!)).toBe(Feature.Trace);
      expect(f.table).toBe(50);
      expect(f.match).toContainEqual({ field: 'ip_dscp', value: 52 });
    }
    expect(flows[0]!.instructions).toEqual([{ type: 'apply_actions', actions: [{ type: 'output', port: 'controller', maxLen: 128 }, { type: 'output', port: 65001 }] }]);
    expect(flows[3]!.instructions).toEqual([{ type: 'apply_actions', actions: [{ type: 'output', port: 'controller', maxLen: 128 }] }]);
  });
});

class FakeIo implements LiveIo {
  flows = 0;
  outs: Uint8Array[] = [];
  readonly handlers = new Set<(p: PacketIn & { fields: Match }) => void>();
  /** What a packet-out makes the switch do: which observation flow (by index) catches it, or none. */
  catchBy: number | undefined;
  private installed: bigint[] = [];
  async addFlows(f: Parameters<LiveIo['addFlows']>[0]) {
    this.flows += f.length;
    this.installed = f.map((x) => x.cookie!);
  }
  async deleteFlows() {
    this.flows = 0;
  }
  async packetOut(p: { data: Uint8Array }) {
    this.outs.push(p.data);
    if (this.catchBy === undefined) return;
    const cookie = this.installed[this.catchBy]!;
    setImmediate(() => {
      for (const h of this.handlers) h({ cookie, fields: [{ field: 'reg', index: 2, value: 65001 }], data: Buffer.from(p.data) } as unknown as PacketIn & { fields: Match });
    });
  }
  onPacketIn(h: (p: PacketIn & { fields: Match }) => void) {
    this.handlers.add(h);
    return () => this.handlers.delete(h);
  }
}

describe('LiveTracer', () => {
  const from = { ofport: 5, mac: '02:42:c6:12:00:02', vni: 5101 };
  it('reports where the probe was seen, removes its flows, and runs one trace at a time', async () => {
    const io = new FakeIo();
    const tracer = new LiveTracer(io, () => 1, () => ({ tunnels: [65001], gateway: undefined }));
    io.catchBy = 0;
    expect(await tracer.inject(spec(), from)).toEqual({ seen: true, outcome: 'tunnel', ofport: 65001 });
    expect(io.flows).toBe(0);
    expect(io.handlers.size).toBe(0);
    io.catchBy = undefined;
    expect(await tracer.inject(spec(), from)).toEqual({ seen: false, outcome: '', ofport: 0 });
    await tracer.arm(spec({ dscp: 53 }));
    await expect(tracer.arm(spec({ dscp: 54 }))).rejects.toBeInstanceOf(LiveTraceBusy);
    expect(await tracer.collect(spec({ dscp: 53 }))).toEqual({ seen: false, outcome: '', ofport: 0 });
    expect(tracer.running).toBe(false);
  });
});

describe('ControllerSession: trace requests', () => {
  it('answers a trace request on the same stream and never applies it to the view', async () => {
    class Stream extends EventEmitter implements WatchStream {
      destroyed = false;
      written: api.WatchRequest[] = [];
      write(m: api.WatchRequest) {
        this.written.push(m);
        return true;
      }
      cancel() {
        this.destroyed = true;
      }
    }
    const stream = new Stream();
    const port = {
      register: async () => ({ revision: 0, heartbeatIntervalMs: 60_000, watchPort: 0 }) as api.RegisterResponse,
      heartbeat: async () => ({}),
      watch: () => stream,
      close: () => undefined,
    };
    const changes: number[] = [];
    const session = new ControllerSession({
      registration: { name: 'n1', vtep: '192.0.2.1', agentVersion: 't', capabilities: [] },
      controller: 'c',
      api: port,
      watchApi: () => port,
      appliedRevision: () => 0,
      onChange: (r, ack) => (changes.push(r), ack()),
      onTrace: async (req) => ({ id: req.id, error: `traced ${req.destination}` }),
      log: pino({ level: 'silent' }),
      clock: systemClock,
    });
    await session.start();
    stream.emit('data', { revision: 7, reset: true, partial: false, events: [], storeId: 's' });
    stream.emit('data', { revision: 0, reset: false, partial: false, events: [], storeId: '', traceRequest: { id: 9, network: 'blue', role: 'source', destination: '198.18.0.9' } });
    await new Promise((r) => setImmediate(r));
    expect(changes).toEqual([7]);
    expect(session.view.revision).toBe(7);
    expect(session.view.storeId).toBe('s');
    expect(stream.written.at(-1)).toEqual({ traceReply: { id: 9, error: 'traced 198.18.0.9' } });
    session.stop();
  });
});
