// The etcd store over mutual TLS: etcd requires client certificates signed by its CA.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore } from '../../src/controller/store/etcd.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { makeCert } from '../harness/pki.js';

let etcd: EtcdServer;
let dir: string;
let files: { ca: string; cert: string; key: string; otherCert: string; otherKey: string };
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'loom-etcd-tls-'));
  const ca = await makeCert(dir, 'ca');
  const server = await makeCert(dir, 'etcd', 'ca');
  const client = await makeCert(dir, 'controller', 'ca');
  await makeCert(dir, 'rogue-ca');
  const rogue = await makeCert(dir, 'rogue', 'rogue-ca');
  files = { ca: ca.cert, cert: client.cert, key: client.key, otherCert: rogue.cert, otherKey: rogue.key };
  etcd = await startEtcd({ tls: { ca: ca.cert, cert: client.cert, key: client.key, serverCert: server.cert, serverKey: server.key } });
});
afterAll(async () => {
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('EtcdStore over TLS', () => {
  it('commits and loads with a client certificate etcd trusts', async () => {
    const s = await EtcdStore.open({ endpoints: [etcd.endpoint], prefix: '/loom/', tls: { ca: files.ca, cert: files.cert, key: files.key } });
    const { revision } = await s.commit([{ type: 'put', key: 'hosts/h1', value: { up: true } }]);
    expect(await s.loadAll()).toEqual([{ key: 'hosts/h1', value: { up: true }, createRevision: revision, modRevision: revision }]);
    await s.close();
  });

  it('is refused without a certificate etcd trusts', async () => {
    await expect(EtcdStore.open({ endpoints: [etcd.endpoint], prefix: '/loom/', tls: { ca: files.ca }, timeoutMs: 1000 })).rejects.toThrow(/cannot open etcd store.*(certificate|unknown ca)/i);
    await expect(
      EtcdStore.open({ endpoints: [etcd.endpoint], prefix: '/loom/', tls: { ca: files.ca, cert: files.otherCert, key: files.otherKey }, timeoutMs: 1000 }),
    ).rejects.toThrow(/cannot open etcd store.*(certificate|unknown ca)/i);
  });

  it('names the unreadable file', async () => {
    await expect(EtcdStore.open({ endpoints: [etcd.endpoint], prefix: '/loom/', tls: { ca: path.join(dir, 'missing.pem') } })).rejects.toThrow(/cannot read the etcd CA .*missing.pem/);
  });
});
