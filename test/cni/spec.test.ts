import { describe, expect, it } from 'vitest';
import { CniCode, CniError, parseArgs, parseConfig, parseEnv, staticAddresses, toCniResult } from '../../src/cni/spec.js';

const env = (over: Record<string, string | undefined> = {}) => ({
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc',
  CNI_NETNS: '/run/netns/x',
  CNI_IFNAME: 'eth0',
  ...over,
});

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof CniError ? err.code : -1;
  }
  return undefined;
}

describe('CNI environment', () => {
  it('reads the command, container and CNI_ARGS', () => {
    expect(parseEnv(env({ CNI_ARGS: 'IgnoreUnknown=1;IP=198.18.0.9;K8S_POD_NAME=web' }))).toEqual({
      command: 'ADD',
      containerId: 'abc',
      netns: '/run/netns/x',
      ifname: 'eth0',
      args: { IgnoreUnknown: '1', IP: '198.18.0.9', K8S_POD_NAME: 'web' },
    });
  });

  it('rejects a missing or unknown command and missing variables with code 4', () => {
    expect(codeOf(() => parseEnv(env({ CNI_COMMAND: 'FOO' })))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => parseEnv(env({ CNI_NETNS: undefined })))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => parseEnv(env({ CNI_IFNAME: 'a-name-far-too-long' })))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => parseArgs('novalue'))).toBe(CniCode.InvalidEnvironment);
  });

  it('checks CNI_IFNAME as the kernel does: 15 bytes, not characters', () => {
    expect(parseEnv(env({ CNI_IFNAME: 'ééééééé1' })).ifname).toBe('ééééééé1'); // 15 bytes
    expect(() => parseEnv(env({ CNI_IFNAME: 'éééééééé' }))).toThrow(/CNI_IFNAME "éééééééé" is not a valid interface name: it is 16 bytes long/);
    expect(() => parseEnv(env({ CNI_IFNAME: '..' }))).toThrow(/is "\." or "\.\."/);
  });

  it('needs no netns for DEL (the namespace may be gone already)', () => {
    expect(parseEnv(env({ CNI_COMMAND: 'DEL', CNI_NETNS: undefined })).command).toBe('DEL');
  });
});

describe('CNI network configuration', () => {
  it('defaults the Loom network to the config name and the agent socket', () => {
    expect(parseConfig('{"cniVersion":"1.0.0","name":"blue","type":"loom"}')).toMatchObject({ network: 'blue', agentSocket: '/run/loom/agent.sock' });
    expect(parseConfig('{"cniVersion":"1.0.0","name":"b","type":"loom","network":"blue","agentSocket":"/x.sock"}')).toMatchObject({ network: 'blue', agentSocket: '/x.sock' });
  });

  it('answers undecodable, invalid and unsupported configurations with codes 6, 7 and 1', () => {
    expect(codeOf(() => parseConfig('{'))).toBe(CniCode.DecodeFailure);
    expect(codeOf(() => parseConfig('[]'))).toBe(CniCode.DecodeFailure);
    expect(codeOf(() => parseConfig('{"cniVersion":"1.0.0","type":"loom"}'))).toBe(CniCode.InvalidConfig);
    expect(codeOf(() => parseConfig('{"cniVersion":"2.0.0","name":"b","type":"loom"}'))).toBe(CniCode.IncompatibleVersion);
  });

  it('takes podman\'s -p from runtimeConfig.portMappings (protocol default tcp, hostIP optional)', () => {
    const conf = (pm: unknown) => JSON.stringify({ cniVersion: '1.0.0', name: 'b', type: 'loom', runtimeConfig: { portMappings: pm } });
    expect(parseConfig('{"cniVersion":"1.0.0","name":"b","type":"loom"}').portMappings).toEqual([]);
    expect(parseConfig(conf([{ hostPort: 8080, containerPort: 80 }, { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' }])).portMappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIp: '' },
      { hostPort: 53, containerPort: 53, protocol: 'udp', hostIp: '127.0.0.1' },
    ]);
    for (const bad of [{}, [{ hostPort: '80', containerPort: 80 }], [{ hostPort: 80, containerPort: 80, protocol: 'sctp' }], [null]]) {
      expect(codeOf(() => parseConfig(conf(bad)))).toBe(CniCode.InvalidConfig);
    }
  });

  it('takes the dns capability from runtimeConfig as podman passes it, and refuses a malformed one with code 7', () => {
    const conf = (rc: unknown) => JSON.stringify({ cniVersion: '1.0.0', name: 'blue', type: 'loom', runtimeConfig: rc });
    expect(parseConfig(conf({ dns: { servers: ['192.0.2.53'], searches: ['example.test'], options: ['ndots:2'] }, portMappings: [] })).dns).toEqual({
      servers: ['192.0.2.53'],
      searches: ['example.test'],
      options: ['ndots:2'],
    });
    expect(parseConfig(conf({ dns: { servers: [] } })).dns).toBeUndefined();
    expect(parseConfig(conf({ portMappings: [] })).dns).toBeUndefined();
    expect(codeOf(() => parseConfig(conf({ dns: { servers: '192.0.2.53' } })))).toBe(CniCode.InvalidConfig);
    expect(codeOf(() => parseConfig(conf({ dns: ['x'] })))).toBe(CniCode.InvalidConfig);
    expect(codeOf(() => parseConfig(conf('dns')))).toBe(CniCode.InvalidConfig);
  });

  it("takes the aliases capability for this network (by the config's name or its Loom network) and refuses a malformed one with code 7", () => {
    const conf = (rc: unknown, extra: object = {}) => JSON.stringify({ cniVersion: '1.0.0', name: 'podnet', type: 'loom', ...extra, runtimeConfig: rc });
    expect(parseConfig(conf({ aliases: { podnet: ['web', 'cache', 'web'], other: ['x'] } })).aliases).toEqual(['web', 'cache']);
    expect(parseConfig(conf({ aliases: { blue: ['db'] } }, { network: 'blue' })).aliases).toEqual(['db']);
    expect(parseConfig(conf({ aliases: { other: ['x'] } })).aliases).toBeUndefined();
    expect(codeOf(() => parseConfig(conf({ aliases: ['web'] })))).toBe(CniCode.InvalidConfig);
    expect(codeOf(() => parseConfig(conf({ aliases: { podnet: 'web' } })))).toBe(CniCode.InvalidConfig);
    expect(codeOf(() => parseConfig(conf({ aliases: { podnet: [''] } })))).toBe(CniCode.InvalidConfig);
    expect(codeOf(() => parseConfig(conf({ aliases: { podnet: Array.from({ length: 33 }, (_, i) => `a${i}`) } })))).toBe(CniCode.InvalidConfig);
  });

  it('takes one IPv4 and one IPv6 static address from IP=', () => {
    expect(staticAddresses({ IP: '198.18.0.9,fd00::9' })).toEqual({ ipv4: '198.18.0.9', ipv6: 'fd00::9' });
    expect(staticAddresses({ IP: '198.18.0.9/16' })).toEqual({ ipv4: '198.18.0.9' });
    expect(codeOf(() => staticAddresses({ IP: '198.18.0.9,198.18.0.10' }))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => staticAddresses({ IP: 'nonsense' }))).toBe(CniCode.InvalidEnvironment);
  });
});

describe('CNI result', () => {
  it('has the host and container interfaces, addresses on the container side, routes and DNS', () => {
    const r = toCniResult('1.0.0', {
      hostInterface: 'lm0123',
      interface: { name: 'eth0', mac: '02:42:c6:12:00:02', sandbox: '/run/netns/x', mtu: 1450 },
      addresses: [{ address: '198.18.0.2/16', gateway: '198.18.0.1' }],
      routes: [{ dst: '0.0.0.0/0', gw: '198.18.0.1' }],
      dns: { nameservers: ['198.18.0.53'], search: [], options: [] },
    });
    expect(r).toEqual({
      cniVersion: '1.0.0',
      interfaces: [{ name: 'lm0123' }, { name: 'eth0', mac: '02:42:c6:12:00:02', mtu: 1450, sandbox: '/run/netns/x' }],
      ips: [{ address: '198.18.0.2/16', gateway: '198.18.0.1', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '198.18.0.1' }],
      dns: { nameservers: ['198.18.0.53'] },
    });
  });

  it('renders errors as the spec\'s error object', () => {
    expect(new CniError(7, 'bad', 'why').toJSON('1.0.0')).toEqual({ cniVersion: '1.0.0', code: 7, msg: 'bad', details: 'why' });
  });
});

describe('endpoint labels from the CNI', () => {
  it('takes the conflist labels, then CNI_ARGS LABELS over them', async () => {
    const { endpointLabels } = await import('../../src/cni/spec.js');
    const conf = parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'blue', type: 'loom', labels: { app: 'web', tier: 'front' } }));
    expect(conf.labels).toEqual({ app: 'web', tier: 'front' });
    expect(endpointLabels(conf, parseArgs('K8S_POD_NAME=x;LABELS=tier=back,role=db'))).toEqual({ app: 'web', tier: 'back', role: 'db' });
    expect(endpointLabels({}, {})).toEqual({});
    expect(() => endpointLabels({}, { LABELS: 'app' })).toThrow('CNI_ARGS LABELS entry "app" is not key=value');
    expect(() => parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'blue', type: 'loom', labels: ['app'] }))).toThrow('"labels" must be an object of strings');
  });
});
