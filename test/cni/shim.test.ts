// The compiled `loom` plugin binary against a real HTTP server on a unix socket standing in for
// the agent: what it forwards, what it prints, how it fails.
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cniPluginPath } from '../harness/loom.js';
import { MAX_CNI_REQUEST_BYTES, SUPPORTED_VERSIONS } from '../../src/cni/spec.js';

/** Runs the plugin; `code` is -1 when it died of a signal (named in `signal`). */
function run(env: Record<string, string>, stdin: string, args: string[] = []): Promise<{ code: number; stdout: string; signal?: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cniPluginPath(), args, { env: { PATH: '/usr/bin:/bin', ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? -1, stdout, ...(signal ? { signal } : {}) }));
    child.stdin.on('error', () => undefined); // EPIPE when the plugin exits without reading stdin
    child.stdin.end(stdin);
  });
}

describe('loom plugin binary', () => {
  let dir: string;
  let socket: string;
  let server: http.Server;
  let answer: { status: number; exit?: string; body: string };
  const requests: Array<{ method: string; url: string; body: string }> = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'loom-shim-'));
    socket = join(dir, 'agent.sock');
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        requests.push({ method: req.method ?? '', url: req.url ?? '', body });
        res.writeHead(answer.status, { 'content-length': Buffer.byteLength(answer.body), ...(answer.exit !== undefined ? { 'loom-cni-exit': answer.exit } : {}) }).end(answer.body);
      });
    });
    await new Promise<void>((r) => server.listen(socket, r));
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers VERSION itself, with the versions the agent side supports', async () => {
    const r = await run({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.0.0', supportedVersions: SUPPORTED_VERSIONS });
  });

  it('forwards every CNI_ variable and stdin verbatim, prints the answer and exits with its code', async () => {
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'blue', type: 'loom', agentSocket: socket, note: 'quote " backslash \\ tab \t é' }) + '\n';
    answer = { status: 200, exit: '0', body: '{"cniVersion":"1.0.0","ips":[]}\n' };
    const r = await run({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_ARGS: 'IP=198.18.0.9;X="y"', OTHER: 'not forwarded' }, conf);
    expect(r).toEqual({ code: 0, stdout: answer.body });
    const req = requests.at(-1)!;
    expect([req.method, req.url]).toEqual(['POST', '/v1/cni']);
    expect(JSON.parse(req.body)).toEqual({ env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_ARGS: 'IP=198.18.0.9;X="y"' }, stdin: conf });
    answer = { status: 200, exit: '1', body: '{"code":100}\n' };
    expect(await run({ CNI_COMMAND: 'DEL' }, conf)).toEqual({ code: 1, stdout: answer.body });
  });

  it('reports an agent that is not running as code 11, labelled with the configuration version', async () => {
    const r = await run({ CNI_COMMAND: 'ADD' }, JSON.stringify({ cniVersion: '0.4.0', nested: { agentSocket: 'ignored' }, agentSocket: join(dir, 'none.sock') }));
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout) as { cniVersion: string; code: number; msg: string; details: string };
    expect(e).toMatchObject({ cniVersion: '0.4.0', code: 11 });
    expect(e.msg).toContain(join(dir, 'none.sock'));
  });

  it('reports an answer that is not a CNI result (an older agent) as code 5', async () => {
    answer = { status: 404, body: '{"error":{"status":"not_found","message":"no such API"}}' };
    const r = await run({ CNI_COMMAND: 'ADD' }, JSON.stringify({ cniVersion: '1.0.0', agentSocket: socket }));
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 5, details: expect.stringContaining('no such API') });
  });

  it('answers a configuration that is not a JSON object itself, with code 6', async () => {
    for (const text of ['{not json', '', '[1]', '{"a":1 "b":2}']) {
      const r = await run({ CNI_COMMAND: 'ADD' }, text);
      expect(r.code, text).toBe(1);
      expect(JSON.parse(r.stdout), text).toMatchObject({ cniVersion: '1.0.0', code: 6 });
    }
  });

  /** A stand-in agent on its own socket that handles each connection with `onConnection`. */
  async function rawAgent(name: string, onConnection: (sock: net.Socket) => void): Promise<{ path: string; close: () => Promise<void> }> {
    const path = join(dir, name);
    const srv = net.createServer((sock) => {
      sock.on('error', () => undefined);
      onConnection(sock);
    });
    await new Promise<void>((r) => srv.listen(path, r));
    return { path, close: () => new Promise<void>((r) => srv.close(() => r())) };
  }

  it('survives an agent that closes while the request is sent: a CNI error, not SIGPIPE', async () => {
    const agent = await rawAgent('closer.sock', (sock) => sock.once('data', () => sock.destroy()));
    try {
      // Large enough that the plugin is still writing when the agent hangs up.
      const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'blue', agentSocket: agent.path, pad: 'x'.repeat(900_000) });
      const r = await run({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc' }, conf);
      expect(r.signal).toBeUndefined();
      expect(r.code).toBe(1);
      const e = JSON.parse(r.stdout) as { code: number; msg: string };
      expect(e.code).toBe(11);
      expect(e.msg).toMatch(/closed the connection/);
    } finally {
      await agent.close();
    }
  });

  it('reports an answer cut short by the agent as a CNI error', async () => {
    const agent = await rawAgent('short.sock', (sock) => sock.once('data', () => {
      sock.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nLoom-Cni-Exit: 0\r\n\r\n{"cniVersion":');
    }));
    try {
      const r = await run({ CNI_COMMAND: 'ADD' }, JSON.stringify({ cniVersion: '1.0.0', agentSocket: agent.path }));
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 11, msg: expect.stringContaining('cut short (14 of 100 bytes)') });
    } finally {
      await agent.close();
    }
  });

  it('refuses a configuration that escapes to more than the limit, permanently (code 7), without asking the agent', async () => {
    const before = requests.length;
    // Under the limit as text, over it once every quote is escaped for the request.
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'blue', agentSocket: socket, note: '"'.repeat(MAX_CNI_REQUEST_BYTES / 3) });
    expect(conf.length).toBeLessThan(MAX_CNI_REQUEST_BYTES);
    const r = await run({ CNI_COMMAND: 'ADD' }, conf);
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout) as { code: number; msg: string };
    expect(e.code).toBe(7);
    expect(e.msg).toMatch(new RegExp(`too large: the request to the Loom agent would be \\d+ bytes, over the limit of ${MAX_CNI_REQUEST_BYTES} bytes`));
    expect(requests.length).toBe(before);
    // Over the limit already on stdin: the same permanent error.
    const big = await run({ CNI_COMMAND: 'ADD' }, JSON.stringify({ cniVersion: '1.0.0', pad: 'x'.repeat(MAX_CNI_REQUEST_BYTES) }));
    expect(JSON.parse(big.stdout)).toMatchObject({ code: 7 });
  });

  it('has one size limit with the agent', () => {
    const source = readFileSync(new URL('../../src/cni/shim/loom.c', import.meta.url), 'utf8');
    const m = /#define MAX_REQUEST \((\d+) \* (\d+)\)/.exec(source);
    expect(m).not.toBeNull();
    expect(Number(m![1]) * Number(m![2])).toBe(MAX_CNI_REQUEST_BYTES);
  });

  it('turns an exit status that is not a byte, or a failure without a CNI error, into a CNI error', async () => {
    for (const [exit, body] of [['256', '{}'], ['1', '']]) {
      answer = { status: 200, exit, body };
      const r = await run({ CNI_COMMAND: 'ADD' }, JSON.stringify({ cniVersion: '1.0.0', agentSocket: socket }));
      expect(r.code, exit).toBe(1);
      expect(JSON.parse(r.stdout), exit).toMatchObject({ code: 5 });
    }
  });

  it('explains itself with --help', async () => {
    const r = await run({}, '', ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('agentSocket');
  });
});
