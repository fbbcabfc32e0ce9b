import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, waitFor, type SimHost } from '../harness/index.js';
import { OvsdbClient } from '../../src/ovsdb/client.js';
import { Vswitch } from '../../src/ovsdb/vswitch.js';
import { OvsdbSession } from '../../src/ovsdb/session.js';
import { OvsSet } from '../../src/ovsdb/values.js';

let host: SimHost;
let client: OvsdbClient;
let vs: Vswitch;

beforeAll(async () => {
  host = await startHost({ name: 'vs' });
  client = await OvsdbClient.connect(`unix:${host.dbSocket}`);
  vs = new Vswitch(client);
});

afterAll(async () => {
  client?.close();
  await host?.stop();
});

const get = async (table: string, record: string, column: string): Promise<string> =>
  (await host.vsctl('get', table, record, column)).trim();
const nextCfg = async (): Promise<number> => Number(await get('Open_vSwitch', '.', 'next_cfg'));

describe('Vswitch helpers (ovs-vsctl as oracle)', () => {
  it('ensureBridge creates a bridge that ovs-vswitchd brings up, and a second call writes nothing', async () => {
    const spec = {
      name: 'br-t',
      datapathType: 'netdev',
      failMode: 'secure' as const,
      protocols: ['OpenFlow13'],
      otherConfig: { 'hwaddr': '02:00:00:00:00:01' },
      externalIds: { owner: 'vswitch-test' },
    };
    expect(await vs.ensureBridge(spec)).toEqual({ changed: true });
    expect(await get('Bridge', 'br-t', 'datapath_type')).toBe('netdev');
    expect(await get('Bridge', 'br-t', 'fail_mode')).toBe('secure');
    expect(await get('Bridge', 'br-t', 'protocols')).toBe('[OpenFlow13]');
    expect(await get('Bridge', 'br-t', 'other_config')).toBe('{hwaddr="02:00:00:00:00:01"}');
    expect(await get('Bridge', 'br-t', 'external_ids')).toBe('{owner=vswitch-test}');
    // applied: ovs-vswitchd gave the bridge's internal interface an OpenFlow port (LOCAL)
    expect(await get('Interface', 'br-t', 'ofport')).toBe('65534');
    expect(Number(await get('Open_vSwitch', '.', 'cur_cfg'))).toBe(await nextCfg());

    const before = await nextCfg();
    expect(await vs.ensureBridge(spec)).toEqual({ changed: false });
    expect(await nextCfg()).toBe(before);
  });

  it('ensureBridge changes only what differs and keeps unrelated map keys', async () => {
    await host.vsctl('set', 'Bridge', 'br-t', 'external_ids:other=kept');
    expect(await vs.ensureBridge({ name: 'br-t', failMode: 'standalone', externalIds: { owner: 'changed' } })).toEqual({ changed: true });
    expect(await get('Bridge', 'br-t', 'fail_mode')).toBe('standalone');
    expect(await get('Bridge', 'br-t', 'external_ids')).toBe('{other=kept, owner=changed}');
    expect(await get('Bridge', 'br-t', 'datapath_type')).toBe('netdev');
  });

  it('ensurePorts adds internal, system, vxlan and gre ports with options and ofport_request', async () => {
    await host.exec('ip', ['link', 'add', 'sys0', 'type', 'veth', 'peer', 'name', 'sys0p']);
    const res = await vs.ensurePorts('br-t', [
      { name: 'int0', type: 'internal', ofportRequest: 10, externalIds: { role: 'test', id: 'int0' } },
      { name: 'sys0', type: 'system', externalIds: { role: 'test', id: 'sys0' } },
      { name: 'vx0', type: 'vxlan', options: { remote_ip: 'flow', key: 'flow' }, externalIds: { role: 'tunnel' } },
      { name: 'vx1', type: 'vxlan', options: { remote_ip: '192.0.2.7', key: '42', local_ip: '192.0.2.1', dst_port: '4790' } },
      { name: 'gre0', type: 'gre', options: { remote_ip: 'flow', key: 'flow' } },
    ]);
    expect(res.changed).toBe(true);
    expect(await get('Interface', 'int0', 'ofport')).toBe('10');
    expect(res.interfaces.get('int0')?.ofport).toBe(10);
    for (const name of ['sys0', 'vx0', 'vx1', 'gre0']) {
      const st = res.interfaces.get(name)!;
      expect(st.error, name).toBeUndefined();
      expect(st.ofport, name).toBeGreaterThan(0);
      expect(String(st.ofport)).toBe(await get('Interface', name, 'ofport'));
    }
    expect(await get('Interface', 'vx0', 'type')).toBe('vxlan');
    expect(await get('Interface', 'vx0', 'options')).toBe('{key=flow, remote_ip=flow}');
    expect(await get('Interface', 'vx1', 'options')).toBe('{dst_port="4790", key="42", local_ip="192.0.2.1", remote_ip="192.0.2.7"}');
    expect(await get('Interface', 'gre0', 'type')).toBe('gre');
    expect((await host.vsctl('list-ports', 'br-t')).trim().split('\n').sort()).toEqual(['gre0', 'int0', 'sys0', 'vx0', 'vx1']);
    // ovs-vswitchd's own view agrees
    expect(await host.ofctl('show', 'br-t')).toMatch(/10\(int0\)/);
  });

  it('ensurePorts a second time with the same specs writes nothing; a changed option is updated in place', async () => {
    const before = await nextCfg();
    const same = await vs.ensurePort('br-t', { name: 'vx0', type: 'vxlan', options: { remote_ip: 'flow', key: 'flow' }, externalIds: { role: 'tunnel' } });
    expect(same.changed).toBe(false);
    expect(await nextCfg()).toBe(before);
    const uuidBefore = await get('Interface', 'vx0', '_uuid');
    const ofportBefore = await get('Interface', 'vx0', 'ofport');

    const changed = await vs.ensurePort('br-t', { name: 'vx0', type: 'vxlan', options: { remote_ip: 'flow', key: '99' } });
    expect(changed.changed).toBe(true);
    expect(await get('Interface', 'vx0', 'options')).toBe('{key="99", remote_ip=flow}');
    expect(await get('Interface', 'vx0', '_uuid')).toBe(uuidBefore);
    expect(String(changed.interfaces.get('vx0')?.ofport)).toBe(ofportBefore);
  });

  it('findPorts matches on external_ids', async () => {
    const found = await vs.findPorts({ role: 'test' });
    expect(found.map((p) => p.name).sort()).toEqual(['int0', 'sys0']);
    expect(found.find((p) => p.name === 'int0')?.externalIds).toEqual({ role: 'test', id: 'int0' });
    expect(await vs.findPorts({ role: 'test', id: 'sys0' })).toHaveLength(1);
    expect(await vs.findPorts({ role: 'nobody' })).toEqual([]);
  });

  it('a port that lives on another bridge is refused with a readable error', async () => {
    await vs.ensureBridge({ name: 'br-o', datapathType: 'netdev' });
    await expect(vs.ensurePort('br-o', { name: 'vx0', type: 'vxlan', options: { remote_ip: 'flow' } })).rejects.toThrow(
      /port vx0 exists on another bridge than br-o/,
    );
    await expect(vs.ensurePort('br-missing', { name: 'x' })).rejects.toThrow(/bridge br-missing does not exist/);
    await expect(vs.ensurePorts('br-o', [{ name: 'd' }, { name: 'd' }])).rejects.toThrow(/ensurePorts on br-o: port d is listed twice/);
  });

  it('two clients ensuring the same port at once end with one port and no error', async () => {
    const other = await OvsdbClient.connect(`unix:${host.dbSocket}`);
    try {
      const spec = { name: 'race0', type: 'internal' as const };
      const results = await Promise.all([vs.ensurePort('br-t', spec), new Vswitch(other).ensurePort('br-t', spec)]);
      expect(results.map((r) => r.changed).sort()).toEqual([false, true]);
      expect(await host.vsctl('--bare', '--columns=name', 'find', 'Port', 'name=race0')).toBe('race0\n');
    } finally {
      other.close();
    }
  });

  it('insertPort adds a new port with the number asked for in one transaction, and refuses a taken name or number', async () => {
    const begun = await vs.insertPort('br-t', { name: 'ins0', type: 'internal', ofportRequest: 4000, externalIds: { k: 'v' } });
    expect(begun).toBeDefined();
    // OVSDB holds it at once; ovs-vswitchd has applied it when `applied` settles
    expect(await get('Port', 'ins0', 'external_ids')).toBe('{k=v}');
    const status = await begun!.applied;
    expect(status?.ofport).toBe(4000);
    expect(Number(await get('Open_vSwitch', '.', 'cur_cfg'))).toBeGreaterThanOrEqual(await nextCfg());
    expect((await host.vsctl('list-ports', 'br-t')).split('\n')).toContain('ins0');

    const before = await nextCfg();
    expect(await vs.insertPort('br-t', { name: 'ins0', type: 'internal', ofportRequest: 4001 })).toBeUndefined(); // name taken
    expect(await vs.insertPort('br-t', { name: 'ins1', type: 'internal', ofportRequest: 4000 })).toBeUndefined(); // number taken
    expect(await nextCfg()).toBe(before);
    expect(await host.vsctl('--bare', '--columns=name', 'find', 'Interface', 'name=ins1')).toBe('');
    await expect(vs.insertPort('br-none', { name: 'ins2', type: 'internal' })).rejects.toThrow(/bridge br-none does not exist/);
    expect(await host.vsctl('--bare', '--columns=name', 'find', 'Port', 'name=ins2')).toBe('');
    // external_ids set by its row: given keys replaced, others kept; no such row: false
    expect(await vs.setPortExternalIds('ins0', begun!.uuid, { k: 'w', mac: '02:00:00:00:00:01' })).toBe(true);
    expect(await get('Port', 'ins0', 'external_ids')).toBe('{k=w, mac="02:00:00:00:00:01"}');
    expect(await vs.setPortExternalIds('ins0', begun!.uuid, { other: 'x' })).toBe(true);
    expect(await get('Port', 'ins0', 'external_ids')).toBe('{k=w, mac="02:00:00:00:00:01", other=x}');
    expect(await vs.setPortExternalIds('ins1', begun!.uuid, { k: 'z' })).toBe(false);
    // removed by its row, without a read first; a second time there is no such row
    expect(await vs.removePortRow('br-t', 'ins0', begun!.uuid)).toBe(true);
    expect(await host.vsctl('--bare', '--columns=name', 'find', 'Port', 'name=ins0')).toBe('');
    expect(await host.vsctl('--bare', '--columns=name', 'find', 'Interface', 'name=ins0')).toBe('');
    expect(Number(await get('Open_vSwitch', '.', 'cur_cfg'))).toBeGreaterThanOrEqual(await nextCfg());
    expect(await vs.removePortRow('br-t', 'ins0', begun!.uuid)).toBe(false);
  });

  it('removePorts removes them (and is a no-op the second time); deleteBridge removes a bridge', async () => {
    expect(await vs.removePorts('br-t', ['gre0', 'vx1', 'race0', 'not-there'])).toEqual({ changed: true });
    expect((await host.vsctl('list-ports', 'br-t')).trim().split('\n').sort()).toEqual(['int0', 'sys0', 'vx0']);
    expect(await host.vsctl('--bare', '--columns=name', 'find', 'Interface', 'name=gre0')).toBe('');
    expect(await vs.removePorts('br-t', ['gre0'])).toEqual({ changed: false });

    expect(await vs.deleteBridge('br-o')).toEqual({ changed: true });
    expect((await host.vsctl('list-br')).trim().split('\n')).toEqual(['br-t']);
    expect(await vs.deleteBridge('br-o')).toEqual({ changed: false });
  });

  it('works through a reconnecting session across an ovsdb-server restart', async () => {
    const session = new OvsdbSession({
      remote: `unix:${host.dbSocket}`,
      db: 'Open_vSwitch',
      tables: { Interface: ['name', 'ofport'] },
      minBackoffMs: 50,
      maxBackoffMs: 500,
    });
    await session.start();
    try {
      const svs = new Vswitch(() => session.requireClient());
      const first = await svs.ensurePort('br-t', { name: 'sess0', type: 'internal' });
      expect(first.interfaces.get('sess0')?.ofport).toBeGreaterThan(0);

      const resynced = new Promise((r) => session.once('synced', r));
      await host.restartOvsdb();
      await resynced;
      const second = await svs.ensurePort('br-t', { name: 'sess1', type: 'internal' });
      const ofport = second.interfaces.get('sess1')?.ofport;
      expect(ofport).toBeGreaterThan(0);
      expect(String(ofport)).toBe(await get('Interface', 'sess1', 'ofport'));
      // the session's cache follows too
      await waitFor('cache', () => session.cache.find('Interface', (r) => r.name === 'sess1' && r.ofport instanceof OvsSet && r.ofport.size === 1).length === 1);
    } finally {
      await session.close();
    }
    // the plain client of the other tests died with the server: replace it
    client.close();
    client = await OvsdbClient.connect(`unix:${host.dbSocket}`);
    vs = new Vswitch(client);
    expect(await vs.removePorts('br-t', ['sess0', 'sess1'])).toEqual({ changed: true });
  });

  it('waitApplied times out readably when ovs-vswitchd is not running', async () => {
    await host.stopVswitchd();
    try {
      await expect(vs.ensureBridge({ name: 'br-late', datapathType: 'netdev' }, { timeoutMs: 1500 })).rejects.toThrow(
        /ovs-vswitchd did not apply configuration \d+ within 1500 ms \(cur_cfg=\d+\); is ovs-vswitchd running\?/,
      );
    } finally {
      await host.startVswitchd();
    }
    // once it runs again it applies the pending configuration
    expect(await vs.ensureBridge({ name: 'br-late', datapathType: 'netdev' })).toEqual({ changed: false });
    await vs.ensurePort('br-late', { name: 'late0', type: 'internal' });
    expect(Number(await get('Interface', 'late0', 'ofport'))).toBeGreaterThan(0);
  });
});
