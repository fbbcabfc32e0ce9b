import { describe, expect, it } from 'vitest';
import { ctState } from '../../src/openflow/match.js';
import { formatAction, formatActions, formatFieldRef, formatFlow, formatMatch, formatPort } from '../../src/openflow/printer.js';
import type { FlowDescription } from '../../src/openflow/types.js';

// Expected strings follow ovs-ofctl 3.1 output; ofp-print.int.test.ts checks the same printer
// against the real ovs-ofctl for every field and action.
describe('formatFlow', () => {
  const flow: FlowDescription = {
    table: 2,
    priority: 200,
    cookie: 0x10n,
    match: [{ field: 'eth_type', value: 0x0800 }, { field: 'ipv4_dst', value: '10.0.1.0', mask: '255.255.255.0' }],
    instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: 3 }] }],
  };

  it('without statistics reads like dump-flows --no-stats', () => {
    expect(formatFlow(flow)).toBe('cookie=0x10, table=2, priority=200,ip,nw_dst=10.0.1.0/24 actions=output:3');
  });

  it('omits a zero cookie, table 0 and the default priority', () => {
    expect(formatFlow({ match: [], instructions: [] })).toBe('actions=drop');
    expect(formatFlow({ priority: 0x8000, match: [{ field: 'in_port', value: 1 }], instructions: [] })).toBe('in_port=1 actions=drop');
  });

  it('with statistics prints cookie, duration, table and counters like dump-flows', () => {
    const s = formatFlow({ ...flow, durationSec: 5, durationNsec: 20_000_000, packetCount: 3n, byteCount: 180n, idleTimeout: 60 });
    expect(s).toBe('cookie=0x10, duration=5.020s, table=2, n_packets=3, n_bytes=180, idle_timeout=60, priority=200,ip,nw_dst=10.0.1.0/24 actions=output:3');
  });

  it('prints flow_mod flags before the match', () => {
    expect(formatFlow({ flags: 0x3, priority: 1, match: [], instructions: [] })).toBe('send_flow_rem check_overlap priority=1 actions=drop');
  });
});

describe('formatMatch', () => {
  it('orders fields like OVS match_format, not like the input', () => {
    const text = formatMatch([
      { field: 'tcp_dst', value: 22 },
      { field: 'ipv4_src', value: '192.168.0.1' },
      { field: 'ip_proto', value: 6 },
      { field: 'eth_type', value: 0x0800 },
      { field: 'in_port', value: 4 },
      { field: 'reg', index: 1, value: 0, mask: 0xff },
      ctState('+trk+est'),
    ]);
    expect(text).toBe('ct_state=+est+trk,tcp,reg1=0/0xff,in_port=4,nw_src=192.168.0.1,tp_dst=22');
  });

  it('prints masked values canonically (bits outside the mask cleared, full masks dropped)', () => {
    expect(formatMatch([{ field: 'eth_type', value: 0x0800 }, { field: 'ipv4_dst', value: '10.0.0.77', mask: '255.255.255.0' }])).toBe('ip,nw_dst=10.0.0.0/24');
    expect(formatMatch([{ field: 'tunnel_id', value: 5n, mask: 0xffffffffffffffffn }])).toBe('tun_id=0x5');
    expect(formatMatch([{ field: 'eth_src', value: '02:AA:00:00:00:01', mask: 'ff:ff:ff:ff:ff:ff' }])).toBe('dl_src=02:aa:00:00:00:01');
  });

  it('compresses IPv6 addresses the way inet_ntop does', () => {
    const v6 = (a: string): string => formatMatch([{ field: 'eth_type', value: 0x86dd }, { field: 'ipv6_dst', value: a }]);
    expect(v6('0:0:0:0:0:0:0:0')).toBe('ipv6,ipv6_dst=::');
    expect(v6('fd00:0:0:1:0:0:0:1')).toBe('ipv6,ipv6_dst=fd00:0:0:1::1');
    expect(v6('fd00:0:1:0:1:0:0:1')).toBe('ipv6,ipv6_dst=fd00:0:1:0:1::1');
    expect(v6('fd00:1:0:1:0:1:0:1')).toBe('ipv6,ipv6_dst=fd00:1:0:1:0:1:0:1');
  });

  it('names the protocol shortcut and keeps nw_proto for others', () => {
    expect(formatMatch([{ field: 'eth_type', value: 0x86dd }, { field: 'ip_proto', value: 17 }])).toBe('udp6');
    expect(formatMatch([{ field: 'eth_type', value: 0x0800 }, { field: 'ip_proto', value: 89 }])).toBe('ip,nw_proto=89');
  });

  it('prints unmodelled OXM entries visibly', () => {
    expect(formatMatch([{ field: 'raw', header: 0x80001001, value: Buffer.from([0x2e]) }])).toBe('oxm(0x80001001=2e)');
  });
});

describe('actions and field references', () => {
  it('formats field references with OVS bit-range syntax', () => {
    expect(formatFieldRef({ field: 'reg', index: 7 })).toBe('NXM_NX_REG7[]');
    expect(formatFieldRef({ field: 'reg', index: 7, ofs: 3, nBits: 1 })).toBe('NXM_NX_REG7[3]');
    expect(formatFieldRef({ field: 'tunnel_id', ofs: 0, nBits: 24 })).toBe('NXM_NX_TUN_ID[0..23]');
    expect(formatFieldRef({ field: 'metadata' })).toBe('OXM_OF_METADATA[]');
  });

  it('formats reserved ports by name', () => {
    expect(formatPort('in_port')).toBe('IN_PORT');
    expect(formatPort(0xfffffffe)).toBe('LOCAL');
    expect(formatPort(12)).toBe('12');
  });

  it('prints an output to a numbered port as output:N and reserved ports bare', () => {
    expect(formatActions([{ type: 'output', port: 1 }, { type: 'output', port: 'normal' }, { type: 'output', port: 'controller', maxLen: 0 }])).toBe(
      'output:1,NORMAL,CONTROLLER:0',
    );
  });

  it('prints unmodelled actions as hex rather than dropping them', () => {
    expect(formatAction({ type: 'unknown', bytes: Buffer.from('ffff001000002320000200001234567a', 'hex') })).toBe(
      'unknown(ffff001000002320000200001234567a)',
    );
  });

  it('an empty action list is drop', () => {
    expect(formatActions([])).toBe('drop');
  });
});
