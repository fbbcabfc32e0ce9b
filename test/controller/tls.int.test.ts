// gRPC over TLS between the controller and its clients (agents, loomctl): the real daemon, real
// certificates (openssl), mutual TLS, and what happens to clients that do not belong.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isServiceError, LoomClient } from '../../src/api/client.js';
import { clientCredentials } from '../../src/common/tls.js';
import { startDaemon, tempDir, type Daemon } from '../harness/controller-daemon.js';
import { makeCert } from '../harness/pki.js';
import { startHost, startAgent, waitFor, type AgentProcess, type SimHost } from '../harness/index.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
type Pair = { cert: string; key: string };

function execNode(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT }, (err, stdout, stderr) =>
      resolve({ code: (err as { code?: number } | null)?.code ?? 0, stdout, stderr }),
    );
  });
}

function client(target: string, ca: string, own?: Pair): LoomClient {
  const tls = clientCredentials({ ca, cert: own?.cert ?? '', key: own?.key ?? '', serverName: '' });
  return new LoomClient(target, tls.options, tls.credentials);
}

async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return isServiceError(err) ? `${err.code} ${err.details}` : String(err);
  }
  return 'succeeded';
}

describe('controller over mutual TLS', () => {
  const tmp = tempDir();
  let ca: string;
  let server: Pair;
  let agentCert: Pair;
  let rogue: Pair;
  let rogueCa: string;
  let d: Daemon;
  let host: SimHost | undefined;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    ca = (await makeCert(tmp.dir, 'ca')).cert;
    server = await makeCert(tmp.dir, 'controller', 'ca');
    agentCert = await makeCert(tmp.dir, 'agent', 'ca');
    rogueCa = (await makeCert(tmp.dir, 'rogue-ca')).cert;
    rogue = await makeCert(tmp.dir, 'rogue', 'rogue-ca');
    d = await startDaemon(['--db', `${tmp.dir}/c.db`, '--tls-cert', server.cert, '--tls-key', server.key, '--tls-client-ca', ca]);
  });

  afterAll(async () => {
    await agent?.stop();
    await host?.stop();
    await d?.stop();
    tmp.cleanup();
  });

  it('says so when ready, and serves clients with a certificate from the CA', async () => {
    expect(d.output()).toContain('"tls":"mutual"');
    const c = client(d.target, ca, agentCert);
    try {
      await c.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16' });
      expect((await c.listNetworks()).networks.map((n) => n.name)).toEqual(['blue']);
    } finally {
      c.close();
    }
  });

  it('turns away plaintext clients, clients without a certificate, and certificates of another CA', async () => {
    const plain = new LoomClient(d.target);
    const anonymous = client(d.target, ca);
    const stranger = client(d.target, ca, rogue);
    const misled = client(d.target, rogueCa, agentCert); // does not trust the controller
    try {
      for (const c of [plain, anonymous, stranger, misled]) {
        expect(await failure(c.listNetworks({ timeoutMs: 3000 }))).toMatch(/^(14|4) /); // UNAVAILABLE or DEADLINE_EXCEEDED
      }
    } finally {
      for (const c of [plain, anonymous, stranger, misled]) c.close();
    }
  });

  it('serves the Watch port with the same TLS, and turns away the same clients there', async () => {
    const c = client(d.target, ca, agentCert);
    const { watchPort } = await c.register({ name: 'tls-watch', vtep: '192.0.2.77' });
    c.close();
    expect(watchPort).toBeGreaterThan(0);
    const watchTarget = `127.0.0.1:${watchPort}`;
    const outcome = (w: LoomClient): Promise<string> =>
      new Promise((resolve) => {
        const call = w.watch();
        call.on('data', () => {
          resolve('streaming');
          call.cancel();
        });
        call.on('error', (err: { code: number }) => resolve(`error ${err.code}`));
        call.write({ start: { host: 'tls-watch', fromRevision: 0 } });
      });
    const good = client(watchTarget, ca, agentCert);
    const bad = [new LoomClient(watchTarget), client(watchTarget, ca), client(watchTarget, ca, rogue), client(watchTarget, rogueCa, agentCert)];
    try {
      expect(await outcome(good)).toBe('streaming');
      for (const w of bad) expect(await outcome(w)).toBe('error 14');
    } finally {
      for (const w of [good, ...bad]) w.close();
    }
  });

  it('loomctl takes the TLS flags, and says why it cannot connect without them', async () => {
    const ok = await execNode('src/cli/loomctl.ts', ['--controller', d.target, '--tls-ca', ca, '--tls-cert', agentCert.cert, '--tls-key', agentCert.key, 'network', 'list', '-o', 'json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject([{ name: 'blue' }]);
    const plain = await execNode('src/cli/loomctl.ts', ['--controller', d.target, 'network', 'list']);
    expect(plain.code).toBe(4);
    expect(plain.stderr).toContain(`cannot reach the controller at ${d.target}`);
    const half = await execNode('src/cli/loomctl.ts', ['--controller', d.target, '--tls-ca', ca, '--tls-cert', agentCert.cert, 'network', 'list']);
    expect(half).toMatchObject({ code: 2, stderr: 'loomctl: --tls-cert and --tls-key go together: set both or neither\n' });
  });

  it('an agent registers and follows the stream over mutual TLS', async () => {
    host = await startHost({ name: 'tls1' });
    agent = await startAgent(host, { controller: d.target, vtep: '192.0.2.1', extraArgs: ['--tls-ca', ca, '--tls-cert', agentCert.cert, '--tls-key', agentCert.key] });
    const c = client(d.target, ca, agentCert);
    try {
      const status = await waitFor('the agent to watch', async () => (await c.getStatus()).hosts.find((h) => h.name === 'tls1' && h.connected), 15_000, 100);
      expect(status).toMatchObject({ up: true, connected: true });
      // It was told of the Watch port and did not fall back to the API port.
      expect(agent!.logs).toMatch(/"watchPort":[1-9][0-9]*,"msg":"registered with the controller"/);
      expect(agent!.logs).not.toContain('watching on the API port');
    } finally {
      c.close();
    }
  });

  it('refuses TLS settings that cannot work at start-up, naming the setting', async () => {
    const onlyCert = await execNode('src/controller/main.ts', ['--db', ':memory:', '--tls-cert', server.cert]);
    expect(onlyCert).toMatchObject({ code: 2, stderr: 'loom-controller: configuration error: tlsCert and tlsKey go together: set both or neither\n' });
    const wrongKey = await execNode('src/controller/main.ts', ['--db', ':memory:', '--tls-cert', server.cert, '--tls-key', agentCert.key]);
    expect(wrongKey.code).toBe(2);
    expect(wrongKey.stderr).toContain(`tlsKey: ${agentCert.key} is not the key of ${server.cert}`);
    const missing = await execNode('src/controller/main.ts', ['--db', ':memory:', '--tls-cert', `${tmp.dir}/nope.pem`, '--tls-key', server.key]);
    expect(missing).toMatchObject({ code: 2, stderr: `loom-controller: configuration error: tlsCert: cannot read ${tmp.dir}/nope.pem: ENOENT\n` });
    const agentBad = await execNode('src/agent/main.ts', ['--host-name', 'x', '--vtep', '192.0.2.9', '--tls-cert', agentCert.cert, '--tls-key', agentCert.key]);
    expect(agentBad).toMatchObject({ code: 2, stderr: "loom-agent: configuration error: tlsCert/tlsKey need tlsCa (the CA of the controller's certificate)\n" });
  });
});
