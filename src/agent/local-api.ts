// The agent's local API for the CNI plugin: JSON over HTTP on a unix socket (root only).
//   POST /v1/attach  AttachRequest -> AttachResult
//   POST /v1/detach  DetachRequest -> {}
//   POST /v1/check   AttachRequest -> { problems: string[] }
//   GET  /v1/status  -> the agent's status
// Errors: { error: { status, message } } with 400 invalid, 404 not_found, 409 conflict,
// 503 unavailable, 500 internal.
import http from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { AgentError, type Agent, type AttachRequest, type DetachRequest } from './agent.js';
import type { AgentMetrics } from './metrics.js';

const MAX_BODY = 64 * 1024;
const HTTP_STATUS: Record<AgentError['status'], number> = { invalid: 400, not_found: 404, conflict: 409, unavailable: 503, internal: 500 };

export async function startLocalApi(agent: Agent, socketPath: string, log: Logger, metrics?: AgentMetrics): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const op = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    readJson(req)
      .then(async (body) => {
        switch (op) {
          case 'POST /v1/attach':
            return agent.attach(body as unknown as AttachRequest);
          case 'POST /v1/detach':
            await agent.detach(body as unknown as DetachRequest);
            return {};
          case 'POST /v1/check':
            return { problems: await agent.check(body as unknown as AttachRequest) };
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
        (err: unknown) => {
          const e = err instanceof AgentError ? err : new AgentError('internal', (err as Error).message);
          metrics?.apiRequests.inc({ op, result: e.status });
          if (e.status === 'internal') log.error({ err, op }, 'local API request failed');
          res.writeHead(HTTP_STATUS[e.status], { 'content-type': 'application/json' }).end(JSON.stringify({ error: { status: e.status, message: e.message } }));
        },
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
