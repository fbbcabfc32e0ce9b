import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { flagName } from '../../src/common/config.js';
import { DEFAULTS, HELP, loadConfig, SETTINGS } from '../../src/controller/config.js';

describe('controller config', () => {
  it('merges defaults, file and flags (flags win)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'loom-cfg-'));
    try {
      const file = path.join(dir, 'c.json');
      writeFileSync(file, JSON.stringify({ dbPath: '/x/c.db', hostDownAfterMs: 9000, listen: '127.0.0.1:1' }));
      expect(loadConfig(['--config', file, '--listen', '[::]:7400', '--insecure-listen-any'])).toEqual({
        ...DEFAULTS, dbPath: '/x/c.db', hostDownAfterMs: 9000, listen: '[::]:7400', watchListen: '[::]:7403', insecureListenAny: true,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [['--sync', 'sometimes'], /sync must be one of full, normal/],
    [['--listen', 'nowhere'], /listen must look like/],
    [['--host-down-after-ms', 'soon'], /hostDownAfterMs must be an integer/],
    [['--heartbeat-interval-ms', '20000'], /heartbeatIntervalMs \(20000\) must be smaller than hostDownAfterMs/],
    [['--nope'], /Unknown option '--nope'/],
    [['--config', '/nonexistent/loom.json'], /cannot read config file \/nonexistent\/loom.json: ENOENT/],
  ])('rejects %j with a readable message', (argv, msg) => {
    expect(() => loadConfig(argv)).toThrow(msg);
  });

  it('selects the etcd store: endpoints, prefix, TLS files checked at start', () => {
    expect(loadConfig(['--store', 'etcd', '--etcd-endpoints', 'http://127.0.0.1:2379, http://127.0.0.2:2379', '--etcd-prefix', '/prod/loom/'])).toMatchObject({
      store: 'etcd', etcdEndpoints: ['http://127.0.0.1:2379', 'http://127.0.0.2:2379'], etcdPrefix: '/prod/loom/', etcdMaxTxnOps: 128,
    });
    expect(loadConfig([])).toMatchObject({ store: 'sqlite', etcdEndpoints: [] });
    expect(() => loadConfig(['--store', 'etcd'])).toThrow(/store etcd needs etcdEndpoints/);
    expect(() => loadConfig(['--store', 'zookeeper'])).toThrow(/store must be one of sqlite, etcd/);
    expect(() => loadConfig(['--store', 'etcd', '--etcd-endpoints', '10.0.0.1:2379'])).toThrow(/etcdEndpoints must be a comma-separated list like https:/);
    expect(() => loadConfig(['--store', 'etcd', '--etcd-endpoints', 'http://a:1', '--etcd-prefix', 'loom'])).toThrow(/etcdPrefix must start and end with '\/'/);
    expect(() => loadConfig(['--store', 'etcd', '--etcd-endpoints', 'https://a:2379'])).toThrow(/https:\/\/ etcd endpoints need etcdCa/);
    expect(() => loadConfig(['--store', 'etcd', '--etcd-endpoints', 'http://a:1,https://b:2'])).toThrow(/mixes http/);
    expect(() => loadConfig(['--store', 'etcd', '--etcd-endpoints', 'https://a:2379', '--etcd-ca', '/nonexistent/ca.pem'])).toThrow(/etcdCa \/nonexistent\/ca.pem: ENOENT/);
    expect(() => loadConfig(['--store', 'etcd', '--etcd-endpoints', 'https://a:2379', '--etcd-ca', '/etc/hostname', '--etcd-cert', '/etc/hostname'])).toThrow(/etcdCert and etcdKey go together/);
    expect(HELP).toContain('--etcd-endpoints URLS');
    expect(loadConfig(['--store', 'etcd', '--etcd-endpoints', 'http://a:1', '--etcd-elect-as', '10.0.0.1:7400'])).toMatchObject({ etcdElectAs: '10.0.0.1:7400', etcdLeaseTtl: 3 });
    expect(() => loadConfig(['--store', 'etcd', '--etcd-endpoints', 'http://a:1', '--etcd-elect-as', 'me'])).toThrow(/etcdElectAs must be the API address/);
  });

  it("puts the Watch server beside the API: 'auto' takes the API host, port 7403 (0 stays 0)", () => {
    expect(loadConfig(['--listen', '10.0.0.1:7400', '--insecure-listen-any'])).toMatchObject({ watchListen: '10.0.0.1:7403' });
    expect(loadConfig(['--listen', '127.0.0.1:0'])).toMatchObject({ watchListen: '127.0.0.1:0' });
    expect(loadConfig(['--watch-listen', '10.0.0.2:9000', '--insecure-listen-any'])).toMatchObject({ watchListen: '10.0.0.2:9000' });
    expect(loadConfig(['--watch-listen', ''])).toMatchObject({ watchListen: '' });
    expect(() => loadConfig(['--watch-listen', 'nowhere'])).toThrow(/watchListen must look like/);
  });

  it('listens on loopback only without mutual TLS, unless told to listen anywhere anyway', () => {
    expect(loadConfig([])).toMatchObject({ listen: '127.0.0.1:7400', watchListen: '127.0.0.1:7403', insecureListenAny: false });
    expect(loadConfig(['--listen', '[::1]:7400'])).toMatchObject({ watchListen: '[::1]:7403' });
    expect(() => loadConfig(['--listen', '0.0.0.0:7400'])).toThrow(
      'listen 0.0.0.0:7400 and watchListen 0.0.0.0:7403: not loopback, and without mutual TLS (tlsCert, tlsKey, tlsClientCa) anyone who reaches it may change anything: turn on mutual TLS, listen on 127.0.0.1, or accept that with insecureListenAny (--insecure-listen-any)',
    );
    expect(() => loadConfig(['--watch-listen', '192.0.2.1:7403'])).toThrow(/^watchListen 192.0.2.1:7403: not loopback/);
    expect(loadConfig(['--listen', '0.0.0.0:7400', '--insecure-listen-any'])).toMatchObject({ listen: '0.0.0.0:7400', insecureListenAny: true });
  });

  it('checks the identity settings', () => {
    expect(loadConfig(['--operator-org', 'netops', '--agent-identity', 'loom-agent:{host}'])).toMatchObject({ operatorOrganization: 'netops', agentIdentity: 'loom-agent:{host}' });
    expect(() => loadConfig(['--agent-identity', 'node'])).toThrow('agentIdentity must contain {host} once, got "node"');
    expect(() => loadConfig(['--operator-org', ''])).toThrow(/operatorOrganization must be a non-empty string/);
    const dir = mkdtempSync(path.join(tmpdir(), 'loom-cfg-'));
    try {
      const file = path.join(dir, 'c.json');
      writeFileSync(file, '{"insecureListenAny": "yes"}');
      expect(() => loadConfig(['--config', file])).toThrow('insecureListenAny must be true or false, got "yes"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects unknown keys in the file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'loom-cfg-'));
    try {
      const file = path.join(dir, 'c.json');
      writeFileSync(file, '{"listne": "0.0.0.0:1"}');
      expect(() => loadConfig(['--config', file])).toThrow(/unknown setting "listne"/);
      writeFileSync(file, '{');
      expect(() => loadConfig(['--config', file])).toThrow(/not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('controller settings table', () => {
  it('keeps the old flag names working beside the kebab-case keys', () => {
    const old = loadConfig(['--db', '/x.db', '--watch-coalesce-ms', '7', '--watch-quiet-ms', '3', '--watch-ack-timeout-ms', '900']);
    const now = loadConfig(['--db-path', '/x.db', '--coalesce-ms', '7', '--quiet-ms', '3', '--ack-timeout-ms', '900']);
    expect(old).toEqual(now);
    expect(now).toMatchObject({ dbPath: '/x.db', coalesceMs: 7, quietMs: 3, ackTimeoutMs: 900 });
  });

  it('explains every setting in --help with its flag, config key and unit', () => {
    for (const key of Object.keys(SETTINGS)) {
      expect(HELP).toContain(`--${flagName(key)}`);
      expect(HELP).toContain(`[${key};`);
    }
    expect(HELP).toMatch(/\[hostDownAfterMs; default: 15000 ms\]/);
    expect(HELP).toContain('also --db]');
  });

  it('knows every key the Ansible role writes into controller.json', () => {
    const tasks = readFileSync(new URL('../../ansible/roles/loom_controller/tasks/main.yml', import.meta.url), 'utf8');
    const start = tasks.indexOf('loom_controller_config: >-');
    const keys = [...tasks.slice(start, tasks.indexOf('notify:', start)).matchAll(/'([a-zA-Z]+)':/g)].map((m) => m[1]!);
    expect(keys.length).toBeGreaterThan(5);
    for (const key of keys) expect(Object.keys(SETTINGS)).toContain(key);
  });
});
