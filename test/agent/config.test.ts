import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HELP, loadConfig, SETTINGS } from '../../src/agent/config.js';
import { ConfigError, flagName } from '../../src/common/config.js';

const base = ['--host-name', 'node1', '--vtep', '192.0.2.11'];

describe('agent configuration', () => {
  it('applies defaults and implies tx checksum off on the userspace datapath', () => {
    const c = loadConfig([...base, '--datapath', 'netdev']);
    expect(c).toMatchObject({ hostName: 'node1', vtep: '192.0.2.11', integrationBridge: 'br-int', datapathType: 'netdev', txChecksumOff: true, socket: '/run/loom/agent.sock' });
    expect(loadConfig(base)).toMatchObject({ datapathType: 'system', txChecksumOff: false });
  });

  it('picks the port I/O itself unless told, and takes afxdp on the userspace datapath only', () => {
    expect(loadConfig(base)).toMatchObject({ netdevPortType: 'auto', afxdpMode: 'best-effort' });
    expect(loadConfig([...base, '--netdev-port-type', 'af_packet'])).toMatchObject({ netdevPortType: 'af_packet' });
    expect(loadConfig([...base, '--datapath', 'netdev', '--netdev-port-type', 'afxdp', '--afxdp-mode', 'native'])).toMatchObject({ netdevPortType: 'afxdp', afxdpMode: 'native' });
  });

  it('sweeps for stale endpoints every 30 s by default; 0 turns the periodic sweep off', () => {
    expect(loadConfig(base)).toMatchObject({ endpointSweepIntervalMs: 30_000 });
    expect(loadConfig([...base, '--endpoint-sweep-interval-ms', '0'])).toMatchObject({ endpointSweepIntervalMs: 0 });
    expect(loadConfig([...base, '--endpoint-sweep-interval-ms', '500'])).toMatchObject({ endpointSweepIntervalMs: 500 });
  });

  it('has a gateway port loom-gw0 by default, another name, or none', () => {
    expect(loadConfig(base)).toMatchObject({ gatewayPort: 'loom-gw0', nft: 'nft' });
    expect(loadConfig([...base, '--gateway-port', 'gw1'])).toMatchObject({ gatewayPort: 'gw1' });
    expect(loadConfig([...base, '--gateway-port', ''])).toMatchObject({ gatewayPort: '' });
  });

  it('NATs in OVS by default where it can (userspace datapath, underlay bridge and interface, gateway port), else on the host', () => {
    const netdev = [...base, '--datapath', 'netdev', '--underlay-bridge', 'br-phy', '--underlay-interface', 'eth0'];
    expect(loadConfig(base)).toMatchObject({ natPath: 'host' });
    // auto: NAT in OVS wherever it can be (the userspace datapath with an underlay bridge and interface), else the host's.
    expect(loadConfig(netdev)).toMatchObject({ natPath: 'ovs' });
    expect(loadConfig([...base, '--datapath', 'netdev'])).toMatchObject({ natPath: 'host' });
    expect(loadConfig([...netdev, '--gateway-port', ''])).toMatchObject({ natPath: 'host' });
    expect(loadConfig([...netdev, '--nat-path', 'host'])).toMatchObject({ natPath: 'host' });
    expect(loadConfig([...netdev, '--nat-path', 'ovs'])).toMatchObject({ natPath: 'ovs' });
    expect(() => loadConfig([...base, '--nat-path', 'ovs'])).toThrow(/netdev only.*one in-kernel crossing/);
    expect(() => loadConfig([...base, '--datapath', 'netdev', '--nat-path', 'ovs'])).toThrow(/underlayBridge and underlayInterface/);
    expect(() => loadConfig([...netdev, '--nat-path', 'ovs', '--gateway-port', ''])).toThrow(/needs gatewayPort/);
    expect(() => loadConfig([...base, '--nat-path', 'kernel'])).toThrow(ConfigError);
    expect(HELP).toContain('--nat-path auto|host|ovs');
  });

  it('returns help for --help', () => {
    expect(loadConfig(['--help'])).toBe('help');
  });

  it.each([
    [['--vtep', '192.0.2.11'], /hostName/],
    [['--host-name', 'node1'], /vtep/],
    [['--host-name', 'node1', '--vtep', 'fd00::1'], /IPv4/],
    [[...base, '--datapath', 'dpdk'], /datapathType must be one of system, netdev/],
    [[...base, '--netdev-port-type', 'afxdp'], /netdevPortType afxdp needs datapathType netdev/],
    [[...base, '--underlay-bridge', 'br-phy'], /underlayBridge is for datapathType netdev only/],
    [[...base, '--datapath', 'netdev', '--netdev-port-type', 'dpdk'], /netdevPortType must be one of auto, af_packet, afxdp, afxdp-nonpmd/],
    [[...base, '--datapath', 'netdev', '--afxdp-mode', 'fast'], /afxdpMode must be one of best-effort/],
    [[...base, '--underlay-mtu', '500'], /underlayMtu must be an integer between 1280/],
    [[...base, '--controller', 'nowhere'], /controller must look like/],
    [[...base, '--ovsdb', 'ftp://x'], /ovsdb must be unix:PATH or tcp:HOST:PORT/],
    [[...base, '--bridge', 'a-bridge-name-that-is-too-long'], /at most 15/],
    [[...base, '--bridge', 'brücke-ééééé'], /integrationBridge is not a valid interface name: it is 18 bytes long; the kernel allows at most 15 .*got "brücke-ééééé"/],
    [[...base, '--bridge', 'br:0'], /contains ":"/],
    [[...base, '--underlay-bridge', 'br-phy', '--underlay-interface', 'eth 1'], /underlayInterface is not a valid interface name: it contains " ".*got "eth 1"/],
    [[...base, '--underlay-bridge', '..'], /underlayBridge is not a valid interface name.*got "\.\."/],
    [['--host-name', 'node1', '--vtep', '127.0.0.1'], /vtep cannot be a tunnel endpoint: it is in 127\.0\.0\.0\/8, loopback.*got "127\.0\.0\.1"/],
    [['--host-name', 'node1', '--vtep', '224.0.0.5'], /multicast/],
    [[...base, '--no-such-flag'], /Unknown option/],
    [[...base, '--underlay-interface', 'eth1'], /underlayInterface needs underlayBridge/],
    [[...base, '--underlay-bridge', 'br-int'], /must differ from integrationBridge/],
    [[...base, '--gateway-port', 'a-port-name-that-is-too-long'], /gatewayPort is not a valid interface name: it is 28 bytes long/],
    [['--config', '/nonexistent/agent.json'], /cannot read config file/],
    [[...base, '--endpoint-sweep-interval-ms', '50'], /endpointSweepIntervalMs \(0 = off\) must be an integer between 100 and 3600000/],
    [[...base, '--endpoint-sweep-interval-ms', 'soon'], /endpointSweepIntervalMs/],
  ])('rejects %j with a readable error', (args, message) => {
    expect(() => loadConfig(args)).toThrow(ConfigError);
    expect(() => loadConfig(args)).toThrow(message);
  });
});

describe('agent settings table', () => {
  it('keeps the old flag names working beside the kebab-case keys', () => {
    const old = loadConfig([...base, '--bridge', 'br-x', '--datapath', 'netdev', '--ovs-rundir', '/tmp/ovs']);
    const now = loadConfig([...base, '--integration-bridge', 'br-x', '--datapath-type', 'netdev', '--ovs-run-dir', '/tmp/ovs']);
    expect(old).toEqual(now);
    expect(now).toMatchObject({ integrationBridge: 'br-x', datapathType: 'netdev', ovsRunDir: '/tmp/ovs' });
  });

  it('explains every setting in --help with its flag and config key', () => {
    for (const key of Object.keys(SETTINGS)) {
      expect(HELP).toContain(`--${flagName(key)}`);
      expect(HELP).toContain(`[${key};`);
    }
    expect(HELP).toContain('also --bridge');
  });

  it('knows every key the Ansible role writes into agent.json', () => {
    const tasks = readFileSync(new URL('../../ansible/roles/loom_agent/tasks/main.yml', import.meta.url), 'utf8');
    const block = tasks.slice(tasks.indexOf('loom_agent_config: >-'), tasks.indexOf('notify:', tasks.indexOf('loom_agent_config: >-')));
    const keys = [...block.matchAll(/'([a-zA-Z]+)':/g)].map((m) => m[1]!);
    expect(keys.length).toBeGreaterThan(10);
    for (const key of keys) expect(Object.keys(SETTINGS)).toContain(key);
  });
});
