import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttachRequest, AttachResult, DetachRequest } from '../../src/api/local.js';
import { cniHandler } from '../../src/cni/handler.js';
import { startLocalApi, type LocalApiAgent } from '../../src/agent/local-api.js';
import { attachRequest, cniRequest, detachRequest, parseBody } from '../../src/agent/local-api-schema.js';

const good: AttachRequest = { containerId: 'c1', netns: '/var/run/netns/c1', ifname: 'eth0', network: 'blue' };

describe('local API request schemas', () => {
  it('passes good bodies through unchanged', () => {
    expect(parseBody(attachRequest, good, 'attach request')).toEqual(good);
    const full = { ...good, name: 'web', ipv4: '10.1.0.9', ipv6: 'fd00:1::9', mac: '02:42:0a:01:00:09' };
    expect(parseBody(attachRequest, full, 'attach request')).toEqual(full);
    expect(parseBody(detachRequest, { containerId: 'c1', ifname: 'eth0' }, 'detach request')).toEqual({ containerId: 'c1', ifname: 'eth0' });
    expect(parseBody(cniRequest, { env: { CNI_COMMAND: 'ADD' }, stdin: '{}' }, 'CNI request')).toEqual({ env: { CNI_COMMAND: 'ADD' }, stdin: '{}' });
  });

  it.each([
    [{ ...good, containerId: undefined }, 'attach request: field "containerId" is missing (the container ID)'],
    [{ ...good, containerId: '' }, 'attach request: field "containerId" must not be empty (the container ID)'],
    [{ ...good, netns: 7 }, `attach request: field "netns" must be a string (the container's network namespace file)`],
    [{ ...good, ifname: 'a-very-long-ifname' }, 'attach request: field "ifname" must be at most 15 characters'],
    [{ ...good, ifname: '../x' }, `attach request: field "ifname" must not contain '/' or whitespace`],
    [{ ...good, ipv4: ['10.0.0.1'] }, 'attach request: field "ipv4" must be a string (a static IPv4 address)'],
    [{ ...good, name: 'x'.repeat(2000) }, 'attach request: field "name" must be at most 1024 characters'],
    [{ ...good, containerID: 'typo' }, 'attach request: unknown field "containerID"'],
  ])('refuses attach body %#, naming the field', (body, message) => {
    expect(() => parseBody(attachRequest, body, 'attach request')).toThrow(message);
    try {
      parseBody(attachRequest, body, 'attach request');
    } catch (err) {
      expect(err).toMatchObject({ status: 'invalid' });
    }
  });

  it.each([
    [{ containerId: 'c1' }, detachRequest, 'detach request: field "ifname" is missing'],
    [{ env: { CNI_COMMAND: 1 }, stdin: '' }, cniRequest, 'CNI request: field "env.CNI_COMMAND" must be a string (an environment variable)'],
    [{ env: [], stdin: '' }, cniRequest, 'CNI request: field "env" must be an object of CNI_* variables'],
    [{ env: {} }, cniRequest, 'CNI request: field "stdin" is missing (the network configuration)'],
  ] as const)('refuses other bodies %#, naming the field', (body, schema, message) => {
    expect(() => parseBody(schema as Parameters<typeof parseBody>[0], body, message.split(':')[0]!)).toThrow(message);
  });
});

describe('local API over its socket', () => {
  let dir: string;
  let server: http.Server;
  const calls: Array<['attach' | 'check', AttachRequest] | ['detach', DetachRequest]> = [];
  const result: AttachResult = {
    hostInterface: 'lm1',
    interface: { name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/c1', mtu: 1450 },
    addresses: [],
    routes: [],
    dns: { nameservers: [], search: [], options: [] },
    hostname: 'c1',
  };
  // A fake agent: this tests the request checking, not attaching.
  const agent: LocalApiAgent = {
    attach: (r) => (calls.push(['attach', r]), Promise.resolve(result)),
    detach: (r) => (calls.push(['detach', r]), Promise.resolve()),
    check: (r) => (calls.push(['check', r]), Promise.resolve([])),
    ready: () => undefined,
    attachmentsOf: () => [],
    status: () => ({}),
  };

  function post(url: string, body: string): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: path.join(dir, 'agent.sock'), method: 'POST', path: url, headers: { 'content-type': 'application/json' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'loom-local-api-'));
    server = await startLocalApi(agent, cniHandler, path.join(dir, 'agent.sock'), pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 400 naming the field, and the agent never sees the bad body', async () => {
    calls.length = 0;
    expect(await post('/v1/attach', JSON.stringify({ ...good, ifname: 42 }))).toEqual({
      status: 400,
      body: { error: { status: 'invalid', message: 'attach request: field "ifname" must be a string (the interface name in the container)' } },
    });
    expect(await post('/v1/detach', JSON.stringify({ ifname: 'eth0' }))).toMatchObject({ status: 400, body: { error: { message: 'detach request: field "containerId" is missing (the container ID)' } } });
    expect(await post('/v1/check', '{"netns": "/x"}')).toMatchObject({ status: 400, body: { error: { message: expect.stringMatching(/^check request: field "containerId" is missing/) as unknown } } });
    expect(await post('/v1/cni', '{"env": "CNI_COMMAND=ADD", "stdin": ""}')).toMatchObject({ status: 400, body: { error: { message: 'CNI request: field "env" must be an object of CNI_* variables' } } });
    expect(await post('/v1/attach', '[1]')).toMatchObject({ status: 400 });
    expect(calls).toEqual([]);
  });

  it('hands a good body to the agent', async () => {
    calls.length = 0;
    expect(await post('/v1/attach', JSON.stringify(good))).toEqual({ status: 200, body: result });
    expect(await post('/v1/detach', JSON.stringify({ containerId: 'c1', ifname: 'eth0', network: 'blue' }))).toEqual({ status: 200, body: {} });
    expect(calls).toEqual([
      ['attach', good],
      ['detach', { containerId: 'c1', ifname: 'eth0', network: 'blue' }],
    ]);
  });
});
