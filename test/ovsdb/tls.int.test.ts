import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, waitFor } from '../harness/index.js';
import { makeCert as makeCertIn } from '../harness/pki.js';
import { OvsdbClient } from '../../src/ovsdb/client.js';
import { tlsConnector } from '../../src/ovsdb/transport.js';

// ovsdb-server with an ssl remote (mutual TLS) needs its own PKI, so this test runs its own
// server on a loopback port with certificates made by openssl for the test.
const dir = mkdtempSync(join(tmpdir(), 'loom-ovsdb-tls-'));
const file = (n: string) => join(dir, n);
let pid: number | undefined;
let port = 0;

const makeCert = (name: string, ca?: string) => makeCertIn(dir, name, ca);

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });

const material = (name: string, ca = 'ca') => ({
  key: readFileSync(file(`${name}.key`)),
  cert: readFileSync(file(`${name}.pem`)),
  ca: readFileSync(file(`${ca}.pem`)),
});

beforeAll(async () => {
  await makeCert('ca');
  await makeCert('server', 'ca');
  await makeCert('client', 'ca');
  await makeCert('rogue-ca');
  await makeCert('rogue', 'rogue-ca');
  await run('ovsdb-tool', ['create', file('conf.db'), '/usr/share/openvswitch/vswitch.ovsschema']);
  port = await freePort();
  const child = spawn(
    'ovsdb-server',
    [
      file('conf.db'), `--remote=pssl:${port}:127.0.0.1`, `--private-key=${file('server.key')}`,
      `--certificate=${file('server.pem')}`, `--ca-cert=${file('ca.pem')}`, `--unixctl=${file('ctl')}`,
      `--log-file=${file('log')}`, '-vconsole:off',
    ],
    { stdio: 'ignore' },
  );
  pid = child.pid;
  const connector = tlsConnector(material('client'));
  await waitFor('ssl ovsdb-server', async () => {
    const c = await OvsdbClient.connect(`ssl:127.0.0.1:${port}`, { connector });
    c.close();
    return true;
  });
});

afterAll(() => {
  if (pid) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('ssl: remotes through tlsConnector', () => {
  it('talks to ovsdb-server over mutual TLS', async () => {
    const c = await OvsdbClient.connect(`ssl:127.0.0.1:${port}`, { connector: tlsConnector(material('client')) });
    try {
      expect(await c.listDbs()).toContain('Open_vSwitch');
      const [r] = await c.transact('Open_vSwitch', [{ op: 'select', table: 'Open_vSwitch', where: [], columns: ['next_cfg'] }]);
      expect(r.rows).toHaveLength(0); // a fresh database before "ovs-vsctl init"
    } finally {
      c.close();
    }
  });

  it('refuses a server whose certificate is not signed by the trusted CA', async () => {
    const connector = tlsConnector({ ...material('rogue', 'rogue-ca') });
    await expect(OvsdbClient.connect(`ssl:127.0.0.1:${port}`, { connector })).rejects.toThrow(
      /connect to ssl:127\.0\.0\.1:\d+ failed: .*(self[- ]signed|unable to verify|certificate)/i,
    );
  });
});
