import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { getTxChecksum, setTxChecksum } from '../../src/netlink/ethtool.js';
import { netnsInode } from '../../src/netlink/netns.js';
import { NetlinkError } from '../../src/netlink/errors.js';

const ns = `lt${process.pid.toString(36)}et`;
const nsPath = `/run/netns/${ns}`;
const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
const ethtoolTx = () => execFileSync('ip', ['netns', 'exec', ns, 'ethtool', '-k', 'eth0'], { encoding: 'utf8' }).match(/^tx-checksumming: (\w+)/m)?.[1];

describe('ethtool transmit checksum offload', () => {
  beforeAll(() => {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0');
  });
  afterAll(() => {
    ip('netns', 'del', ns);
  });

  it('turns tx checksumming off and on inside another namespace (ethtool -k as oracle)', () => {
    const before = netnsInode();
    expect(ethtoolTx()).toBe('on');
    setTxChecksum(nsPath, 'eth0', false);
    expect(ethtoolTx()).toBe('off');
    expect(getTxChecksum(nsPath, 'eth0')).toBe(false);
    setTxChecksum(nsPath, 'eth0', true);
    expect(ethtoolTx()).toBe('on');
    expect(netnsInode()).toBe(before);
  });

  it('names the missing interface and stays in its own namespace', () => {
    const before = netnsInode();
    expect(() => setTxChecksum(nsPath, 'nosuch0', false)).toThrow(NetlinkError);
    expect(() => setTxChecksum(nsPath, 'nosuch0', false)).toThrow(/nosuch0/);
    expect(netnsInode()).toBe(before);
  });
});
