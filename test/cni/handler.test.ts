import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { handleCni } from '../../src/cni/handler.js';
import type { AgentAttachResult } from '../../src/cni/spec.js';
import type { AttachRequest, CniBackend, DetachRequest } from '../../src/api/local.js';

const CONF = '{"cniVersion":"1.0.0","name":"blue","type":"loom"}';
const ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0' };

const attachResult: AgentAttachResult = {
  hostInterface: 'lm0123',
  interface: { name: 'eth0', mac: '02:42:c6:12:00:02', sandbox: '/proc/self/ns/net', mtu: 1450 },
  addresses: [{ address: '198.18.0.2/16', gateway: '198.18.0.1' }],
  routes: [{ dst: '0.0.0.0/0', gw: '198.18.0.1' }],
  dns: { nameservers: [], search: [], options: [] },
};

/** Records what the handler asked for; fails as told. */
function backend(over: Partial<CniBackend> = {}) {
  const calls: Array<[string, AttachRequest | DetachRequest | undefined]> = [];
  const b: CniBackend = {
    attach: async (r) => (calls.push(['attach', r]), attachResult),
    detach: async (r) => void calls.push(['detach', r]),
    check: async (r) => (calls.push(['check', r]), []),
    ready: () => undefined,
    attachments: () => [
      { containerId: 'keep', ifname: 'eth0' },
      { containerId: 'stale', ifname: 'eth0' },
    ],
    ...over,
  };
  return { b, calls };
}

class StatusError extends Error {
  constructor(
    readonly status: string,
    message: string,
  ) {
    super(message);
  }
}

describe('CNI handler (the plugin logic the agent runs)', () => {
  it('ADD asks the agent with the static address and pod name, and answers a spec result', async () => {
    const { b, calls } = backend();
    const r = await handleCni({ ...ENV, CNI_ARGS: 'IP=198.18.9.9;K8S_POD_NAME=web' }, CONF, b);
    expect(r.exitCode).toBe(0);
    expect(calls[0]).toEqual(['attach', { containerId: 'abc', netns: '/proc/self/ns/net', ifname: 'eth0', network: 'blue', name: 'web', ipv4: '198.18.9.9' }]);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.0.0', ips: [{ address: '198.18.0.2/16', gateway: '198.18.0.1', interface: 1 }] });
  });

  it('ADD passes the hostname (CNI_ARGS HOSTNAME) and the aliases capability to the agent', async () => {
    const { b, calls } = backend();
    const conf = JSON.stringify({ ...JSON.parse(CONF), runtimeConfig: { aliases: { blue: ['web', 'frontend'] } } });
    const r = await handleCni({ ...ENV, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web;HOSTNAME=www' }, conf, b);
    expect(r.exitCode).toBe(0);
    expect(calls[0]![1]).toMatchObject({ name: 'web', hostname: 'www', aliases: ['web', 'frontend'] });
  });

  it('maps agent failures to CNI codes: unavailable is 11 (retry), a refusal 100 with its reason', async () => {
    const down = backend({ attach: () => Promise.reject(new StatusError('unavailable', 'controller unreachable')) });
    expect(JSON.parse((await handleCni(ENV, CONF, down.b)).stdout)).toMatchObject({ code: 11, msg: 'controller unreachable' });
    const refused = backend({ attach: () => Promise.reject(new StatusError('conflict', 'already attached elsewhere')) });
    const r = await handleCni(ENV, CONF, refused.b);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.0.0', code: 100, msg: 'already attached elsewhere', details: 'conflict' });
  });

  it('labels errors with the configuration version, and the default when it cannot be read', async () => {
    const { b } = backend();
    expect(JSON.parse((await handleCni({ ...ENV, CNI_COMMAND: 'NOPE' }, CONF.replace('1.0.0', '0.4.0'), b)).stdout)).toMatchObject({ cniVersion: '0.4.0', code: 4 });
    expect(JSON.parse((await handleCni(ENV, '{', b)).stdout)).toMatchObject({ cniVersion: '1.0.0', code: 6 });
  });

  describe('a CNI_NETNS that is not a network namespace is named in a code 4 error, and the agent is not asked', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loom-netns-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'file');
    writeFileSync(file, '');
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    it.each([
      ['a path that does not exist', join(dir, 'nope'), 'does not exist'],
      ['a regular file', file, 'is a regular file, not a network namespace (not on nsfs)'],
      ['a FIFO (never opened: it would block)', fifo, 'is a FIFO, not a network namespace'],
      ['a directory', dir, 'is a directory, not a network namespace'],
      ['a relative path', 'run/netns/x', 'is not an absolute path'],
      ['a namespace of another kind', '/proc/self/ns/uts', 'is a namespace of another kind, not a network namespace'],
    ])('%s', async (_what, path, problem) => {
      for (const command of ['ADD', 'CHECK']) {
        const { b, calls } = backend();
        const r = await handleCni({ ...ENV, CNI_COMMAND: command, CNI_NETNS: path }, CONF, b);
        expect(r.exitCode).toBe(1);
        expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.0.0', code: 4, msg: `CNI_NETNS ${JSON.stringify(path)} ${problem}` });
        expect(calls).toEqual([]);
      }
    });
  });

  it('CHECK turns reported problems into code 101 with the problems as details', async () => {
    const { b } = backend({ check: async () => ['lacks address 198.18.0.2/16', 'MTU 1500, expected 1450'] });
    const r = await handleCni({ ...ENV, CNI_COMMAND: 'CHECK' }, CONF, b);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 101, details: 'lacks address 198.18.0.2/16; MTU 1500, expected 1450' });
  });

  it('STATUS is code 50 with the reason when the agent cannot serve ADD', async () => {
    const { b } = backend({
      ready: () => {
        throw new Error('not connected to the controller');
      },
    });
    expect(JSON.parse((await handleCni({ CNI_COMMAND: 'STATUS' }, CONF, b)).stdout)).toMatchObject({ code: 50, msg: 'not connected to the controller' });
  });

  it('GC detaches only attachments missing from cni.dev/valid-attachments, and refuses without the list', async () => {
    const { b, calls } = backend();
    const conf = JSON.stringify({ ...JSON.parse(CONF), cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] });
    expect((await handleCni({ CNI_COMMAND: 'GC' }, conf, b)).exitCode).toBe(0);
    expect(calls).toEqual([['detach', { containerId: 'stale', ifname: 'eth0', network: 'blue' }]]);
    const none = await handleCni({ CNI_COMMAND: 'GC' }, CONF, b);
    expect(JSON.parse(none.stdout)).toMatchObject({ code: 7 });
    expect(calls).toHaveLength(1);
    const bad = await handleCni({ CNI_COMMAND: 'GC' }, JSON.stringify({ ...JSON.parse(CONF), 'cni.dev/valid-attachments': [{ containerID: 1 }] }), b);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 7 });
  });

  it('DEL prints nothing on success', async () => {
    const { b, calls } = backend();
    expect(await handleCni({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'abc', CNI_IFNAME: 'eth0' }, CONF, b)).toEqual({ exitCode: 0, stdout: '', command: 'DEL' });
    expect(calls).toEqual([['detach', { containerId: 'abc', ifname: 'eth0', network: 'blue' }]]);
  });
});
