// The agent's Open vSwitch layout, through OVSDB: the integration bridge, one flow-based tunnel
// port per tunnel type, and one port per attached endpoint. Everything the agent creates carries
// `loom-owner=agent` in external_ids; it never touches a port without that mark.
import { OvsMap, OvsSet } from '../ovsdb/values.js';
import type { Logger } from 'pino';
import type { InterfaceStatus, PortSpec, Vswitch } from '../ovsdb/vswitch.js';
import type { TunnelKind } from './pipeline/state.js';

export const OWNER = { 'loom-owner': 'agent' } as const;

/** Pinned OpenFlow port numbers of the tunnel ports; endpoint ports get OVS's low numbers. */
export const TUNNEL_OFPORTS: Record<TunnelKind, number> = { vxlan: 65001, gre: 65002 };
export const TUNNEL_PORT_NAMES: Record<TunnelKind, string> = { vxlan: 'loom-vxlan', gre: 'loom-gre' };

/** How the userspace datapath reads a port: a socket (AF_PACKET) or AF_XDP (see docs/performance.md). */
export interface PortIo {
  type: 'af_packet' | 'afxdp' | 'afxdp-nonpmd';
  /** options:xdp-mode of AF_XDP ports. */
  xdpMode: string;
}

export const AF_PACKET: PortIo = { type: 'af_packet', xdpMode: 'best-effort' };

/** What `auto` picks from the switch's own facts: AF_XDP only with PMD cores the operator set aside. */
export function autoPortIoType(ifaceTypes: readonly string[], otherConfig: ReadonlyMap<string, string>): 'af_packet' | 'afxdp' {
  return ifaceTypes.includes('afxdp') && (otherConfig.get('pmd-cpu-mask') ?? '') !== '' ? 'afxdp' : 'af_packet';
}

/** Open_vSwitch iface_types and other_config, as `autoPortIoType` needs them. */
export async function readSwitchFacts(vs: Vswitch): Promise<{ ifaceTypes: string[]; otherConfig: Map<string, string> }> {
  const [{ rows }] = await vs.client.transact('Open_vSwitch', [{ op: 'select', table: 'Open_vSwitch', where: [], columns: ['iface_types', 'other_config'] }]);
  const row = rows[0] ?? {};
  const types = row.iface_types;
  const ifaceTypes = types instanceof OvsSet ? types.values.map(String) : typeof types === 'string' ? [types] : [];
  const otherConfig = new Map<string, string>();
  if (row.other_config instanceof OvsMap) for (const [k, v] of row.other_config.entries) otherConfig.set(String(k), String(v));
  return { ifaceTypes, otherConfig };
}

/** Port mark: AF_XDP failed on this port with this type and mode; do not try again at every start. */
export const PORT_IO_FALLBACK_KEY = 'loom-port-io-fallback';

/**
 * Ensures a port of an existing Linux interface read the way `io` says. An AF_XDP port OVS cannot
 * attach (driver, MTU, XDP mode, an OVS built without it) is set back to AF_PACKET, with a warning,
 * and marked so a restarted agent leaves it on AF_PACKET rather than flap it (the underlay!).
 */
export async function ensureDevicePort(vs: Vswitch, bridge: string, spec: PortSpec, io: PortIo, log: Logger): Promise<InterfaceStatus | undefined> {
  const attempt = `${io.type}/${io.xdpMode}`;
  const failedBefore = io.type !== 'af_packet' && (await vs.findPorts({ [PORT_IO_FALLBACK_KEY]: attempt })).some((p) => p.name === spec.name);
  if (io.type !== 'af_packet' && !failedBefore) {
    const result = await vs.ensurePort(bridge, { ...spec, type: io.type, options: { 'xdp-mode': io.xdpMode } }, { wait: true });
    const status = result.interfaces.get(spec.name);
    if (status && !status.error && status.ofport !== undefined && status.ofport >= 0) return status;
    log.warn(
      { interface: spec.name, bridge, portType: io.type, xdpMode: io.xdpMode, ovsError: status?.error ?? 'no OpenFlow port number' },
      `AF_XDP could not attach to ${spec.name}; falling back to AF_PACKET for this port (see ovs-vswitchd.log)`,
    );
  }
  const externalIds = io.type === 'af_packet' ? spec.externalIds : { ...spec.externalIds, [PORT_IO_FALLBACK_KEY]: attempt };
  const result = await vs.ensurePort(bridge, { ...spec, type: 'system', options: {}, externalIds }, { wait: true });
  return result.interfaces.get(spec.name);
}

export interface BridgeLayout {
  bridge: string;
  datapathType: string;
  /** How the underlay interface is read (netdev only). */
  underlayIo?: PortIo;
  /** The userspace datapath's underlay bridge and the interface it owns ('' = none). */
  underlayBridge?: string;
  underlayInterface?: string;
}

/** The bridge that carries tunnel traffic on the userspace datapath: a plain learning switch. */
async function ensureUnderlayBridge(vs: Vswitch, layout: BridgeLayout, log: Logger): Promise<void> {
  if (!layout.underlayBridge) return;
  await vs.ensureBridge({ name: layout.underlayBridge, datapathType: layout.datapathType, failMode: 'standalone', externalIds: { ...OWNER } });
  if (!layout.underlayInterface) return;
  const status = await ensureDevicePort(vs, layout.underlayBridge, { name: layout.underlayInterface, externalIds: { ...OWNER } }, layout.underlayIo ?? AF_PACKET, log);
  if (status?.error) throw new Error(`underlay interface ${layout.underlayInterface} failed in ovs-vswitchd: ${status.error}`);
}

/** Creates or repairs the integration bridge and its tunnel ports; returns the tunnel ofports. */
export async function ensureBridgeLayout(vs: Vswitch, layout: BridgeLayout, log: Logger): Promise<Record<TunnelKind, number>> {
  await ensureUnderlayBridge(vs, layout, log);
  await vs.ensureBridge({
    name: layout.bridge,
    datapathType: layout.datapathType,
    failMode: 'secure',
    protocols: ['OpenFlow13'],
    // The agent is the only controller of this bridge: no in-band rules of OVS's own.
    otherConfig: { 'disable-in-band': 'true' },
    externalIds: { ...OWNER },
  });
  const result = await vs.ensurePorts(
    layout.bridge,
    (Object.keys(TUNNEL_OFPORTS) as TunnelKind[]).map((kind) => ({
      name: TUNNEL_PORT_NAMES[kind],
      type: kind,
      options: { remote_ip: 'flow', key: 'flow' },
      ofportRequest: TUNNEL_OFPORTS[kind],
      externalIds: { ...OWNER },
    })),
    { wait: true },
  );
  const ports = {} as Record<TunnelKind, number>;
  for (const kind of Object.keys(TUNNEL_OFPORTS) as TunnelKind[]) {
    const status = result.interfaces.get(TUNNEL_PORT_NAMES[kind]);
    if (status?.error) throw new Error(`tunnel port ${TUNNEL_PORT_NAMES[kind]} failed in ovs-vswitchd: ${status.error}`);
    if (status?.ofport === undefined || status.ofport < 0) {
      throw new Error(`tunnel port ${TUNNEL_PORT_NAMES[kind]} got no OpenFlow port number`);
    }
    ports[kind] = status.ofport;
  }
  return ports;
}

/** What the agent records on an endpoint's port, so a restarted agent knows its endpoints. */
export interface EndpointPortRecord {
  network: string;
  containerId: string;
  ifname: string;
  netns: string;
  mac: string;
  ipv4: string;
  ipv6: string;
  /** Published ports as the controller canonicalized them (JSON), '' when none. */
  ports: string;
  /** The container's own upstream DNS servers (CNI runtimeConfig `dns.servers`), comma-separated; '' = the network's. */
  dnsServers: string;
}

const KEYS: Record<keyof EndpointPortRecord, string> = {
  network: 'loom-network',
  containerId: 'loom-container-id',
  ifname: 'loom-ifname',
  netns: 'loom-netns',
  mac: 'loom-mac',
  ipv4: 'loom-ipv4',
  ipv6: 'loom-ipv6',
  ports: 'loom-ports',
  dnsServers: 'loom-dns-servers',
};

/** The port's external_ids that record the endpoint. */
function recordIds(rec: EndpointPortRecord): Record<string, string> {
  const ids: Record<string, string> = {};
  for (const [k, key] of Object.entries(KEYS)) ids[key] = rec[k as keyof EndpointPortRecord];
  return ids;
}

/** The OpenFlow port number ovs-vswitchd gave the port, or why it has none. */
function portNumber(name: string, status: { error?: string; ofport?: number } | undefined): number {
  if (status?.error) throw new Error(`port ${name} failed in ovs-vswitchd: ${status.error}`);
  if (status?.ofport === undefined || status.ofport < 0) throw new Error(`port ${name} got no OpenFlow port number`);
  return status.ofport;
}

/** Adds the endpoint's host-side interface to the bridge and returns its OpenFlow port. */
export async function addEndpointPort(vs: Vswitch, bridge: string, name: string, rec: EndpointPortRecord, io: PortIo, log: Logger): Promise<number> {
  return portNumber(name, await ensureDevicePort(vs, bridge, { name, externalIds: { ...OWNER, ...recordIds(rec) } }, io, log));
}

/**
 * Starts adding a new endpoint port with a chosen OpenFlow port number (AF_PACKET only; AF_XDP
 * may need a second try): resolves once OVSDB holds the port, `applied` with its number once
 * ovs-vswitchd added it. Undefined when the name or the number is taken, or the port is AF_XDP:
 * then {@link addEndpointPort}.
 */
export async function beginEndpointPort(vs: Vswitch, bridge: string, name: string, rec: EndpointPortRecord, io: PortIo, ofport: number): Promise<{ uuid: string; applied: Promise<number> } | undefined> {
  if (io.type !== 'af_packet') return undefined;
  const begun = await vs.insertPort(bridge, { name, type: 'system', ofportRequest: ofport, externalIds: { ...OWNER, ...recordIds(rec) } });
  if (!begun) return undefined;
  const applied = begun.applied.then((status) => portNumber(name, status));
  // Nobody awaits it once the attach failed elsewhere and removed the port: not unhandled then.
  applied.catch(() => undefined);
  return { uuid: begun.uuid, applied };
}

/** Records the endpoint on a port {@link beginEndpointPort} inserted (row `uuid`) before the endpoint was known. */
export async function recordEndpointPort(vs: Vswitch, name: string, uuid: string, rec: EndpointPortRecord): Promise<void> {
  if (!(await vs.setPortExternalIds(name, uuid, recordIds(rec)))) throw new Error(`port ${name} vanished from OVSDB before its endpoint was recorded`);
}

/** Removes the port; with its row's uuid (from {@link beginEndpointPort}) in one transaction, without reading first. */
export async function removeEndpointPort(vs: Vswitch, bridge: string, name: string, uuid?: string, wait = true): Promise<void> {
  if (uuid !== undefined && (await vs.removePortRow(bridge, name, uuid, { wait }))) return;
  await vs.removePorts(bridge, [name], { wait });
}

/** Endpoint ports this agent created earlier (found by their marks), with their ofports. */
export async function listEndpointPorts(vs: Vswitch): Promise<Array<{ name: string; ofport: number | undefined; record: EndpointPortRecord }>> {
  const ports = (await vs.findPorts({ ...OWNER })).filter((p) => p.externalIds[KEYS.containerId] !== undefined);
  const status = await vs.interfaceStatus(ports.map((p) => p.name));
  return ports.map((p) => {
    const record = {} as EndpointPortRecord;
    for (const [k, key] of Object.entries(KEYS)) record[k as keyof EndpointPortRecord] = p.externalIds[key] ?? '';
    const ofport = status.get(p.name)?.ofport;
    return { name: p.name, ofport: ofport !== undefined && ofport >= 0 ? ofport : undefined, record };
  });
}

/**
 * Bumps the cookie generation recorded on the bridge (external_ids:loom-generation) and returns
 * the new one; 16 bits, wrapping past 0xffff to 1.
 */
export async function nextGeneration(vs: Vswitch, bridge: string): Promise<number> {
  const [{ rows }] = await vs.client.transact('Open_vSwitch', [
    { op: 'select', table: 'Bridge', where: [['name', '==', bridge]], columns: ['external_ids'] },
  ]);
  const ids = rows[0]?.external_ids as { get(key: string): string | undefined } | undefined;
  const current = Number(ids?.get('loom-generation') ?? 0);
  const next = Number.isInteger(current) && current > 0 && current < 0xffff ? current + 1 : 1;
  await vs.ensureBridge({ name: bridge, externalIds: { ...OWNER, 'loom-generation': String(next) } });
  return next;
}

/**
 * `Open_vSwitch other_config:flow-restore-wait`: while "true", a starting ovs-vswitchd keeps the
 * kernel datapath's flows (forwarding goes on) and handles no new packets, until it is removed.
 * The agent sets it when it loses the switch on the kernel datapath and removes it once it has
 * reinstalled its flows (docs/architecture.md, "ovs-vswitchd restarts").
 */
export const FLOW_RESTORE_WAIT = 'flow-restore-wait';

export async function setFlowRestoreWait(vs: Vswitch): Promise<void> {
  await vs.client.transact('Open_vSwitch', [
    { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['other_config', 'insert', OvsMap.fromRecord({ [FLOW_RESTORE_WAIT]: 'true' })]] },
  ]);
}

/** Removes flow-restore-wait if set; returns whether it was. */
export async function clearFlowRestoreWait(vs: Vswitch): Promise<boolean> {
  const [{ rows }] = await vs.client.transact('Open_vSwitch', [{ op: 'select', table: 'Open_vSwitch', where: [], columns: ['other_config'] }]);
  const config = rows[0]?.other_config as { get(key: string): string | undefined } | undefined;
  if (config?.get(FLOW_RESTORE_WAIT) === undefined) return false;
  await vs.client.transact('Open_vSwitch', [
    { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['other_config', 'delete', new OvsSet([FLOW_RESTORE_WAIT])]] },
  ]);
  return true;
}
