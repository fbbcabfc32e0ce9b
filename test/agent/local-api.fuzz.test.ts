// The agent's local API (HTTP on a unix socket) against a stand-in agent: every request, however
// malformed, gets a JSON answer, and nothing escapes the request into the process. The stand-in
// replaces OVS and the controller only; the HTTP handling under test is the real one.
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalApi } from '../../src/agent/local-api.js';
import { AgentError, type Agent } from '../../src/agent/agent.js';
import type { AttachResult } from '../../src/api/local.js';
import { cniHandler } from '../../src/cni/handler.js';
import { MAX_CNI_REQUEST_BYTES } from '../../src/api/local.js';

const attachResult: AttachResult = {
  hostInterface: 'lm0123',
  interface: { name: 'eth0', mac: '02:42:c6:12:00:02', sandbox: '/run/netns/x', mtu: 1450 },
  addresses: [{ address: '198.18.0.2/16', gateway: '198.18.0.1' }],
  routes: [{ dst: '0.0.0.0/0', gw: '198.18.0.1' }],
  dns: { nameservers: [], search: [], options: [] },
  hostname: 'c1',
};

/** How the stand-in agent fails next; a real agent can throw anything from deep below. */
let failure: unknown;
const act = async <T>(value: T): Promise<T> => {
  if (failure !== undefined) throw failure;
  return value;
};
const agent = {
  attach: () => act(attachResult),
  detach: () => act(undefined),
  check: () => act([]),
  ready: () => undefined,
  attachmentsOf: () => [],
  status: () => ({ registered: true }),
} as unknown as Agent;

let dir: string;
let socketPath: string;
let server: http.Server;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'loom-local-api-'));
  socketPath = join(dir, 'agent.sock');
  server = await startLocalApi(agent, cniHandler, socketPath, pino({ level: 'silent' }));
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(method: string, path: string, body?: Uint8Array | string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers: { connection: 'close' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0' };
const CONF = { cniVersion: '1.0.0', name: 'blue', type: 'loom' };
const validCni = Buffer.from(JSON.stringify({ env: ENV, stdin: JSON.stringify(CONF) }));

/** A valid encoding, truncated, with bytes flipped, or with bytes spliced in. */
const mutated = (valid: Buffer): fc.Arbitrary<Buffer> =>
  fc.oneof(
    fc.nat({ max: valid.length }).map((n) => valid.subarray(0, n)),
    fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((flips) => {
      const b = Buffer.from(valid);
      for (const [at, v] of flips) b[at] = v;
      return b;
    }),
    fc.tuple(fc.nat({ max: valid.length }), fc.uint8Array({ maxLength: 16 })).map(([at, bytes]) =>
      Buffer.concat([valid.subarray(0, at), bytes, valid.subarray(at)])),
  );

const failures = fc.constantFrom<unknown>(
  undefined,
  new AgentError('invalid', 'bad'),
  new AgentError('unavailable', 'not yet'),
  new Error('deep failure'),
  'a string',
  null,
  42,
);

const JSON_STATUSES = [200, 400, 404, 409, 413, 500, 503];

describe('local API request handling (property-based)', () => {
  it('answers every CNI request, valid, mutated or random, with a CNI answer or a JSON error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(mutated(validCni), fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), fc.json().map((j) => Buffer.from(j))),
        failures,
        async (body, fail) => {
          failure = fail;
          const a = await request('POST', '/v1/cni', body);
          expect(JSON_STATUSES).toContain(a.status);
          const json = JSON.parse(a.body) as Record<string, unknown>;
          if (a.status === 200) {
            const exit = Number(a.headers['loom-cni-exit']);
            expect([0, 1]).toContain(exit);
            if (exit === 1) expect(json).toMatchObject({ code: expect.any(Number), msg: expect.any(String) });
          } else {
            expect(json).toMatchObject({ error: { status: expect.any(String), message: expect.any(String) } });
          }
        },
      ),
      { numRuns: 80, seed: 18 },
    );
    failure = undefined;
  });

  it('answers every other request with JSON, whatever the method, path and body', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
        fc.oneof(fc.constantFrom('/v1/attach', '/v1/detach', '/v1/check', '/v1/status', '/v1/cni?x=1'), fc.webPath()),
        fc.oneof(fc.json(), fc.string()),
        failures,
        async (method, path, body, fail) => {
          failure = fail;
          const a = await request(method, path.startsWith('/') ? path : `/${path}`, method === 'GET' ? undefined : body);
          expect(JSON_STATUSES).toContain(a.status);
          expect(() => JSON.parse(a.body) as unknown, `${a.status} ${JSON.stringify(a.body)}`).not.toThrow();
        },
      ),
      { numRuns: 80, seed: 18 },
    );
    failure = undefined;
    expect((await request('GET', '/v1/status')).status).toBe(200);
  });
});

describe('local API size limit (the one the CNI plugin uses)', () => {
  it('answers a CNI request over the limit with a permanent CNI error, not a reset', async () => {
    const body = JSON.stringify({ env: ENV, stdin: JSON.stringify({ ...CONF, pad: 'x'.repeat(MAX_CNI_REQUEST_BYTES) }) });
    const a = await request('POST', '/v1/cni', body);
    expect(a.status).toBe(200);
    expect(a.headers['loom-cni-exit']).toBe('1');
    expect(JSON.parse(a.body)).toMatchObject({ code: 7, msg: `the CNI request is over the limit of ${MAX_CNI_REQUEST_BYTES} bytes` });
  });

  it('answers any other request over the limit with 413, and keeps serving', async () => {
    const a = await request('POST', '/v1/attach', Buffer.alloc(MAX_CNI_REQUEST_BYTES + 1, 0x20));
    expect(a.status).toBe(413);
    expect(JSON.parse(a.body)).toEqual({ error: { status: 'invalid', message: `request body over the limit of ${MAX_CNI_REQUEST_BYTES} bytes` } });
    expect((await request('GET', '/v1/status')).status).toBe(200);
  });

  it('accepts a request exactly at the limit', async () => {
    const base = JSON.stringify({ env: ENV, stdin: JSON.stringify(CONF) });
    const body = base.slice(0, -1) + ' '.repeat(MAX_CNI_REQUEST_BYTES - base.length) + '}';
    expect(Buffer.byteLength(body)).toBe(MAX_CNI_REQUEST_BYTES);
    const a = await request('POST', '/v1/cni', body);
    expect([a.status, a.headers['loom-cni-exit']]).toEqual([200, '0']);
  });
});
