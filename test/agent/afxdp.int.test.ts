// AF_XDP ports (--netdev-port-type afxdp) on two simulated hosts: the underlay interface and the
// container ports are read through AF_XDP and carry traffic; where AF_XDP cannot attach (here: a
// veth asked for zero-copy, which veth lacks) the agent falls back to AF_PACKET and says so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, runCni, cniEnv, tcpTransfer, type Cluster } from '../harness/index.js';
import { startController, type TestController } from '../harness/controller.js';

async function interfaceType(cluster: Cluster, host: number, name: string): Promise<string> {
  return (await cluster.hosts[host]!.vsctl('get', 'Interface', name, 'type')).trim().replace(/"/g, '');
}

async function attach(cluster: Cluster, host: number, name: string) {
  const c = await cluster.hosts[host]!.addContainer(name, { empty: true });
  const conf = { cniVersion: '1.0.0', name: 'blue', type: 'loom', agentSocket: cluster.agents[host]!.socket };
  const r = await runCni(cluster.cniBin, 'ADD', conf, cniEnv(c, name));
  expect(r.code, r.stdout).toBe(0);
  const json = r.json as { interfaces: Array<{ name: string }>; ips: Array<{ address: string }> };
  return { c, port: json.interfaces[0]!.name, ipv4: json.ips[0]!.address.split('/')[0]! };
}

describe.each([
  // auto takes AF_XDP once the operator gave PMD threads cores.
  { portType: 'auto', mode: 'best-effort', pmdCpuMask: '0x1', expected: 'afxdp' },
  { portType: 'afxdp', mode: 'native-with-zerocopy', pmdCpuMask: '', expected: '' },
])('agent with --netdev-port-type $portType --afxdp-mode $mode', ({ portType, mode, pmdCpuMask, expected }) => {
  let ctl: TestController;
  let cluster: Cluster;

  beforeAll(async () => {
    ctl = await startController();
    await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN' });
    cluster = await startCluster({
      hosts: ['xa', 'xb'],
      controller: ctl.target,
      agentArgs: ['--netdev-port-type', portType, '--afxdp-mode', mode],
      prepareHost: async (h) => {
        await h.vsctl('set', 'Open_vSwitch', '.', 'other_config:pmd-maxsleep=50', ...(pmdCpuMask ? [`other_config:pmd-cpu-mask=${pmdCpuMask}`] : []));
      },
    });
  });

  afterAll(async () => {
    await cluster?.stop();
    await ctl?.stop();
  });

  it(expected ? 'reads the underlay and container ports through AF_XDP, and forwards' : 'falls back to AF_PACKET with a warning, and forwards', async () => {
    const a = await attach(cluster, 0, 'ca');
    const b = await attach(cluster, 1, 'cb');
    for (const [host, port] of [[0, 'ul0'], [1, 'ul0'], [0, a.port], [1, b.port]] as const) {
      expect(await interfaceType(cluster, host, port), `${port} on host ${host}`).toBe(expected);
    }
    if (portType === 'auto') expect(cluster.agents[0]!.logs).toContain('ports read through afxdp: OVS has afxdp and other_config:pmd-cpu-mask');
    const fallbacks = cluster.agents[0]!.logs.split('\n').filter((l) => l.includes('AF_XDP could not attach'));
    if (expected) expect(fallbacks).toEqual([]);
    else {
      expect(fallbacks.map((l) => (JSON.parse(l) as { interface: string }).interface).sort()).toEqual([a.port, 'ul0'].sort());
      expect(JSON.parse(fallbacks[0]!)).toMatchObject({ level: 40, portType: 'afxdp', xdpMode: 'native-with-zerocopy' });
    }
    if (!expected) {
      // A restarted agent leaves a port that fell back alone: no new attempt, the underlay does not flap.
      expect(await cluster.hosts[0]!.vsctl('get', 'Port', 'ul0', 'external_ids:loom-port-io-fallback')).toContain('afxdp/native-with-zerocopy');
      await cluster.agents[0]!.stop();
      await cluster.agents[0]!.start();
      expect(cluster.agents[0]!.logs.split('\n').filter((l) => l.includes('AF_XDP could not attach'))).toHaveLength(fallbacks.length);
      expect(await interfaceType(cluster, 0, 'ul0')).toBe('');
    }
    // TCP with a checksum of what arrived: AF_XDP moves frames, the endpoints must still agree.
    await a.c.exec('ping', ['-c', '1', '-W', '5', b.ipv4]);
    const t = await tcpTransfer(a.c, b.c, b.ipv4, 2_000_000);
    expect(t.received).toBe(t.sent);
  });
});
