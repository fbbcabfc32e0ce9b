import { describe, expect, it } from 'vitest';
import pino from 'pino';
import * as grpc from '@grpc/grpc-js';
import { AgentError, Attacher, hostIfname, type AttachHost, type EndpointApi, type EndpointPorts, type Plumber } from '../../src/agent/attacher.js';
import type { VethEnds } from '../../src/agent/plumbing.js';
import { EndpointReclaimer } from '../../src/agent/stale-endpoints.js';
import type { EndpointPortRecord } from '../../src/agent/ovs.js';
import type * as api from '../../src/api/types.js';
import type { AttachRequest } from '../../src/api/local.js';

const NETWORK: api.Network = {
  name: 'blue',
  vni: 100,
  ipv4Cidr: '198.18.0.0/24',
  ipv6Cidr: '',
  tunnelType: 'TUNNEL_TYPE_VXLAN',
  mtu: 1450,
  gateways: ['198.18.0.1'],
} as unknown as api.Network;

const ENDPOINT = {
  network: 'blue',
  containerId: 'c1',
  host: 'node1',
  ipv4: '198.18.0.2/24',
  ipv6: '',
  mac: '02:42:c6:12:00:02',
  mtu: 0,
  gateways: ['198.18.0.1'],
  routes: [{ destination: '0.0.0.0/0', gateway: '198.18.0.1' }],
  hostname: 'c1',
} as unknown as api.Endpoint;

const REQ: AttachRequest = { containerId: 'c1', netns: '/run/netns/c1', ifname: 'eth0', network: 'blue', name: 'web' };

type Step = 'controller' | 'netlink' | 'ovsdb' | 'openflow';

/**
 * Fakes of the four parts an attach touches, recording what exists; `failAt` makes one step fail.
 * `begin`: the ports take a chosen OpenFlow port number (`same`: ovs-vswitchd gives it, `other`:
 * it gives 9 instead, `taken`: OVSDB refuses it) or cannot (`undefined`: add only).
 */
function rig(failAt?: Step, begin?: 'same' | 'other' | 'taken') {
  /** What happened, in order (controller calls, veth creation). */
  const events: string[] = [];
  /** While set, the controller's calls wait for it (a slow controller); `down` makes deletes fail. */
  let gate: Promise<void> | undefined;
  const controllerState = { down: false, failCreate: false };
  /** At each flow sync: the attachments' OpenFlow ports, and whether ovs-vswitchd had applied the port yet. */
  const syncs: Array<{ ofports: number[]; applied: boolean }> = [];
  let applied = false;
  const endpoints = new Set<string>();
  const interfaces = new Set<string>();
  const ports = new Map<string, EndpointPortRecord>();
  let flowsFor = new Set<string>();
  const controller: EndpointApi = {
    async createEndpoint(req) {
      events.push('create-endpoint');
      await gate;
      events.push('create-endpoint-done');
      if (controllerState.failCreate) throw Object.assign(new Error('UNAVAILABLE'), { code: grpc.status.UNAVAILABLE, details: 'connection refused' });
      if (failAt === 'controller') throw Object.assign(new Error('no addresses left'), { code: grpc.status.RESOURCE_EXHAUSTED, details: 'no addresses left' });
      endpoints.add(`${req.network}/${req.containerId}`);
      return ENDPOINT;
    },
    async getEndpoint() {
      return ENDPOINT;
    },
    async getNetwork() {
      return NETWORK;
    },
    async deleteEndpoint(network, containerId) {
      await gate;
      if (controllerState.down) throw Object.assign(new Error('UNAVAILABLE'), { code: grpc.status.UNAVAILABLE, details: 'connection refused' });
      events.push(`delete-endpoint ${containerId}`);
      endpoints.delete(`${network}/${containerId}`);
      return {};
    },
  };
  const plumber: Plumber = {
    async netnsProblem() {
      return null;
    },
    async create(spec: VethEnds) {
      events.push('veth');
      interfaces.add(spec.hostIfname);
    },
    async setHostMtu() {},
    async configureInside() {
      if (failAt === 'netlink') throw new Error('netlink: EEXIST');
    },
    async detach(name) {
      interfaces.delete(name);
    },
    async check() {
      return [];
    },
  };
  const portsApi: EndpointPorts = {
    async add(name, record) {
      ports.set(name, record);
      if (failAt === 'ovsdb') throw new Error('port failed in ovs-vswitchd');
      return 7;
    },
    async remove(name) {
      ports.delete(name);
    },
    ...(begin
      ? {
          async record(name: string, record: EndpointPortRecord) {
            events.push(`record ${record.mac}`);
            if (!ports.has(name)) throw new Error(`port ${name} vanished`);
            ports.set(name, record);
          },
          async begin(name: string, record: EndpointPortRecord, ofport: number) {
            await new Promise((r) => setTimeout(r, 5)); // ovsdb-server's answer takes a while
            events.push(record.mac ? 'ovsdb' : 'ovsdb (request only)');
            if (begin === 'taken') return undefined;
            ports.set(name, record);
            // ovs-vswitchd takes a while: the flows may go in meanwhile
            const done = new Promise<number>((resolve, reject) =>
              setTimeout(() => {
                applied = true;
                if (failAt === 'ovsdb') reject(new Error('port failed in ovs-vswitchd'));
                else resolve(begin === 'same' ? ofport : 9);
              }, 20),
            );
            done.catch(() => undefined);
            return { applied: done };
          },
        }
      : {}),
  };
  let queue: Promise<unknown> = Promise.resolve();
  const enqueue = <T,>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  };
  // The agent's reclaimer, on these fakes: controller first, then the port and veth.
  const reclaimer = new EndpointReclaimer({
    connected: () => true,
    deleteAtController: async (ep) => {
      if (attacher.attachments.has(`${ep.record.containerId}/${ep.record.ifname}`)) return 'reattached';
      await controller.deleteEndpoint(ep.record.network, ep.record.containerId);
      return 'deleted';
    },
    removeLocal: (ep) =>
      enqueue(async () => {
        if (attacher.attachments.has(`${ep.record.containerId}/${ep.record.ifname}`)) return;
        ports.delete(ep.hostIfname);
        interfaces.delete(ep.hostIfname);
      }),
    log: pino({ level: 'silent' }),
  });
  const attacher: Attacher = new Attacher(
    { hostName: 'node1', controller: '192.0.2.100:7400', underlayMtu: 1500, txChecksumOff: true },
    controller,
    plumber,
    portsApi,
    {
      enqueue,
      async syncFlows(commitAfter?: Promise<unknown>) {
        events.push('flows-sent');
        await commitAfter;
        events.push('flows-committed');
        if (failAt === 'openflow' && attacher.attachments.size > 0) throw new Error('bundle failed: OFPBFC_MSG_FAILED');
        flowsFor = new Set([...attacher.attachments.values()].map((a) => a.hostIfname));
        syncs.push({ ofports: [...attacher.attachments.values()].map((a) => a.ofport), applied });
      },
      async classifies() {
        return true;
      },
      registered: () => true,
      claim: (c, i) => reclaimer.claim(c, i),
      release: (c, i) => reclaimer.release(c, i),
      releaseLater: (d) => reclaimer.add({ ...d, reason: 'detached by CNI DEL', found: 'detach' }),
      pendingRelease: (c, i) => reclaimer.pendingNetwork(c, i),
    } satisfies AttachHost,
    pino({ level: 'silent' }),
  );
  const state = () => ({ endpoints: [...endpoints], interfaces: [...interfaces], ports: [...ports.keys()], flowsFor: [...flowsFor], attachments: attacher.attachments.size });
  /** Until every deferred release is done (or `ms` passed). */
  const settled = async (ms = 1000) => {
    for (const t0 = Date.now(); reclaimer.pendingCount > 0 && Date.now() - t0 < ms; ) await new Promise((r) => setTimeout(r, 5));
  };
  const slowController = () => {
    let open!: () => void;
    gate = new Promise<void>((r) => (open = r));
    return () => {
      gate = undefined;
      open();
    };
  };
  return { attacher, state, syncs, events, settled, slowController, controllerState, reclaimer, ports, enqueue };
}

describe('Attacher', () => {
  it('attaches: endpoint, interface, port and flows', async () => {
    const { attacher, state } = rig();
    const res = await attacher.attach(REQ);
    const port = hostIfname('c1', 'eth0');
    expect(res.hostInterface).toBe(port);
    expect(res.interface).toEqual({ name: 'eth0', mac: ENDPOINT.mac, sandbox: REQ.netns, mtu: 1450 });
    expect(state()).toEqual({ endpoints: ['blue/c1'], interfaces: [port], ports: [port], flowsFor: [port], attachments: 1 });
  });

  it.each<Step>(['controller', 'netlink', 'ovsdb', 'openflow'])('rolls back everything when the %s step fails', async (step) => {
    const { attacher, state } = rig(step);
    const err = await attacher.attach(REQ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).status).toBe(step === 'controller' ? 'invalid' : 'internal');
    expect(state()).toEqual({ endpoints: [], interfaces: [], ports: [], flowsFor: [], attachments: 0 });
  });

  it('with a chosen OpenFlow port number, installs the flows while ovs-vswitchd adds the port, and returns when both are done', async () => {
    const { attacher, state, syncs } = rig(undefined, 'same');
    const res = await attacher.attach(REQ);
    expect(syncs).toEqual([{ ofports: [1], applied: false }]);
    expect(state()).toEqual({ endpoints: ['blue/c1'], interfaces: [res.hostInterface], ports: [res.hostInterface], flowsFor: [res.hostInterface], attachments: 1 });
    expect([...attacher.attachments.values()][0]!.ofport).toBe(1);
    // the next endpoint gets the next number, and a detached number is not handed out again at once
    await attacher.attach({ ...REQ, containerId: 'c2' });
    await attacher.detach({ containerId: 'c2', ifname: 'eth0' });
    await attacher.attach({ ...REQ, containerId: 'c3' });
    expect([...attacher.attachments.values()].map((a) => a.ofport)).toEqual([1, 3]);
  });

  it('inserts the port, marked with the request only, while the controller allocates; records the endpoint and commits the flows after', async () => {
    const { attacher, events, slowController, ports } = rig(undefined, 'same');
    const open = slowController();
    const attached = attacher.attach(REQ);
    await new Promise((r) => setTimeout(r, 30));
    const port = hostIfname('c1', 'eth0');
    expect(events).toContain('ovsdb (request only)');
    expect(ports.get(port)).toMatchObject({ containerId: 'c1', network: 'blue', mac: '' });
    open();
    await attached;
    const order = events.filter((e) => e !== 'create-endpoint' && e !== 'veth');
    expect(order).toEqual(['ovsdb (request only)', 'create-endpoint-done', 'flows-sent', `record ${ENDPOINT.mac}`, 'flows-committed']);
    expect(ports.get(port)).toMatchObject({ mac: ENDPOINT.mac, ipv4: '198.18.0.2' });
  });

  it('a number OVSDB refuses commits no flow with it: the port goes in first, then the flows', async () => {
    const { attacher, events, syncs } = rig(undefined, 'taken');
    await attacher.attach(REQ);
    expect(events).toContain('ovsdb (request only)');
    expect(events.filter((e) => e.startsWith('flows'))).toEqual(['flows-sent', 'flows-sent', 'flows-committed']);
    expect(syncs).toEqual([{ ofports: [7], applied: false }]);
  });

  it('moves the flows when ovs-vswitchd gave another number than asked for', async () => {
    const { attacher, syncs } = rig(undefined, 'other');
    await attacher.attach(REQ);
    expect(syncs).toEqual([{ ofports: [1], applied: false }, { ofports: [9], applied: true }]);
    expect([...attacher.attachments.values()][0]!.ofport).toBe(9);
  });

  it('adds the port first and then the flows when OVSDB refuses the number', async () => {
    const { attacher, syncs } = rig(undefined, 'taken');
    await attacher.attach(REQ);
    expect(syncs).toEqual([{ ofports: [7], applied: false }]);
  });

  it.each<Step>(['controller', 'netlink', 'ovsdb', 'openflow'])('rolls back everything when the %s step fails, with a chosen number', async (step) => {
    const { attacher, state } = rig(step, 'same');
    await expect(attacher.attach(REQ)).rejects.toBeInstanceOf(AgentError);
    expect(state()).toEqual({ endpoints: [], interfaces: [], ports: [], flowsFor: [], attachments: 0 });
  });

  it('DEL answers once the flows are gone and deletes the veth as the queue\'s next step, whatever the controller', async () => {
    const { attacher, state, controllerState, enqueue } = rig();
    await attacher.attach(REQ);
    controllerState.down = true;
    await attacher.detach({ containerId: 'c1', ifname: 'eth0' });
    expect(state()).toMatchObject({ flowsFor: [], attachments: 0 });
    await enqueue(async () => undefined);
    // Gone while the release still waits for the controller (the port records it until then).
    expect(state()).toMatchObject({ interfaces: [], endpoints: ['blue/c1'], ports: [expect.any(String)] });
  });

  it('detach is idempotent', async () => {
    const { attacher, state, settled } = rig();
    await attacher.attach(REQ);
    await attacher.detach({ containerId: 'c1', ifname: 'eth0' });
    await attacher.detach({ containerId: 'c1', ifname: 'eth0', network: 'blue' });
    await settled();
    expect(state()).toEqual({ endpoints: [], interfaces: [], ports: [], flowsFor: [], attachments: 0 });
    await attacher.detach({ containerId: 'c1', ifname: 'eth0', network: 'blue' });
    expect(state()).toEqual({ endpoints: [], interfaces: [], ports: [], flowsFor: [], attachments: 0 });
  });

  it('creates the veth while the controller allocates, and removes it when the controller fails', async () => {
    const { attacher, events, slowController, state } = rig();
    const open = slowController();
    const attached = attacher.attach(REQ);
    await new Promise((r) => setTimeout(r, 10));
    expect([...events].sort()).toEqual(['create-endpoint', 'veth']);
    open();
    await attached;
    expect(events.indexOf('create-endpoint-done')).toBeGreaterThan(events.indexOf('veth'));

    const failing = rig('controller');
    await expect(failing.attacher.attach(REQ)).rejects.toMatchObject({ status: 'invalid' });
    expect(failing.events).toContain('veth');
    expect(failing.state()).toEqual({ endpoints: [], interfaces: [], ports: [], flowsFor: [], attachments: 0 });
    expect(state().interfaces).toEqual([hostIfname('c1', 'eth0')]);
  });

  it('an ADD repeated on a live attachment keeps its interface when the controller fails', async () => {
    const { attacher, state, events, controllerState } = rig();
    await attacher.attach(REQ);
    events.length = 0;
    controllerState.failCreate = true;
    await expect(attacher.attach(REQ)).rejects.toMatchObject({ status: 'unavailable' });
    expect(events).not.toContain('veth');
    expect(state()).toEqual({ endpoints: ['blue/c1'], interfaces: [hostIfname('c1', 'eth0')], ports: [hostIfname('c1', 'eth0')], flowsFor: [hostIfname('c1', 'eth0')], attachments: 1 });
  });

  it('DEL answers before the release; the OVS port stays until the controller released the endpoint', async () => {
    const { attacher, state, slowController, settled } = rig();
    await attacher.attach(REQ);
    const port = hostIfname('c1', 'eth0');
    const open = slowController();
    await attacher.detach({ containerId: 'c1', ifname: 'eth0' });
    // veth and flows gone, the endpoint and the port that records it are still there
    expect(state()).toEqual({ endpoints: ['blue/c1'], interfaces: [], ports: [port], flowsFor: [], attachments: 0 });
    // a repeated DEL meanwhile succeeds and leaves the port for the release
    await attacher.detach({ containerId: 'c1', ifname: 'eth0', network: 'blue' });
    expect(state().ports).toEqual([port]);
    open();
    await settled();
    expect(state()).toEqual({ endpoints: [], interfaces: [], ports: [], flowsFor: [], attachments: 0 });
  });

  it('retries a release the controller refuses, keeping the port until it succeeds', async () => {
    const { attacher, state, controllerState, reclaimer } = rig();
    await attacher.attach(REQ);
    controllerState.down = true;
    await attacher.detach({ containerId: 'c1', ifname: 'eth0' });
    await new Promise((r) => setTimeout(r, 50));
    expect(reclaimer.pendingCount).toBe(1);
    expect(state()).toMatchObject({ endpoints: ['blue/c1'], ports: [hostIfname('c1', 'eth0')] });
    controllerState.down = false;
    for (const t0 = Date.now(); reclaimer.pendingCount > 0 && Date.now() - t0 < 2000; ) await new Promise((r) => setTimeout(r, 20));
    expect(state()).toEqual({ endpoints: [], interfaces: [], ports: [], flowsFor: [], attachments: 0 });
    reclaimer.stop();
  });

  it('an ADD of the same container releases the pending endpoint first and then attaches afresh', async () => {
    const { attacher, state, events, slowController, controllerState, reclaimer } = rig();
    await attacher.attach(REQ);
    controllerState.down = true;
    await attacher.detach({ containerId: 'c1', ifname: 'eth0' });
    // while the controller refuses the release, an ADD fails (it never reuses the old endpoint)
    await expect(attacher.attach(REQ)).rejects.toMatchObject({ status: 'unavailable', message: expect.stringContaining('releasing the earlier endpoint') });
    expect(state()).toMatchObject({ endpoints: ['blue/c1'], ports: [hostIfname('c1', 'eth0')], attachments: 0 });
    controllerState.down = false;
    const open = slowController();
    events.length = 0;
    const attached = attacher.attach(REQ);
    await new Promise((r) => setTimeout(r, 10));
    open();
    await attached;
    // the release went to the controller before the new endpoint was asked for
    expect(events.indexOf('delete-endpoint c1')).toBeGreaterThanOrEqual(0);
    expect(events.indexOf('delete-endpoint c1')).toBeLessThan(events.indexOf('create-endpoint'));
    expect(reclaimer.pendingCount).toBe(0);
    expect(state()).toEqual({ endpoints: ['blue/c1'], interfaces: [hostIfname('c1', 'eth0')], ports: [hostIfname('c1', 'eth0')], flowsFor: [hostIfname('c1', 'eth0')], attachments: 1 });
    reclaimer.stop();
  });
});
