import { describe, expect, it } from 'vitest';
import pino from 'pino';
import * as grpc from '@grpc/grpc-js';
import { AgentError, Attacher, hostIfname, type AttachHost, type EndpointApi, type EndpointPorts, type Plumber } from '../../src/agent/attacher.js';
import type { ContainerInterface } from '../../src/agent/plumbing.js';
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
  /** At each flow sync: the attachments' OpenFlow ports, and whether ovs-vswitchd had applied the port yet. */
  const syncs: Array<{ ofports: number[]; applied: boolean }> = [];
  let applied = false;
  const endpoints = new Set<string>();
  const interfaces = new Set<string>();
  const ports = new Map<string, EndpointPortRecord>();
  let flowsFor = new Set<string>();
  const controller: EndpointApi = {
    async createEndpoint(req) {
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
      endpoints.delete(`${network}/${containerId}`);
      return {};
    },
  };
  const plumber: Plumber = {
    async netnsProblem() {
      return null;
    },
    async create(spec: ContainerInterface) {
      interfaces.add(spec.hostIfname);
    },
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
          async begin(name: string, record: EndpointPortRecord, ofport: number) {
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
  const attacher: Attacher = new Attacher(
    { hostName: 'node1', controller: '192.0.2.100:7400', underlayMtu: 1500, txChecksumOff: true },
    controller,
    plumber,
    portsApi,
    {
      enqueue<T>(fn: () => Promise<T>): Promise<T> {
        const next = queue.then(fn, fn);
        queue = next.catch(() => undefined);
        return next;
      },
      async syncFlows() {
        if (failAt === 'openflow' && attacher.attachments.size > 0) throw new Error('bundle failed: OFPBFC_MSG_FAILED');
        flowsFor = new Set([...attacher.attachments.values()].map((a) => a.hostIfname));
        syncs.push({ ofports: [...attacher.attachments.values()].map((a) => a.ofport), applied });
      },
      async classifies() {
        return true;
      },
      registered: () => true,
      async claim() {},
      release() {},
    } satisfies AttachHost,
    pino({ level: 'silent' }),
  );
  const state = () => ({ endpoints: [...endpoints], interfaces: [...interfaces], ports: [...ports.keys()], flowsFor: [...flowsFor], attachments: attacher.attachments.size });
  return { attacher, state, syncs };
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

  it.each<Step>(['netlink', 'ovsdb', 'openflow'])('rolls back everything when the %s step fails, with a chosen number', async (step) => {
    const { attacher, state } = rig(step, 'same');
    await expect(attacher.attach(REQ)).rejects.toBeInstanceOf(AgentError);
    expect(state()).toEqual({ endpoints: [], interfaces: [], ports: [], flowsFor: [], attachments: 0 });
  });

  it('detach is idempotent', async () => {
    const { attacher, state } = rig();
    await attacher.attach(REQ);
    await attacher.detach({ containerId: 'c1', ifname: 'eth0' });
    await attacher.detach({ containerId: 'c1', ifname: 'eth0', network: 'blue' });
    expect(state()).toEqual({ endpoints: [], interfaces: [], ports: [], flowsFor: [], attachments: 0 });
  });
});
