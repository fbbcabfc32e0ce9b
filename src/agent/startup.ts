// Start-up and recovery: connect to OVS, lay out the bridges, bump the cookie generation, open the
// OpenFlow and netlink clients, and find the endpoints an earlier run attached.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { OvsdbClient } from '../ovsdb/client.js';
import { Vswitch } from '../ovsdb/vswitch.js';
import { OpenFlowClient } from '../openflow/client.js';
import { Netlink, codec } from '../netlink/index.js';
import type { AgentConfig } from './config.js';
import { ContainerPlumber } from './plumbing.js';
import { AF_PACKET, addEndpointPort, beginEndpointPort, recordEndpointPort, autoPortIoType, ensureBridgeLayout, readSwitchFacts, type PortIo, listEndpointPorts, nextGeneration, removeEndpointPort, type EndpointPortRecord } from './ovs.js';
import type { EndpointPorts } from './attacher.js';
import type { TunnelKind } from './pipeline/state.js';
import { ensureGatewayPort, GatewayPortHost } from './gateway-port.js';
import { HostFirewall } from './host-firewall.js';
import { UnderlayRoutes } from './underlay-routes.js';
import { OvsNatHost, removeOvsNat } from './ovs-nat-host.js';
import { controlSocketPath, unixctl } from '../ovsdb/unixctl.js';
import type { BackoffOptions } from '../common/backoff.js';

/**
 * The OpenFlow management socket is local: a refused connect costs microseconds, so the agent
 * polls it tightly while ovs-vswitchd restarts and reprograms it as soon as it answers.
 */
export const OPENFLOW_RETRY: BackoffOptions = { minMs: 5, maxMs: 20 };

/** An endpoint port found in OVSDB. */
export interface RecoveredPort {
  name: string;
  ofport: number | undefined;
  record: EndpointPortRecord;
}

/** The integration bridge's endpoint ports over an OVSDB connection that is reopened when lost. */
export class OvsPorts implements EndpointPorts {
  /** Port rows this process inserted, by name: removing one then needs no read first. */
  private readonly rows = new Map<string, string>();

  constructor(
    private client: OvsdbClient,
    private vswitch: Vswitch,
    private readonly remote: string,
    private readonly bridge: string,
    private readonly log: Logger,
    private readonly io: PortIo = AF_PACKET,
  ) {}

  /** The OVSDB connection, reopened if ovsdb-server went away since the last call. */
  async ovs(): Promise<Vswitch> {
    if (this.client.isClosed) {
      this.log.warn({ ovsdb: this.remote }, 'OVSDB connection lost; reconnecting');
      this.client = await OvsdbClient.connect(this.remote);
      this.vswitch = new Vswitch(this.client);
    }
    return this.vswitch;
  }

  async add(name: string, record: EndpointPortRecord): Promise<number> {
    return addEndpointPort(await this.ovs(), this.bridge, name, record, this.io, this.log);
  }

  async begin(name: string, record: EndpointPortRecord, ofport: number): Promise<{ applied: Promise<number> } | undefined> {
    const begun = await beginEndpointPort(await this.ovs(), this.bridge, name, record, this.io, ofport);
    if (begun) this.rows.set(name, begun.uuid);
    return begun;
  }

  async record(name: string, record: EndpointPortRecord): Promise<void> {
    const row = this.rows.get(name);
    if (row === undefined) throw new Error(`port ${name} was not inserted by this agent`);
    await recordEndpointPort(await this.ovs(), name, row, record);
  }

  async remove(name: string, options: { wait?: boolean } = {}): Promise<void> {
    const row = this.rows.get(name);
    await removeEndpointPort(await this.ovs(), this.bridge, name, row, options.wait ?? true);
    this.rows.delete(name);
  }

  /** Endpoint ports an earlier run (or this one, before ovs-vswitchd restarted) created. */
  async list(): Promise<RecoveredPort[]> {
    return listEndpointPorts(await this.ovs());
  }

  close(): void {
    this.client.close();
  }
}

/** Everything on the host the agent drives, ready to use. */
export interface HostParts {
  ports: OvsPorts;
  openflow: OpenFlowClient;
  netlink: Netlink;
  plumber: ContainerPlumber;
  tunnelPorts: Record<TunnelKind, number>;
  generation: number;
  /** The host path (gateway port and table inet loom); absent with gatewayPort ''. */
  gateway?: GatewayPortHost;
  firewall?: HostFirewall;
  /** Userspace datapath with an underlay bridge: its routes pinned into ovs-vswitchd. */
  underlayRoutes?: UnderlayRoutes;
  /** --nat-path ovs: patch ports, the underlay bridge's flows and the underlay's next hops. */
  ovsNat?: OvsNatHost;
}

/** Connects to OVS, prepares the bridge layout and a new cookie generation, opens OpenFlow and netlink. */
export async function prepareHost(c: AgentConfig, log: Logger): Promise<HostParts> {
  const ovsdb = await OvsdbClient.connect(c.ovsdb);
  const vswitch = new Vswitch(ovsdb);
  try {
    const io = c.datapathType === 'netdev' ? await choosePortIo(vswitch, c, log) : AF_PACKET;
    const tunnelPorts = await ensureBridgeLayout(
      vswitch,
      { bridge: c.integrationBridge, datapathType: c.datapathType, underlayBridge: c.underlayBridge, underlayInterface: c.underlayInterface, underlayIo: io },
      log,
    );
    const gatewayOfport = c.gatewayPort ? await ensureGatewayPort(vswitch, c.integrationBridge, c.gatewayPort) : undefined;
    const generation = await nextGeneration(vswitch, c.integrationBridge);
    const openflow = await OpenFlowClient.connect(`unix:${c.ovsRunDir}/${c.integrationBridge}.mgmt`, {
      backoffMinMs: OPENFLOW_RETRY.minMs,
      backoffMaxMs: OPENFLOW_RETRY.maxMs,
    });
    const netlink = await Netlink.open(c.hostNetns ? { netns: c.hostNetns } : {}).catch(async (err: unknown) => {
      await openflow.close();
      throw err;
    });
    if (c.datapathType === 'netdev' && io.type === 'af_packet') warnSmallSocketBuffers(log);
    let ovsNat: OvsNatHost | undefined;
    try {
      if (c.natPath === 'ovs') ovsNat = await OvsNatHost.open(vswitch, netlink, c, OPENFLOW_RETRY, log);
      else {
        if (c.gatewayPort) log.info({ gatewayPort: c.gatewayPort }, `NAT path host: egress and published ports NATed by the host's nftables behind ${c.gatewayPort}`);
        if (c.underlayBridge) await removeOvsNat(vswitch, c, OPENFLOW_RETRY, log);
      }
    } catch (err) {
      await openflow.close();
      await netlink.close();
      throw err;
    }
    return {
      ...(ovsNat ? { ovsNat } : {}),
      ports: new OvsPorts(ovsdb, vswitch, c.ovsdb, c.integrationBridge, log, io),
      openflow,
      netlink,
      plumber: new ContainerPlumber(netlink),
      tunnelPorts,
      generation,
      ...(c.datapathType === 'netdev'
        ? {
            underlayRoutes: new UnderlayRoutes({
              appctl: (command, args) => unixctl(controlSocketPath(c.ovsRunDir), command, args, { timeoutMs: 2000 }),
              underlay: () => underlayOf(netlink, c.underlayBridge, c.vtep),
            }),
          }
        : {}),
      ...(gatewayOfport !== undefined
        ? { gateway: new GatewayPortHost(netlink, c.gatewayPort, gatewayOfport, log), firewall: new HostFirewall(c.nft, c.hostNetns) }
        : {}),
    };
  } catch (err) {
    ovsdb.close();
    throw err;
  }
}

/** The underlay bridge (configured, else the interface holding the VTEP address) and its kernel routes. */
async function underlayOf(netlink: Netlink, configured: string, vtep: string): Promise<{ bridge: string; routes: Array<{ dst: string; gateway?: string; family: 4 | 6 }> } | undefined> {
  let bridge = configured;
  if (!bridge) {
    const holder = (await netlink.address.list({ family: 4 })).find((a) => a.address === vtep);
    if (!holder) return undefined;
    const link = await netlink.link.find(holder.index);
    if (!link) return undefined;
    bridge = link.name;
  }
  const routes = [];
  for (const family of [4, 6] as const) {
    for (const r of await netlink.route.list({ family, dev: bridge })) {
      if (r.type === codec.RTN_UNICAST) routes.push({ dst: r.dst, family, ...(r.gateway ? { gateway: r.gateway } : {}) });
    }
  }
  return { bridge, routes };
}

/** The configured port I/O, or for `auto` what the switch offers (logged either way). */
async function choosePortIo(vs: Vswitch, c: AgentConfig, log: Logger): Promise<PortIo> {
  if (c.netdevPortType !== 'auto') {
    log.info({ portType: c.netdevPortType, xdpMode: c.afxdpMode }, `userspace datapath ports read through ${c.netdevPortType}`);
    return { type: c.netdevPortType, xdpMode: c.afxdpMode };
  }
  const { ifaceTypes, otherConfig } = await readSwitchFacts(vs);
  const type = autoPortIoType(ifaceTypes, otherConfig);
  const why = type === 'afxdp' ? 'OVS has afxdp and other_config:pmd-cpu-mask gives PMD threads cores' : !ifaceTypes.includes('afxdp') ? 'ovs-vswitchd lists no afxdp interface type (built without it, or not running yet)' : 'no other_config:pmd-cpu-mask: AF_XDP would busy-poll a core no one set aside';
  log.info({ portType: type, xdpMode: c.afxdpMode, netdevPortType: 'auto' }, `userspace datapath ports read through ${type}: ${why}`);
  return { type, xdpMode: c.afxdpMode };
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
