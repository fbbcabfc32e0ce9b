// gRPC over TLS between the controller and its clients (agents, loomctl): the real daemon, real
// certificates (openssl), mutual TLS, and what happens to clients that do not belong; then
// identity and roles: a certificate's CN is the caller, agents act only for their own host,
// network changes need an operator certificate (O=loom:operators).
import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isServiceError, LoomClient } from '../../src/api/client.js';
import type { WatchResponse } from '../../src/api/types.js';
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

/** A Watch as `host`: its messages, and how it ended (null while it streams). */
function watchAs(c: LoomClient, host: string): { messages: WatchResponse[]; ended: () => string | null; next: (revision: number) => Promise<void>; cancel: () => void } {
  const messages: WatchResponse[] = [];
  let ended: string | null = null;
  const call = c.watch();
  call.on('data', (m: WatchResponse) => {
    messages.push(m);
    call.write({ ack: { revision: m.revision } });
  });
  call.on('error', (err: { code: number; details: string }) => (ended = `${err.code} ${err.details}`));
  call.write({ start: { host, fromRevision: 0 } });
  return {
    messages,
    ended: () => ended,
    next: (revision) => waitFor(`${host}'s stream to reach revision ${revision}`, () => ended === null && messages.some((m) => m.revision >= revision), 5000, 20).then(() => undefined),
    cancel: () => call.cancel(),
  };
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
  let operator: Pair;
  let node1: Pair;
  let node2: Pair;
  let rogue: Pair;
  let rogueCa: string;
  let d: Daemon;
  let host: SimHost | undefined;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    ca = (await makeCert(tmp.dir, 'ca')).cert;
    server = await makeCert(tmp.dir, 'controller', 'ca');
    agentCert = await makeCert(tmp.dir, 'tls1', 'ca'); // the agent of host tls1
    operator = await makeCert(tmp.dir, 'alice', 'ca', '/CN=alice/O=loom:operators');
    node1 = await makeCert(tmp.dir, 'node1', 'ca');
    node2 = await makeCert(tmp.dir, 'node2', 'ca');
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
    const c = client(d.target, ca, operator);
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
    const c = client(d.target, ca, operator);
    const { watchPort } = await c.register({ name: 'tls1', vtep: '192.0.2.1' });
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
        call.write({ start: { host: 'tls1', fromRevision: 0 } });
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

  describe('identity and roles', () => {
    const clients: LoomClient[] = [];
    const as = (pair: Pair, target = d.target): LoomClient => {
      const c = client(target, ca, pair);
      clients.push(c);
      return c;
    };
    afterAll(() => {
      for (const c of clients) c.close();
    });
    const denied = (identity: string, action: string) => new RegExp(`^7 ${identity} \\(role agent\\) may not ${action}`);

    it("refuses an agent acting for another host's registration, heartbeat and VTEP", async () => {
      const n1 = as(node1);
      const n2 = as(node2);
      expect(await failure(n2.register({ name: 'node1', vtep: '192.0.2.32' }))).toMatch(denied('node2', 'register host node1: an agent acts only for its own host \\(node2\\)'));
      await n1.register({ name: 'node1', vtep: '192.0.2.31' });
      await n2.register({ name: 'node2', vtep: '192.0.2.32' });
      expect(await failure(n2.heartbeat('node1'))).toMatch(denied('node2', 'heartbeat for host node1'));
      await n1.heartbeat('node1');
      // Its own host, but a new VTEP: only an operator moves a host.
      expect(await failure(n1.register({ name: 'node1', vtep: '192.0.2.41' }))).toMatch(denied('node1', "move host node1's VTEP from 192.0.2.31 to 192.0.2.41"));
      await n1.register({ name: 'node1', vtep: '192.0.2.31' }); // the same VTEP: fine
      const moved = await execNode('src/cli/loomctl.ts', ['--controller', d.target, '--tls-ca', ca, '--tls-cert', operator.cert, '--tls-key', operator.key, 'host', 'register', 'node1', '--vtep', '192.0.2.41']);
      expect(moved, moved.stderr).toMatchObject({ code: 0, stdout: expect.stringContaining('host node1 registered with VTEP 192.0.2.41') });
      expect((await n1.register({ name: 'node1', vtep: '192.0.2.41' })).host?.vtep).toBe('192.0.2.41');
      const hosts = (await as(operator).listHosts()).hosts;
      expect(hosts.find((h) => h.name === 'node1')?.vtep).toBe('192.0.2.41');
    });

    it("refuses an agent creating or deleting endpoints on another host; the owner's are unaffected", async () => {
      const n1 = as(node1);
      const n2 = as(node2);
      expect(await failure(n2.createEndpoint({ network: 'blue', host: 'node1', containerId: 'evil' }))).toMatch(denied('node2', 'create endpoint blue/evil on host node1'));
      const ep = await n1.createEndpoint({ network: 'blue', host: 'node1', containerId: 'c1' });
      expect(ep.host).toBe('node1');
      expect(await failure(n2.deleteEndpoint('blue', 'c1'))).toMatch(denied('node2', 'delete endpoint blue/c1 on host node1'));
      expect((await n2.getEndpoint('blue', 'c1')).ipv4).toBe(ep.ipv4); // reads are open, and it is still there
      await n1.deleteEndpoint('blue', 'c1');
      expect(await failure(n1.getEndpoint('blue', 'c1'))).toMatch(/^5 /);
    });

    it('refuses network changes to agents; an operator makes them', async () => {
      const n1 = as(node1);
      expect(await failure(n1.createNetwork({ name: 'red', ipv4Cidr: '198.19.0.0/16' }))).toMatch(denied('node1', 'call CreateNetwork: it needs the operator role'));
      expect(await failure(n1.deleteNetwork('blue'))).toMatch(denied('node1', 'call DeleteNetwork: it needs the operator role'));
      expect((await n1.listNetworks()).networks.map((n) => n.name)).toEqual(['blue']);
      const op = as(operator);
      await op.createNetwork({ name: 'red', ipv4Cidr: '198.19.0.0/16' });
      await op.deleteNetwork('red');
      // Every mutation is logged with its caller; refusals too.
      const logs = d.output();
      expect(logs).toMatch(/"method":"CreateNetwork","caller":\{"identity":"alice","role":"operator","peer":"[^"]*127\.0\.0\.1:\d+"\},"network":"red","code":"OK","msg":"mutation"/);
      expect(logs).toMatch(/"method":"DeleteNetwork","caller":\{"identity":"node1","role":"agent","peer":"[^"]+"\},"name":"blue","code":"PERMISSION_DENIED"/);
    });

    for (const port of ['Watch', 'API'] as const) {
      it(`refuses a Watch as another host on the ${port} port and leaves that host's stream alone`, async () => {
        const target = port === 'API' ? d.target : `127.0.0.1:${(await as(node1).register({ name: 'node1', vtep: '192.0.2.41' })).watchPort}`;
        const own = watchAs(as(node1, target), 'node1');
        await own.next(1);
        const intruder = watchAs(as(node2, target), 'node1');
        await waitFor('the intruder to be refused', () => intruder.ended(), 5000, 20);
        expect(intruder.ended()).toMatch(/^7 node2 \(role agent\) may not watch as host node1: an agent acts only for its own host \(node2\)/);
        expect(intruder.messages).toEqual([]);
        // node1's stream is still there and still gets node1's changes.
        const ep = await as(node1).createEndpoint({ network: 'blue', host: 'node1', containerId: `w-${port}` });
        await own.next(ep.modRevision);
        expect(own.ended()).toBeNull();
        own.cancel();
      });
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
