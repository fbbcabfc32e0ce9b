// The plugin's side of the agent's local API (src/agent/local-api.ts): JSON over a unix socket.
import http from 'node:http';
import { CniCode, CniError } from './spec.js';

const TIMEOUT_MS = 60_000;

export async function callAgent<T>(socketPath: string, method: 'GET' | 'POST', path: string, body?: object): Promise<T> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = http.request(
      { socketPath, path, method, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}, timeout: TIMEOUT_MS },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from the agent within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const unreachable = err.code === 'ENOENT' || err.code === 'ECONNREFUSED';
      reject(
        new CniError(
          CniCode.TryAgainLater,
          unreachable ? `the Loom agent is not running (no answer on ${socketPath})` : `talking to the Loom agent on ${socketPath} failed: ${err.message}`,
          unreachable ? 'start loom-agent on this host, or set "agentSocket" in the network configuration' : '',
        ),
      );
    });
    req.end(payload);
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CniError(CniCode.IoFailure, `the agent answered ${status} with something that is not JSON`, text.slice(0, 200));
  }
  if (status !== 200) {
    const e = (parsed as { error?: { status?: string; message?: string } }).error;
    const code = e?.status === 'unavailable' ? CniCode.TryAgainLater : CniCode.AgentRefused;
    throw new CniError(code, e?.message ?? `the agent answered ${status}`, e?.status ?? '');
  }
  return parsed as T;
}
