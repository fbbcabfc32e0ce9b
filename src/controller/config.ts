/** loom-controller configuration: defaults, JSON file, flags; validated before anything starts. */
import type { LevelWithSilent } from 'pino';
import { optionalString, choiceSetting, joinHostPort, splitHostPort, ConfigError, intSetting, listenSetting, parseDaemonArgs, stringSetting, type FlagSpec } from '../common/config.js';
import { LOG_LEVELS } from '../common/logging.js';
import { serverCredentials, type ServerTls } from '../common/tls.js';

export function controllerTls(c: ControllerConfig): ServerTls {
  return { cert: c.tlsCert, key: c.tlsKey, clientCa: c.tlsClientCa };
}

export interface ControllerConfig {
  listen: string;
  /** The dedicated Watch server; '' = none (agents watch on the API port). */
  watchListen: string;
  metricsListen: string;
  dbPath: string;
  sync: 'full' | 'normal';
  hostDownAfterMs: number;
  heartbeatIntervalMs: number;
  changeLogSize: number;
  storeHistory: number;
  maxReceiveBytes: number;
  maxMessageBytes: number;
  coalesceMs: number;
  quietMs: number;
  ackTimeoutMs: number;
  /** TLS: the controller's certificate and key (PEM); both empty = plaintext gRPC. */
  tlsCert: string;
  tlsKey: string;
  /** TLS: CA of client certificates; when set, agents and loomctl must present one. */
  tlsClientCa: string;
  /** Without mutual TLS, listen on non-loopback addresses anyway (anyone reaching them may do anything). */
  insecureListenAny: boolean;
  /** Mutual TLS: certificates with this Organization (O) have the operator role. */
  operatorOrganization: string;
  /** Mutual TLS: an agent's certificate CN, '{host}' standing for its host name. */
  agentIdentity: string;
  logLevel: LevelWithSilent;
}

export const DEFAULTS: ControllerConfig = {
  listen: '127.0.0.1:7400',
  watchListen: 'auto',
  metricsListen: '127.0.0.1:7401',
  dbPath: '/var/lib/loom/controller.db',
  sync: 'full',
  hostDownAfterMs: 15_000,
  heartbeatIntervalMs: 5_000,
  changeLogSize: 200_000,
  storeHistory: 100_000,
  maxReceiveBytes: 4 * 1024 * 1024,
  maxMessageBytes: 256 * 1024,
  coalesceMs: 5,
  quietMs: 2,
  ackTimeoutMs: 2_000,
  tlsCert: '',
  tlsKey: '',
  tlsClientCa: '',
  insecureListenAny: false,
  operatorOrganization: 'loom:operators',
  agentIdentity: '{host}',
  logLevel: 'info',
};

export const HELP = `loom-controller: Loom's source of truth (networks, hosts, endpoints, IPAM) and route stream.

Usage: loom-controller [--config FILE] [flags]

Flags (override the config file; the file uses the names in parentheses):
  --config FILE                JSON config file
  --listen ADDR                gRPC address, host:port (listen)                 [${DEFAULTS.listen}]
  --watch-listen ADDR          the dedicated Watch server agents stream updates  [${DEFAULTS.watchListen}]
                               from (watchListen); 'auto': the host of --listen,
                               port 7403 (0 if --listen's port is 0); '' = none
                               (agents then watch on the API port, slower)
  --metrics-listen ADDR        HTTP /metrics and /healthz (metricsListen)        [${DEFAULTS.metricsListen}]
  --db PATH                    SQLite database file (dbPath)                     [${DEFAULTS.dbPath}]
  --sync full|normal           SQLite durability (sync): full survives power     [${DEFAULTS.sync}]
                               loss, normal survives process crashes only
  --host-down-after-ms N       mark a host down after N ms without a heartbeat   [${DEFAULTS.hostDownAfterMs}]
                               (hostDownAfterMs); its routes are withdrawn
  --heartbeat-interval-ms N    heartbeat interval told to agents                 [${DEFAULTS.heartbeatIntervalMs}]
                               (heartbeatIntervalMs); must be < host-down-after
  --change-log-size N          changes kept in memory for watch resume           [${DEFAULTS.changeLogSize}]
                               (changeLogSize)
  --store-history N            revisions of change log kept in the store         [${DEFAULTS.storeHistory}]
                               (storeHistory)
  --max-receive-bytes N        largest accepted request (maxReceiveBytes)        [${DEFAULTS.maxReceiveBytes}]
  --max-message-bytes N        split watch messages above this (maxMessageBytes) [${DEFAULTS.maxMessageBytes}]
  --watch-quiet-ms N           send watch updates once requests paused N ms      [${DEFAULTS.quietMs}]
                               (quietMs)...
  --watch-coalesce-ms N        ...but hold them at most N ms (coalesceMs), so one [${DEFAULTS.coalesceMs}]
                               message per agent covers a burst of changes
  --watch-ack-timeout-ms N     an agent gets its next update when it acked the   [${DEFAULTS.ackTimeoutMs}]
                               last one, or after N ms without an ack
                               (ackTimeoutMs)
  --tls-cert FILE              serve gRPC over TLS with this certificate (PEM)   [plaintext]
                               (tlsCert)...
  --tls-key FILE               ...and its private key (tlsKey)
  --tls-client-ca FILE         require client certificates signed by this CA
                               (tlsClientCa): mutual TLS for agents and loomctl;
                               a certificate's CN is then the caller's identity
  --operator-org ORG           certificates with this Organization (O) are      [${DEFAULTS.operatorOrganization}]
                               operators: networks, any host (operatorOrganization)
  --agent-identity PATTERN     an agent's CN, {host} = its host name; it acts    [${DEFAULTS.agentIdentity}]
                               only for that host (agentIdentity)
  --insecure-listen-any        without mutual TLS, listen on non-loopback        [loopback only]
                               addresses anyway: anyone who reaches the ports
                               may change anything (insecureListenAny)
  --log-level LEVEL            ${LOG_LEVELS.join('|')} (logLevel)          [${DEFAULTS.logLevel}]
  -h, --help                   this help

Logs are JSON lines on stdout. Exit status: 0 clean stop, 2 bad configuration, 1 runtime failure.
Without mutual TLS (--tls-cert, --tls-key, --tls-client-ca) the controller refuses to listen on
non-loopback addresses unless --insecure-listen-any is given.
Example: loom-controller --db /var/lib/loom/controller.db --listen 10.0.0.1:7400 \
           --tls-cert ctl.pem --tls-key ctl.key --tls-client-ca ca.pem
`;

const FLAGS: FlagSpec = {
  listen: { type: 'string' },
  'watch-listen': { type: 'string' },
  'metrics-listen': { type: 'string' },
  db: { type: 'string' },
  sync: { type: 'string' },
  'host-down-after-ms': { type: 'string' },
  'heartbeat-interval-ms': { type: 'string' },
  'change-log-size': { type: 'string' },
  'store-history': { type: 'string' },
  'max-receive-bytes': { type: 'string' },
  'max-message-bytes': { type: 'string' },
  'watch-coalesce-ms': { type: 'string' },
  'watch-quiet-ms': { type: 'string' },
  'watch-ack-timeout-ms': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-client-ca': { type: 'string' },
  'insecure-listen-any': { type: 'boolean' },
  'operator-org': { type: 'string' },
  'agent-identity': { type: 'string' },
  'log-level': { type: 'string' },
};

const FLAG_TO_KEY: Record<string, keyof ControllerConfig> = {
  listen: 'listen',
  'watch-listen': 'watchListen',
  'metrics-listen': 'metricsListen',
  db: 'dbPath',
  sync: 'sync',
  'host-down-after-ms': 'hostDownAfterMs',
  'heartbeat-interval-ms': 'heartbeatIntervalMs',
  'change-log-size': 'changeLogSize',
  'store-history': 'storeHistory',
  'max-receive-bytes': 'maxReceiveBytes',
  'max-message-bytes': 'maxMessageBytes',
  'watch-coalesce-ms': 'coalesceMs',
  'watch-quiet-ms': 'quietMs',
  'watch-ack-timeout-ms': 'ackTimeoutMs',
  'tls-cert': 'tlsCert',
  'tls-key': 'tlsKey',
  'tls-client-ca': 'tlsClientCa',
  'insecure-listen-any': 'insecureListenAny',
  'operator-org': 'operatorOrganization',
  'agent-identity': 'agentIdentity',
  'log-level': 'logLevel',
};

/** Parses argv (without node and script); returns 'help' for --help. Throws ConfigError. */
export function loadConfig(argv: string[]): ControllerConfig | 'help' {
  return parseDaemonArgs(argv, { flags: FLAGS, flagToKey: FLAG_TO_KEY, defaults: DEFAULTS, validate: validateConfig });
}

/** 'auto' -> the API address's host with port 7403 (port 0 stays 0, for tests); '' = off. */
function watchListenSetting(value: unknown, listen: unknown): string {
  if (value === '') return '';
  if (value !== 'auto') return listenSetting(value, 'watchListen');
  const api = splitHostPort(listenSetting(listen, 'listen'));
  return joinHostPort(api.host, api.port === 0 ? 0 : 7403);
}

/** Checks every setting; the error names the setting. */
export function validateConfig(raw: Record<string, unknown>): ControllerConfig {
  const c: ControllerConfig = {
    listen: listenSetting(raw.listen, 'listen'),
    watchListen: watchListenSetting(raw.watchListen, raw.listen),
    metricsListen: raw.metricsListen === '' ? '' : listenSetting(raw.metricsListen, 'metricsListen'),
    dbPath: stringSetting(raw.dbPath, 'dbPath'),
    sync: choiceSetting(raw.sync, 'sync', ['full', 'normal'] as const),
    hostDownAfterMs: intSetting(raw.hostDownAfterMs, 'hostDownAfterMs', 100, 3_600_000),
    heartbeatIntervalMs: intSetting(raw.heartbeatIntervalMs, 'heartbeatIntervalMs', 50, 600_000),
    changeLogSize: intSetting(raw.changeLogSize, 'changeLogSize', 16, 100_000_000),
    storeHistory: intSetting(raw.storeHistory, 'storeHistory', 16, 100_000_000),
    maxReceiveBytes: intSetting(raw.maxReceiveBytes, 'maxReceiveBytes', 4096, 256 * 1024 * 1024),
    maxMessageBytes: intSetting(raw.maxMessageBytes, 'maxMessageBytes', 4096, 64 * 1024 * 1024),
    coalesceMs: intSetting(raw.coalesceMs, 'coalesceMs', 0, 1000),
    quietMs: intSetting(raw.quietMs, 'quietMs', 0, 1000),
    ackTimeoutMs: intSetting(raw.ackTimeoutMs, 'ackTimeoutMs', 10, 600_000),
    tlsCert: optionalString(raw.tlsCert, 'tlsCert'),
    tlsKey: optionalString(raw.tlsKey, 'tlsKey'),
    tlsClientCa: optionalString(raw.tlsClientCa, 'tlsClientCa'),
    insecureListenAny: booleanSetting(raw.insecureListenAny, 'insecureListenAny'),
    operatorOrganization: stringSetting(raw.operatorOrganization, 'operatorOrganization'),
    agentIdentity: stringSetting(raw.agentIdentity, 'agentIdentity'),
    logLevel: choiceSetting(raw.logLevel, 'logLevel', LOG_LEVELS),
  };
  if (c.heartbeatIntervalMs >= c.hostDownAfterMs) {
    throw new ConfigError(`heartbeatIntervalMs (${c.heartbeatIntervalMs}) must be smaller than hostDownAfterMs (${c.hostDownAfterMs})`);
  }
  if (c.agentIdentity.split('{host}').length !== 2) throw new ConfigError(`agentIdentity must contain {host} once, got "${c.agentIdentity}"`);
  serverCredentials(controllerTls(c)); // reads and checks the files now, not at the first handshake
  const exposed = exposedWithoutAuth(c);
  if (exposed.length > 0 && !c.insecureListenAny) {
    throw new ConfigError(
      `${exposed.join(' and ')}: not loopback, and without mutual TLS (tlsCert, tlsKey, tlsClientCa) anyone who reaches it may change anything: ` +
        'turn on mutual TLS, listen on 127.0.0.1, or accept that with insecureListenAny (--insecure-listen-any)',
    );
  }
  return c;
}

function booleanSetting(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(value)}`);
  return value;
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
