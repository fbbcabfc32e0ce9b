/** loom-agent configuration: defaults, JSON file, flags; validated before anything starts. */
import { isIP } from 'node:net';
import type { LevelWithSilent } from 'pino';
import { optionalString, choiceSetting, ConfigError, intSetting, listenSetting, parseDaemonArgs, stringSetting, type FlagSpec } from '../common/config.js';
import { LOG_LEVELS } from '../common/logging.js';
import { clientCredentials, type ClientTls } from '../common/tls.js';

export function agentTls(c: AgentConfig): ClientTls {
  return { ca: c.tlsCa, cert: c.tlsCert, key: c.tlsKey, serverName: c.tlsServerName };
}

export interface AgentConfig {
  /** Controller gRPC address, host:port. */
  controller: string;
  /** This host's name as the controller knows it. */
  hostName: string;
  /** Underlay IPv4 address other hosts tunnel to (the VTEP). */
  vtep: string;
  /** MTU of the underlay; endpoints get it minus the tunnel overhead. */
  underlayMtu: number;
  integrationBridge: string;
  /** Userspace datapath: the OVS bridge holding the VTEP address and the underlay interface. */
  underlayBridge: string;
  /** The physical (underlay) interface to make a port of `underlayBridge`. */
  underlayInterface: string;
  datapathType: 'netdev' | 'system';
  /** OVSDB remote, e.g. unix:/var/run/openvswitch/db.sock. */
  ovsdb: string;
  /** Directory of ovs-vswitchd's <bridge>.mgmt OpenFlow sockets. */
  ovsRunDir: string;
  /** Network namespace (file) holding the OVS ports; '' = the agent's own. For simulated hosts. */
  hostNetns: string;
  /** Local API socket the CNI plugin talks to. */
  socket: string;
  metricsListen: string;
  /** Turn off tx checksum offload on container interfaces (needed by the userspace datapath). */
  txChecksumOff: boolean;
  /** OVS internal port joining br-int to the host's stack (host path, egress, published ports); '' = none. */
  gatewayPort: string;
  /** The nftables command the host firewall (table inet loom) is applied with. */
  nft: string;
  /** TLS to the controller: the CA of its certificate (PEM); '' = plaintext gRPC. */
  tlsCa: string;
  /** This agent's client certificate and key, for a controller that requires them. */
  tlsCert: string;
  tlsKey: string;
  /** Name in the controller's certificate, when `controller` is an address not listed in it. */
  tlsServerName: string;
  logLevel: LevelWithSilent;
}

export const DEFAULTS: AgentConfig = {
  controller: '127.0.0.1:7400',
  hostName: '',
  vtep: '',
  underlayMtu: 1500,
  integrationBridge: 'br-int',
  underlayBridge: '',
  underlayInterface: '',
  datapathType: 'system',
  ovsdb: 'unix:/var/run/openvswitch/db.sock',
  ovsRunDir: '/var/run/openvswitch',
  hostNetns: '',
  socket: '/run/loom/agent.sock',
  metricsListen: '127.0.0.1:7402',
  txChecksumOff: false,
  gatewayPort: 'loom-gw0',
  nft: 'nft',
  tlsCa: '',
  tlsCert: '',
  tlsKey: '',
  tlsServerName: '',
  logLevel: 'info',
};

export const HELP = `loom-agent: makes this host's Open vSwitch follow the Loom controller and attaches containers.

Usage: loom-agent --host-name NAME --vtep ADDR [--config FILE] [flags]

Flags (override the config file; the file uses the names in parentheses):
  --config FILE              JSON config file
  --controller ADDR          controller gRPC address, host:port (controller)     [${DEFAULTS.controller}]
  --host-name NAME           this host's name (hostName)                         [required]
  --vtep ADDR                underlay IPv4 address other hosts tunnel to (vtep)  [required]
  --underlay-mtu N           underlay MTU; endpoints get it minus the tunnel     [${DEFAULTS.underlayMtu}]
                             overhead, VXLAN 50 and GRE 42 bytes (underlayMtu)
  --bridge NAME              integration bridge (integrationBridge)              [${DEFAULTS.integrationBridge}]
  --datapath system|netdev   OVS datapath type (datapathType); netdev is the     [${DEFAULTS.datapathType}]
                             userspace datapath and implies --tx-checksum-off
  --underlay-bridge NAME     netdev only: OVS bridge that holds the VTEP address  [none]
                             (underlayBridge); the agent ensures it exists
  --underlay-interface IF    underlay interface to add to that bridge            [none]
                             (underlayInterface); moving the host's address onto
                             the bridge stays the operator's step
  --ovsdb REMOTE             OVSDB remote (ovsdb)                                [${DEFAULTS.ovsdb}]
  --ovs-rundir DIR           where ovs-vswitchd puts <bridge>.mgmt (ovsRunDir)   [${DEFAULTS.ovsRunDir}]
  --host-netns PATH          namespace holding the OVS ports (hostNetns); only   [own namespace]
                             for simulated hosts
  --socket PATH              local API socket for the CNI plugin (socket)        [${DEFAULTS.socket}]
  --metrics-listen ADDR      HTTP /metrics and /healthz; '' = off                [${DEFAULTS.metricsListen}]
                             (metricsListen)
  --tx-checksum-off          turn off tx checksum offload in containers          [${DEFAULTS.txChecksumOff}]
                             (txChecksumOff)
  --gateway-port NAME        OVS internal port to the host's own stack           [${DEFAULTS.gatewayPort}]
                             (gatewayPort): the host reaches its containers,
                             containers reach the outside (NAT), published
                             ports; '' = none
  --nft PATH                 nftables command for table inet loom (nft)          [${DEFAULTS.nft}]
  --tls-ca FILE              talk TLS to the controller, trusting this CA (PEM)  [plaintext]
                             (tlsCa)
  --tls-cert FILE            client certificate (tlsCert) and key (tlsKey), for
  --tls-key FILE             a controller that requires mutual TLS
  --tls-server-name NAME     name to expect in the controller's certificate
                             (tlsServerName)                                     [the address]
  --log-level LEVEL          ${LOG_LEVELS.join('|')} (logLevel)          [${DEFAULTS.logLevel}]
  -h, --help                 this help

Logs are JSON lines on stdout. Exit status: 0 clean stop, 2 bad configuration, 1 runtime failure.
Example: loom-agent --host-name node1 --vtep 192.0.2.11 --controller 192.0.2.1:7400
`;

const FLAGS: FlagSpec = {
  controller: { type: 'string' },
  'host-name': { type: 'string' },
  vtep: { type: 'string' },
  'underlay-mtu': { type: 'string' },
  bridge: { type: 'string' },
  'underlay-bridge': { type: 'string' },
  'underlay-interface': { type: 'string' },
  datapath: { type: 'string' },
  ovsdb: { type: 'string' },
  'ovs-rundir': { type: 'string' },
  'host-netns': { type: 'string' },
  socket: { type: 'string' },
  'metrics-listen': { type: 'string' },
  'tx-checksum-off': { type: 'boolean' },
  'gateway-port': { type: 'string' },
  nft: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-server-name': { type: 'string' },
  'log-level': { type: 'string' },
};

const FLAG_TO_KEY: Record<string, keyof AgentConfig> = {
  controller: 'controller',
  'host-name': 'hostName',
  vtep: 'vtep',
  'underlay-mtu': 'underlayMtu',
  bridge: 'integrationBridge',
  'underlay-bridge': 'underlayBridge',
  'underlay-interface': 'underlayInterface',
  datapath: 'datapathType',
  ovsdb: 'ovsdb',
  'ovs-rundir': 'ovsRunDir',
  'host-netns': 'hostNetns',
  socket: 'socket',
  'metrics-listen': 'metricsListen',
  'tx-checksum-off': 'txChecksumOff',
  'gateway-port': 'gatewayPort',
  nft: 'nft',
  'tls-ca': 'tlsCa',
  'tls-cert': 'tlsCert',
  'tls-key': 'tlsKey',
  'tls-server-name': 'tlsServerName',
  'log-level': 'logLevel',
};

/** Parses argv (without node and script); returns 'help' for --help. Throws ConfigError. */
export function loadConfig(argv: string[]): AgentConfig | 'help' {
  return parseDaemonArgs(argv, { flags: FLAGS, flagToKey: FLAG_TO_KEY, defaults: DEFAULTS, validate: validateConfig });
}

const NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/i;

/** Checks every setting; the error names the setting. */
export function validateConfig(raw: Record<string, unknown>): AgentConfig {
  const hostName = stringSetting(raw.hostName, 'hostName (--host-name)');
  if (!NAME.test(hostName)) throw new ConfigError(`hostName must be a DNS name of letters, digits, '.' and '-', got "${hostName}"`);
  const vtep = stringSetting(raw.vtep, 'vtep (--vtep)');
  if (isIP(vtep) !== 4) throw new ConfigError(`vtep must be an IPv4 address (the tunnel endpoint), got "${vtep}"`);
  const bridge = stringSetting(raw.integrationBridge, 'integrationBridge');
  if (bridge.length > 15) throw new ConfigError(`integrationBridge must be at most 15 characters, got "${bridge}"`);
  const ovsdb = stringSetting(raw.ovsdb, 'ovsdb');
  if (!/^(unix:.+|tcp:.+:\d+)$/.test(ovsdb)) throw new ConfigError(`ovsdb must be unix:PATH or tcp:HOST:PORT, got "${ovsdb}"`);
  const datapathType = choiceSetting(raw.datapathType, 'datapathType', ['system', 'netdev'] as const);
  const tx = raw.txChecksumOff;
  if (typeof tx !== 'boolean') throw new ConfigError(`txChecksumOff must be true or false, got ${JSON.stringify(tx)}`);
  if (typeof raw.hostNetns !== 'string') throw new ConfigError(`hostNetns must be a path or "", got ${JSON.stringify(raw.hostNetns)}`);
  const underlayBridge = optionalName(raw.underlayBridge, 'underlayBridge');
  const underlayInterface = optionalName(raw.underlayInterface, 'underlayInterface');
  if (underlayInterface && !underlayBridge) throw new ConfigError('underlayInterface needs underlayBridge (the bridge to add it to)');
  if (underlayBridge === bridge) throw new ConfigError(`underlayBridge must differ from integrationBridge (${bridge})`);
  const tls: ClientTls = {
    ca: optionalString(raw.tlsCa, 'tlsCa'),
    cert: optionalString(raw.tlsCert, 'tlsCert'),
    key: optionalString(raw.tlsKey, 'tlsKey'),
    serverName: optionalString(raw.tlsServerName, 'tlsServerName'),
  };
  clientCredentials(tls); // reads and checks the files now, not at the first handshake
  return {
    controller: listenSetting(raw.controller, 'controller'),
    hostName,
    vtep,
    underlayMtu: intSetting(raw.underlayMtu, 'underlayMtu', 1280, 65535),
    integrationBridge: bridge,
    underlayBridge,
    underlayInterface,
    datapathType,
    ovsdb,
    ovsRunDir: stringSetting(raw.ovsRunDir, 'ovsRunDir'),
    hostNetns: raw.hostNetns,
    socket: stringSetting(raw.socket, 'socket'),
    metricsListen: raw.metricsListen === '' ? '' : listenSetting(raw.metricsListen, 'metricsListen'),
    txChecksumOff: tx || datapathType === 'netdev',
    gatewayPort: optionalName(raw.gatewayPort, 'gatewayPort'),
    nft: stringSetting(raw.nft, 'nft'),
    tlsCa: tls.ca,
    tlsCert: tls.cert,
    tlsKey: tls.key,
    tlsServerName: tls.serverName,
    logLevel: choiceSetting(raw.logLevel, 'logLevel', LOG_LEVELS),
  };
}

/** '' or an interface name of at most 15 characters. */
function optionalName(value: unknown, name: string): string {
  if (value === '' || value === undefined) return '';
  if (typeof value !== 'string' || value.length > 15 || /[/\s]/.test(value)) {
    throw new ConfigError(`${name} must be an interface name of at most 15 characters, got ${JSON.stringify(value)}`);
  }
  return value;
}
