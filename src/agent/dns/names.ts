// What the agent's resolver is built from: the controller's view (every endpoint of this host's
// networks, on any host) turned into a DnsDirectory, each network's domain, and the host's own
// resolvers (upstreams for networks that name none). Pure but for reading resolv.conf.
import { readFileSync } from 'node:fs';
import { tryParseIp } from '../../common/ip.js';
import { dnsName } from '../../common/endpoint-name.js';
import type { EndpointInfo, Network } from '../../api/types.js';
import { DnsDirectory, type DnsEntry, type DnsZone } from './directory.js';

/** A network's DNS domain: its own (`dns.domain`), else `<network>.loom` (network names are DNS labels). */
export const DOMAIN_SUFFIX = 'loom';
export function networkDomain(network: Pick<Network, 'name' | 'dns'>): string {
  return network.dns?.domain || `${network.name}.${DOMAIN_SUFFIX}`;
}

export interface NetworkNames {
  network: Network;
  endpoints: Iterable<EndpointInfo>;
}

/**
 * The directory of `networks`: each endpoint answers to its DNS name (src/common/endpoint-name.ts),
 * its hostname and its aliases, each bare and under its network's domain.
 */
export function directoryOf(networks: Iterable<NetworkNames>): DnsDirectory {
  const zones: DnsZone[] = [];
  const entries: DnsEntry[] = [];
  for (const { network, endpoints } of networks) {
    zones.push({ network: network.name, domain: networkDomain(network) });
    for (const ep of endpoints) {
      if (ep.hostGateway) continue; // a host's own address in the network, not a container
      const ipv4 = bare(ep.ipv4);
      const ipv6 = bare(ep.ipv6);
      const names = [...new Set([dnsName(ep.name || ep.containerId), ...(ep.hostname ? [ep.hostname] : []), ...(ep.aliases ?? [])])];
      entries.push({ network: network.name, names, ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) });
    }
  }
  return new DnsDirectory(zones, entries);
}

const bare = (a: string) => a.split('/')[0] ?? '';

/**
 * The `nameserver` lines of a resolv.conf, in order. Loopback stubs (systemd-resolved's
 * 127.0.0.53) are kept: the agent forwards from the host's own namespace, where they answer.
 * Containers never reach them directly; they only ever ask their gateway.
 */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const addr = m[1]!.split('%')[0]!; // a zone id (fe80::1%eth0) is not usable by the forwarder
    if (tryParseIp(addr) && !out.includes(addr)) out.push(addr);
  }
  return out;
}

/** The host's resolvers from `path`; none when it cannot be read (forwarding then gives SERVFAIL). */
export function readHostResolvers(path: string): string[] {
  try {
    return parseResolvConf(readFileSync(path, 'utf8'));
  } catch {
    return [];
  }
}
