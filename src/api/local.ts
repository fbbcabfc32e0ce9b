// The agent's local API contract: what the `loom` CNI plugin (and any local tool) sends the agent
// over its unix socket, and what the agent answers. Shared by src/agent and src/cni.
import type { PortMapping } from './types.js';

export interface AttachRequest {
  containerId: string;
  /** Container network namespace file. */
  netns: string;
  ifname: string;
  network: string;
  /** Container name, for the controller and DNS. */
  name?: string;
  ipv4?: string;
  ipv6?: string;
  mac?: string;
  /** Endpoint labels, for policy selectors (the controller validates them). */
  labels?: Record<string, string>;
  /** Published ports (CNI portMappings). */
  ports?: PortMapping[];
  /** The container's own DNS settings (CNI runtimeConfig `dns`, podman --dns, --dns-search, --dns-option). */
  dns?: ContainerDns;
  /** The container's hostname as a DNS name (CNI_ARGS HOSTNAME); default: derived from the name. */
  hostname?: string;
  /** Further DNS names in the network (CNI `aliases` capability, podman --network-alias). */
  aliases?: string[];
}

/** Per-container DNS: servers become its upstreams (the gateway stays its nameserver); search and options go into its resolv.conf. */
export interface ContainerDns {
  servers?: string[];
  searches?: string[];
  options?: string[];
}

export interface AttachResult {
  hostInterface: string;
  interface: { name: string; mac: string; sandbox: string; mtu: number };
  addresses: Array<{ address: string; gateway: string }>;
  routes: Array<{ dst: string; gw: string }>;
  dns: { nameservers: string[]; search: string[]; options: string[] };
  hostname: string;
}

export interface DetachRequest {
  containerId: string;
  ifname: string;
  network?: string;
}

/** Statuses a local-API failure carries (mapped to HTTP codes by the agent, to CNI codes by the plugin). */
export type LocalApiStatus = 'invalid' | 'not_found' | 'conflict' | 'unavailable' | 'internal';

/** What the CNI logic needs from the agent. Failures throw errors with a `status` (LocalApiStatus). */
export interface CniBackend {
  attach(req: AttachRequest): Promise<Omit<AttachResult, 'hostname'>>;
  detach(req: DetachRequest): Promise<void>;
  check(req: AttachRequest): Promise<string[]>;
  /** Throws when the agent cannot serve ADD yet (STATUS). */
  ready(): void;
  /** Attachments of a network on this host, for GC. */
  attachments(network: string): Array<{ containerId: string; ifname: string }>;
}

/** What the plugin process prints on stdout and exits with. */
export interface CniReply {
  exitCode: number;
  stdout: string;
  /** The command, for logs and metrics ('' when the environment had none). */
  command: string;
}

/** The CNI logic the agent hosts for the plugin (src/cni/handler.ts implements it). */
export interface CniHandler {
  /** Runs one CNI invocation (the runtime's environment and stdin) against a backend. */
  handle(env: Record<string, string | undefined>, stdin: string, backend: CniBackend): Promise<CniReply>;
  /** The answer to a request over MAX_CNI_REQUEST_BYTES: a permanent CNI error, not "try again". */
  tooLarge(): CniReply;
}

/**
 * The one size limit of a CNI request: the plugin's JSON request to the agent (environment and
 * the JSON-escaped configuration) is at most this many bytes. The plugin refuses a larger one
 * itself with code 7; the agent's local API refuses larger bodies. Must match MAX_REQUEST in
 * shim/loom.c (a test compares them).
 */
export const MAX_CNI_REQUEST_BYTES = 1024 * 1024;

