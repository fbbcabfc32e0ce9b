// The names a container can resolve: the endpoints of its own networks, on any host. Built from
// the endpoint directory that the Watch stream already delivers; pure, so it is rebuilt cheaply on
// every view change and tested without sockets.
import { parseIp } from '../../common/ip.js';

/** One endpoint as DNS sees it. */
export interface DnsEntry {
  network: string;
  /** Labels the endpoint answers to inside its network (name, hostname, aliases), lowercase; the first is its PTR name. */
  names: string[];
  ipv4?: string;
  ipv6?: string;
}

/** A network's DNS zone. */
export interface DnsZone {
  network: string;
  /** Domain, lowercase, without trailing dot (e.g. `blue.loom`). */
  domain: string;
}

export type Lookup =
  /** Loom owns the name: these addresses (maybe none of the asked type: NODATA). */
  | { kind: 'local'; addresses: string[]; name: string }
  /** A reverse name of an endpoint address. */
  | { kind: 'ptr'; names: string[] }
  /** Inside a zone the asker sees, but no such endpoint. */
  | { kind: 'nxdomain'; zone: string }
  /** Not Loom's: forward upstream. */
  | { kind: 'forward' };

interface Record_ {
  ipv4: string[];
  ipv6: string[];
}

export class DnsDirectory {
  /** network -> name (bare label or fqdn) -> addresses. */
  private readonly byNetwork = new Map<string, Map<string, Record_>>();
  /** network -> reverse name -> fqdns. */
  private readonly reverse = new Map<string, Map<string, string[]>>();
  /** domain -> network. */
  private readonly zones = new Map<string, string>();

  constructor(zones: DnsZone[], entries: DnsEntry[]) {
    for (const z of zones) {
      this.zones.set(normalize(z.domain), z.network);
      this.byNetwork.set(z.network, new Map());
      this.reverse.set(z.network, new Map());
    }
    const domainOf = new Map(zones.map((z) => [z.network, normalize(z.domain)]));
    for (const e of entries) {
      const names = this.byNetwork.get(e.network);
      const rev = this.reverse.get(e.network);
      const domain = domainOf.get(e.network);
      if (!names || !rev || domain === undefined) continue;
      const fqdns: string[] = [];
      for (const raw of e.names) {
        const label = normalize(raw);
        if (!label) continue;
        const fqdn = domain ? `${label}.${domain}` : label;
        fqdns.push(fqdn);
        for (const key of [label, fqdn]) {
          const r = names.get(key) ?? { ipv4: [], ipv6: [] };
          if (e.ipv4 && !r.ipv4.includes(e.ipv4)) r.ipv4.push(e.ipv4);
          if (e.ipv6 && !r.ipv6.includes(e.ipv6)) r.ipv6.push(e.ipv6);
          names.set(key, r);
        }
      }
      // The reverse name gives the endpoint's first name only (its own, not its hostname or aliases), as Docker's DNS does.
      for (const addr of [e.ipv4, e.ipv6]) {
        if (!addr || fqdns.length === 0) continue;
        const key = reverseName(addr);
        rev.set(key, [...new Set([...(rev.get(key) ?? []), fqdns[0]!])]);
      }
    }
  }

  /** Answers `name` of `type` for an asker in `networks`; names of other networks do not exist for it. */
  lookup(name: string, type: 'A' | 'AAAA' | 'PTR' | string, networks: readonly string[]): Lookup {
    const q = normalize(name);
    if (type === 'PTR' || q.endsWith('.in-addr.arpa') || q.endsWith('.ip6.arpa')) {
      for (const n of networks) {
        const hit = this.reverse.get(n)?.get(q);
        if (hit) return { kind: 'ptr', names: hit };
      }
      return { kind: 'forward' };
    }
    for (const n of networks) {
      const r = this.byNetwork.get(n)?.get(q);
      if (r) return { kind: 'local', name: q, addresses: type === 'A' ? r.ipv4 : type === 'AAAA' ? r.ipv6 : [] };
    }
    // A name under one of the asker's zones, or under any Loom zone (another network's names do
    // not exist for this asker), is Loom's to deny; anything else goes upstream.
    for (const [domain] of this.zones) {
      if (q === domain || q.endsWith(`.${domain}`)) return { kind: 'nxdomain', zone: domain };
    }
    return { kind: 'forward' };
  }

  get size(): number {
    let n = 0;
    for (const names of this.byNetwork.values()) n += names.size;
    return n;
  }
}

/** Lowercase, no trailing dot. */
export function normalize(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** The reverse-lookup name of an address (`4.3.2.1.in-addr.arpa`, nibbles for IPv6). */
export function reverseName(addr: string): string {
  const ip = parseIp(addr);
  if (ip.family === 4) return `${addr.split('.').reverse().join('.')}.in-addr.arpa`;
  return `${ip.value.toString(16).padStart(32, '0').split('').reverse().join('.')}.ip6.arpa`;
}
