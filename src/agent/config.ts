/** loom-agent configuration: one settings table gives the type, defaults, flags, --help and checks. */
import type { LevelWithSilent } from 'pino';
import { BadValue, bool, ConfigError, defaultsOf, hostPort, int, loadSettings, oneOf, optionalText, settings, settingsHelp, text, type ConfigOf } from '../common/config.js';
import { interfaceNameProblem } from '../common/ifname.js';
import { tryParseIp } from '../common/ip.js';
import { vtepAddressProblem } from '../common/reserved.js';
import { LOG_LEVELS } from '../common/logging.js';
import { clientCredentials, type ClientTls } from '../common/tls.js';
import { parseControllerList } from '../api/failover.js';

/** '' or a Linux interface name (at most 15 characters, no '/' or spaces). */
function interfaceName(orEmpty: boolean): (value: unknown) => string {
  return (value) => {
    if (orEmpty && (value === '' || value === undefined)) return '';
    if (typeof value !== 'string') throw new BadValue('must be an interface name');
    const problem = interfaceNameProblem(value);
    if (problem) throw new BadValue(`is not a valid interface name: it ${problem}`);
    return value;
  };
}

function ipv4(value: unknown): string {
  const ip = typeof value === 'string' ? tryParseIp(value) : null;
  if (ip?.family !== 4) throw new BadValue('must be an IPv4 address (the tunnel endpoint)');
  const problem = vtepAddressProblem(ip);
  if (problem) throw new BadValue(`cannot be a tunnel endpoint: it ${problem}`);
  return value as string;
}

/** 0 (only at recovery) or an interval of 100 ms to an hour. */
function sweepInterval(value: unknown): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (n === 0) return 0;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 100 || n > 3_600_000) throw new BadValue('(0 = off) must be an integer between 100 and 3600000');
  return n;
}

function path(value: unknown): string {
  if (typeof value !== 'string') throw new BadValue('must be a path or ""');
  return value;
}

/** One controller address or a comma-separated list (a YAML/JSON list in the config file); kept as 'a,b,c'. */
function controllerList(value: unknown): string {
  const text = Array.isArray(value) ? value.join(',') : value;
  if (typeof text !== 'string') throw new BadValue('must look like host:port, or a comma-separated list a:7400,b:7400,c:7400');
  try {
    return parseControllerList(text).join(',');
  } catch (err) {
    throw new BadValue(`must look like host:port, or a comma-separated list a:7400,b:7400,c:7400 (${(err as Error).message})`);
  }
}

export const SETTINGS = settings({
  controller: {
    parse: controllerList,
    default: '127.0.0.1:7400',
    arg: 'ADDR[,ADDR...]',
    help: 'controller gRPC address, host:port; several controllers (etcd, leader election) comma-separated: a:7400,b:7400,c:7400 (writes go to the leader, Watch to one of them, moving on when one fails)',
  },
  hostName: {
    parse: text(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/i, "a DNS name of letters, digits, '.' and '-'"),
    default: '',
    required: true,
    arg: 'NAME',
    help: "this host's name as the controller knows it",
  },
  vtep: { parse: ipv4, default: '', required: true, arg: 'ADDR', help: 'underlay IPv4 address other hosts tunnel to (the VTEP)' },
  underlayMtu: {
    parse: int(1280, 65535),
    default: 1500,
    arg: 'N',
    unit: 'bytes',
    help: 'MTU of the underlay; endpoints get it minus the tunnel overhead, VXLAN 50 and GRE 42 bytes',
  },
  integrationBridge: { parse: interfaceName(false), default: 'br-int', arg: 'NAME', aliases: ['bridge'], help: 'the OVS integration bridge containers attach to' },
  underlayBridge: {
    parse: interfaceName(true),
    default: '',
    arg: 'NAME',
    help: 'netdev only: the OVS bridge that holds the VTEP address; the agent ensures it exists',
  },
  underlayInterface: {
    parse: interfaceName(true),
    default: '',
    arg: 'IF',
    help: "the underlay interface to add to --underlay-bridge; moving the host's address onto the bridge stays the operator's step",
  },
  datapathType: {
    parse: oneOf(['system', 'netdev'] as const),
    default: 'system',
    arg: 'system|netdev',
    aliases: ['datapath'],
    help: 'OVS datapath type; netdev is the userspace datapath and implies --tx-checksum-off',
  },
  netdevPortType: {
    parse: oneOf(['auto', 'af_packet', 'afxdp', 'afxdp-nonpmd'] as const),
    default: 'auto',
    arg: 'auto|af_packet|afxdp|afxdp-nonpmd',
    help: "netdev only: how OVS reads the underlay interface and container ports; af_packet (sockets, works everywhere), afxdp (AF_XDP polled by PMD threads), afxdp-nonpmd (AF_XDP polled by the main thread); auto = afxdp where OVS has it and the operator gave PMD threads cores (Open_vSwitch other_config:pmd-cpu-mask), else af_packet; a port AF_XDP cannot attach to falls back to af_packet with a warning",
  },
  afxdpMode: {
    parse: oneOf(['best-effort', 'native-with-zerocopy', 'native', 'generic'] as const),
    default: 'best-effort',
    arg: 'MODE',
    help: "XDP mode of AF_XDP ports (options:xdp-mode): best-effort tries native-with-zerocopy, native, then generic",
  },
  ovsdb: { parse: text(/^(unix:.+|tcp:.+:\d+)$/, 'unix:PATH or tcp:HOST:PORT'), default: 'unix:/var/run/openvswitch/db.sock', arg: 'REMOTE', help: 'OVSDB remote' },
  ovsRunDir: { parse: text(), default: '/var/run/openvswitch', arg: 'DIR', aliases: ['ovs-rundir'], help: "directory of ovs-vswitchd's <bridge>.mgmt OpenFlow sockets" },
  hostNetns: { parse: path, default: '', defaultText: "the agent's own", arg: 'PATH', help: 'network namespace (file) holding the OVS ports; only for simulated hosts' },
  socket: { parse: text(), default: '/run/loom/agent.sock', arg: 'PATH', help: 'local API socket the CNI plugin talks to' },
  metricsListen: { parse: hostPort(true), default: '127.0.0.1:7402', arg: 'ADDR', help: "HTTP /metrics and /healthz, host:port; '' = off" },
  txChecksumOff: { parse: bool, default: false, help: 'turn off tx checksum offload on container interfaces (the userspace datapath needs it)' },
  gatewayPort: {
    parse: interfaceName(true),
    default: 'loom-gw0',
    arg: 'NAME',
    help: "OVS internal port to the host's own stack: the host reaches its containers, containers reach the outside (NAT), published ports; '' = none",
  },
  natPath: {
    parse: oneOf(['auto', 'host', 'ovs'] as const),
    default: 'auto',
    arg: 'auto|host|ovs',
    help: "how containers' IPv4 egress and published ports are NATed: host = the host's nftables behind --gateway-port (two crossings of the userspace datapath); ovs = netdev only: in OVS conntrack, out through a patch port to --underlay-bridge (one crossing; needs --underlay-interface; IPv6, the host's own access to published ports and destinations not resolved yet keep the host path; NAT bindings do not survive an ovs-vswitchd restart); auto = ovs on the netdev datapath with --underlay-bridge, --underlay-interface and --gateway-port, else host",
  },
  logDenied: {
    parse: bool,
    default: false,
    help: 'log connection attempts an isolated network drops (source, destination, protocol/port, network; rate-limited by --log-denied-rate)',
  },
  logDeniedRate: {
    parse: int(1, 10_000),
    default: 10,
    arg: 'N',
    unit: 'lines/s',
    help: 'at most N denied-attempt lines a second (bursts of N); the rest are counted in loom_agent_policy_denied_log_lines_total{outcome="suppressed"}',
  },
  nft: { parse: text(), default: 'nft', arg: 'PATH', help: 'nftables command for table inet loom' },
  tlsCa: { parse: optionalText, default: '', defaultText: 'plaintext', arg: 'FILE', help: "talk TLS to the controller, trusting this CA (PEM); '' = plaintext gRPC" },
  tlsCert: { parse: optionalText, default: '', arg: 'FILE', help: "this agent's client certificate (PEM), for a controller that requires mutual TLS" },
  tlsKey: { parse: optionalText, default: '', arg: 'FILE', help: 'the key of --tls-cert (PEM)' },
  tlsServerName: {
    parse: optionalText,
    default: '',
    defaultText: 'the host in --controller',
    arg: 'NAME',
    help: "name to expect in the controller's certificate, when --controller is an address not listed in it",
  },
  endpointSweepIntervalMs: {
    parse: sweepInterval,
    default: 30_000,
    arg: 'N',
    unit: 'ms',
    help: "every N ms, find endpoints whose container is gone (namespace deleted, host veth gone) and remove them from OVS and the controller; also done at start; 0 = only at start",
  },
  resolvConf: {
    parse: text(),
    default: '/etc/resolv.conf',
    arg: 'FILE',
    help: "the host's resolv.conf, read once at start: its nameservers answer containers' names outside Loom for networks that set no DNS servers",
  },
  logLevel: { parse: oneOf<LevelWithSilent>(LOG_LEVELS), default: 'info', arg: 'LEVEL', help: LOG_LEVELS.join('|') },
});

export type AgentConfig = ConfigOf<typeof SETTINGS>;

export const DEFAULTS: AgentConfig = defaultsOf(SETTINGS);

export function agentTls(c: AgentConfig): ClientTls {
  return { ca: c.tlsCa, cert: c.tlsCert, key: c.tlsKey, serverName: c.tlsServerName };
}

export const HELP = `loom-agent: makes this host's Open vSwitch follow the Loom controller and attaches containers.

Usage: loom-agent --host-name NAME --vtep ADDR [--config FILE] [flags]

Flags (in brackets: the key in the config file, the default, older flag names that still work):
${settingsHelp(SETTINGS)}
Logs are JSON lines on stdout. Exit status: 0 clean stop, 2 bad configuration, 1 runtime failure.
Example: loom-agent --host-name node1 --vtep 192.0.2.11 --controller 192.0.2.1:7400
`;

/** Parses argv (without node and script); returns 'help' for --help. Throws ConfigError. */
export function loadConfig(argv: string[]): AgentConfig | 'help' {
  return loadSettings(SETTINGS, argv, checkAgentConfig);
}

/** Rules between settings; reads the TLS files now, not at the first handshake. */
function checkAgentConfig(c: AgentConfig): AgentConfig {
  if (c.underlayInterface && !c.underlayBridge) throw new ConfigError('underlayInterface needs underlayBridge (the bridge to add it to)');
  if (c.underlayBridge === c.integrationBridge) throw new ConfigError(`underlayBridge must differ from integrationBridge (${c.integrationBridge})`);
  // On the kernel datapath the kernel routes tunnel packets from the host's own address: an OVS
  // bridge taking the underlay interface would cut the host off its network.
  if (c.underlayBridge && c.datapathType !== 'netdev') {
    throw new ConfigError('underlayBridge is for datapathType netdev only: on the kernel datapath the VTEP address stays on the host interface');
  }
  if (c.netdevPortType !== 'af_packet' && c.netdevPortType !== 'auto' && c.datapathType !== 'netdev') {
    throw new ConfigError(`netdevPortType ${c.netdevPortType} needs datapathType netdev (the kernel datapath reads its ports in the kernel)`);
  }
  if (c.natPath === 'ovs') {
    // On the kernel datapath loom-gw0 is one in-kernel crossing already: nothing to gain, and the NIC would have to join an OVS bridge.
    if (c.datapathType !== 'netdev') throw new ConfigError('natPath ovs is for datapathType netdev only: on the kernel datapath the host path (nftables) is one in-kernel crossing already; use natPath host');
    if (!c.underlayBridge || !c.underlayInterface) throw new ConfigError('natPath ovs needs underlayBridge and underlayInterface: NATed packets leave through a patch port to that bridge and out that interface');
    if (!c.gatewayPort) throw new ConfigError("natPath ovs needs gatewayPort: IPv6, unresolved next hops and the host's own access still take the host path");
  }
  clientCredentials(agentTls(c));
  const natPath = c.natPath !== 'auto' ? c.natPath : c.datapathType === 'netdev' && c.underlayBridge && c.underlayInterface && c.gatewayPort ? 'ovs' : 'host';
  return { ...c, natPath, txChecksumOff: c.txChecksumOff || c.datapathType === 'netdev' };
}
