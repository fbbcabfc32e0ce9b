/** loom-controller configuration: one settings table gives the type, defaults, flags, --help and checks. */
import { readFileSync } from 'node:fs';
import type { LevelWithSilent } from 'pino';
import { BadValue, bool, ConfigError, defaultsOf, hostPort, int, joinHostPort, loadSettings, oneOf, optionalText, settings, settingsHelp, splitHostPort, text, type ConfigOf } from '../common/config.js';
import { LOG_LEVELS } from '../common/logging.js';
import { serverCredentials, type ServerTls } from '../common/tls.js';

const address = hostPort();

/** 'auto', '' (none) or host:port; 'auto' is resolved against --listen by checkControllerConfig. */
function watchAddress(value: unknown): string {
  if (value === 'auto' || value === '') return value;
  try {
    return address(value);
  } catch {
    throw new BadValue("must look like 0.0.0.0:7403 or [::]:7403, or be 'auto' or ''");
  }
}

/** An agent's certificate CN pattern: {host} exactly once. */
function agentPattern(value: unknown): string {
  if (typeof value !== 'string' || value.split('{host}').length !== 2) throw new BadValue('must contain {host} once');
  return value;
}

/** Comma-separated etcd client URLs, http(s)://host:port each. */
function etcdEndpoints(value: unknown): string[] {
  const list = typeof value === 'string' ? value.split(',').map((u) => u.trim()).filter(Boolean) : Array.isArray(value) ? value : null;
  const url = /^https?:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
  if (!list || !list.every((u) => typeof u === 'string' && url.test(u))) throw new BadValue('must be a comma-separated list like https://10.0.0.1:2379,https://10.0.0.2:2379');
  return list as string[];
}

/** An etcd key prefix: starts and ends with '/'. */
function etcdPrefix(value: unknown): string {
  if (typeof value !== 'string' || !/^\/([\x21-\x7e]*\/)?$/.test(value)) throw new BadValue("must start and end with '/', printable ASCII, like /loom/");
  return value;
}

export const SETTINGS = settings({
  listen: {
    parse: address,
    default: '127.0.0.1:7400',
    arg: 'ADDR',
    help: 'gRPC API address, host:port; a non-loopback address needs mutual TLS (--tls-cert, --tls-key, --tls-client-ca) or --insecure-listen-any',
  },
  watchListen: {
    parse: watchAddress,
    default: 'auto',
    arg: 'ADDR',
    help: "the dedicated Watch server agents stream updates from; 'auto': the host of --listen, port 7403 (0 if --listen's port is 0); '' = none (agents then watch on the API port, slower)",
  },
  metricsListen: { parse: hostPort(true), default: '127.0.0.1:7401', arg: 'ADDR', help: "HTTP /metrics and /healthz, host:port; '' = off" },
  store: {
    parse: oneOf(['sqlite', 'etcd'] as const),
    default: 'sqlite',
    arg: 'sqlite|etcd',
    help: 'where the state lives: sqlite (one controller, --db-path) or etcd (--etcd-endpoints; the store for controllers that must survive the loss of a machine)',
  },
  etcdEndpoints: { parse: etcdEndpoints, default: [] as string[], defaultText: 'none', arg: 'URLS', help: 'etcd client URLs, comma-separated (https:// needs --etcd-ca)' },
  etcdPrefix: { parse: etcdPrefix, default: '/loom/', arg: 'PREFIX', help: "keys live under this prefix, so one etcd can serve several clusters; starts and ends with '/'" },
  etcdCa: { parse: optionalText, default: '', arg: 'FILE', help: 'CA (PEM) that signed the etcd servers\' certificates; required for https:// endpoints' },
  etcdCert: { parse: optionalText, default: '', arg: 'FILE', help: 'client certificate (PEM) for etcd\'s --client-cert-auth; needs --etcd-key' },
  etcdKey: { parse: optionalText, default: '', arg: 'FILE', help: 'the private key of --etcd-cert (PEM)' },
  etcdMaxTxnOps: { parse: int(2, 1_000_000), default: 128, arg: 'N', unit: 'ops', help: "etcd's --max-txn-ops: larger commits are split into Txns this big" },
  etcdElectAs: {
    parse: optionalText,
    default: '',
    defaultText: 'no election',
    arg: 'ADDR',
    help: 'run several controllers on one etcd prefix: elect a leader (only it writes; followers refuse writes naming it) and advertise this API address as ours',
  },
  etcdLeaseTtl: { parse: int(1, 3600), default: 3, arg: 'N', unit: 's', help: 'leader lease: a leader that stops renewing it loses leadership after this long' },
  dbPath: { parse: text(), default: '/var/lib/loom/controller.db', arg: 'PATH', aliases: ['db'], help: 'SQLite database file' },
  sync: { parse: oneOf(['full', 'normal'] as const), default: 'full', arg: 'full|normal', help: 'SQLite durability: full survives power loss, normal survives process crashes only' },
  hostDownAfterMs: { parse: int(100, 3_600_000), default: 15_000, arg: 'N', unit: 'ms', help: 'mark a host down after this long without a heartbeat; its routes are withdrawn' },
  heartbeatIntervalMs: { parse: int(50, 600_000), default: 5_000, arg: 'N', unit: 'ms', help: 'heartbeat interval told to agents; must be smaller than --host-down-after-ms' },
  changeLogSize: { parse: int(16, 100_000_000), default: 200_000, arg: 'N', unit: 'changes', help: 'changes kept in memory so a reconnecting agent resumes its Watch instead of resyncing' },
  storeHistory: { parse: int(16, 100_000_000), default: 100_000, arg: 'N', unit: 'revisions', help: 'revisions of change log kept in the store' },
  maxReceiveBytes: { parse: int(4096, 256 * 1024 * 1024), default: 4 * 1024 * 1024, arg: 'N', unit: 'bytes', help: 'largest accepted request' },
  maxConnectionsPerPeer: { parse: int(1, 1_000_000), default: 64, arg: 'N', help: 'connections one client address may hold open to the Watch server; more are refused' },
  maxMessageBytes: { parse: int(4096, 64 * 1024 * 1024), default: 256 * 1024, arg: 'N', unit: 'bytes', help: 'split Watch messages above this size' },
  coalesceMs: {
    parse: int(0, 1000),
    default: 5,
    arg: 'N',
    unit: 'ms',
    aliases: ['watch-coalesce-ms'],
    help: 'hold Watch updates at most this long (see --quiet-ms), so one message per agent covers a burst of changes',
  },
  quietMs: { parse: int(0, 1000), default: 2, arg: 'N', unit: 'ms', aliases: ['watch-quiet-ms'], help: 'send Watch updates once requests paused this long' },
  ackTimeoutMs: {
    parse: int(10, 600_000),
    default: 2_000,
    arg: 'N',
    unit: 'ms',
    aliases: ['watch-ack-timeout-ms'],
    help: 'an agent gets its next Watch update when it acked the last one, or after this long without an ack',
  },
  tlsCert: { parse: optionalText, default: '', defaultText: 'plaintext', arg: 'FILE', help: 'serve gRPC over TLS with this certificate (PEM); needs --tls-key' },
  tlsKey: { parse: optionalText, default: '', arg: 'FILE', help: 'the private key of --tls-cert (PEM)' },
  tlsClientCa: {
    parse: optionalText,
    default: '',
    arg: 'FILE',
    help: "require client certificates signed by this CA (PEM): mutual TLS for agents and loomctl; a certificate's CN is then the caller's identity",
  },
  operatorOrganization: {
    parse: text(),
    default: 'loom:operators',
    arg: 'ORG',
    aliases: ['operator-org'],
    help: 'mutual TLS: certificates with this Organization (O) are operators (networks, any host)',
  },
  agentIdentity: {
    parse: agentPattern,
    default: '{host}',
    arg: 'PATTERN',
    help: "mutual TLS: an agent's certificate CN, {host} standing for its host name; it acts only for that host",
  },
  insecureListenAny: {
    parse: bool,
    default: false,
    help: 'without mutual TLS, listen on non-loopback addresses anyway: anyone who reaches the ports may change anything',
  },
  logLevel: { parse: oneOf<LevelWithSilent>(LOG_LEVELS), default: 'info', arg: 'LEVEL', help: LOG_LEVELS.join('|') },
});

export type ControllerConfig = ConfigOf<typeof SETTINGS>;

export const DEFAULTS: ControllerConfig = defaultsOf(SETTINGS);

export function controllerTls(c: ControllerConfig): ServerTls {
  return { cert: c.tlsCert, key: c.tlsKey, clientCa: c.tlsClientCa };
}

export const HELP = `loom-controller: Loom's source of truth (networks, hosts, endpoints, IPAM) and route stream.

Usage: loom-controller [--config FILE] [flags]

Flags (in brackets: the key in the config file, the default, older flag names that still work):
${settingsHelp(SETTINGS)}
Logs are JSON lines on stdout. Exit status: 0 clean stop, 2 bad configuration, 1 runtime failure.
Without mutual TLS (--tls-cert, --tls-key, --tls-client-ca) the controller refuses to listen on
non-loopback addresses unless --insecure-listen-any is given.
Example: loom-controller --db-path /var/lib/loom/controller.db --listen 10.0.0.1:7400 \
           --tls-cert ctl.pem --tls-key ctl.key --tls-client-ca ca.pem
`;

/** Parses argv (without node and script); returns 'help' for --help. Throws ConfigError. */
export function loadConfig(argv: string[]): ControllerConfig | 'help' {
  return loadSettings(SETTINGS, argv, checkControllerConfig);
}

/** Rules between settings, 'auto' Watch address; reads the TLS files now, not at the first handshake. */
function checkControllerConfig(c: ControllerConfig): ControllerConfig {
  if (c.heartbeatIntervalMs >= c.hostDownAfterMs) {
    throw new ConfigError(`heartbeatIntervalMs (${c.heartbeatIntervalMs}) must be smaller than hostDownAfterMs (${c.hostDownAfterMs})`);
  }
  serverCredentials(controllerTls(c));
  checkEtcd(c);
  const api = splitHostPort(c.listen);
  const resolved = c.watchListen === 'auto' ? { ...c, watchListen: joinHostPort(api.host, api.port === 0 ? 0 : 7403) } : c;
  const exposed = exposedWithoutAuth(resolved);
  if (exposed.length > 0 && !resolved.insecureListenAny) {
    throw new ConfigError(
      `${exposed.join(' and ')}: not loopback, and without mutual TLS (tlsCert, tlsKey, tlsClientCa) anyone who reaches it may change anything: ` +
        'turn on mutual TLS, listen on 127.0.0.1, or accept that with insecureListenAny (--insecure-listen-any)',
    );
  }
  return resolved;
}

function checkEtcd(c: ControllerConfig): void {
  if (c.store !== 'etcd') return;
  if (c.etcdEndpoints.length === 0) throw new ConfigError('store etcd needs etcdEndpoints (--etcd-endpoints https://10.0.0.1:2379,...)');
  const https = c.etcdEndpoints.filter((u) => u.startsWith('https://'));
  if (https.length !== 0 && https.length !== c.etcdEndpoints.length) throw new ConfigError('etcdEndpoints mixes http:// and https:// URLs');
  if (https.length > 0 && !c.etcdCa) throw new ConfigError('https:// etcd endpoints need etcdCa (--etcd-ca FILE) to verify the servers');
  if (https.length === 0 && (c.etcdCa || c.etcdCert || c.etcdKey)) throw new ConfigError('etcdCa, etcdCert and etcdKey apply to https:// endpoints only');
  if (c.etcdElectAs && !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(c.etcdElectAs)) {
    throw new ConfigError(`etcdElectAs must be the API address other controllers and clients reach this one at, host:port; got ${JSON.stringify(c.etcdElectAs)}`);
  }
  if (Boolean(c.etcdCert) !== Boolean(c.etcdKey)) throw new ConfigError('etcdCert and etcdKey go together');
  for (const k of ['etcdCa', 'etcdCert', 'etcdKey'] as const) {
    if (!c[k]) continue;
    try {
      readFileSync(c[k]);
    } catch (err) {
      throw new ConfigError(`${k} ${c[k]}: ${(err as Error).message}`);
    }
  }
}

/** Callers have no identity without mutual TLS (a client CA): roles cannot apply. */
export function mutualTls(c: ControllerConfig): boolean {
  return c.tlsCert !== '' && c.tlsClientCa !== '';
}

/** The gRPC listeners ("listen 0.0.0.0:7400") reachable beyond this machine without mutual TLS. */
export function exposedWithoutAuth(c: ControllerConfig): string[] {
  if (mutualTls(c)) return [];
  const loopback = (address: string): boolean => /^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(splitHostPort(address).host);
  return (['listen', 'watchListen'] as const).filter((k) => c[k] !== '' && !loopback(c[k])).map((k) => `${k} ${c[k]}`);
}
