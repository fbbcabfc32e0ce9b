import { describe, expect, it } from 'vitest';
import { autoPortIoType } from '../../src/agent/ovs.js';

describe('autoPortIoType', () => {
  const withAfxdp = ['afxdp', 'afxdp-nonpmd', 'internal', 'system', 'vxlan'];
  it('takes AF_XDP only where OVS has it and PMD threads have cores', () => {
    expect(autoPortIoType(withAfxdp, new Map([['pmd-cpu-mask', '0x2']]))).toBe('afxdp');
    expect(autoPortIoType(withAfxdp, new Map())).toBe('af_packet');
    expect(autoPortIoType(withAfxdp, new Map([['pmd-cpu-mask', '']]))).toBe('af_packet');
    expect(autoPortIoType(['internal', 'system', 'vxlan'], new Map([['pmd-cpu-mask', '0x2']]))).toBe('af_packet');
  });
});
