// Attach, detach and check containers for the CNI plugin: the endpoint from the controller, the
// interface in the container, the port in OVS, then the flows. A failed attach undoes what it did.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import * as grpc from '@grpc/grpc-js';
import { isServiceError, type CallOptions } from '../api/client.js';
import type * as api from '../api/types.js';
import { TUNNEL_OVERHEAD } from '../api/types.js';
import type { AttachRequest, AttachResult, DetachRequest, LocalApiStatus } from '../api/local.js';
import type { ContainerInterface, VethEnds } from './plumbing.js';
import type { EndpointPortRecord } from './ovs.js';
import { gatewayMac } from './pipeline/fields.js';
import { interfaceNameProblem } from '../common/ifname.js';
import { tryParseIp } from '../common/ip.js';
import { networkDomain } from './dns/names.js';
import type { TunnelKind } from './pipeline/state.js';
import type { AgentMetrics } from './metrics.js';

/** A failure the local API reports with a status and a message for the operator. */
export class AgentError extends Error {
  override name = 'AgentError';
  constructor(
    readonly status: LocalApiStatus,
    message: string,
  ) {
    super(message);
  }
}

/** The controller calls an attach makes (LoomClient implements them). */
export interface EndpointApi {
  createEndpoint(req: api.CreateEndpointRequest): Promise<api.Endpoint>;
  getEndpoint(network: string, containerId: string, o?: CallOptions): Promise<api.Endpoint>;
  getNetwork(name: string): Promise<api.Network>;
  deleteEndpoint(network: string, containerId: string, o?: CallOptions): Promise<unknown>;
}

/** The container side (ContainerPlumber implements it over netlink). */
export interface Plumber {
  /** Why `path` is not a network namespace, or null when it is one. */
  netnsProblem(path: string): Promise<string | null>;
  /** The veth pair, host end up (it may join OVS from here on); MAC and MTU may come later. */
  create(spec: VethEnds): Promise<unknown>;
  /** The host end's MTU, for a pair created before the MTU was known. */
  setHostMtu(hostIfname: string, mtu: number): Promise<unknown>;
  /** The container's end: MAC, MTU, link up, addresses, gateway neighbours, routes. */
  configureInside(spec: ContainerInterface): Promise<unknown>;
  detach(hostIfname: string): Promise<void>;
  check(spec: ContainerInterface): Promise<string[]>;
}

/** Endpoint ports on the integration bridge (OVSDB). */
export interface EndpointPorts {
  /** Adds the port and returns its OpenFlow port number. */
  add(name: string, record: EndpointPortRecord): Promise<number>;
  /**
   * Starts adding a new port with the OpenFlow port number `ofport`: resolves once OVSDB holds it,
   * `applied` with the number ovs-vswitchd gave it. Undefined: the name or number is taken (use add).
   */
  begin?(name: string, record: EndpointPortRecord, ofport: number): Promise<{ applied: Promise<number> } | undefined>;
  /**
   * Records the whole endpoint on a port `begin` inserted before the controller's answer (with
   * the request's fields only: an empty MAC marks an attach that did not finish).
   */
  record?(name: string, record: EndpointPortRecord): Promise<void>;
  /** Removes the port; `wait: false` returns once OVSDB holds the change, not waiting for ovs-vswitchd. */
  remove(name: string, options?: { wait?: boolean }): Promise<void>;
}

/** What the attacher needs from the agent that owns the flow table and the queue. */
export interface AttachHost {
  /** Runs `fn` on the agent's one serial queue of OVS changes. */
  enqueue<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Makes the flow table match the current attachments and view. With `commitAfter`, the flows go
   * to the switch at once but take effect only once it resolves; if it rejects, none do.
   */
  syncFlows(commitAfter?: Promise<unknown>): Promise<void>;
  /** Whether any flow classifies traffic from this OpenFlow port. */
  classifies(ofport: number): Promise<boolean>;
  /** Whether the agent has registered its host, so the controller will take endpoints. */
  registered(): boolean;
  /**
   * An attach of this container interface begins: no stale-endpoint reclaim or pending release
   * may touch it until release; one pending is done first (rejects if that fails).
   */
  claim(containerId: string, ifname: string): Promise<void>;
  release(containerId: string, ifname: string): void;
  /**
   * Releases a detached endpoint at the controller in the background, retrying until done, and
   * only then removes its OVS port (and the veth, if still there).
   */
  releaseLater(detached: Pick<Attachment, 'hostIfname' | 'record'>): void;
  /** The network of a release still pending for this container interface, if any. */
  pendingRelease(containerId: string, ifname: string): string | undefined;
}

export interface AttacherOptions {
  hostName: string;
  /** The controller's address, for errors. */
  controller: string;
  underlayMtu: number;
  txChecksumOff: boolean;
}

/** A container interface this agent attached (or recovered from OVSDB). */
export interface Attachment {
  hostIfname: string;
  ofport: number;
  record: EndpointPortRecord;
}

/** Endpoint ports get OpenFlow port numbers up to here; the tunnel and gateway ports sit above (65001-65003). */
export const MAX_ENDPOINT_OFPORT = 65000;

export const attachmentKey = (containerId: string, ifname: string) => `${containerId}/${ifname}`;

/** An endpoint port inserted before the controller answered, with the OpenFlow port number asked for. */
interface EarlyPort {
  wanted: number;
  begun: Promise<{ applied: Promise<number> } | undefined>;
}
/** Milliseconds (one decimal) from an operation's start until each of its stages was done. */
class StageClock {
  private readonly started = process.hrtime.bigint();
  readonly ms: Record<string, number> = {};
  elapsedMs(): number {
    return Number(process.hrtime.bigint() - this.started) / 1e6;
  }
  readonly lap = (stage: string): void => {
    this.ms[stage] = Math.round(this.elapsedMs() * 10) / 10;
  };
}

export const tunnelKind = (t: api.TunnelType): TunnelKind => (t === 'TUNNEL_TYPE_GRE' ? 'gre' : 'vxlan');

/** Host-side interface name: short, stable for a container and interface, unique per host. */
export function hostIfname(containerId: string, ifname: string): string {
  return `lm${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 11)}`;
}

export class Attacher {
  /** This host's attachments by container and interface. */
  readonly attachments = new Map<string, Attachment>();
  /** Networks learned from attach replies, until the stream carries them. */
  readonly knownNetworks = new Map<string, api.Network>();
  /** The OpenFlow port number handed out last (0: none yet). */
  private lastOfport = 0;

  constructor(
    private readonly o: AttacherOptions,
    private readonly controller: EndpointApi,
    private readonly plumber: Plumber,
    private readonly ports: EndpointPorts,
    private readonly host: AttachHost,
    private readonly log: Logger,
    private readonly metrics?: AgentMetrics,
  ) {}

  /** CNI ADD: endpoint from the controller, interface in the container, port and flows in OVS. */
  async attach(req: AttachRequest): Promise<AttachResult> {
    const clock = new StageClock();
    const lap = clock.lap;
    validateAttach(req);
    const netnsProblem = await this.plumber.netnsProblem(req.netns);
    lap('netns');
    if (netnsProblem !== null) throw new AgentError('invalid', `netns ${JSON.stringify(req.netns)} ${netnsProblem}`);
    if (!this.host.registered()) throw new AgentError('unavailable', `not registered with the controller at ${this.o.controller} yet; try again`);
    // No reclaim or release of the same container interface runs while it is attached again; a
    // pending one (an earlier DEL's release) is done first.
    await this.host.claim(req.containerId, req.ifname).catch((err: unknown) => {
      throw new AgentError('unavailable', `releasing the earlier endpoint of ${req.containerId} first: ${(err as Error).message}`);
    });
    lap('claimed');
    try {
      return await this.attachClaimed(req, clock);
    } finally {
      this.host.release(req.containerId, req.ifname);
    }
  }

  private async attachClaimed(req: AttachRequest, clock: StageClock): Promise<AttachResult> {
    const { lap, ms } = clock;
    const key = attachmentKey(req.containerId, req.ifname);
    const name = hostIfname(req.containerId, req.ifname);
    // The veth pair needs nothing from the controller (its MAC and MTU are set once known): create
    // it while the controller allocates. Not for an ADD repeated on a live attachment, whose
    // interface must survive a failing controller call.
    const known = this.knownNetworks.get(req.network);
    const predictedMtu = known ? this.mtuOf(undefined, known) : undefined;
    const veth = this.attachments.has(key) ? undefined : this.plumber.create({ netns: req.netns, ifname: req.ifname, hostIfname: name, ...(predictedMtu ? { mtu: predictedMtu } : {}) }).finally(() => lap('veth'));
    veth?.catch(() => undefined);
    // Then its OVS port, marked with what the request says: ovs-vswitchd adds it meanwhile too.
    const early = veth ? this.beginPortEarly(req, name, veth, lap) : undefined;
    let created = false;
    let ep: api.Endpoint;
    let network: api.Network;
    try {
      // Network definitions do not change once created: ask for it alongside the endpoint.
      const networkReply = this.call(() => this.controller.getNetwork(req.network), `network ${req.network}`);
      networkReply.catch(() => undefined);
      try {
        ep = await this.controller.createEndpoint({
          network: req.network,
          host: this.o.hostName,
          containerId: req.containerId,
          ...(req.name ? { name: req.name } : {}),
          ...(req.ipv4 ? { ipv4: req.ipv4 } : {}),
          ...(req.ipv6 ? { ipv6: req.ipv6 } : {}),
          ...(req.mac ? { mac: req.mac } : {}),
          ...(req.ports?.length ? { ports: req.ports } : {}),
          ...(req.labels && Object.keys(req.labels).length > 0 ? { labels: req.labels } : {}),
          ...(req.dns ? { dns: { nameservers: req.dns.servers ?? [], search: req.dns.searches ?? [], options: req.dns.options ?? [] } } : {}),
          ...(req.hostname ? { hostname: req.hostname } : {}),
          ...(req.aliases?.length ? { aliases: req.aliases } : {}),
        });
        created = true;
      } catch (err) {
        if (!(isServiceError(err) && err.code === grpc.status.ALREADY_EXISTS)) throw toAgentError(err, `endpoint ${req.containerId}`);
        // Taken: this container's endpoint (attached again), or a name or address of another (its error stands).
        ep = await this.controller.getEndpoint(req.network, req.containerId).catch((getErr: unknown) => {
          throw toAgentError(isServiceError(getErr) && getErr.code === grpc.status.NOT_FOUND ? err : getErr, `endpoint ${req.containerId}`);
        });
        if (ep.host !== this.o.hostName) {
          throw new AgentError('conflict', `container ${req.containerId} is already attached to ${req.network} on host ${ep.host}`);
        }
      }
      network = await networkReply;
      lap('controller');
    } catch (err) {
      if (veth) await this.rollback(req, [veth, early?.begun], created);
      throw err;
    }
    const mtu = this.mtuOf(ep, network);
    const spec = this.interfaceSpec(req, ep, network, name, mtu);
    const record: EndpointPortRecord = {
      network: req.network,
      containerId: req.containerId,
      ifname: req.ifname,
      netns: req.netns,
      mac: ep.mac,
      ipv4: bare(ep.ipv4),
      ipv6: bare(ep.ipv6),
      ports: (ep.ports ?? []).length > 0 ? JSON.stringify(ep.ports) : '',
      dnsServers: (req.dns?.servers ?? []).join(','),
    };
    try {
      await this.host.enqueue(async () => {
        lap('queued');
        if (veth) {
          await veth;
          if (mtu !== predictedMtu) await this.plumber.setHostMtu(name, mtu);
        } else {
          await this.plumber.create(spec);
          lap('veth');
        }
        // The OVS port and its flows need only the host end: they go in while netlink configures
        // the container's end. All settle before anything else runs; a failure rolls back below.
        const [port, inside] = await Promise.allSettled([
          this.plugPort(key, name, record, network, lap, early).finally(() => lap('ovs')),
          this.plumber.configureInside(spec).finally(() => lap('netlink')),
        ]);
        if (inside.status === 'rejected') throw inside.reason;
        if (port.status === 'rejected') throw port.reason;
      });
    } catch (err) {
      await this.rollback(req, [veth, early?.begun], created, err);
      throw err instanceof AgentError ? err : new AgentError('internal', `attaching ${req.containerId}: ${(err as Error).message}`);
    }
    this.observeStages('add', ms);
    this.metrics?.attachSeconds.observe(clock.elapsedMs() / 1000);
    this.log.info({ containerId: req.containerId, network: req.network, ipv4: ep.ipv4, ipv6: ep.ipv6, port: name, ms }, 'container attached');
    return {
      hostInterface: name,
      interface: { name: req.ifname, mac: ep.mac, sandbox: req.netns, mtu },
      addresses: [
        ...(ep.ipv4 ? [{ address: ep.ipv4, gateway: spec.gateways.find((g) => !g.includes(':')) ?? '' }] : []),
        ...(ep.ipv6 ? [{ address: ep.ipv6, gateway: spec.gateways.find((g) => g.includes(':')) ?? '' }] : []),
      ],
      routes: ep.routes.map((r) => ({ dst: r.destination, gw: r.gateway })),
      dns: containerDns(ep, network, spec.gateways),
      hostname: ep.hostname,
    };
  }

  /** Undoes a failed attach: the interface (once its creation settled), port, flows, and the endpoint if this attach created it. */
  private async rollback(req: AttachRequest, started: Array<Promise<unknown> | undefined>, created: boolean, err?: unknown): Promise<void> {
    if (err !== undefined) this.log.error({ err, containerId: req.containerId }, 'attach failed; rolling back');
    for (const p of started) await p?.catch(() => undefined);
    await this.host.enqueue(() => this.removeLocal(req.containerId, req.ifname)).catch(() => undefined);
    if (created) await this.controller.deleteEndpoint(req.network, req.containerId).catch(() => undefined);
  }

  /** The container's MTU: the endpoint's or the network's, within what the tunnel leaves of the underlay's. */
  private mtuOf(ep: api.Endpoint | undefined, network: api.Network): number {
    return Math.min(ep?.mtu || network.mtu || this.o.underlayMtu, this.o.underlayMtu - TUNNEL_OVERHEAD[tunnelKind(network.tunnelType)]);
  }

  /**
   * Inserts the endpoint's OVS port once the veth exists, before the controller answered, with a
   * record of the request only (no MAC: an attach that did not finish, should the agent stop
   * before `record` completes it). Undefined when the ports cannot do that.
   */
  private beginPortEarly(req: AttachRequest, name: string, veth: Promise<unknown>, lap: (stage: string) => void): EarlyPort | undefined {
    const { begin, record } = this.ports;
    if (!begin || !record) return undefined;
    const wanted = this.freeOfport();
    const partial: EndpointPortRecord = {
      network: req.network,
      containerId: req.containerId,
      ifname: req.ifname,
      netns: req.netns,
      mac: '',
      ipv4: '',
      ipv6: '',
      ports: '',
      dnsServers: (req.dns?.servers ?? []).join(','),
    };
    const begun = veth.then(() => begin.call(this.ports, name, partial, wanted)).finally(() => lap('ovsdb'));
    begun.catch(() => undefined);
    return { wanted, begun };
  }

  /** Seconds from an operation's start until each of its stages was done (stages overlap). */
  private observeStages(op: 'add' | 'del', ms: Record<string, number>): void {
    if (!this.metrics) return;
    for (const [stage, at] of Object.entries(ms)) this.metrics.cniStageSeconds.observe({ op, stage }, at / 1000);
  }

  /**
   * The endpoint's OVS port and flows. With an OpenFlow port number chosen here, the flows are
   * sent to the switch while OVSDB takes the port, and committed once it has (so they never
   * name a number another port holds); ovs-vswitchd adds the port meanwhile. Both are done
   * before this returns. The number ovs-vswitchd gave is checked, and the flows follow it if it
   * differs. A number OVSDB refuses: the bundle is discarded, the port added first, then the flows.
   */
  private async plugPort(key: string, name: string, record: EndpointPortRecord, network: api.Network, lap: (stage: string) => void, early?: EarlyPort): Promise<void> {
    this.knownNetworks.set(network.name, network);
    const addFirst = async () => {
      const ofport = await this.ports.add(name, record);
      lap('ovsdb');
      this.attachments.set(key, { hostIfname: name, ofport, record });
      await this.host.syncFlows();
    };
    if (!this.ports.begin) return addFirst();
    const wanted = early?.wanted ?? this.freeOfport();
    this.attachments.set(key, { hostIfname: name, ofport: wanted, record });
    const begin = early?.begun ?? this.ports.begin(name, record, wanted).finally(() => lap('ovsdb'));
    // A port inserted early gets the whole record now, alongside the flows.
    const recorded = early ? begin.then((b) => (b ? this.ports.record?.(name, record) : undefined)) : Promise.resolve();
    recorded.catch(() => undefined);
    const ours = begin.then((b) => {
      if (!b) throw new Error(`OpenFlow port number ${wanted} is taken`);
    });
    ours.catch(() => undefined);
    const flows = this.host.syncFlows(ours).finally(() => lap('openflow'));
    flows.catch(() => undefined);
    const begun = await begin.catch(async (err: unknown) => {
      await flows.catch(() => undefined);
      throw err;
    });
    if (!begun) {
      await flows.catch(() => undefined);
      this.attachments.delete(key);
      return addFirst();
    }
    const [applied, synced, kept] = await Promise.allSettled([begun.applied, flows, recorded]);
    if (applied.status === 'rejected') throw applied.reason;
    if (synced.status === 'rejected') throw synced.reason;
    if (kept.status === 'rejected') throw kept.reason;
    if (applied.value !== wanted) {
      this.log.warn({ port: name, requested: wanted, ofport: applied.value }, 'ovs-vswitchd gave the port another OpenFlow port number than requested; moving its flows');
      this.attachments.set(key, { hostIfname: name, ofport: applied.value, record });
      await this.host.syncFlows();
    }
  }

  /**
   * The next OpenFlow port number for an endpoint: counting up from the last one (as OVS does,
   * so a number just freed is not handed out again at once), skipping this agent's endpoints,
   * below the tunnel and gateway ports' pinned numbers. OVSDB refuses one taken by another port.
   */
  private freeOfport(): number {
    const used = new Set([...this.attachments.values()].map((a) => a.ofport));
    if (this.lastOfport === 0) this.lastOfport = Math.max(0, ...[...used].filter((p) => p <= MAX_ENDPOINT_OFPORT));
    for (let i = 0; i < MAX_ENDPOINT_OFPORT; i++) {
      this.lastOfport = (this.lastOfport % MAX_ENDPOINT_OFPORT) + 1;
      if (!used.has(this.lastOfport)) return this.lastOfport;
    }
    throw new AgentError('unavailable', `no free OpenFlow port number below ${MAX_ENDPOINT_OFPORT} on the bridge`);
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
      txChecksumOff: this.o.txChecksumOff,
    };
  }

  /**
   * CNI DEL: idempotent; what is already gone is not an error. An endpoint this agent attached
   * loses its veth and flows, and the runtime is answered; its release at the controller follows
   * in the background (`AttachHost.releaseLater`, retried until done), and its OVS port, which
   * records the endpoint, stays until then: an agent stopped before the release finds the port
   * stale at its next start and releases it then. Anything else is released before answering.
   */
  async detach(req: DetachRequest): Promise<void> {
    if (!req.containerId || !req.ifname) throw new AgentError('invalid', 'detach needs containerId and ifname');
    const clock = new StageClock();
    const lap = clock.lap;
    const key = attachmentKey(req.containerId, req.ifname);
    const att = this.attachments.get(key);
    const network = req.network ?? att?.record.network;
    let release: 'deferred' | 'pending' | 'done' = 'done';
    if (att && network === att.record.network) {
      release = await this.host.enqueue(async () => {
        lap('queued');
        const current = this.attachments.get(key);
        if (!current) return 'pending'; // found stale meanwhile: its reclaim releases it
        this.attachments.delete(key);
        // Without its flows the container is cut off: DEL answers then. Deleting the veth waits
        // for the kernel (an RCU grace period) and makes ovs-vswitchd reconfigure, so it is the
        // queue's next step instead, before any later change; an ADD of the same interface
        // waits for the release below, which deletes it too (idempotent).
        const flows = await Promise.allSettled([this.host.syncFlows().finally(() => lap('openflow'))]);
        const hostIfname = current.hostIfname;
        this.host.enqueue(() => this.plumber.detach(hostIfname)).catch((err: unknown) => {
          this.log.warn({ err, containerId: req.containerId, port: hostIfname }, 'deleting the detached veth failed; its release retries');
        });
        // Even if a step failed: the release retries both with the port's removal.
        this.host.releaseLater({ hostIfname, record: current.record });
        for (const r of flows) if (r.status === 'rejected') throw r.reason;
        return 'deferred';
      });
    } else if (this.host.pendingRelease(req.containerId, req.ifname) !== undefined) {
      // A DEL repeated while the first one's release is under way: the port stays until it is done.
      release = 'pending';
    } else {
      await this.host.enqueue(() => this.removeLocal(req.containerId, req.ifname, lap));
    }
    const pendingIn = release === 'pending' ? this.host.pendingRelease(req.containerId, req.ifname) : undefined;
    if (network && release !== 'deferred' && network !== pendingIn) {
      await this.controller.deleteEndpoint(network, req.containerId).catch((err) => {
        if (isServiceError(err) && err.code === grpc.status.NOT_FOUND) return;
        throw toAgentError(err, `endpoint ${req.containerId}`);
      });
      lap('controller');
    }
    this.observeStages('del', clock.ms);
    this.log.info({ containerId: req.containerId, network, release, ms: clock.ms }, 'container detached');
  }

  /**
   * Removes the port from OVS, the veth and the endpoint's flows; run on the queue. The three are
   * independent (the queue keeps anything else off OVS until all have settled), so they run at once.
   */
  async removeLocal(containerId: string, ifname: string, lap: (stage: string) => void = () => undefined): Promise<void> {
    const name = hostIfname(containerId, ifname);
    lap('queued');
    this.attachments.delete(attachmentKey(containerId, ifname));
    const settled = await Promise.allSettled([
      this.ports.remove(name).finally(() => lap('ovsdb')),
      this.plumber.detach(name).finally(() => lap('netlink')),
      this.host.syncFlows().finally(() => lap('openflow')),
    ]);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
  }

  /** CNI CHECK: what differs from what the agent installed, as readable lines ([] = healthy). */
  async check(req: AttachRequest): Promise<string[]> {
    const att = this.attachments.get(attachmentKey(req.containerId, req.ifname));
    if (!att) return [`container ${req.containerId} has no ${req.ifname} attached by this agent`];
    const netnsProblem = await this.plumber.netnsProblem(req.netns);
    if (netnsProblem !== null) return [`container namespace ${req.netns} ${netnsProblem}`];
    const ep = await this.call(() => this.controller.getEndpoint(att.record.network, req.containerId), `endpoint ${req.containerId}`);
    const network = await this.call(() => this.controller.getNetwork(att.record.network), `network ${att.record.network}`);
    const mtu = Math.min(ep.mtu || network.mtu, this.o.underlayMtu - TUNNEL_OVERHEAD[tunnelKind(network.tunnelType)]);
    const problems = await this.plumber.check(this.interfaceSpec(req, ep, network, att.hostIfname, mtu));
    if (!(await this.host.classifies(att.ofport))) problems.push(`no flow classifies traffic from port ${att.hostIfname} (ofport ${att.ofport})`);
    return problems;
  }

  /** This host's attachments to a network (CNI GC compares them with the runtime's). */
  attachmentsOf(network: string): Array<{ containerId: string; ifname: string }> {
    return [...this.attachments.values()].filter((a) => a.record.network === network).map((a) => ({ containerId: a.record.containerId, ifname: a.record.ifname }));
  }

  private async call<T>(fn: () => Promise<T>, what: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toAgentError(err, what);
    }
  }
}

function validateAttach(req: AttachRequest): void {
  for (const k of ['containerId', 'netns', 'ifname', 'network'] as const) {
    if (typeof req[k] !== 'string' || req[k] === '') throw new AgentError('invalid', `attach needs a non-empty ${k}`);
  }
  const problem = interfaceNameProblem(req.ifname);
  if (problem) throw new AgentError('invalid', `ifname ${JSON.stringify(req.ifname)} is not a valid interface name: it ${problem}`);
  if (req.name !== undefined && typeof req.name !== 'string') throw new AgentError('invalid', 'attach: name must be a string');
  for (const s of req.dns?.servers ?? []) {
    if (!tryParseIp(s)) throw new AgentError('invalid', `DNS server "${s}" (runtimeConfig dns.servers) is not an IP address`);
  }
}

export function toAgentError(err: unknown, what: string): AgentError {
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

const bare = (cidr: string) => cidr.split('/')[0] ?? '';

/**
 * The container's resolv.conf: its gateways are its nameservers (the agent answers there), the
 * network's domain is the first search domain, then the endpoint's own search domains (its DNS
 * override: CNI runtimeConfig or the API), else the network's; its own options, else the
 * network's. Its own servers are its upstreams, not here.
 */
export function containerDns(ep: Pick<api.Endpoint, 'dnsOverride'>, network: api.Network, gateways: readonly string[]): AttachResult['dns'] {
  const own = ep.dnsOverride;
  const search = [networkDomain(network), ...(own?.search.length ? own.search : (network.dns?.search ?? []))];
  return {
    nameservers: gateways.filter(Boolean),
    search: [...new Set(search)],
    options: own?.options.length ? own.options : (network.dns?.options ?? []),
  };
}
