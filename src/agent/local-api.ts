// The agent's local API for the CNI plugin: JSON over HTTP on a unix socket (root only).
//   POST /v1/cni     { env, stdin } from the `loom` plugin binary -> what it prints (the body)
//                    and its exit code (header Loom-Cni-Exit); see src/cni/handler.ts
//   POST /v1/attach  AttachRequest -> AttachResult
//   POST /v1/detach  DetachRequest -> {}
//   POST /v1/check   AttachRequest -> { problems: string[] }
//   GET  /v1/status  -> the agent's status
//   POST /v1/trace   { containerId, destination, [ifname, proto, port, source] } -> HostTrace (src/agent/trace.ts)
// Errors: { error: { status, message } } with 400 invalid (a body that fails its schema in
// local-api-schema.ts: the message names the field), 404 not_found, 409 conflict,
// 503 unavailable, 500 internal.
import http from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { MAX_CNI_REQUEST_BYTES, type CniBackend, type CniHandler } from '../api/local.js';
import { AgentError, type Agent } from './agent.js';
import { attachRequest, cniRequest, detachRequest, parseBody, traceRequest } from './local-api-schema.js';
import type { AgentMetrics } from './metrics.js';

/** The plugin's request carries the network configuration, prevResult included: one limit for both. */
const MAX_BODY = MAX_CNI_REQUEST_BYTES;
const HTTP_STATUS: Record<AgentError['status'], number> = { invalid: 400, not_found: 404, conflict: 409, unavailable: 503, internal: 500 };

/** A request body over {@link MAX_BODY}: answered (413, or a CNI error for the plugin) and the connection closed. */
class BodyTooLarge extends AgentError {
  constructor() {
    super('invalid', `request body over the limit of ${MAX_BODY} bytes`);
  }
}

/** What the local API needs of the agent. */
export type LocalApiAgent = Pick<Agent, 'attach' | 'detach' | 'check' | 'ready' | 'attachmentsOf' | 'status'> & Partial<Pick<Agent, 'trace'>>;

export async function startLocalApi(agent: LocalApiAgent, cni: CniHandler, socketPath: string, log: Logger, metrics?: AgentMetrics): Promise<http.Server> {
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
      serveCni(req, res, cni, backend, log, metrics);
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
          case 'POST /v1/trace':
            if (!agent.trace) throw new AgentError('not_found', 'this agent does not trace');
            return agent.trace(parseBody(traceRequest, body, 'trace request'));
          default:
            throw new AgentError('not_found', `no such API: ${op} (try POST /v1/attach, /v1/detach, /v1/check, /v1/trace, GET /v1/status)`);
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
  // Bytes that are not HTTP: answer in the API's own error shape and close, as for any bad request.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const text = JSON.stringify({ error: { status: 'invalid', message: `not an HTTP/1.1 request: ${err.message}` } });
    socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
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
function serveCni(req: http.IncomingMessage, res: http.ServerResponse, cni: CniHandler, backend: CniBackend, log: Logger, metrics?: AgentMetrics): void {
  const t0 = process.hrtime.bigint();
  readJson(req)
    .then((body) => {
      const { env, stdin } = parseBody(cniRequest, body, 'CNI request');
      return cni.handle(env, stdin, backend);
    })
    .then(
      (reply) => {
        metrics?.apiRequests.inc({ op: `CNI ${reply.command}`, result: reply.exitCode === 0 ? 'ok' : 'error' });
        if (reply.exitCode !== 0) log.warn({ command: reply.command, answer: reply.stdout.trim() }, 'CNI request failed');
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(reply.stdout), 'loom-cni-exit': String(reply.exitCode) }).end(reply.stdout);
        // The agent's whole share of a plugin call (bench:cni sets it against the plugin's).
        log.info({ command: reply.command, exitCode: reply.exitCode, ms: Math.round(Number(process.hrtime.bigint() - t0) / 1e5) / 10 }, 'CNI request answered');
      },
      (err: unknown) => {
        if (!(err instanceof BodyTooLarge)) return sendError(res, 'CNI', err, log, metrics);
        // Permanent: the plugin prints this and the runtime does not retry what cannot fit.
        metrics?.apiRequests.inc({ op: 'CNI', result: 'invalid' });
        const text = cni.tooLarge().stdout;
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'loom-cni-exit': '1', connection: 'close' }).end(text);
      },
    );
}

/** A failed request: `{ error: { status, message } }` with the status's HTTP code. */
function sendError(res: http.ServerResponse, op: string, err: unknown, log: Logger, metrics?: AgentMetrics): void {
  const e = err instanceof AgentError ? err : new AgentError('internal', err instanceof Error ? err.message : String(err));
  metrics?.apiRequests.inc({ op, result: e.status });
  if (e.status === 'internal') log.error({ err, op }, 'local API request failed');
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify({ error: { status: e.status, message: e.message } });
  const tooLarge = err instanceof BodyTooLarge;
  res.writeHead(tooLarge ? 413 : HTTP_STATUS[e.status], {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(tooLarge ? { connection: 'close' } : {}),
  }).end(text);
}

function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      const wasWithin = size <= MAX_BODY;
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
      else if (wasWithin) {
        // Answer at once; the rest is read and dropped (bounded by the server's request timeout)
        // so that the client gets the answer instead of a reset.
        chunks.length = 0;
        reject(new BodyTooLarge());
      }
    });
    req.on('end', () => {
      if (size > MAX_BODY) return;
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
