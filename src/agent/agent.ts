// The agent: registers its host, follows the controller's Watch stream, keeps the bridge's flows
// equal to the pipeline for that view, and attaches and detaches containers for the CNI plugin.
// Every change to OVS goes through one queue, so flow bundles never interleave.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import * as grpc from '@grpc/grpc-js';
import { OvsdbClient } from '../ovsdb/client.js';
import { Vswitch } from '../ovsdb/vswitch.js';
import { OpenFlowClient } from '../openflow/client.js';
import { Netlink } from '../netlink/index.js';
import { LoomClient, isServiceError } from '../controller/api/client.js';
import { ViewState } from '../controller/api/view-state.js';
import type * as api from '../controller/api/types.js';
import { agentTls, type AgentConfig } from './config.js';
import { clientCredentials } from '../common/tls.js';
import { joinHostPort, splitHostPort } from '../common/config.js';
import { FlowSync } from './flow-sync.js';
import { ContainerPlumber, type ContainerInterface } from './plumbing.js';
import { addEndpointPort, ensureBridgeLayout, listEndpointPorts, nextGeneration, removeEndpointPort, type EndpointPortRecord } from './ovs.js';
import { gatewayMac, VniReg } from './pipeline/fields.js';
import { buildNeighborAdvertisement, parseNeighborSolicitation } from './nd-responder.js';
import { decodeMatch } from '../openflow/match.js';
import type { PacketIn } from '../openflow/messages.js';
import type { NetworkState, PipelineState, TunnelKind } from './pipeline/state.js';
import type { AgentMetrics } from './metrics.js';

export const AGENT_VERSION = '0.1.0';

/** Bytes the tunnel headers take from the underlay MTU (outer IPv4). */
export const TUNNEL_OVERHEAD: Record<TunnelKind, number> = { vxlan: 50, gre: 42 };

/** A failure the local API reports with a status and a message for the operator. */
export class AgentError extends Error {
  override name = 'AgentError';
  constructor(
    readonly status: 'invalid' | 'not_found' | 'conflict' | 'unavailable' | 'internal',
    message: string,
  ) {
    super(message);
  }
}

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

interface Attachment {
  hostIfname: string;
  ofport: number;
  record: EndpointPortRecord;
}

const tunnelKind = (t: api.TunnelType): TunnelKind => (t === 'TUNNEL_TYPE_GRE' ? 'gre' : 'vxlan');
const attachmentKey = (containerId: string, ifname: string) => `${containerId}/${ifname}`;

/** Host-side interface name: short, stable for a container and interface, unique per host. */
export function hostIfname(containerId: string, ifname: string): string {
  return `lm${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 11)}`;
}

export class Agent {
  private ovsdb!: OvsdbClient;
  private vswitch!: Vswitch;
  private openflow!: OpenFlowClient;
  private netlink!: Netlink;
  private plumber!: ContainerPlumber;
  private flows!: FlowSync;
  private readonly controller: LoomClient;
  /** The controller's dedicated Watch server (RegisterResponse.watchPort), when it has one. */
  private watchClient: { port: number; client: LoomClient } | undefined;
  /**
   * Watch attempts on the dedicated port that failed before any message while the API port
   * answered (a firewall, say): after 3 the agent watches on the API port for a while.
   */
  private watchPortFailures = 0;
  private watchPortRetryAt = 0;
  /** Last time the API port answered (register, heartbeat). */
  private apiOkAt = 0;
  private readonly view = new ViewState();
  private readonly attachments = new Map<string, Attachment>();
  /** Networks learned from attach replies, until the stream carries them. */
  private readonly knownNetworks = new Map<string, api.Network>();
  private tunnelPorts!: Record<TunnelKind, number>;
  private generation = 0;
  /** Whether the flow table was reconciled with a complete view since start (or since OVS restarted). */
  private reconciled = false;
  private queue: Promise<unknown> = Promise.resolve();
  private watchStream: grpc.ClientDuplexStream<api.WatchRequest, api.WatchResponse> | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private registered = false;
  private backoffMs = 200;
  appliedRevision = 0;
  controllerConnected = false;

  constructor(
    readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly metrics?: AgentMetrics,
  ) {
    const tls = clientCredentials(agentTls(config));
    this.controller = new LoomClient(config.controller, tls.options, tls.credentials);
  }

  /** Connects to OVS, prepares the bridge, recovers endpoints, then follows the controller. */
  async start(): Promise<void> {
    const c = this.config;
    this.ovsdb = await OvsdbClient.connect(c.ovsdb);
    this.vswitch = new Vswitch(this.ovsdb);
    this.tunnelPorts = await ensureBridgeLayout(this.vswitch, {
      bridge: c.integrationBridge,
      datapathType: c.datapathType,
      underlayBridge: c.underlayBridge,
      underlayInterface: c.underlayInterface,
    });
    this.generation = await nextGeneration(this.vswitch, c.integrationBridge);
    this.openflow = await OpenFlowClient.connect(`unix:${c.ovsRunDir}/${c.integrationBridge}.mgmt`);
    this.openflow.connection.on('reconnected', () => {
      this.log.warn('OpenFlow connection to the bridge re-established (ovs-vswitchd restarted?); reinstalling the pipeline');
      this.reconciled = false;
      this.enqueue(async () => {
        await this.recoverEndpoints();
        await this.syncFlows();
      }).catch((err) => this.log.error({ err }, 'reinstalling flows failed'));
    });
    this.openflow.connection.on('packet_in', (p) => this.onPacketIn(p));
    this.flows = new FlowSync(this.openflow);
    this.netlink = await Netlink.open(c.hostNetns ? { netns: c.hostNetns } : {});
    this.plumber = new ContainerPlumber(this.netlink);
    await this.recoverEndpoints();
    this.log.info({ generation: this.generation, endpoints: this.attachments.size, tunnelPorts: this.tunnelPorts }, 'OVS ready');
    if (c.datapathType === 'netdev') warnSmallSocketBuffers(this.log);
    // The controller may be away: forwarding goes on with the installed flows meanwhile.
    void this.register().then(() => this.openWatch());
  }

  /** Endpoints attached before (by an earlier run, or before ovs-vswitchd restarted), from OVSDB. */
  private async recoverEndpoints(): Promise<void> {
    const vs = await this.ovs();
    for (const p of await listEndpointPorts(vs)) {
      if (p.ofport === undefined) continue;
      this.attachments.set(attachmentKey(p.record.containerId, p.record.ifname), { hostIfname: p.name, ofport: p.ofport, record: p.record });
    }
  }

  /** The OVSDB connection, reopened if ovsdb-server went away since the last call. */
  private async ovs(): Promise<Vswitch> {
    if (this.ovsdb.isClosed) {
      this.log.warn({ ovsdb: this.config.ovsdb }, 'OVSDB connection lost; reconnecting');
      this.ovsdb = await OvsdbClient.connect(this.config.ovsdb);
      this.vswitch = new Vswitch(this.ovsdb);
    }
    return this.vswitch;
  }

  /** Registers with the controller, retrying with backoff (and saying so) until it answers. */
  private async register(): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const res = await this.controller.register(
          { name: this.config.hostName, vtep: this.config.vtep, agentVersion: AGENT_VERSION, capabilities: ['vxlan', 'gre', 'ipv6'] },
          { timeoutMs: 5000 },
        );
        this.log.info({ controller: this.config.controller, revision: res.revision, watchPort: res.watchPort }, 'registered with the controller');
        this.apiOkAt = Date.now();
        this.useWatchPort(res.watchPort);
        this.registered = true;
        this.startHeartbeats(res.heartbeatIntervalMs || 5000);
        return;
      } catch (err) {
        const wait = Math.min(200 * 2 ** Math.min(attempt, 5), 5000);
        if (isServiceError(err) && err.code === grpc.status.PERMISSION_DENIED) {
          // Wrong certificate, or a VTEP change an operator has not made yet: retrying picks that up.
          this.log.error({ attempt, err: describe(err), retryInMs: wait }, 'the controller refused this host (certificate or VTEP); forwarding continues on the last known state');
        } else {
          this.log.warn({ attempt, err: describe(err), retryInMs: wait }, 'controller not reachable; forwarding continues on the last known state');
        }
        await sleep(wait);
      }
    }
  }

  private startHeartbeats(intervalMs: number): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      this.controller.heartbeat(this.config.hostName, this.appliedRevision, { timeoutMs: intervalMs }).then(() => (this.apiOkAt = Date.now()), async (err) => {
        this.log.warn({ err: describe(err) }, 'heartbeat failed');
        if (isServiceError(err) && err.code === grpc.status.NOT_FOUND) await this.register();
      });
    }, intervalMs);
    this.heartbeatTimer.unref();
  }

  /** Watch goes to the controller's dedicated port (same host and TLS) on a connection of its own. */
  private useWatchPort(port: number): void {
    if (this.watchClient?.port === port) return;
    this.watchClient?.client.close();
    this.watchClient = undefined;
    this.watchPortFailures = 0;
    if (!port) return;
    const tls = clientCredentials(agentTls(this.config));
    const target = joinHostPort(splitHostPort(this.config.controller).host, port);
    this.watchClient = { port, client: new LoomClient(target, tls.options, tls.credentials) };
  }

  private openWatch(): void {
    if (this.stopped) return;
    if (this.watchPortFailures >= 3 && Date.now() >= this.watchPortRetryAt) this.watchPortFailures = 0;
    const dedicated = this.watchClient !== undefined && this.watchPortFailures < 3;
    const stream = dedicated ? this.watchClient!.client.watch() : this.controller.watch();
    let received = false;
    this.watchStream = stream;
    stream.write({
      start: {
        host: this.config.hostName,
        fromRevision: this.view.revision,
        networks: [...this.view.networks.keys()],
        storeId: this.view.storeId,
      },
    });
    stream.on('data', (msg: api.WatchResponse) => {
      if (!received && dedicated) this.watchPortFailures = 0;
      received = true;
      this.controllerConnected = true;
      this.backoffMs = 200;
      if (!this.view.apply(msg)) return;
      const revision = this.view.revision;
      this.enqueue(async () => {
        await this.syncFlows();
        this.appliedRevision = revision;
        this.metrics?.appliedRevision.set(revision);
        if (!stream.destroyed) stream.write({ ack: { revision } });
      }).catch((err) => this.log.error({ err, revision }, 'applying a view change failed'));
    });
    const retry = (why: string) => {
      if (this.watchStream !== stream) return;
      this.watchStream = undefined;
      this.controllerConnected = false;
      if (this.stopped) return;
      const apiAnswers = Date.now() - this.apiOkAt < 15_000;
      if (dedicated && !received && apiAnswers && ++this.watchPortFailures === 3) {
        this.watchPortRetryAt = Date.now() + 300_000;
        this.log.warn({ watchPort: this.watchClient?.port, why }, 'the controller\'s Watch port fails while its API port answers; watching on the API port for 5 minutes');
      }
      this.log.warn({ why, retryInMs: this.backoffMs, revision: this.view.revision }, 'watch stream lost; keeping the installed flows');
      this.reconnectTimer = setTimeout(() => this.openWatch(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    };
    stream.on('error', (err) => retry(describe(err)));
    stream.on('end', () => retry('controller ended the stream'));
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** The pipeline's input: the controller's view for this host plus the local attachments. */
  pipelineState(): PipelineState {
    const networks = new Map<string, api.Network>(this.knownNetworks);
    for (const [name, n] of this.view.networks) networks.set(name, n.network);
    const states: NetworkState[] = [];
    for (const [name, net] of networks) {
      const routes = this.view.networks.get(name)?.routes;
      states.push({
        vni: net.vni,
        tunnel: tunnelKind(net.tunnelType),
        gateway4: net.gateways.find((g) => !g.includes(':')),
        gateway6: net.gateways.find((g) => g.includes(':')),
        endpoints: [...this.attachments.values()]
          .filter((a) => a.record.network === name)
          .map((a) => ({
            id: `${a.record.network}/${a.record.containerId}`,
            ofport: a.ofport,
            mac: a.record.mac,
            ...(a.record.ipv4 ? { ipv4: a.record.ipv4 } : {}),
            ...(a.record.ipv6 ? { ipv6: a.record.ipv6 } : {}),
          })),
        remote: [...(routes?.values() ?? [])]
          .filter((r) => r.host !== this.config.hostName && r.vtep)
          .map((r) => ({ prefix: r.prefix, vtep: r.vtep })),
      });
    }
    return { generation: this.generation, tunnelPorts: this.tunnelPorts, networks: states };
  }

  /**
   * Makes the flow table match the current state. Until the first complete view arrives the
   * table is left alone (an agent restarting without its controller keeps forwarding); then the
   * switch is read and reconciled once, replacing the previous generation in place.
   */
  private async syncFlows(): Promise<void> {
    if (this.view.revision === 0 && !this.reconciled) return;
    const state = this.pipelineState();
    const started = process.hrtime.bigint();
    const result = this.reconciled ? await this.flows.update(state) : await this.flows.reconcile(state);
    this.reconciled = true;
    this.metrics?.flowChanges.inc(result.upserted + result.removed);
    this.metrics?.syncSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    if (result.upserted + result.removed > 0) this.log.debug({ ...result, revision: this.view.revision }, 'flows updated');
  }

  /** The ArpNd table sends solicitations for a network's IPv6 gateway here; answer them. */
  private onPacketIn(p: PacketIn): void {
    const match = decodeMatch(p.match).match;
    const inPort = match.find((f) => f.field === 'in_port')?.value;
    const vni = match.find((f) => f.field === 'reg' && f.index === VniReg.index)?.value;
    const ns = parseNeighborSolicitation(p.data);
    if (typeof inPort !== 'number' || typeof vni !== 'number' || !ns) return;
    const state = this.pipelineState().networks.find((n) => n.vni === vni);
    if (!state?.gateway6 || state.gateway6 !== ns.target) return;
    const reply = buildNeighborAdvertisement(ns, state.gateway6, gatewayMac(vni));
    this.openflow
      .packetOut({ inPort, actions: [{ type: 'output', port: 'in_port' }], data: reply })
      .catch((err) => this.log.warn({ err, inPort }, 'sending a neighbour advertisement failed'));
  }

  /** CNI ADD: endpoint from the controller, interface in the container, port and flows in OVS. */
  async attach(req: AttachRequest): Promise<AttachResult> {
    validateAttach(req);
    if (!this.registered) throw new AgentError('unavailable', `not registered with the controller at ${this.config.controller} yet; try again`);
    const started = process.hrtime.bigint();
    const ms: Record<string, number> = {};
    const lap = (stage: string) => (ms[stage] = Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10);
    // Network definitions do not change once created: ask for it alongside the endpoint.
    const networkReply = this.call(() => this.controller.getNetwork(req.network), `network ${req.network}`);
    networkReply.catch(() => undefined);
    let ep: api.Endpoint;
    let created = false;
    try {
      ep = await this.controller.createEndpoint({
        network: req.network,
        host: this.config.hostName,
        containerId: req.containerId,
        ...(req.name ? { name: req.name } : {}),
        ...(req.ipv4 ? { ipv4: req.ipv4 } : {}),
        ...(req.ipv6 ? { ipv6: req.ipv6 } : {}),
        ...(req.mac ? { mac: req.mac } : {}),
      });
      created = true;
    } catch (err) {
      if (!(isServiceError(err) && err.code === grpc.status.ALREADY_EXISTS)) throw toAgentError(err, `endpoint ${req.containerId}`);
      ep = await this.call(() => this.controller.getEndpoint(req.network, req.containerId), `endpoint ${req.containerId}`);
      if (ep.host !== this.config.hostName) {
        throw new AgentError('conflict', `container ${req.containerId} is already attached to ${req.network} on host ${ep.host}`);
      }
    }
    const network = await networkReply;
    lap('controller');
    const kind = tunnelKind(network.tunnelType);
    const mtu = Math.min(ep.mtu || network.mtu || this.config.underlayMtu, this.config.underlayMtu - TUNNEL_OVERHEAD[kind]);
    const name = hostIfname(req.containerId, req.ifname);
    const spec = this.interfaceSpec(req, ep, network, name, mtu);
    const record: EndpointPortRecord = {
      network: req.network,
      containerId: req.containerId,
      ifname: req.ifname,
      netns: req.netns,
      mac: ep.mac,
      ipv4: bare(ep.ipv4),
      ipv6: bare(ep.ipv6),
    };
    try {
      await this.enqueue(async () => {
        lap('queued');
        await this.plumber.attach(spec);
        lap('netlink');
        const ofport = await addEndpointPort(await this.ovs(), this.config.integrationBridge, name, record);
        lap('ovsdb');
        this.knownNetworks.set(network.name, network);
        this.attachments.set(attachmentKey(req.containerId, req.ifname), { hostIfname: name, ofport, record });
        await this.syncFlows();
        lap('openflow');
      });
    } catch (err) {
      this.log.error({ err, containerId: req.containerId }, 'attach failed; rolling back');
      await this.enqueue(() => this.removeLocal(req.containerId, req.ifname)).catch(() => undefined);
      if (created) await this.controller.deleteEndpoint(req.network, req.containerId).catch(() => undefined);
      throw err instanceof AgentError ? err : new AgentError('internal', `attaching ${req.containerId}: ${(err as Error).message}`);
    }
    this.metrics?.attachSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    this.log.info({ containerId: req.containerId, network: req.network, ipv4: ep.ipv4, ipv6: ep.ipv6, port: name, ms }, 'container attached');
    return {
      hostInterface: name,
      interface: { name: req.ifname, mac: ep.mac, sandbox: req.netns, mtu },
      addresses: [
        ...(ep.ipv4 ? [{ address: ep.ipv4, gateway: spec.gateways.find((g) => !g.includes(':')) ?? '' }] : []),
        ...(ep.ipv6 ? [{ address: ep.ipv6, gateway: spec.gateways.find((g) => g.includes(':')) ?? '' }] : []),
      ],
      routes: ep.routes.map((r) => ({ dst: r.destination, gw: r.gateway })),
      dns: ep.dns ?? { nameservers: [], search: [], options: [] },
      hostname: ep.hostname,
    };
  }

  private interfaceSpec(req: AttachRequest, ep: api.Endpoint, network: api.Network, name: string, mtu: number): ContainerInterface {
    const gateways = ep.gateways.filter(Boolean);
    return {
      netns: req.netns,
      ifname: req.ifname,
      hostIfname: name,
      mac: ep.mac,
      mtu,
      addresses: [ep.ipv4, ep.ipv6].filter(Boolean),
      gateways,
      gatewayMac: gatewayMac(network.vni),
      routes: ep.routes.map((r) => (r.destination === '0.0.0.0/0' || r.destination === '::/0' ? 'default' : r.destination)),
      txChecksumOff: this.config.txChecksumOff,
    };
  }

  /** CNI DEL: idempotent; what is already gone is not an error. */
  async detach(req: DetachRequest): Promise<void> {
    if (!req.containerId || !req.ifname) throw new AgentError('invalid', 'detach needs containerId and ifname');
    const att = this.attachments.get(attachmentKey(req.containerId, req.ifname));
    await this.enqueue(() => this.removeLocal(req.containerId, req.ifname));
    const network = req.network ?? att?.record.network;
    if (network) {
      await this.controller.deleteEndpoint(network, req.containerId).catch((err) => {
        if (isServiceError(err) && err.code === grpc.status.NOT_FOUND) return;
        throw toAgentError(err, `endpoint ${req.containerId}`);
      });
    }
    this.log.info({ containerId: req.containerId, network }, 'container detached');
  }

  private async removeLocal(containerId: string, ifname: string): Promise<void> {
    const name = hostIfname(containerId, ifname);
    this.attachments.delete(attachmentKey(containerId, ifname));
    await removeEndpointPort(await this.ovs(), this.config.integrationBridge, name);
    await this.plumber.detach(name);
    await this.syncFlows();
  }

  /** CNI CHECK: what differs from what the agent installed, as readable lines ([] = healthy). */
  async check(req: AttachRequest): Promise<string[]> {
    const att = this.attachments.get(attachmentKey(req.containerId, req.ifname));
    if (!att) return [`container ${req.containerId} has no ${req.ifname} attached by this agent`];
    const ep = await this.call(() => this.controller.getEndpoint(att.record.network, req.containerId), `endpoint ${req.containerId}`);
    const network = await this.call(() => this.controller.getNetwork(att.record.network), `network ${att.record.network}`);
    const mtu = Math.min(ep.mtu || network.mtu, this.config.underlayMtu - TUNNEL_OVERHEAD[tunnelKind(network.tunnelType)]);
    const problems = await this.plumber.check(this.interfaceSpec(req, ep, network, att.hostIfname, mtu));
    const flows = await this.openflow.dumpFlows({ table: 0, match: [{ field: 'in_port', value: att.ofport }] });
    if (flows.length === 0) problems.push(`no flow classifies traffic from port ${att.hostIfname} (ofport ${att.ofport})`);
    return problems;
  }

  /** CNI STATUS: throws with the reason when an ADD cannot succeed now. */
  ready(): void {
    if (this.stopped) throw new AgentError('unavailable', 'the agent is stopping');
    if (!this.controllerConnected) throw new AgentError('unavailable', `the agent is not connected to the controller at ${this.config.controller}`);
  }

  /** This host's attachments to a network (CNI GC compares them with the runtime's). */
  attachmentsOf(network: string): Array<{ containerId: string; ifname: string }> {
    return [...this.attachments.values()].filter((a) => a.record.network === network).map((a) => ({ containerId: a.record.containerId, ifname: a.record.ifname }));
  }

  get endpointCount(): number {
    return this.attachments.size;
  }

  status(): object {
    return {
      host: this.config.hostName,
      controllerConnected: this.controllerConnected,
      appliedRevision: this.appliedRevision,
      generation: this.generation,
      endpoints: [...this.attachments.values()].map((a) => ({ ...a.record, port: a.hostIfname, ofport: a.ofport })),
    };
  }

  private async call<T>(fn: () => Promise<T>, what: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toAgentError(err, what);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.reconnectTimer);
    this.watchStream?.cancel();
    await this.queue;
    this.controller.close();
    this.watchClient?.client.close();
    await this.openflow?.close();
    this.ovsdb?.close();
    await this.netlink?.close();
  }
}

/**
 * The userspace datapath reads every port through a socket with the default receive buffer; at
 * full TCP speed 208 KiB overflows, drops packets and sets off retransmission storms.
 */
export const MIN_RMEM_DEFAULT = 4 * 1024 * 1024;
function warnSmallSocketBuffers(log: Logger): void {
  try {
    const rmem = Number(readFileSync('/proc/sys/net/core/rmem_default', 'utf8'));
    if (rmem < MIN_RMEM_DEFAULT) {
      log.warn({ rmemDefault: rmem, advised: MIN_RMEM_DEFAULT }, `net.core.rmem_default is small for the userspace datapath; set it to ${MIN_RMEM_DEFAULT} and restart ovs-vswitchd, or expect drops under load`);
    }
  } catch {
    /* not Linux, or no /proc: nothing to advise */
  }
}

function validateAttach(req: AttachRequest): void {
  for (const k of ['containerId', 'netns', 'ifname', 'network'] as const) {
    if (typeof req[k] !== 'string' || req[k] === '') throw new AgentError('invalid', `attach needs a non-empty ${k}`);
  }
  if (req.ifname.length > 15 || /[/\s]/.test(req.ifname)) throw new AgentError('invalid', `invalid interface name "${req.ifname}"`);
}

function toAgentError(err: unknown, what: string): AgentError {
  if (err instanceof AgentError) return err;
  if (isServiceError(err)) {
    const status =
      err.code === grpc.status.NOT_FOUND ? 'not_found'
      : err.code === grpc.status.ALREADY_EXISTS || err.code === grpc.status.FAILED_PRECONDITION ? 'conflict'
      : err.code === grpc.status.INVALID_ARGUMENT || err.code === grpc.status.RESOURCE_EXHAUSTED ? 'invalid'
      : err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED ? 'unavailable'
      : 'internal';
    return new AgentError(status, `${what}: ${err.details || err.message}`);
  }
  return new AgentError('internal', `${what}: ${(err as Error).message}`);
}

function describe(err: unknown): string {
  if (isServiceError(err)) return `${grpc.status[err.code] ?? err.code}: ${err.details}`;
  return err instanceof Error ? err.message : String(err);
}

const bare = (cidr: string) => cidr.split('/')[0] ?? '';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
