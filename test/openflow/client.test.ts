import { describe, expect, it } from 'vitest';
import { BundleError, FlowModError, describeChange } from '../../src/openflow/client.js';

describe('describeChange', () => {
  it('renders a change in ovs-ofctl syntax for error messages, without actions for deletes', () => {
    expect(describeChange({ command: 'add', table: 3, priority: 1, instructions: [{ type: 'goto_table', table: 1 }] }))
      .toBe('add table=3, priority=1 actions=goto_table:1');
    expect(describeChange({ command: 'delete', cookie: 0x10n, match: [{ field: 'eth_type', value: 0x0800 }] }))
      .toBe('delete cookie=0x10, ip');
  });
});

describe('error messages', () => {
  it('a bundle error names the change, its index and the reason, and says nothing was applied', () => {
    const e = new BundleError({ index: 4, change: { command: 'add', priority: 9 }, reason: 'BAD_MATCH/OFPBMC_BAD_PREREQ' });
    expect(e.message).toBe('bundle rejected, nothing applied: change #4 (add priority=9 actions=drop) failed: BAD_MATCH/OFPBMC_BAD_PREREQ');
    expect(new BundleError({ index: -1, reason: 'OFPBFC_BAD_ID' }).message).toBe('bundle rejected, nothing applied: OFPBFC_BAD_ID');
  });

  it('a batch error counts the failures and names the first', () => {
    const e = new FlowModError([{ index: 2, change: { command: 'delete_strict', priority: 5 }, reason: 'x' }], 10);
    expect(e.message).toBe('1 of 10 flow changes failed; first: change #2 (delete_strict priority=5): x');
  });
});
