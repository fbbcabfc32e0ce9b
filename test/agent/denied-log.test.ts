// The denied-attempts log: the token bucket, header parsing, and which packet-ins become lines.
import { describe, expect, it } from 'vitest';
import client from 'prom-client';
import { logDeniedAttempts, parseDeniedPacket } from '../../src/agent/denied-log.js';
import { DENY_OBJECT, Feature, cookie } from '../../src/agent/pipeline/fields.js';
import type { PacketIn } from '../../src/openflow/messages.js';
import type { Match } from '../../src/openflow/types.js';
import { silentLogger } from '../../src/common/logging.js';

/** Ethernet + IPv4 + TCP SYN from 198.18.0.2:40000 to 198.18.0.3:80. */
function tcp4(dport = 80): Buffer {
  const b = Buffer.alloc(54);
  b.writeUInt16BE(0x0800, 12);
  b[14] = 0x45;
  b[23] = 6;
  Buffer.from([198, 18, 0, 2]).copy(b, 26);
  Buffer.from([198, 18, 0, 3]).copy(b, 30);
  b.writeUInt16BE(40000, 34);
  b.writeUInt16BE(dport, 36);
  return b;
}

/** Ethernet + IPv6 + UDP from fd00::2:5353 to fd00::3:53. */
function udp6(): Buffer {
  const b = Buffer.alloc(62);
  b.writeUInt16BE(0x86dd, 12);
  b[14] = 0x60;
  b[20] = 17;
  b[37] = 2;
  b[53] = 3;
  b.writeUInt16BE(0xfd00, 22);
  b.writeUInt16BE(0xfd00, 38);
  b.writeUInt16BE(5353, 54);
  b.writeUInt16BE(53, 56);
  return b;
}

describe('denied-attempts log', () => {
  it('reads addresses, protocol and ports of IPv4 and IPv6 packets', () => {
    expect(parseDeniedPacket(tcp4())).toEqual({ source: '198.18.0.2', destination: '198.18.0.3', protocol: 'tcp', sourcePort: 40000, port: 80 });
    expect(parseDeniedPacket(udp6())).toEqual({ source: 'fd00::2', destination: 'fd00::3', protocol: 'udp', sourcePort: 5353, port: 53 });
    const icmp = tcp4();
    icmp[23] = 1;
    icmp[34] = 8;
    expect(parseDeniedPacket(icmp)).toMatchObject({ protocol: 'icmp', port: 8 });
    const arp = tcp4();
    arp.writeUInt16BE(0x0806, 12);
    expect(parseDeniedPacket(arp)).toBeUndefined();
    expect(parseDeniedPacket(Buffer.alloc(20))).toBeUndefined();
  });

  it('logs only deny-flow packet-ins, at most the rate, and counts what it suppresses', () => {
    let handler: ((p: PacketIn & { fields: Match }) => void) | undefined;
    const io = { onPacketIn: (h: typeof handler) => ((handler = h), () => (handler = undefined)) };
    const lines: Array<Record<string, unknown>> = [];
    const log = silentLogger();
    log.info = ((obj: Record<string, unknown>) => void lines.push(obj)) as typeof log.info;
    const registry = new client.Registry();
    const counter = new client.Counter({ name: 'lines', help: 'x', labelNames: ['outcome'] as const, registers: [registry] });
    let t = 0;
    const off = logDeniedAttempts(io as never, { rate: 5, networkOf: (vni) => (vni === 100 ? 'blue' : undefined), log, lines: counter, now: () => t });
    const packetIn = (c: bigint, data: Buffer) =>
      handler!({ xid: 0, bufferId: 0, totalLen: data.length, reason: 1, reasonName: 'action', tableId: 40, cookie: c, match: Buffer.alloc(0), data, fields: [{ field: 'in_port', value: 7 }] });
    // Not the deny flow (a rule's allow flow; DNS): ignored.
    packetIn(cookie(1, Feature.NetworkPolicy, 1234), tcp4());
    packetIn(cookie(1, Feature.Dns, DENY_OBJECT | 100n), tcp4());
    expect(lines).toEqual([]);
    for (let i = 0; i < 8; i++) packetIn(cookie(1, Feature.NetworkPolicy, DENY_OBJECT | 100n), tcp4(8000 + i));
    expect(lines).toHaveLength(5);
    expect(lines[0]).toEqual({ network: 'blue', vni: 100, source: '198.18.0.2', destination: '198.18.0.3', protocol: 'tcp', sourcePort: 40000, port: 8000, inPort: 7, rule: 'default deny' });
    t += 1000;
    packetIn(cookie(1, Feature.NetworkPolicy, DENY_OBJECT | 100n), udp6());
    expect(lines).toHaveLength(6);
    expect(lines[5]).toMatchObject({ source: 'fd00::2', protocol: 'udp', port: 53 });
    return registry.getSingleMetricAsString('lines').then((text) => {
      expect(text).toContain('lines{outcome="logged"} 6');
      expect(text).toContain('lines{outcome="suppressed"} 3');
      off();
      expect(handler).toBeUndefined();
    });
  });
});
