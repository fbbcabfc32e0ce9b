// The agent's local API for the CNI plugin: JSON over HTTP on a unix socket (root only).
//   POST /v1/cni     { env, stdin } from the `loom` plugin binary -> what it prints (the body)
//                    and its exit code (header Loom-Cni-Exit); see src/cni/handler.ts
//   POST /v1/attach  AttachRequest -> AttachResult
//   POST /v1/detach  DetachRequest -> {}
//   POST /v1/check   AttachRequest -> { problems: string[] }
//   GET  /v1/status  -> the agent's status
// Errors: { error: { status, message } } with 400 invalid (a body that fails its schema in
// local-api-schema.ts: the message names the field), 404 not_found, 409 conflict,
// 503 unavailable, 500 internal.
import http from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { CniBackend, CniHandler } from '../api/local.js';
import { AgentError, type Agent } from './agent.js';
import { attachRequest, cniRequest, detachRequest, parseBody } from './local-api-schema.js';
import type { AgentMetrics } from './metrics.js';

/** The plugin's request carries the network configuration, prevResult included. */
const MAX_BODY = 1024 * 1024;
const HTTP_STATUS: Record<AgentError['status'], number> = { invalid: 400, not_found: 404, conflict: 409, unavailable: 503, internal: 500 };

/** What the local API needs of the agent. */
export type LocalApiAgent = Pick<Agent, 'attach' | 'detach' | 'check' | 'ready' | 'attachmentsOf' | 'status'>;

export async function startLocalApi(agent: LocalApiAgent, handleCni: CniHandler, socketPath: string, log: Logger, metrics?: AgentMetrics): Promise<http.Server> {
  const backend: CniBackend = {
    attach: (r) => agent.attach(r),
    detach: (r) => agent.detach(r),
    check: (r) => agent.check(r),
    ready: () => agent.ready(),
    attachments: (network) => agent.attachmentsOf(network),
  };
  const server = http.createServer((req, res) => {
    const op = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    if (op === 'POST /v1/cni') {
      serveCni(req, res, handleCni, backend, log, metrics);
      return;
    }
    readJson(req)
      .then(async (body) => {
        switch (op) {
          case 'POST /v1/attach':
            return agent.attach(parseBody(attachRequest, body, 'attach request'));
          case 'POST /v1/detach':
            await agent.detach(parseBody(detachRequest, body, 'detach request'));
            return {};
          case 'POST /v1/check':
            return { problems: await agent.check(parseBody(attachRequest, body, 'check request')) };
          case 'GET /v1/status':
            return agent.status();
          default:
            throw new AgentError('not_found', `no such API: ${op} (try POST /v1/attach, /v1/detach, /v1/check, GET /v1/status)`);
        }
      })
      .then(
        (result) => {
          metrics?.apiRequests.inc({ op, result: 'ok' });
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result));
        },
        (err: unknown) => sendError(res, op, err, log, metrics),
      );
  });
  mkdirSync(dirname(socketPath), { recursive: true });
  rmSync(socketPath, { force: true }); // a socket left by a previous run
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(socketPath, 0o600);
  return server;
}

/** The plugin's request: always answered 200 with the plugin's stdout and exit code. */
function serveCni(req: http.IncomingMessage, res: http.ServerResponse, handleCni: CniHandler, backend: CniBackend, log: Logger, metrics?: AgentMetrics): void {
  readJson(req)
    .then((body) => {
      const { env, stdin } = parseBody(cniRequest, body, 'CNI request');
      return handleCni(env, stdin, backend);
    })
    .then(
      (reply) => {
        metrics?.apiRequests.inc({ op: `CNI ${reply.command}`, result: reply.exitCode === 0 ? 'ok' : 'error' });
        if (reply.exitCode !== 0) log.warn({ command: reply.command, answer: reply.stdout.trim() }, 'CNI request failed');
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(reply.stdout), 'loom-cni-exit': String(reply.exitCode) }).end(reply.stdout);
      },
      (err: unknown) => sendError(res, 'CNI', err, log, metrics),
    );
}

/** A failed request: `{ error: { status, message } }` with the status's HTTP code. */
function sendError(res: http.ServerResponse, op: string, err: unknown, log: Logger, metrics?: AgentMetrics): void {
  const e = err instanceof AgentError ? err : new AgentError('internal', (err as Error).message);
  metrics?.apiRequests.inc({ op, result: e.status });
  if (e.status === 'internal') log.error({ err, op }, 'local API request failed');
  const text = JSON.stringify({ error: { status: e.status, message: e.message } });
  res.writeHead(HTTP_STATUS[e.status], { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new AgentError('invalid', `request body over ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      if (size === 0) return resolve({});
      try {
        const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
        resolve(v as Record<string, unknown>);
      } catch (err) {
        reject(new AgentError('invalid', `request body is not a JSON object: ${(err as Error).message}`));
      }
    });
    req.on('error', reject);
  });
}
