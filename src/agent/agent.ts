// The agent: keeps the bridge's flows equal to the pipeline for the controller's view plus this
// host's attachments. It owns the one serial queue through which every OVS change goes (so flow
// bundles never interleave) and wires the parts: the controller session, the attacher, start-up
// and recovery, and the IPv6 neighbour responder.
import type { Logger } from 'pino';
import type * as api from '../api/types.js';
import { GATEWAY_PORT_CAPABILITY } from '../api/types.js';
import type { AttachRequest, AttachResult, DetachRequest } from '../api/local.js';
import type { AgentConfig } from './config.js';
import { FlowSync } from './flow-sync.js';
import { AgentError, Attacher, attachmentKey, tunnelKind, type EndpointApi } from './attacher.js';
import { ControllerSession, type Clock, type SessionApi } from './controller-session.js';
import type { HostParts } from './startup.js';
import { answerGatewaySolicitations } from './nd-responder.js';
import { DatapathCounters, countedFlows, dropsByReason } from './datapath-counters.js';
import { flowFromEndpoint, toTraceHostResult, traceOnHost, tunnelFlow, type HostTrace, type TraceFromEndpointRequest } from './trace.js';
import { LiveTraceBusy, LiveTracer, type LiveSpec } from './live-trace.js';
import { GATEWAY_OFPORT } from './gateway-port.js';
import { TRACE_CAPABILITY } from '../api/types.js';
import { DENIED_LOG_METER, FEATURE_MASK, Feature, OBJECT_MASK, Table } from './pipeline/fields.js';
import { conjunctionIds, policyPacketCounts, type PolicyPacketCount } from './pipeline/policy.js';
import type { DirectoryEntry, NetworkPolicyState, NetworkState, PipelineState, PolicyRule } from './pipeline/state.js';
import type { NetworkViewState } from '../api/view-state.js';
import type { AgentMetrics } from './metrics.js';
import { isServiceError } from '../api/client.js';
import * as grpc from '@grpc/grpc-js';
import { EndpointReclaimer, containerGoneReason, hostLinkNames, type StaleEndpoint } from './stale-endpoints.js';
import { describe } from './controller-session.js';
import { clearFlowRestoreWait, setFlowRestoreWait } from './ovs.js';
import type { DeniedLogState, GatewayPortState } from './pipeline/state.js';
import type { FirewallNetwork, PublishedPort } from './host-firewall.js';
import type { GatewayNetwork } from './gateway-port.js';
import { DnsResolver, type DnsScope } from './dns/resolver.js';
import { DEFAULT_UPSTREAM, type UpstreamOptions } from './dns/upstream.js';
import { directoryOf, readHostResolvers, type NetworkNames } from './dns/names.js';
import { DnsResponder } from './dns-responder.js';
import { logDeniedAttempts } from './denied-log.js';
import { controlSocketPath, unixctl } from '../ovsdb/unixctl.js';
import { METER_FLAGS } from '../openflow/messages.js';
import { DNS_PORT } from './pipeline/dns.js';
import { DnsServer, listeningTcpSocket } from './dns/server.js';
import { MAX_ROUTES, PATCH_OFPORT, SNAT_PORTS, type UnderlayFacts } from './ovs-nat-host.js';
import { phyFlows, type OvsNatState } from './pipeline/ovs-nat.js';

export { AgentError } from './attacher.js';
/** Traces the controller may have this agent run at once (each asks ovs-vswitchd once). */
const MAX_AGENT_TRACES = 4;
/** How often the underlay bridge's kernel routes are compared with those pinned in ovs-vswitchd. */
const UNDERLAY_ROUTES_INTERVAL_MS = 10_000;
/** --nat-path ovs: how often the underlay's routes, neighbours and addresses are read again (one dump each). */
const UNDERLAY_NEXT_HOPS_INTERVAL_MS = 1_000;
/** ... and how soon after ovs-vswitchd refused one, or could not be asked. */
const UNDERLAY_ROUTES_RETRY_MS = 250;

function protoOf(p: string | undefined): 'icmp' | 'tcp' | 'udp' {
  return p === 'tcp' || p === 'udp' ? p : 'icmp';
}
export const AGENT_VERSION = '0.1.0';

/**
 * The controllers' clients: the API (also used for endpoints; over several controllers, a
 * FailoverClient), a factory for a Watch port, and with several controllers where Watch goes.
 */
export interface ControllerClients {
  api: SessionApi & EndpointApi;
  watchApi: (port: number, home: string) => SessionApi;
  home?: () => string;
  homeFailed?: (address: string, why: string) => void;
}

/** The published ports recorded on an endpoint's OVS port (JSON written by the attacher). */
/** The published ports recorded on an endpoint's OVS port (JSON); entries that do not parse are skipped. */
function parsePorts(text: string): Array<api.PortMapping & { protocol: 'tcp' | 'udp' }> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(v)) return [];
  const port = (n: unknown) => Number.isInteger(n) && (n as number) > 0 && (n as number) < 65536;
  return v.filter(
    (p): p is api.PortMapping & { protocol: 'tcp' | 'udp' } =>
      typeof p === 'object' && p !== null && port(p.hostPort) && port(p.containerPort) && (p.protocol === 'tcp' || p.protocol === 'udp') && typeof p.hostIp === 'string',
  );
}

export class Agent {
  private readonly session: ControllerSession;
  private readonly attacher: Attacher;
  private readonly flows: FlowSync;
  /** Flow-table counters (drops by reason, endpoint and tunnel traffic), read at most once a second. */
  readonly datapath: DatapathCounters;
  /** Whether the flow table was reconciled with a complete view since start (or since OVS restarted). */
  private reconciled = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly unsubscribe: Array<() => void> = [];
  private readonly reclaimer: EndpointReclaimer;
  private sweepTimer: NodeJS.Timeout | undefined;
  private underlayRoutesTimer: NodeJS.Timeout | undefined;
  private underlayRoutesRetry: NodeJS.Timeout | undefined;
  /** --nat-path ovs: the underlay as last read (next hops, host addresses, br-phy's MAC). */
  private underlay: UnderlayFacts | undefined;
  private underlayTimer: NodeJS.Timeout | undefined;
  /** A read of the underlay is under way: the timer skips a tick rather than pile reads up. */
  private underlayReading = false;
  /** --nat-path ovs: the underlay bridge's flows as last applied (JSON), '' = read and fix them. */
  private phyApplied = '';
  /** Said once per process: ovs-vswitchd copies the kernel's routes (the flush race is on). */
  private warnedSystemRoutes = false;
  private readonly controllerApi: EndpointApi;
  private stopped = false;
  private gatewayPort: GatewayPortState | undefined;
  /** --log-denied: default-deny flows send to the agent (through the meter, when the switch has one). */
  private deniedLog: DeniedLogState | undefined;
  appliedRevision = 0;
  /** Answers containers' DNS queries (packet-ins of the Dns flows) from the view's endpoint directory. */
  readonly resolver: DnsResolver;
  private dnsResponder: DnsResponder | undefined;
  /** TCP DNS listeners on this host's gateway-port addresses (the Dns flows steer TCP to gateway:53 there). */
  private readonly dnsTcpListeners = new Map<string, DnsServer>();
  /** The host's resolvers (resolv.conf, read once at start): upstreams of networks that name none. */
  private hostResolvers: string[] = [];
  /** Whether the directory was built from a complete view since start. */
  private dnsReady = false;
  /** Live traces (loomctl trace --live): one at a time. */
  private readonly live: LiveTracer;
  /** Simulated traces the controller asked for that are running. */
  private tracesInFlight = 0;
  /** Each isolated network's policy directory, kept while its endpoints and their ports stay the same. */
  private readonly policyDirectories = new Map<string, { version: string; directory: DirectoryEntry[] }>();
  /** The view's directoryVersion the DNS directory was built from. */
  private dnsDirectoryVersion = -1;

  constructor(
    readonly config: AgentConfig,
    private readonly host: HostParts,
    controller: ControllerClients,
    private readonly log: Logger,
    private readonly metrics?: AgentMetrics,
    clock?: Clock,
    private readonly dnsUpstream: UpstreamOptions = DEFAULT_UPSTREAM,
  ) {
    this.flows = new FlowSync(host.openflow);
    this.resolver = new DnsResolver(metrics?.dns, dnsUpstream);
    this.datapath = new DatapathCounters(countedFlows(host.openflow), () => new Set(this.endpointPorts().keys()));
    this.controllerApi = controller.api;
    this.reclaimer = new EndpointReclaimer({
      connected: () => this.session.registered,
      deleteAtController: (ep) => this.deleteStaleAtController(ep),
      removeLocal: (ep) => this.removeStaleLocal(ep),
      log,
      metrics,
    });
    this.session = new ControllerSession({
      registration: {
        name: config.hostName,
        vtep: config.vtep,
        agentVersion: AGENT_VERSION,
        capabilities: ['vxlan', 'gre', 'ipv6', TRACE_CAPABILITY, ...(host.gateway ? [GATEWAY_PORT_CAPABILITY] : [])],
      },
      controller: config.controller,
      api: controller.api,
      watchApi: controller.watchApi,
      home: controller.home,
      homeFailed: controller.homeFailed,
      appliedRevision: () => this.appliedRevision,
      drops: async () => {
        const at = Date.now();
        const started = performance.now();
        const counts = await this.datapath.read();
        this.log.debug({ at, ms: Math.round(performance.now() - started) }, 'datapath counters read');
        return dropsByReason(counts.drops);
      },
      onChange: (revision, ack) => {
        const receivedAt = Date.now();
        const received = performance.now();
        this.enqueue(async () => {
          const queue = performance.now() - received;
          const phases = await this.syncFlows();
          // Names follow the view before the ack: once `loomctl wait` returns, every host answers the change.
          const dns = performance.now();
          this.rebuildDnsDirectory();
          this.appliedRevision = revision;
          this.metrics?.appliedRevision.set(revision);
          ack();
          const ms: Record<string, number> = { queue, ...phases, dns: performance.now() - dns, total: performance.now() - received };
          const observe = this.metrics?.applyPhaseSeconds;
          for (const phase in ms) observe?.observe({ phase }, ms[phase]! / 1000);
          for (const phase in ms) ms[phase] = Math.round(ms[phase]! * 10) / 10;
          this.log.debug({ revision, receivedAt, ms }, 'view change applied');
        }).catch((err) => this.log.error({ err, revision }, 'applying a view change failed'));
      },
      onTrace: (req) => this.answerTrace(req),
      log,
      ...(clock ? { clock } : {}),
    });
    this.live = new LiveTracer(host.openflow, () => host.generation, () => ({
      tunnels: Object.values(host.tunnelPorts),
      gateway: this.gatewayPort ? GATEWAY_OFPORT : undefined,
    }));
    this.attacher = new Attacher(
      { hostName: config.hostName, controller: config.controller, underlayMtu: config.underlayMtu, txChecksumOff: config.txChecksumOff },
      controller.api,
      host.plumber,
      host.ports,
      {
        enqueue: (fn) => this.enqueue(fn),
        syncFlows: async (commitAfter) => void (await this.syncFlows(commitAfter)),
        classifies: async (ofport) => (await host.openflow.dumpFlows({ table: 0, match: [{ field: 'in_port', value: ofport }] })).length > 0,
        registered: () => this.session.registered,
        claim: (containerId, ifname) => this.reclaimer.claim(containerId, ifname),
        release: (containerId, ifname) => this.reclaimer.release(containerId, ifname),
        releaseLater: (detached) => this.reclaimer.add({ ...detached, reason: 'detached by CNI DEL', found: 'detach' }),
        pendingRelease: (containerId, ifname) => this.reclaimer.pendingNetwork(containerId, ifname),
      },
      log,
      metrics,
    );
  }

  /** Recovers endpoints from OVSDB, then follows the controller (in the background). */
  async start(): Promise<void> {
    // Before any flow: with --disable-system-route no tunnel packet leaves without these routes.
    await this.syncUnderlayRoutes();
    this.unsubscribe.push(
      this.host.openflow.onDisconnected(() => {
        // Kernel datapath: the next ovs-vswitchd keeps forwarding on the datapath's flows until the
        // pipeline is back. Not on netdev: there the datapath dies with the process.
        if (this.config.datapathType !== 'system') return;
        this.host.ports.ovs().then(setFlowRestoreWait).catch((err) => this.log.warn({ err }, 'setting other_config:flow-restore-wait failed'));
      }),
      this.host.openflow.onReconnected(() => {
        this.log.warn('OpenFlow connection to the bridge re-established (ovs-vswitchd restarted?); reinstalling the pipeline');
        this.reconciled = false;
        // Reprogram at once from what the agent knows (ports keep their ofports across a restart:
        // OVSDB holds them), then re-read the ports and fix what differs, if anything.
        this.enqueue(async () => {
          // Nor routes: a restarted ovs-vswitchd has lost the pinned ones.
          await this.syncUnderlayRoutes();
          // A restarted ovs-vswitchd has no meters either: the deny flows need theirs first.
          await this.prepareDeniedLog();
          await this.syncFlows();
          await this.recoverEndpoints();
          if (this.host.gateway) this.gatewayPort = await this.host.gateway.prepare();
          this.phyApplied = '';
          await this.syncFlows();
        }).catch((err) => this.log.error({ err }, 'reinstalling flows failed'));
      }),
      this.host.openflow.onMessageError((err, msg) =>
        this.log.warn({ err, type: msg[1], length: msg.length }, 'dropped an OpenFlow message from the bridge that could not be handled'),
      ),
      answerGatewaySolicitations(this.host.openflow, (vni) => this.pipelineState().networks.find((n) => n.vni === vni)?.gateway6, this.log),
    );
    this.hostResolvers = readHostResolvers(this.config.resolvConf);
    this.dnsResponder = new DnsResponder(this.host.openflow, this.resolver, (inPort) => this.dnsScope(inPort), this.log, undefined, this.metrics?.dnsResponder);
    this.unsubscribe.push(() => this.dnsResponder?.stop());
    if (this.config.logDenied) {
      this.unsubscribe.push(
        logDeniedAttempts(this.host.openflow, {
          rate: this.config.logDeniedRate,
          networkOf: (vni) => this.pipelineState().networks.find((n) => n.vni === vni)?.policy?.network,
          log: this.log,
          ...(this.metrics ? { lines: this.metrics.deniedLogLines } : {}),
        }),
      );
      await this.prepareDeniedLog();
    }
    await this.recoverEndpoints();
    if (this.host.gateway) this.gatewayPort = await this.host.gateway.prepare();
    if (this.host.ovsNat) {
      await this.refreshUnderlay();
      this.underlayTimer = setInterval(() => void this.refreshUnderlay(), UNDERLAY_NEXT_HOPS_INTERVAL_MS);
      this.underlayTimer.unref();
    }
    this.log.info({ generation: this.host.generation, endpoints: this.attacher.attachments.size, stale: this.reclaimer.pendingCount, tunnelPorts: this.host.tunnelPorts }, 'OVS ready');
    this.startEndpointSweep();
    if (this.host.underlayRoutes) {
      // Follows the kernel's routes through the underlay bridge (an operator's new gateway, say).
      this.underlayRoutesTimer = setInterval(() => void this.syncUnderlayRoutes(), UNDERLAY_ROUTES_INTERVAL_MS);
      this.underlayRoutesTimer.unref();
    }
    // The controller may be away: forwarding goes on with the installed flows meanwhile.
    void this.session.start();
  }

  /**
   * With --log-denied: the meter that bounds what the deny flows send to the agent (4x the line
   * rate, so the agent still sees and counts what it suppresses). A switch without meters gets
   * the flows unmetered (the agent's token bucket still bounds the lines), with a warning.
   */
  private async prepareDeniedLog(): Promise<void> {
    if (!this.config.logDenied) return;
    const rate = Math.max(20, 4 * this.config.logDeniedRate);
    const meter = { flags: METER_FLAGS.pktps | METER_FLAGS.burst, meterId: DENIED_LOG_METER, bands: [{ rate, burstSize: rate }] };
    try {
      await this.host.openflow.meterMod({ command: 'add', ...meter }).catch(() => this.host.openflow.meterMod({ command: 'modify', ...meter }));
      this.deniedLog = { meterId: DENIED_LOG_METER };
    } catch (err) {
      this.log.warn({ err }, 'the switch refused a meter: denied attempts reach the agent unmetered (log lines stay rate-limited)');
      this.deniedLog = {};
    }
  }

  /**
   * Endpoints attached before (by an earlier run, or before ovs-vswitchd restarted), from OVSDB.
   * Those whose container is gone are not restored but reclaimed.
   */
  private async recoverEndpoints(): Promise<void> {
    const attachments = this.attacher.attachments;
    const ports = await this.host.ports.list();
    const links = await hostLinkNames(this.host.netlink);
    for (const p of ports) {
      const key = attachmentKey(p.record.containerId, p.record.ifname);
      // No MAC: the port went in before the controller answered and the agent stopped before the
      // ADD finished (so it never succeeded): undone as a stale endpoint is.
      const gone = p.record.mac === '' ? 'its CNI ADD did not finish (the agent stopped)' : await containerGoneReason(links, p.name, p.record.netns);
      if (gone !== null) {
        attachments.delete(key);
        this.reclaimer.add({ hostIfname: p.name, record: p.record, reason: gone, found: 'recovery' });
        continue;
      }
      if (p.ofport === undefined) continue;
      attachments.set(key, { hostIfname: p.name, ofport: p.ofport, record: p.record });
    }
  }

  /**
   * --nat-path ovs: reads the underlay's next hops, addresses and MAC again; a change reaches the
   * flows at once (a destination the kernel path just resolved moves to the NAT path for its next
   * connection). Never throws: the flows keep what was read last.
   */
  private async refreshUnderlay(): Promise<void> {
    const nat = this.host.ovsNat;
    if (!nat || this.stopped || this.underlayReading) return;
    this.underlayReading = true;
    try {
      const facts = await nat.underlay();
      if (JSON.stringify(facts) === JSON.stringify(this.underlay)) return;
      const first = this.underlay === undefined;
      const tooMany = (f?: UnderlayFacts) => (f?.routes ?? 0) > MAX_ROUTES;
      if (tooMany(facts) && !tooMany(this.underlay)) {
        this.log.warn({ routes: facts.routes, max: MAX_ROUTES }, 'the main routing table holds too many IPv4 routes to mirror: new connections to the outside take the host path (nftables) until it shrinks');
      }
      this.underlay = facts;
      const resolved = facts.nextHops.filter((h) => h.mac).length;
      this.metrics?.natNextHops.set({ state: 'resolved' }, resolved);
      this.metrics?.natNextHops.set({ state: 'kernel' }, facts.nextHops.length - resolved);
      this.log.debug({ nextHops: facts.nextHops.length, resolved, hostAddresses: facts.hostAddresses.length }, 'underlay next hops changed');
      if (!first) await this.enqueue(() => this.syncFlows());
    } catch (err) {
      this.log.warn({ err }, 'reading the underlay (routes, neighbours) for the NAT path failed; keeping the last');
    } finally {
      this.underlayReading = false;
    }
  }

  /** --nat-path ovs: the NAT path's input, once the underlay was read (else: the host path alone). */
  private ovsNatState(known: ReadonlyMap<string, api.Network>, networks: readonly NetworkState[]): OvsNatState | undefined {
    const nat = this.host.ovsNat;
    if (!nat || !this.underlay || !this.gatewayPort) return undefined;
    const served: OvsNatState['networks'] = [];
    const vniOf = new Map<string, number>();
    for (const [name, net] of known) {
      vniOf.set(name, net.vni);
      const state = networks.find((n) => n.vni === net.vni);
      if (!state?.hostAddress4 || !net.ipv4Cidr) continue;
      served.push({ vni: net.vni, ipv4Cidr: net.ipv4Cidr, egress: net.egress !== 'EGRESS_MODE_OFF', inboundSources: net.inboundSources });
    }
    const published: OvsNatState['published'] = [];
    for (const a of this.attacher.attachments.values()) {
      const r = a.record;
      const vni = vniOf.get(r.network);
      if (!r.ports || !r.ipv4 || vni === undefined || !served.some((n) => n.vni === vni)) continue;
      for (const p of parsePorts(r.ports)) {
        // Published on the VTEP address (or every address): reached from the wire here; the host's
        // other addresses (127.0.0.1, say) keep the nftables rules.
        if (p.hostIp !== '' && p.hostIp !== this.config.vtep) continue;
        published.push({ vni, containerIpv4: r.ipv4, containerPort: p.containerPort, hostPort: p.hostPort, protocol: p.protocol });
      }
    }
    published.sort((a, b) => a.hostPort - b.hostPort || a.protocol.localeCompare(b.protocol));
    return {
      patchOfport: PATCH_OFPORT,
      phyPatchOfport: PATCH_OFPORT,
      uplinkOfport: nat.uplinkOfport,
      phyMac: this.underlay.mac,
      vtep: this.config.vtep,
      snatPorts: SNAT_PORTS,
      nextHops: this.underlay.nextHops,
      hostAddresses: this.underlay.hostAddresses,
      loomCidrs: [...new Set([...known.values()].map((n) => n.ipv4Cidr).filter(Boolean))].sort(),
      networks: served,
      published,
    };
  }

  /** --nat-path ovs: the underlay bridge's NAT flows follow the pipeline (written only when changed). */
  private async syncUnderlayFlows(state: PipelineState): Promise<void> {
    const nat = this.host.ovsNat;
    if (!nat) return;
    const flows = state.ovsNat ? phyFlows(state.generation, state.ovsNat) : [];
    const key = JSON.stringify(flows, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    if (key === this.phyApplied) return;
    const r = await nat.sync(flows);
    this.phyApplied = key;
    this.metrics?.natPublishedPorts.set(state.ovsNat?.published.length ?? 0);
    if (r.upserted + r.removed > 0) this.log.info({ bridge: nat.underlayBridge, upserted: r.upserted, removed: r.removed, published: state.ovsNat?.published.length ?? 0 }, 'underlay bridge NAT flows updated');
  }

  /**
   * Userspace datapath: pins the underlay bridge's kernel routes into ovs-vswitchd as user routes
   * (src/agent/underlay-routes.ts says why). Never throws: tunnels then use what OVS has.
   */
  private async syncUnderlayRoutes(): Promise<void> {
    const routes = this.host.underlayRoutes;
    if (!routes) return;
    clearTimeout(this.underlayRoutesRetry);
    // A restarted ovs-vswitchd may answer OpenFlow before its bridges have addresses: try again soon.
    const retrySoon = (): void => {
      if (this.stopped) return;
      this.underlayRoutesRetry = setTimeout(() => void this.syncUnderlayRoutes(), UNDERLAY_ROUTES_RETRY_MS);
      this.underlayRoutesRetry.unref();
    };
    try {
      const r = await routes.sync();
      if (r.failed.length > 0) retrySoon();
      if (r.added.length + r.removed.length > 0) this.log.info({ bridge: r.bridge, added: r.added, removed: r.removed }, 'underlay routes pinned in ovs-vswitchd');
      if (r.failed.length > 0) this.log.error({ bridge: r.bridge, failed: r.failed }, 'ovs-vswitchd refused underlay routes; tunnel packets to those destinations are dropped');
      if (r.systemRoutes > 0 && !this.warnedSystemRoutes) {
        this.warnedSystemRoutes = true;
        this.log.warn(
          { bridge: r.bridge, systemRoutes: r.systemRoutes },
          'ovs-vswitchd copies the kernel routing table: each link change on this host (a container starting) can drop tunnel packets for a moment; start it with --disable-system-route (docs/deploy.md)',
        );
      }
    } catch (err) {
      this.log.warn({ err }, 'pinning the underlay routes in ovs-vswitchd failed; retrying');
      retrySoon();
    }
  }

  /** Every endpointSweepIntervalMs, the same check for endpoints attached while the agent runs. */
  private startEndpointSweep(): void {
    const every = this.config.endpointSweepIntervalMs;
    if (every <= 0) return;
    let queued = false; // one sweep at a time in the queue, however slow OVS is
    this.sweepTimer = setInterval(() => {
      if (queued) return;
      queued = true;
      this.enqueue(() => this.sweepEndpoints())
        .catch((err) => this.log.error({ err }, 'sweeping for stale endpoints failed'))
        .finally(() => (queued = false));
    }, every);
    this.sweepTimer.unref();
  }

  private async sweepEndpoints(): Promise<void> {
    const attachments = this.attacher.attachments;
    if (attachments.size === 0) return;
    const links = await hostLinkNames(this.host.netlink);
    let removed = 0;
    for (const [key, a] of [...attachments]) {
      const gone = await containerGoneReason(links, a.hostIfname, a.record.netns);
      if (gone === null) continue;
      attachments.delete(key);
      removed++;
      this.reclaimer.add({ hostIfname: a.hostIfname, record: a.record, reason: gone, found: 'sweep' });
    }
    if (removed > 0) await this.syncFlows();
  }

  /** The controller's endpoint goes only if it is still this host's (the id may have moved on). */
  private async deleteStaleAtController(ep: StaleEndpoint): Promise<'deleted' | 'absent' | 'elsewhere' | 'reattached'> {
    const { network, containerId, ifname } = ep.record;
    const notFound = (err: unknown) => isServiceError(err) && err.code === grpc.status.NOT_FOUND;
    try {
      const current = await this.controllerApi.getEndpoint(network, containerId, { timeoutMs: 5000 });
      if (current.host !== this.config.hostName) return 'elsewhere';
      if (this.attacher.attachments.has(attachmentKey(containerId, ifname))) return 'reattached';
      await this.controllerApi.deleteEndpoint(network, containerId, { timeoutMs: 5000 });
      return 'deleted';
    } catch (err) {
      if (notFound(err)) return 'absent';
      throw new Error(describe(err), { cause: err });
    }
  }

  private removeStaleLocal(ep: StaleEndpoint): Promise<void> {
    return this.enqueue(async () => {
      // Attached again meanwhile (same container and interface, so the same port name): keep it.
      if (this.attacher.attachments.has(attachmentKey(ep.record.containerId, ep.record.ifname))) return;
      // Nothing waits on ovs-vswitchd dropping a port whose veth is gone: the queue moves on once
      // OVSDB holds the removal (which is what makes it final).
      await this.host.ports.remove(ep.hostIfname, { wait: false });
      await this.host.plumber.detach(ep.hostIfname);
    });
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** The endpoint directory of every network in the view (all hosts' endpoints), for the resolver. */
  private rebuildDnsDirectory(): void {
    // A change of rules or routes only (a policy change on a big network) leaves the names as they are.
    if (this.dnsReady && this.dnsDirectoryVersion === this.session.view.directoryVersion) {
      this.dnsResponder?.retain(new Set([...this.attacher.attachments.values()].map((a) => a.ofport)));
      return;
    }
    this.dnsDirectoryVersion = this.session.view.directoryVersion;
    const networks: NetworkNames[] = [...this.session.view.networks.values()].map((n) => ({ network: n.network, endpoints: n.endpoints.values() }));
    this.resolver.setDirectory(directoryOf(networks));
    this.dnsReady = true;
    this.dnsResponder?.retain(new Set([...this.attacher.attachments.values()].map((a) => a.ofport)));
    this.syncDnsTcpListeners();
  }

  /**
   * One TCP listener on port 53 of each of this host's gateway-port addresses (with a host path),
   * in the host's namespace; listeners of addresses the host no longer has are closed.
   */
  private syncDnsTcpListeners(): void {
    const wanted = new Set<string>();
    if (this.gatewayPort) {
      for (const n of this.pipelineState().networks) for (const a of [n.hostAddress4, n.hostAddress6]) if (a) wanted.add(a);
    }
    for (const [address, server] of this.dnsTcpListeners) {
      if (wanted.has(address)) continue;
      this.dnsTcpListeners.delete(address);
      void server.stop();
    }
    for (const address of wanted) {
      if (this.dnsTcpListeners.has(address)) continue;
      let fd: number;
      try {
        fd = listeningTcpSocket(address, DNS_PORT, this.config.hostNetns);
      } catch (err) {
        this.log.warn({ err, address }, 'cannot serve DNS over TCP on this gateway-port address; truncated answers cannot be retried over TCP there');
        continue;
      }
      const server = new DnsServer(this.resolver, { host: address, port: DNS_PORT, tcpListenFd: fd, scopeOf: (source) => this.dnsScopeOfAddress(source) }, this.log);
      this.dnsTcpListeners.set(address, server);
      server.start().catch((err: unknown) => {
        this.log.warn({ err, address }, 'DNS over TCP listener failed');
        this.dnsTcpListeners.delete(address);
      });
    }
  }

  /** The scope of a query over TCP, by its source: a local endpoint's address. */
  private dnsScopeOfAddress(address: string): DnsScope | undefined {
    const bareAddress = address.startsWith('::ffff:') ? address.slice(7) : address;
    const asker = [...this.attacher.attachments.values()].find((a) => a.record.ipv4 === bareAddress || a.record.ipv6 === bareAddress);
    return asker ? this.dnsScope(asker.ofport) : undefined;
  }

  /**
   * Who asks from `inPort`: the networks its container is attached to on this host, and its
   * upstreams: its own (its endpoint's DNS override), else its network's, else the host's resolvers.
   */
  private dnsScope(inPort: number): DnsScope | undefined {
    // Before the first complete view the directory is empty: answering would send Loom's own
    // names upstream (and clients cache the NXDOMAIN). Unanswered, they retry.
    if (!this.dnsReady) return undefined;
    const attachments = [...this.attacher.attachments.values()];
    const asker = attachments.find((a) => a.ofport === inPort);
    if (!asker) return undefined;
    const networks = attachments.filter((a) => a.record.containerId === asker.record.containerId).map((a) => a.record.network);
    const viewed = this.session.view.networks.get(asker.record.network);
    // The endpoint's own servers: the controller's (its DNS override, updatable) once the view has
    // the endpoint, else those its port recorded at attach (CNI runtimeConfig).
    const entry = viewed?.endpoints.get(asker.record.containerId);
    const own = entry ? (entry.dns?.nameservers ?? []) : asker.record.dnsServers ? asker.record.dnsServers.split(',') : [];
    const network = viewed?.network ?? this.attacher.knownNetworks.get(asker.record.network);
    const upstreams = own.length ? own : network?.dns?.nameservers.length ? network.dns.nameservers : this.hostResolvers;
    return { networks: [asker.record.network, ...networks.filter((n) => n !== asker.record.network)], upstreams, ...(network?.mtu ? { mtu: network.mtu } : {}) };
  }

  /**
   * Packets counted by the installed network policy flows, per network and rule (allowed) or
   * per network (denied by default), read from the switch's flow statistics.
   */
  async policyPacketCounts(): Promise<PolicyPacketCount[]> {
    const flows = await this.host.openflow.dumpFlows({ table: Table.Policy, cookie: BigInt(Feature.NetworkPolicy) << 40n, cookieMask: FEATURE_MASK });
    return policyPacketCounts(this.pipelineState(), flows);
  }

  /** Every network this host knows: the controller's view, and those only an attach reply told of yet. */
  private knownNetworks(): Map<string, api.Network> {
    const networks = new Map<string, api.Network>(this.attacher.knownNetworks);
    for (const [name, n] of this.session.view.networks) networks.set(name, n.network);
    return networks;
  }

  /** The pipeline's input: the controller's view for this host plus the local attachments. */
  pipelineState(): PipelineState {
    const view = this.session.view;
    const networks = this.knownNetworks();
    const states: NetworkState[] = [];
    for (const [name, net] of networks) {
      const routes = view.networks.get(name)?.routes;
      const own = this.hostGatewayOf(name);
      const policy = policyState(net, view.networks.get(name), this.attacher.attachments.values(), this.policyDirectories, view.directoryVersion);
      states.push({
        ...(policy ? { policy } : {}),
        ipv4Cidr: net.ipv4Cidr,
        ...(net.ipv6Cidr ? { ipv6Cidr: net.ipv6Cidr } : {}),
        ...(own?.ipv4 ? { hostAddress4: own.ipv4 } : {}),
        ...(own?.ipv6 ? { hostAddress6: own.ipv6 } : {}),
        vni: net.vni,
        tunnel: tunnelKind(net.tunnelType),
        gateway4: net.gateways.find((g) => !g.includes(':')),
        gateway6: net.gateways.find((g) => g.includes(':')),
        endpoints: [...this.attacher.attachments.values()]
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
    const ovsNat = this.ovsNatState(networks, states);
    return {
      generation: this.host.generation,
      tunnelPorts: this.host.tunnelPorts,
      networks: states,
      ...(this.gatewayPort ? { gatewayPort: this.gatewayPort } : {}),
      ...(this.deniedLog ? { deniedLog: this.deniedLog } : {}),
      ...(ovsNat ? { ovsNat } : {}),
    };
  }

  /** This host's gateway-port endpoint in a network (allocated by the controller), if any. */
  private hostGatewayOf(network: string): api.EndpointInfo | undefined {
    if (!this.gatewayPort) return undefined;
    for (const e of this.session.view.networks.get(network)?.endpoints.values() ?? []) {
      if (e.hostGateway && e.host === this.config.hostName) return e;
    }
    return undefined;
  }

  /** The host side of the host path: gateway-port addresses and routes, then table inet loom. */
  private async syncHost(): Promise<void> {
    const { gateway, firewall } = this.host;
    if (!gateway || !firewall) return;
    const gwNets: GatewayNetwork[] = [];
    const fwNets: FirewallNetwork[] = [];
    const ports: PublishedPort[] = [];
    for (const [name, n] of this.session.view.networks) {
      const own = this.hostGatewayOf(name);
      if (!own) continue;
      const net = n.network;
      const gateway4 = net.gateways.find((g) => !g.includes(':')) ?? '';
      const gateway6 = net.gateways.find((g) => g.includes(':')) ?? '';
      gwNets.push({ vni: net.vni, mtu: net.mtu, ipv4Cidr: net.ipv4Cidr, ipv6Cidr: net.ipv6Cidr, gateway4, gateway6, hostAddress4: own.ipv4, hostAddress6: own.ipv6 });
      fwNets.push({
        name,
        ipv4Cidr: net.ipv4Cidr,
        ipv6Cidr: net.ipv6Cidr,
        hostAddress4: own.ipv4,
        hostAddress6: own.ipv6,
        egress: net.egress !== 'EGRESS_MODE_OFF',
        ipv6Routed: net.ipv6Routed,
        inboundSources: net.inboundSources,
      });
    }
    // Published ports come from this host's attachments (recorded in OVSDB with each port), so they
    // are in place when ADD returns and survive an agent restart.
    for (const a of this.attacher.attachments.values()) {
      const r = a.record;
      if (!r.ports || !fwNets.some((n) => n.name === r.network)) continue;
      for (const p of parsePorts(r.ports)) {
        ports.push({ network: r.network, endpoint: r.containerId, containerIpv4: r.ipv4, containerIpv6: r.ipv6, ...p });
      }
    }
    await gateway.sync(gwNets);
    if (await firewall.sync({ gatewayPort: gateway.name, networks: fwNets, ports })) {
      this.log.info({ networks: fwNets.length, publishedPorts: ports.length }, 'host firewall (table inet loom) updated');
      this.metrics?.publishedPorts.set(ports.length);
    }
  }

  /**
   * Makes the flow table match the current state. Until the first complete view arrives the
   * table is left alone (an agent restarting without its controller keeps forwarding); then the
   * switch is read and reconciled once, replacing the previous generation in place.
   * `commitAfter`: the flows go to the switch at once and are committed once it resolves (see
   * OpenFlowClient.applyBundle). Returns the milliseconds each phase took.
   */
  private async syncFlows(commitAfter?: Promise<unknown>): Promise<SyncPhases> {
    if (this.session.view.revision === 0 && !this.reconciled) {
      await commitAfter;
      return {};
    }
    const started = performance.now();
    const state = this.pipelineState();
    const stateMs = performance.now() - started;
    const reconciling = !this.reconciled;
    const result = reconciling ? await this.flows.reconcile(state, commitAfter) : await this.flows.update(state, commitAfter);
    this.reconciled = true;
    if (reconciling) await this.releaseFlowRestoreWait();
    const revalidating = performance.now();
    if (result.upserted + result.removed > 0 && state.networks.some((n) => n.policy?.isolated)) await this.revalidated();
    const revalidateMs = performance.now() - revalidating;
    this.metrics?.flowChanges.inc(result.upserted + result.removed);
    await this.syncUnderlayFlows(state).catch((err: unknown) => {
      this.phyApplied = '';
      this.log.error({ err }, 'underlay bridge NAT flows not applied');
    });
    const hostStarted = performance.now();
    await this.syncHost().then(
      () => this.metrics?.hostPathSyncs.inc({ result: 'ok' }),
      (err: unknown) => {
        this.metrics?.hostPathSyncs.inc({ result: 'error' });
        this.log.error({ err }, 'host path (gateway port, table inet loom) not applied');
      },
    );
    const hostMs = performance.now() - hostStarted;
    this.metrics?.syncSeconds.observe((performance.now() - started) / 1000);
    if (result.upserted + result.removed > 0) this.log.debug({ upserted: result.upserted, removed: result.removed, revision: this.session.view.revision }, 'flows updated');
    return { state: stateMs, ...(result.ms ?? {}), revalidate: revalidateMs, host: hostMs };
  }

  /**
   * Waits until ovs-vswitchd has revalidated its cached datapath flows against the new table:
   * until then a new connection can still match a megaflow cached under a rule just removed (it
   * wildcards the source port), for tens of ms on a loaded host (bench:policy saw it). Waiting
   * before the ack keeps `loomctl wait` true: once it returns, removed rules are enforced.
   */
  private async revalidated(): Promise<void> {
    try {
      await unixctl(controlSocketPath(this.config.ovsRunDir), 'revalidator/wait', [], { timeoutMs: 2000 });
    } catch (err) {
      this.log.debug({ err }, 'revalidator/wait failed; cached datapath flows follow the table asynchronously');
    }
  }

  /** The pipeline is installed: a waiting ovs-vswitchd (flow-restore-wait) may handle packets again. */
  private async releaseFlowRestoreWait(): Promise<void> {
    try {
      if (await clearFlowRestoreWait(await this.host.ports.ovs())) this.log.info('pipeline installed; removed other_config:flow-restore-wait');
    } catch (err) {
      this.log.warn({ err }, 'removing other_config:flow-restore-wait failed');
    }
  }

  attach(req: AttachRequest): Promise<AttachResult> {
    return this.attacher.attach(req);
  }

  detach(req: DetachRequest): Promise<void> {
    return this.attacher.detach(req);
  }

  check(req: AttachRequest): Promise<string[]> {
    return this.attacher.check(req);
  }

  /** CNI STATUS: throws with the reason when an ADD cannot succeed now. */
  ready(): void {
    if (this.stopped) throw new AgentError('unavailable', 'the agent is stopping');
    if (!this.session.connected) throw new AgentError('unavailable', `the agent is not connected to the controller at ${this.config.controller}`);
  }

  /** This host's attachments to a network (CNI GC compares them with the runtime's). */
  attachmentsOf(network: string): Array<{ containerId: string; ifname: string }> {
    return this.attacher.attachmentsOf(network);
  }

  get controllerConnected(): boolean {
    return this.session.connected;
  }

  /** Local endpoints by OpenFlow port: their container and network (metrics label them so). */
  endpointPorts(): Map<number, { container: string; network: string }> {
    return new Map([...this.attacher.attachments.values()].map((a) => [a.ofport, { container: a.record.containerId, network: a.record.network }]));
  }

  /** A simulated trace (ofproto/trace) of a packet from a local endpoint, read in Loom's terms. */
  async trace(req: TraceFromEndpointRequest): Promise<HostTrace> {
    const ifname = req.ifname ?? 'eth0';
    const a = this.attacher.attachments.get(attachmentKey(req.containerId, ifname));
    if (!a) throw new AgentError('not_found', `no endpoint of container ${req.containerId} (${ifname}) on this host`);
    const state = this.pipelineState();
    const net = state.networks.find((n) => n.endpoints.some((e) => e.ofport === a.ofport));
    if (!net) throw new AgentError('unavailable', `endpoint ${req.containerId} is not in the pipeline yet (network ${a.record.network} unknown to this agent)`);
    let flow: string;
    try {
      flow = flowFromEndpoint(req, { containerId: req.containerId, ifname, ofport: a.ofport, mac: a.record.mac, ipv4: a.record.ipv4 || undefined, ipv6: a.record.ipv6 || undefined, vni: net.vni });
    } catch (err) {
      throw new AgentError('invalid', (err as Error).message);
    }
    const ports = this.endpointPorts();
    return traceOnHost(this.config.ovsRunDir, flow, { bridge: this.config.integrationBridge, tunnelPorts: state.tunnelPorts, endpoint: (p) => ports.get(p) });
  }

  /**
   * A trace the controller asks for on the Watch stream: from a local endpoint (role source), or
   * as the packet arrives from a tunnel (role destination); with `live`, a step of a live trace.
   * Never rejects: failures are replies with an error.
   */
  async answerTrace(req: api.AgentTraceRequest): Promise<api.AgentTraceReply> {
    const id = req.id;
    if (this.tracesInFlight >= MAX_AGENT_TRACES) return { id, error: `this agent is already running ${this.tracesInFlight} traces`, errorKind: 'busy' };
    this.tracesInFlight++;
    try {
      if (req.live?.phase) return { id, live: await this.liveStep(req) };
      const role = req.role === 'destination' ? 'destination' : 'source';
      const t = role === 'source' ? await this.traceFromEndpointOf(req) : await this.traceArriving(req);
      return { id, result: toTraceHostResult(this.config.hostName, role, t, this.policyRuleOf(t, req.network)) };
    } catch (err) {
      const errorKind = err instanceof LiveTraceBusy ? 'busy' : err instanceof AgentError ? err.status : 'unavailable';
      return { id, error: (err as Error).message, errorKind };
    } finally {
      this.tracesInFlight--;
    }
  }

  /** The local attachment of `containerId` in `network` (any interface). */
  private attachmentOf(network: string, containerId: string) {
    const a = [...this.attacher.attachments.values()].find((x) => x.record.network === network && x.record.containerId === containerId);
    if (!a) throw new AgentError('not_found', `no endpoint of container ${containerId} in network ${network} on host ${this.config.hostName}`);
    return a;
  }

  private traceFromEndpointOf(req: api.AgentTraceRequest): Promise<HostTrace> {
    const a = this.attachmentOf(req.network, req.containerId ?? '');
    return this.trace({
      containerId: a.record.containerId,
      ifname: a.record.ifname,
      destination: req.destination,
      proto: protoOf(req.protocol),
      ...(req.port ? { port: req.port } : {}),
      ...(req.source ? { source: req.source } : {}),
    });
  }

  private traceArriving(req: api.AgentTraceRequest): Promise<HostTrace> {
    const state = this.pipelineState();
    const tunnel = req.tunnel === 'gre' ? 'gre' : 'vxlan';
    if (!req.source || !req.remoteVtep || !req.vni) throw new AgentError('invalid', 'a destination trace needs the source address, the sending VTEP and the VNI');
    const flow = tunnelFlow(
      { proto: protoOf(req.protocol), src: req.source, dst: req.destination, ...(req.port ? { port: req.port } : {}) },
      { tunnelPort: state.tunnelPorts[tunnel], vni: req.vni, srcVtep: req.remoteVtep, dstVtep: this.config.vtep },
    );
    const ports = this.endpointPorts();
    return traceOnHost(this.config.ovsRunDir, flow, { bridge: this.config.integrationBridge, tunnelPorts: state.tunnelPorts, endpoint: (p) => ports.get(p) });
  }

  /** The allow rule whose flow (cookie object = its conjunction id) the trace passed, if any. */
  private policyRuleOf(t: HostTrace, network: string): string {
    const net = this.pipelineState().networks.find((n) => n.policy?.network === network);
    if (!net?.policy) return '';
    const byId = new Map([...conjunctionIds(net.vni, net.policy.rules)].map(([name, cid]) => [BigInt(cid), name]));
    for (const s of t.steps) {
      if (s.table !== Table.Policy || !s.cookie) continue;
      const c = BigInt(s.cookie);
      if (((c & FEATURE_MASK) >> 40n) !== BigInt(Feature.NetworkPolicy)) continue;
      const name = byId.get(c & OBJECT_MASK);
      if (name) return name;
    }
    return '';
  }

  /** One step of a live trace: arm the observation flows, inject and observe, or collect. */
  private async liveStep(req: api.AgentTraceRequest): Promise<api.TraceLiveHost> {
    const step = req.live!;
    if (!Number.isInteger(step.dscp) || step.dscp < 1 || step.dscp > 63) throw new AgentError('invalid', `DSCP ${step.dscp} is not a DSCP value`);
    const spec: LiveSpec = {
      dscp: step.dscp,
      source: req.source ?? '',
      destination: req.destination,
      protocol: protoOf(req.protocol),
      port: req.port ?? 0,
      windowMs: Math.min(Math.max(step.windowMs || 2000, 100), 10_000),
    };
    const host = this.config.hostName;
    if (step.phase === 'arm') {
      await this.live.arm(spec);
      return { host, seen: false, outcome: 'armed', ofport: 0 };
    }
    if (step.phase === 'collect') return { host, ...(await this.live.collect(spec)) };
    if (step.phase !== 'inject') throw new AgentError('invalid', `unknown live trace phase "${step.phase}"`);
    const a = this.attachmentOf(req.network, req.containerId ?? '');
    const net = this.pipelineState().networks.find((n) => n.endpoints.some((e) => e.ofport === a.ofport));
    if (!net) throw new AgentError('unavailable', `endpoint ${a.record.containerId} is not in the pipeline yet`);
    if (!spec.source) spec.source = (spec.destination.includes(':') ? a.record.ipv6 : a.record.ipv4) ?? '';
    return { host, ...(await this.live.inject(spec, { ofport: a.ofport, mac: a.record.mac, vni: net.vni })) };
  }

  get endpointCount(): number {
    return this.attacher.attachments.size;
  }

  status(): object {
    return {
      host: this.config.hostName,
      controllerConnected: this.session.connected,
      appliedRevision: this.appliedRevision,
      generation: this.host.generation,
      endpoints: [...this.attacher.attachments.values()].map((a) => ({ ...a.record, port: a.hostIfname, ofport: a.ofport })),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.session.stop();
    clearInterval(this.sweepTimer);
    clearInterval(this.underlayRoutesTimer);
    clearTimeout(this.underlayRoutesRetry);
    clearInterval(this.underlayTimer);
    this.reclaimer.stop();
    for (const off of this.unsubscribe) off();
    await Promise.all([...this.dnsTcpListeners.values()].map((l) => l.stop()));
    this.dnsTcpListeners.clear();
    await this.queue;
    this.session.close();
    await this.host.openflow.close();
    await this.host.ovsNat?.close();
    this.host.ports.close();
    await this.host.netlink.close();
  }
}

/** Milliseconds one flow sync spent per phase (the apply phase histogram's labels). */
type SyncPhases = Partial<Record<'state' | 'build' | 'diff' | 'bundle' | 'revalidate' | 'host', number>>;

/**
 * An isolated network's policy input: its rules and its endpoint directory, local endpoints
 * carrying their OpenFlow port. Until the directory names a local endpoint, no rule selects it:
 * an isolated network fails closed.
 */
function policyState(
  net: api.Network,
  view: NetworkViewState | undefined,
  attachments: Iterable<{ record: { network: string; containerId: string }; ofport: number }>,
  directories: Map<string, { version: string; directory: DirectoryEntry[] }>,
  directoryVersion: number,
): NetworkPolicyState | undefined {
  if (net.isolation !== 'ISOLATION_ISOLATED') return undefined;
  const ofports = new Map<string, number>();
  for (const a of attachments) if (a.record.network === net.name) ofports.set(a.record.containerId, a.ofport);
  // The same array while no endpoint changed, so the compiler keeps what it resolved (NetworkPolicyCompiler).
  const version = `${directoryVersion}/${[...ofports].join(',')}`;
  let cached = directories.get(net.name);
  if (cached?.version !== version) {
    const directory: DirectoryEntry[] = [...(view?.endpoints.values() ?? [])].map((e) => {
      const ofport = ofports.get(e.containerId);
      return { name: e.name, labels: e.labels ?? {}, ...(e.ipv4 ? { ipv4: e.ipv4 } : {}), ...(e.ipv6 ? { ipv6: e.ipv6 } : {}), ...(ofport !== undefined ? { ofport } : {}) };
    });
    directories.set(net.name, (cached = { version, directory }));
  }
  const directory = cached.directory;
  const protocols = { PROTOCOL_UNSPECIFIED: 'any', PROTOCOL_TCP: 'tcp', PROTOCOL_UDP: 'udp', PROTOCOL_ICMP: 'icmp' } as const;
  const empty = { endpoints: [], labels: {}, cidrs: [], outside: false };
  // A protocol this agent does not know (a newer controller) allows nothing rather than everything.
  const rules: PolicyRule[] = [];
  for (const p of view?.policies.values() ?? []) {
    if (!(p.protocol in protocols)) continue;
    // The same object for a policy the view did not change: the compiler skips it at once.
    let rule = compiledRules.get(p);
    if (!rule) {
      rule = {
        name: p.name,
        from: p.from ?? empty,
        to: p.to ?? empty,
        protocol: protocols[p.protocol],
        ports: p.ports.map((r) => ({ first: r.first, last: Math.max(r.first, r.last) })),
      };
      compiledRules.set(p, rule);
    }
    rules.push(rule);
  }
  return { network: net.name, isolated: true, directory, rules };
}

/** Policy rules as the pipeline takes them, by the view's policy object. */
const compiledRules = new WeakMap<api.Policy, PolicyRule>();
