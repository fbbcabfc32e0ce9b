import { describe, expect, it } from 'vitest';
import { parseCidr, parseIp } from '../../src/common/ip.js';
import { reservedNetworkOverlap, vtepAddressProblem } from '../../src/common/reserved.js';

describe('reserved ranges', () => {
  it.each([
    ['0.0.0.0/8', '0.0.0.0/8'], ['127.0.0.0/16', '127.0.0.0/8'], ['126.0.0.0/7', '127.0.0.0/8'],
    ['169.254.0.0/24', '169.254.0.0/16'], ['224.0.0.0/8', '224.0.0.0/4'], ['255.255.255.252/30', '240.0.0.0/4'],
    ['::/64', '::/128'], ['::ffff:0:0/112', '::ffff:0:0/96'], ['fe80::/64', 'fe80::/10'], ['ff02::/16', 'ff00::/8'],
  ])('a network %s overlaps %s', (net, range) => {
    expect(reservedNetworkOverlap(parseCidr(net))).toMatch(new RegExp(`^${range.replace(/[./]/g, '\\$&')}, `));
  });
  it.each(['10.0.0.0/8', '198.18.0.0/15', '100.64.0.0/10', 'fd00::/64', '2001:db8::/32', '1.0.0.0/8', '223.255.0.0/16'])('a network %s is fine', (net) => {
    expect(reservedNetworkOverlap(parseCidr(net))).toBeUndefined();
  });
  it.each([
    ['127.0.0.1', /loopback/], ['0.0.0.0', /unspecified/], ['0.1.2.3', /unspecified/], ['255.255.255.255', /broadcast/],
    ['224.0.0.1', /multicast/], ['::', /unspecified/], ['::1', /loopback/], ['ff02::1', /multicast/],
    ['fe80::1', /zone/], ['::ffff:10.0.0.1', /IPv4-mapped/],
  ])('a VTEP %s is refused', (ip, why) => {
    expect(vtepAddressProblem(parseIp(ip))).toMatch(why);
  });
  it.each(['192.0.2.1', '10.0.0.1', '169.254.1.1', 'fd00::1', '2001:db8::1'])('a VTEP %s is fine', (ip) => {
    expect(vtepAddressProblem(parseIp(ip))).toBeUndefined();
  });
});
