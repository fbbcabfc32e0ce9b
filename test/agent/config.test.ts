import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/agent/config.js';
import { ConfigError } from '../../src/common/config.js';

const base = ['--host-name', 'node1', '--vtep', '192.0.2.11'];

describe('agent configuration', () => {
  it('applies defaults and implies tx checksum off on the userspace datapath', () => {
    const c = loadConfig([...base, '--datapath', 'netdev']);
    expect(c).toMatchObject({ hostName: 'node1', vtep: '192.0.2.11', integrationBridge: 'br-int', datapathType: 'netdev', txChecksumOff: true, socket: '/run/loom/agent.sock' });
    expect(loadConfig(base)).toMatchObject({ datapathType: 'system', txChecksumOff: false });
  });

  it('has a gateway port loom-gw0 by default, another name, or none', () => {
    expect(loadConfig(base)).toMatchObject({ gatewayPort: 'loom-gw0', nft: 'nft' });
    expect(loadConfig([...base, '--gateway-port', 'gw1'])).toMatchObject({ gatewayPort: 'gw1' });
    expect(loadConfig([...base, '--gateway-port', ''])).toMatchObject({ gatewayPort: '' });
  });

  it('returns help for --help', () => {
    expect(loadConfig(['--help'])).toBe('help');
  });

  it.each([
    [['--vtep', '192.0.2.11'], /hostName/],
    [['--host-name', 'node1'], /vtep/],
    [['--host-name', 'node1', '--vtep', 'fd00::1'], /IPv4/],
    [[...base, '--datapath', 'dpdk'], /datapathType must be one of system, netdev/],
    [[...base, '--underlay-mtu', '500'], /underlayMtu must be an integer between 1280/],
    [[...base, '--controller', 'nowhere'], /controller must look like/],
    [[...base, '--ovsdb', 'ftp://x'], /ovsdb must be unix:PATH or tcp:HOST:PORT/],
    [[...base, '--bridge', 'a-bridge-name-that-is-too-long'], /at most 15/],
    [[...base, '--no-such-flag'], /Unknown option/],
    [[...base, '--underlay-interface', 'eth1'], /underlayInterface needs underlayBridge/],
    [[...base, '--underlay-bridge', 'br-int'], /must differ from integrationBridge/],
    [[...base, '--gateway-port', 'a-port-name-that-is-too-long'], /gatewayPort must be an interface name/],
    [['--config', '/nonexistent/agent.json'], /cannot read config file/],
  ])('rejects %j with a readable error', (args, message) => {
    expect(() => loadConfig(args)).toThrow(ConfigError);
    expect(() => loadConfig(args)).toThrow(message);
  });
});
