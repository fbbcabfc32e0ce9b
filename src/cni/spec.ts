// CNI 1.0 (and 1.1 STATUS and GC) as the plugin sees it: the environment and stdin a runtime hands over,
// the result and error objects it expects back. Pure functions; handler.ts runs a command.
import { tryParseIp } from '../common/ip.js';
import type { AttachResult } from '../api/local.js';
import { interfaceNameProblem } from '../common/ifname.js';

export const CNI_VERSION = '1.0.0';
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
export const DEFAULT_AGENT_SOCKET = '/run/loom/agent.sock';
export { MAX_CNI_REQUEST_BYTES } from '../api/local.js';

/** Well-known CNI error codes (spec section "Error"). */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  /** Loom's own: the agent refused the request (the message says why). */
  AgentRefused: 100,
  /** Loom's own: CHECK found the container's interface not as attached. */
  CheckFailed: 101,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
  }
  toJSON(cniVersion: string): object {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';

export interface CniEnv {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  args: Record<string, string>;
}

import type { PortMapping } from '../api/types.js';

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  /** The Loom network to attach to; defaults to `name`. */
  network: string;
  agentSocket: string;
  prevResult?: unknown;
  /** GC (CNI 1.1): the attachments the runtime still has, from "cni.dev/valid-attachments". */
  validAttachments?: Array<{ containerID: string; ifname: string }>;
  /** The `portMappings` capability (podman -p): runtimeConfig.portMappings. */
  portMappings: PortMapping[];
  /** The `dns` capability: runtimeConfig.dns (podman --dns, --dns-search, --dns-option). */
  dns?: { servers?: string[]; searches?: string[]; options?: string[] };
  /** Labels every endpoint attached with this configuration carries (policy selectors). */
  labels?: Record<string, string>;
  /** The `aliases` capability (podman --network-alias): runtimeConfig.aliases for this network. */
  aliases?: string[];
}

const COMMANDS: Command[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND as Command;
  if (!COMMANDS.includes(command)) {
    throw new CniError(CniCode.InvalidEnvironment, `CNI_COMMAND must be one of ${COMMANDS.join(', ')}, got "${env.CNI_COMMAND ?? ''}"`);
  }
  const needs: Record<Command, string[]> = {
    ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
    DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
    CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
    VERSION: [],
    STATUS: [],
    GC: [],
  };
  for (const name of needs[command]) {
    if (!env[name]) throw new CniError(CniCode.InvalidEnvironment, `${name} is required for ${command}`);
  }
  const ifname = env.CNI_IFNAME ?? '';
  const problem = ifname ? interfaceNameProblem(ifname) : undefined;
  if (problem) throw new CniError(CniCode.InvalidEnvironment, `CNI_IFNAME ${JSON.stringify(ifname)} is not a valid interface name: it ${problem}`);
  return { command, containerId: env.CNI_CONTAINERID ?? '', netns: env.CNI_NETNS ?? '', ifname, args: parseArgs(env.CNI_ARGS ?? '') };
}

/** CNI_ARGS: "K1=V1;K2=V2". */
export function parseArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(';')) {
    if (!part) continue;
    const i = part.indexOf('=');
    if (i <= 0) throw new CniError(CniCode.InvalidEnvironment, `CNI_ARGS entry "${part}" is not KEY=VALUE`);
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

export function parseConfig(stdin: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniCode.DecodeFailure, `network configuration on stdin is not JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(CniCode.DecodeFailure, 'network configuration on stdin must be a JSON object');
  }
  const c = raw as Record<string, unknown>;
  const str = (k: string, required: boolean): string => {
    const v = c[k];
    if (v === undefined && !required) return '';
    if (typeof v !== 'string' || v === '') throw new CniError(CniCode.InvalidConfig, `network configuration: "${k}" must be a non-empty string`);
    return v;
  };
  const cniVersion = str('cniVersion', true);
  if (!SUPPORTED_VERSIONS.includes(cniVersion)) {
    throw new CniError(CniCode.IncompatibleVersion, `cniVersion ${cniVersion} is not supported`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  const name = str('name', true);
  return {
    cniVersion,
    name,
    type: str('type', true),
    network: str('network', false) || name,
    agentSocket: str('agentSocket', false) || DEFAULT_AGENT_SOCKET,
    ...(c.prevResult !== undefined ? { prevResult: c.prevResult } : {}),
    ...(c['cni.dev/valid-attachments'] !== undefined ? { validAttachments: validAttachments(c['cni.dev/valid-attachments']) } : {}),
    portMappings: portMappings((c.runtimeConfig as Record<string, unknown> | undefined)?.portMappings),
    ...runtimeDns(c.runtimeConfig),
    ...runtimeAliases(c.runtimeConfig, [name, str('network', false)]),
    ...(c.labels !== undefined ? { labels: confLabels(c.labels) } : {}),
  };
}

const MAX_PORT_MAPPINGS = 64;

/**
 * runtimeConfig.portMappings as runtimes send it (`{hostPort, containerPort, protocol, hostIP}`,
 * protocol default tcp); ranges and duplicates are checked by the controller.
 */
function portMappings(v: unknown): PortMapping[] {
  if (v === undefined || v === null) return [];
  const bad = (why: string) => new CniError(CniCode.InvalidConfig, `runtimeConfig.portMappings: ${why}`);
  if (!Array.isArray(v)) throw bad('must be a list');
  if (v.length > MAX_PORT_MAPPINGS) throw bad(`at most ${MAX_PORT_MAPPINGS} entries`);
  return v.map((m: unknown) => {
    const o = m as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null) throw bad('each entry must be an object');
    const { hostPort, containerPort } = o;
    if (typeof hostPort !== 'number' || typeof containerPort !== 'number') throw bad('hostPort and containerPort must be numbers');
    const protocol = o.protocol === undefined || o.protocol === '' ? 'tcp' : o.protocol;
    if (protocol !== 'tcp' && protocol !== 'udp') throw bad(`protocol ${JSON.stringify(protocol)} is not "tcp" or "udp"`);
    const hostIp = o.hostIP ?? '';
    if (typeof hostIp !== 'string') throw bad('hostIP must be a string');
    return { hostPort, containerPort, protocol, hostIp };
  });
}

/**
 * The `dns` capability's runtimeConfig (CNI conventions): {"servers", "searches", "options"},
 * each a list of strings. Anything else in runtimeConfig is another capability's and ignored.
 */
function runtimeDns(runtimeConfig: unknown): { dns?: NonNullable<NetConf['dns']> } {
  if (runtimeConfig === undefined || runtimeConfig === null) return {};
  if (typeof runtimeConfig !== 'object' || Array.isArray(runtimeConfig)) throw new CniError(CniCode.InvalidConfig, 'network configuration: "runtimeConfig" must be an object');
  const dns = (runtimeConfig as Record<string, unknown>).dns;
  if (dns === undefined || dns === null) return {};
  if (typeof dns !== 'object' || Array.isArray(dns)) throw new CniError(CniCode.InvalidConfig, 'network configuration: "runtimeConfig.dns" must be an object of "servers", "searches", "options"');
  const out: NonNullable<NetConf['dns']> = {};
  for (const k of ['servers', 'searches', 'options'] as const) {
    const v = (dns as Record<string, unknown>)[k];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) {
      throw new CniError(CniCode.InvalidConfig, `network configuration: "runtimeConfig.dns.${k}" must be a list of non-empty strings`);
    }
    if (v.length) out[k] = v as string[];
  }
  return Object.keys(out).length ? { dns: out } : {};
}

const MAX_ALIASES = 32;

/**
 * The `aliases` capability's runtimeConfig as podman's CNI backend passes it:
 * {"<network>": ["name", ...]}, keyed by the configuration's `name` (podman's network name);
 * the Loom network's name (`network`) is accepted as a key too. Other networks' entries are theirs.
 */
function runtimeAliases(runtimeConfig: unknown, keys: string[]): { aliases?: string[] } {
  if (typeof runtimeConfig !== 'object' || runtimeConfig === null) return {};
  const all = (runtimeConfig as Record<string, unknown>).aliases;
  if (all === undefined || all === null) return {};
  if (typeof all !== 'object' || Array.isArray(all)) throw new CniError(CniCode.InvalidConfig, 'network configuration: "runtimeConfig.aliases" must be an object of network name -> list of names');
  const out: string[] = [];
  for (const key of new Set(keys.filter(Boolean))) {
    const v = (all as Record<string, unknown>)[key];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) {
      throw new CniError(CniCode.InvalidConfig, `network configuration: "runtimeConfig.aliases.${key}" must be a list of non-empty strings`);
    }
    out.push(...(v as string[]));
  }
  const unique = [...new Set(out)];
  if (unique.length > MAX_ALIASES) throw new CniError(CniCode.InvalidConfig, `network configuration: at most ${MAX_ALIASES} aliases per container, got ${unique.length}`);
  return unique.length ? { aliases: unique } : {};
}

function confLabels(v: unknown): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) {
    throw new CniError(CniCode.InvalidConfig, 'network configuration: "labels" must be an object of strings, like {"app": "web"}');
  }
  return v as Record<string, string>;
}

/**
 * An endpoint's labels: the configuration's `labels`, then CNI_ARGS `LABELS=k=v,k2=v2` (a
 * runtime's per-container labels) over them. The controller checks their syntax.
 */
export function endpointLabels(conf: Pick<NetConf, 'labels'>, args: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { ...(conf.labels ?? {}) };
  for (const pair of (args.LABELS ?? '').split(',').filter(Boolean)) {
    const i = pair.indexOf('=');
    if (i <= 0) throw new CniError(CniCode.InvalidEnvironment, `CNI_ARGS LABELS entry "${pair}" is not key=value`);
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

function validAttachments(v: unknown): Array<{ containerID: string; ifname: string }> {
  const bad = () => new CniError(CniCode.InvalidConfig, 'network configuration: "cni.dev/valid-attachments" must be a list of {"containerID", "ifname"} objects');
  if (!Array.isArray(v)) throw bad();
  return v.map((a: unknown) => {
    const o = a as { containerID?: unknown; ifname?: unknown } | null;
    if (typeof o !== 'object' || o === null || typeof o.containerID !== 'string' || typeof o.ifname !== 'string') throw bad();
    return { containerID: o.containerID, ifname: o.ifname };
  });
}

/** Static addresses asked for with CNI_ARGS IP=addr[,addr] (one IPv4 and/or one IPv6). */
export function staticAddresses(args: Record<string, string>): { ipv4?: string; ipv6?: string } {
  const out: { ipv4?: string; ipv6?: string } = {};
  for (const a of (args.IP ?? '').split(',').filter(Boolean)) {
    const bare = a.split('/')[0]!;
    const family = tryParseIp(bare)?.family;
    if (family === 4 && !out.ipv4) out.ipv4 = bare;
    else if (family === 6 && !out.ipv6) out.ipv6 = bare;
    else throw new CniError(CniCode.InvalidEnvironment, `CNI_ARGS IP=${args.IP}: expected at most one IPv4 and one IPv6 address`);
  }
  return out;
}

/** What the agent's attach gives the CNI result (the hostname goes into DNS, not the result). */
export type AgentAttachResult = Omit<AttachResult, 'hostname'>;

/** The spec's success result for ADD. */
export function toCniResult(cniVersion: string, r: AgentAttachResult): object {
  return {
    cniVersion,
    interfaces: [
      { name: r.hostInterface },
      { name: r.interface.name, mac: r.interface.mac, mtu: r.interface.mtu, sandbox: r.interface.sandbox },
    ],
    ips: r.addresses.map((a) => ({ address: a.address, ...(a.gateway ? { gateway: a.gateway } : {}), interface: 1 })),
    routes: r.routes,
    dns: {
      ...(r.dns.nameservers.length ? { nameservers: r.dns.nameservers } : {}),
      ...(r.dns.search.length ? { search: r.dns.search } : {}),
      ...(r.dns.options.length ? { options: r.dns.options } : {}),
    },
  };
}
