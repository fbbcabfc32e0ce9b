/** loom-controller configuration: one settings table gives the type, defaults, flags, --help and checks. */
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
