/**
 * Request validation: turns API input into normalized records or throws ApiError with a message
 * naming the field and the offending value. Checks that need cluster state (overlap, VNI in
 * use) take the state as an argument; nothing here mutates.
 */
import {
  canonicalIp,
  canonicalMac,
  cidrContains,
  cidrLast,
  cidrOverlaps,
  cidrToString,
  tryParseCidr,
  tryParseIp,
  type Cidr,
} from '../common/ip.js';
import { endpointNameProblem } from '../common/endpoint-name.js';
import { TUNNEL_OVERHEAD, type CreateEndpointRequest, type DnsConfig, type Network, type PortMapping, type RegisterRequest } from '../api/types.js';
import { reservedNetworkOverlap, vtepAddressProblem } from '../common/reserved.js';
import { alreadyExists, invalid } from './errors.js';
import type { DnsRecord, NetworkRecord, PortMappingRecord, TunnelKind } from './model.js';
import type { ClusterState } from './state.js';

export const VNI_MAX = 16_777_215;
export const DEFAULT_BLOCK_PREFIX = { 4: 26, 6: 120 } as const;

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Network names: DNS labels (RFC 1123, lower case, 1-63 chars). */
export function checkName(what: string, name: unknown): string {
  if (typeof name !== 'string' || name === '') throw invalid(`${what} name is required`);
  if (!LABEL.test(name)) {
    throw invalid(`${what} name "${name}" is not a DNS label (a-z, 0-9 and '-', 1-63 characters, no leading/trailing '-')`);
  }
  return name;
}

/**
 * Endpoint names are the runtime's (podman's `elated_lewin`, a pod name `web.v1`): anything up
 * to 253 bytes without whitespace, control characters or '/'. DNS names are derived from them
 * (common/endpoint-name.ts), never required of them.
 */
export function checkEndpointName(name: string): string {
  const problem = endpointNameProblem(name);
  if (problem !== null) throw invalid(problem);
  return name;
}

/** Host names may be FQDNs (dot-separated labels). */
export function checkHostName(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw invalid('host name is required');
  if (name.length > 253 || !name.split('.').every((l) => LABEL.test(l))) {
    throw invalid(`host name "${name}" is not a DNS name (labels of a-z, 0-9 and '-', separated by '.')`);
  }
  return name;
}

export function checkContainerId(id: unknown): string {
  if (typeof id !== 'string' || id === '') throw invalid('container id is required');
  if (!CONTAINER_ID.test(id)) {
    throw invalid(`container id "${id.slice(0, 200)}" must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', '-'`);
  }
  return id;
}

function checkDns(dns: Network['dns'] | undefined): DnsRecord {
  const out: DnsRecord = { nameservers: [], search: [], options: [] };
  if (!dns) return out;
  for (const ns of dns.nameservers ?? []) {
    const c = canonicalIp(ns);
    if (c === null) throw invalid(`DNS nameserver "${ns}" is not an IP address`);
    out.nameservers.push(c);
  }
  for (const s of dns.search ?? []) {
    if (s.length > 253 || !s.split('.').every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l))) {
      throw invalid(`DNS search domain "${s}" is not a domain name`);
    }
    out.search.push(s.toLowerCase());
  }
  for (const o of dns.options ?? []) {
    if (!/^[a-z0-9-]+(:[0-9]+)?$/.test(o)) throw invalid(`DNS option "${o}" is not like "ndots:2" or "rotate"`);
    out.options.push(o);
  }
  if (dns.domain) {
    const d = dns.domain.toLowerCase().replace(/\.$/, '');
    if (d.length > 253 || !d.split('.').every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l))) throw invalid(`DNS domain "${dns.domain}" is not a domain name`);
    if (d.endsWith('.arpa') || d === 'arpa') throw invalid(`DNS domain "${dns.domain}" may not be under .arpa (reverse zones)`);
    out.domain = d;
  }
  if (out.nameservers.length > 3) throw invalid('at most 3 DNS nameservers (the resolv.conf limit)');
  if (out.search.length > 6) throw invalid('at most 6 DNS search domains');
  return out;
}

/** The endpoint's own DNS settings: as a network's, but without a domain (its network's zone holds its names). */
export function checkEndpointDns(dns: Partial<DnsConfig> | null | undefined): DnsRecord | undefined {
  if (!dns) return undefined;
  if (dns.domain) throw invalid(`endpoint DNS settings may not set a domain ("${dns.domain}"): the network's domain (loomctl network create --dns-domain) holds its endpoints' names`);
  // podman's `--dns-search .` means "no search domains": nothing to keep.
  const search = (dns.search ?? []).filter((s) => s !== '.');
  const out = checkDns({ nameservers: dns.nameservers ?? [], search, options: dns.options ?? [], domain: '' });
  if (out.nameservers.length + out.search.length + out.options.length === 0) return undefined;
  return { nameservers: out.nameservers, search: out.search, options: out.options };
}

export const MAX_ALIASES = 32;

/**
 * A hostname or alias: a DNS name (labels of a-z, 0-9 and '-' up to 63 characters, at most 253
 * in all; case does not matter, a trailing dot is dropped), not under .arpa. Returns it lower case.
 */
export function checkDnsName(what: string, name: string): string {
  const d = name.toLowerCase().replace(/\.$/, '');
  if (d === '') throw invalid(`${what} is empty`);
  if (d.length > 253 || !d.split('.').every((l) => LABEL.test(l))) {
    throw invalid(`${what} "${name.slice(0, 260)}" is not a DNS name (labels of a-z, 0-9 and '-', 1-63 characters, no leading/trailing '-', separated by '.')`);
  }
  if (d === 'arpa' || d.endsWith('.arpa')) throw invalid(`${what} "${name}" may not be under .arpa (reverse zones)`);
  return d;
}

/** Aliases: DNS names, at most MAX_ALIASES, duplicates dropped. */
export function checkAliases(list: readonly string[] | undefined): string[] {
  const aliases = list ?? [];
  if (aliases.length > MAX_ALIASES) throw invalid(`at most ${MAX_ALIASES} aliases per endpoint, got ${aliases.length}`);
  return [...new Set(aliases.map((a) => checkDnsName('alias', a)))];
}

function parseRange(field: string, text: string, family: 4 | 6, minPrefix: number, maxPrefix: number): Cidr {
  const loose = tryParseCidr(text, false);
  if (loose === null || loose.family !== family) {
    throw invalid(`${field} "${text}" is not an IPv${family} CIDR like ${family === 4 ? '10.1.0.0/16' : 'fd00:1::/64'}`);
  }
  if (tryParseCidr(text, true) === null) throw invalid(`${field} "${text}" has host bits set; did you mean ${cidrToString(loose)}?`);
  if (loose.prefix < minPrefix || loose.prefix > maxPrefix) {
    throw invalid(`${field} "${text}": prefix length must be between /${minPrefix} and /${maxPrefix}`);
  }
  const reserved = reservedNetworkOverlap(loose);
  if (reserved) throw invalid(`${field} "${text}" overlaps a reserved range: ${reserved}`);
  return loose;
}

/**
 * Validates a network create request against the cluster: returns the record to store, with
 * defaults filled in (VNI allocated, MTU, gateways, block sizes).
 */
export function validateNetwork(spec: Partial<Network> | null | undefined, state: ClusterState): NetworkRecord {
  if (!spec) throw invalid('network is required');
  const name = checkName('network', spec.name);
  if (state.networks.has(name)) throw alreadyExists(`network ${name} already exists`);

  if (!spec.ipv4Cidr) throw invalid(`network ${name}: ipv4 CIDR is required`);
  const v4 = parseRange('ipv4 CIDR', spec.ipv4Cidr, 4, 8, 30);
  const v6 = spec.ipv6Cidr ? parseRange('ipv6 CIDR', spec.ipv6Cidr, 6, 16, 124) : null;
  for (const h of state.hosts.values()) {
    const ip = tryParseIp(h.rec.vtep);
    const range = ip?.family === 4 ? v4 : v6;
    if (ip && range && cidrContains(range, ip.family, ip.value)) {
      throw invalid(`ipv${ip.family} CIDR ${cidrToString(range)} contains the VTEP ${h.rec.vtep} of host ${h.rec.name}: tunnel traffic would be routed into the overlay`);
    }
  }
  for (const other of state.networks.values()) {
    const o = other.entry.rec;
    if (cidrOverlaps(v4, other.v4.cidr)) throw alreadyExists(`ipv4 CIDR ${cidrToString(v4)} overlaps network ${o.name} (${o.ipv4Cidr})`);
    if (v6 && other.v6 && cidrOverlaps(v6, other.v6.cidr)) {
      throw alreadyExists(`ipv6 CIDR ${cidrToString(v6)} overlaps network ${o.name} (${o.ipv6Cidr})`);
    }
  }

  let vni = spec.vni ?? 0;
  if (!Number.isInteger(vni) || vni < 0 || vni > VNI_MAX) throw invalid(`VNI ${vni} is out of range 1..${VNI_MAX}`);
  if (vni === 0) {
    vni = 1;
    while (state.vnis.has(vni)) vni++;
    if (vni > VNI_MAX) throw invalid('no free VNI left');
  } else if (state.vnis.has(vni)) {
    throw alreadyExists(`VNI ${vni} is already used by network ${state.vnis.get(vni)}`);
  }

  const tunnelType = spec.tunnelType ?? 'TUNNEL_TYPE_UNSPECIFIED';
  const tunnel: TunnelKind = tunnelType === 'TUNNEL_TYPE_GRE' ? 'gre' : 'vxlan';
  if (!['TUNNEL_TYPE_UNSPECIFIED', 'TUNNEL_TYPE_VXLAN', 'TUNNEL_TYPE_GRE'].includes(tunnelType)) {
    throw invalid(`tunnel type "${tunnelType}" is not VXLAN or GRE`);
  }

  const minMtu = v6 ? 1280 : 576;
  const mtu = spec.mtu || 1500 - TUNNEL_OVERHEAD[tunnel];
  if (!Number.isInteger(mtu) || mtu < minMtu || mtu > 9000) {
    throw invalid(`MTU ${mtu} is out of range ${minMtu}..9000${v6 ? ' (IPv6 needs at least 1280)' : ''}`);
  }

  const gateways: string[] = [];
  const given = spec.gateways ?? [];
  for (const g of given) {
    const ip = tryParseIp(g);
    if (ip === null) throw invalid(`gateway "${g}" is not an IP address`);
    const range = ip.family === 4 ? v4 : v6;
    if (!range || !cidrContains(range, ip.family, ip.value)) throw invalid(`gateway ${g} is outside the network's ${ip.family === 4 ? 'ipv4' : 'ipv6'} CIDR`);
    if (ip.value === range.base || (ip.family === 4 && ip.value === cidrLast(range))) {
      throw invalid(`gateway ${g} is the network or broadcast address`);
    }
    const c = canonicalIp(g) as string;
    if (gateways.some((x) => tryParseIp(x)?.family === ip.family)) throw invalid(`more than one IPv${ip.family} gateway given`);
    gateways.push(c);
  }
  if (!gateways.some((g) => !g.includes(':'))) gateways.push(canonicalIp(firstUsable(v4)) as string);
  if (v6 && !gateways.some((g) => g.includes(':'))) gateways.push(canonicalIp(firstUsable(v6)) as string);

  const b4 = spec.ipv4BlockPrefix || Math.max(DEFAULT_BLOCK_PREFIX[4], v4.prefix);
  if (!Number.isInteger(b4) || b4 < v4.prefix || b4 > 30) throw invalid(`ipv4 block prefix /${b4} must be between /${v4.prefix} (the network) and /30`);
  let b6 = 0;
  if (v6) {
    b6 = spec.ipv6BlockPrefix || Math.max(DEFAULT_BLOCK_PREFIX[6], v6.prefix);
    const lo = Math.max(v6.prefix, 112);
    if (!Number.isInteger(b6) || b6 < lo || b6 > 124) throw invalid(`ipv6 block prefix /${b6} must be between /${lo} and /124`);
  }

  const egressMode = spec.egress ?? 'EGRESS_MODE_UNSPECIFIED';
  if (!['EGRESS_MODE_UNSPECIFIED', 'EGRESS_MODE_NAT', 'EGRESS_MODE_OFF'].includes(egressMode)) {
    throw invalid(`egress mode "${String(egressMode)}" is not NAT or OFF`);
  }
  if (spec.ipv6Routed && !v6) throw invalid(`network ${name}: ipv6Routed needs an ipv6 CIDR`);
  const inboundSources = checkSourceCidrs(spec.inboundSources ?? []);

  return {
    egress: egressMode === 'EGRESS_MODE_OFF' ? 'off' : 'nat',
    ipv6Routed: spec.ipv6Routed ?? false,
    inboundSources,
    name,
    vni,
    ipv4Cidr: cidrToString(v4),
    ipv6Cidr: v6 ? cidrToString(v6) : '',
    tunnel,
    mtu,
    gateways,
    dns: checkDns(spec.dns ?? undefined),
    ipv4BlockPrefix: b4,
    ipv6BlockPrefix: b6,
  };
}

/** Source limits: at most 64 CIDRs (bare addresses become /32 or /128), canonical. */
export function checkSourceCidrs(list: readonly string[]): string[] {
  if (list.length > 64) throw invalid('at most 64 inbound source CIDRs');
  const out: string[] = [];
  for (const text of list) {
    const withLen = text.includes('/') ? text : `${text}/${text.includes(':') ? 128 : 32}`;
    const c = tryParseCidr(withLen, true);
    if (c === null) throw invalid(`inbound source "${text}" is not a CIDR like 10.10.10.10/32 or 2001:db8::/48 (host bits must be zero)`);
    out.push(cidrToString(c));
  }
  return [...new Set(out)];
}

const MAX_PORT_MAPPINGS = 64;

/** Published ports of an endpoint: ports 1-65535, tcp or udp, optional host address. */
export function checkPortMappings(list: readonly PortMapping[] | undefined): PortMappingRecord[] {
  const ports = list ?? [];
  if (ports.length > MAX_PORT_MAPPINGS) throw invalid(`at most ${MAX_PORT_MAPPINGS} published ports per endpoint`);
  const out: PortMappingRecord[] = [];
  const seen = new Set<string>();
  for (const p of ports) {
    const protocol = (p.protocol || 'tcp').toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp') throw invalid(`published port protocol "${p.protocol}" is not tcp or udp`);
    for (const [what, v] of [['host', p.hostPort], ['container', p.containerPort]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 65535) throw invalid(`published ${what} port ${String(v)} is out of range 1..65535`);
    }
    let hostIp = '';
    if (p.hostIp && p.hostIp !== '0.0.0.0' && p.hostIp !== '::') {
      const c = canonicalIp(p.hostIp);
      if (c === null) throw invalid(`published port host address "${p.hostIp}" is not an IP address`);
      // The kernel drops a packet whose destination is ::1 unless it arrives on the loopback
      // interface, and IPv6 has no route_localnet: the reply of a DNATed ::1 connection, which comes
      // back from the container, would be dropped. Refused instead of published and never reachable.
      if (c === '::1') throw invalid('published port host address ::1 is not supported (IPv6 loopback is never routed to a container; use 127.0.0.1 or a host address)');
      hostIp = c;
    }
    const key = `${hostIp}/${p.hostPort}/${protocol}`;
    if (seen.has(key)) throw invalid(`host port ${p.hostPort}/${protocol} is published twice`);
    seen.add(key);
    out.push({ hostPort: p.hostPort, containerPort: p.containerPort, protocol, hostIp });
  }
  return out;
}

function firstUsable(c: Cidr): string {
  const v = c.base + 1n;
  if (c.family === 4) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
  return cidrToString({ family: 6, base: v, prefix: 128 }).replace('/128', '');
}

/** Syntax checks of an endpoint create (addresses are checked by IPAM against the range). */
export function validateEndpointRequest(req: CreateEndpointRequest): {
  name: string;
  mac: string | null;
  ports: PortMappingRecord[];
  hostname: string | undefined;
  aliases: string[];
  dns: DnsRecord | undefined;
} {
  if (!req.network) throw invalid('endpoint network is required');
  checkHostName(req.host);
  const id = checkContainerId(req.containerId);
  const name = req.name ? checkEndpointName(req.name) : defaultEndpointName(id);
  let mac: string | null = null;
  if (req.mac) {
    mac = canonicalMac(req.mac);
    if (mac === null) throw invalid(`MAC "${req.mac}" is not like 02:42:0a:00:00:05`);
    if (parseInt(mac.slice(0, 2), 16) & 1) throw invalid(`MAC ${mac} is a multicast address`);
    if (mac === '00:00:00:00:00:00') throw invalid('MAC 00:00:00:00:00:00 is not usable');
  }
  return {
    name,
    mac,
    ports: checkPortMappings(req.ports),
    hostname: req.hostname ? checkDnsName('hostname', req.hostname) : undefined,
    aliases: checkAliases(req.aliases),
    dns: checkEndpointDns(req.dns),
  };
}

/** Endpoint name when none is given: the first 12 characters of the container id, as Docker shows it. */
export function defaultEndpointName(containerId: string, length = 12): string {
  const s = containerId.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, length).replace(/^-+|-+$/g, '');
  return s === '' ? 'endpoint' : s;
}

/** Validates an agent registration; returns the canonical VTEP address. */
export function validateRegister(req: RegisterRequest, state: ClusterState): string {
  const name = checkHostName(req.name);
  const ip = tryParseIp(req.vtep ?? '');
  if (ip === null) throw invalid(`host ${name}: VTEP "${req.vtep ?? ''}" is not an IP address`);
  const vtep = canonicalIp(req.vtep) as string;
  const problem = vtepAddressProblem(ip);
  if (problem) throw invalid(`host ${name}: VTEP ${vtep} ${problem}`);
  for (const n of state.networks.values()) {
    const range = ip.family === 4 ? n.v4.cidr : n.v6?.cidr;
    if (range && cidrContains(range, ip.family, ip.value)) {
      throw invalid(`host ${name}: VTEP ${vtep} is inside the range ${cidrToString(range)} of overlay network ${n.entry.rec.name}; use an underlay address`);
    }
  }
  for (const h of state.hosts.values()) {
    if (h.rec.name !== name && h.rec.vtep === vtep) throw alreadyExists(`VTEP ${vtep} is already registered by host ${h.rec.name}`);
  }
  if ((req.agentVersion ?? '').length > 64) throw invalid('agent version is longer than 64 characters');
  if ((req.capabilities ?? []).length > 64) throw invalid('more than 64 capabilities');
  return vtep;
}
