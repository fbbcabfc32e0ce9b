/**
 * In-memory image of the store with the indexes IPAM, validation and the watch need. It is a
 * pure function of the store's keys: `apply` is called for every key at startup and for every
 * op after a commit, never speculatively.
 */
import { parseCidr, parseIp, prefixMask, cidrLast, type Cidr, type Family } from '../common/ip.js';
import { dnsName } from '../common/endpoint-name.js';
import type { KeyValue, StoreOp } from './store/types.js';
import {
  parseKey,
  type BlockRecord,
  type EndpointRecord,
  type ExceptionRecord,
  type HostRecord,
  type NetworkRecord,
  type PolicyRecord,
} from './model.js';

/** A record with its store revisions. */
export interface Entry<T> {
  readonly rec: T;
  readonly createRevision: number;
  readonly modRevision: number;
}

/** Per-family address bookkeeping of a network. */
export interface FamilyState {
  readonly family: Family;
  readonly cidr: Cidr;
  readonly blockPrefix: number;
  /** Addresses never handed out: network address, IPv4 broadcast, gateways. */
  readonly reserved: Set<bigint>;
  /** Address -> container id of the endpoint holding it. */
  readonly used: Map<bigint, string>;
  /** Block base -> block. */
  readonly blocks: Map<bigint, Entry<BlockRecord>>;
}

export interface NetworkState {
  readonly entry: Entry<NetworkRecord>;
  readonly v4: FamilyState;
  readonly v6: FamilyState | null;
  readonly blocks: Map<string, Entry<BlockRecord>>; // by cidr text
  readonly exceptions: Map<string, Entry<ExceptionRecord>>; // by address text
  readonly endpoints: Map<string, Entry<EndpointRecord>>; // by container id
  readonly names: Map<string, string>; // endpoint name -> container id
  /** DNS name (derived, hostname, alias) -> container ids answering to it. */
  readonly dnsNames: Map<string, Set<string>>;
  readonly macs: Map<string, string>; // mac -> container id
  readonly policies: Map<string, Entry<PolicyRecord>>; // by name
  /** Per host: endpoint count, block cidrs, exception addresses. */
  readonly hostEndpoints: Map<string, number>;
  readonly hostBlocks: Map<string, Set<string>>;
  readonly hostExceptions: Map<string, Set<string>>;
}

function familyState(cidrText: string, blockPrefix: number, gateways: string[]): FamilyState {
  const cidr = parseCidr(cidrText);
  const reserved = new Set<bigint>([cidr.base]);
  if (cidr.family === 4) reserved.add(cidrLast(cidr));
  for (const g of gateways) {
    const ip = parseIp(g);
    if (ip.family === cidr.family) reserved.add(ip.value);
  }
  return { family: cidr.family, cidr, blockPrefix, reserved, used: new Map(), blocks: new Map() };
}

function addToSet(map: Map<string, Set<string>>, k: string, v: string): void {
  let s = map.get(k);
  if (!s) map.set(k, (s = new Set()));
  s.add(v);
}

function removeFromSet(map: Map<string, Set<string>>, k: string, v: string): void {
  const s = map.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) map.delete(k);
}

/** The whole cluster as the controller sees it. */
/** Parents first: networks and hosts before what lives in them. */
const KEY_ORDER = ['networks/', 'hosts/', 'blocks/', 'exceptions/', 'endpoints/', 'policies/'];
const rank = (k: string): number => KEY_ORDER.findIndex((p) => k.startsWith(p));

export class ClusterState {
  readonly networks = new Map<string, NetworkState>();
  readonly hosts = new Map<string, Entry<HostRecord>>();
  readonly vnis = new Map<number, string>();
  /** Host -> networks where it has at least one endpoint. */
  readonly hostNetworks = new Map<string, Set<string>>();
  /** Bumped whenever any host joins or leaves a network (lets readers cache networksOf). */
  membershipVersion = 0;

  /** Forgets everything (before reloading from the store). */
  clear(): void {
    this.membershipVersion++;
    this.networks.clear();
    this.hosts.clear();
    this.vnis.clear();
    this.hostNetworks.clear();
  }

  /** Family state of a network for an address family, or null (IPv6 on a v4-only network). */
  family(net: NetworkState, family: Family): FamilyState | null {
    return family === 4 ? net.v4 : net.v6;
  }

  /** The block of `fam` containing `value`, if leased. */
  blockContaining(fam: FamilyState, value: bigint): Entry<BlockRecord> | undefined {
    return fam.blocks.get(value & prefixMask(fam.family, fam.blockPrefix));
  }

  /** Replaces everything with these keys (the store's, or a snapshot of another state). */
  load(all: KeyValue[]): void {
    this.clear();
    for (const kv of [...all].sort((a, b) => rank(a.key) - rank(b.key))) this.apply(kv.key, kv.value, kv.createRevision, kv.modRevision);
  }

  /**
   * Another writer's changes of one revision (a follower following etcd): puts parents first,
   * deletions children first, whatever order they came in.
   */
  applyChanges(changes: readonly { key: string; value: unknown }[], createRevision: (key: string) => number, revision: number): void {
    const puts = changes.filter((c) => c.value !== null).sort((a, b) => rank(a.key) - rank(b.key));
    const deletes = changes.filter((c) => c.value === null).sort((a, b) => rank(b.key) - rank(a.key));
    for (const c of deletes) this.apply(c.key, null, 0, revision);
    for (const c of puts) this.apply(c.key, c.value, createRevision(c.key), revision);
  }

  /** Networks the host has endpoints in (empty set if none). */
  networksOf(host: string): ReadonlySet<string> {
    return this.hostNetworks.get(host) ?? EMPTY;
  }

  /**
   * Applies one committed store op at `revision`; a put of an existing key keeps its create
   * revision (as the store does).
   */
  applyOp(op: StoreOp, revision: number): void {
    if (op.type === 'delete') return this.apply(op.key, null, 0, revision);
    this.apply(op.key, op.value, this.createRevisionOf(op.key) || revision, revision);
  }

  private createRevisionOf(key: string): number {
    return this.entryOf(key)?.createRevision ?? 0;
  }

  /** The live entry of a store key, if any. */
  private entryOf(key: string): Entry<unknown> | undefined {
    const { kind, name, rest } = parseKey(key);
    if (kind === 'networks') return this.networks.get(name)?.entry;
    if (kind === 'hosts') return this.hosts.get(name);
    const net = this.networks.get(name);
    if (!net) return undefined;
    if (kind === 'endpoints') return net.endpoints.get(rest);
    if (kind === 'blocks') return net.blocks.get(rest);
    if (kind === 'policies') return net.policies.get(rest);
    return net.exceptions.get(rest);
  }

  /**
   * Rewrites the revisions of these keys' live entries through `real` (provisional revisions a
   * batch was applied at -> those the store committed it at); values and indexes stay.
   */
  restamp(keys: Iterable<string>, real: (provisional: number) => number): void {
    for (const key of keys) {
      const e = this.entryOf(key);
      if (e) this.apply(key, e.rec, real(e.createRevision), real(e.modRevision));
    }
  }

  /** Applies one store key change (value null = deleted). */
  apply(key: string, value: unknown, createRevision: number, modRevision: number): void {
    const { kind, name, rest } = parseKey(key);
    switch (kind) {
      case 'networks':
        return value === null ? this.deleteNetwork(name) : this.putNetwork(value as NetworkRecord, createRevision, modRevision);
      case 'hosts':
        if (value === null) this.hosts.delete(name);
        else this.hosts.set(name, { rec: value as HostRecord, createRevision, modRevision });
        return;
      case 'blocks':
        return this.applyBlock(name, rest, value as BlockRecord | null, createRevision, modRevision);
      case 'exceptions':
        return this.applyException(name, rest, value as ExceptionRecord | null, createRevision, modRevision);
      case 'endpoints':
        return this.applyEndpoint(name, rest, value as EndpointRecord | null, createRevision, modRevision);
      case 'policies': {
        const net = this.networks.get(name);
        if (!net) return;
        if (value === null) net.policies.delete(rest);
        else net.policies.set(rest, { rec: value as PolicyRecord, createRevision, modRevision });
        return;
      }
      default:
        throw new Error(`unknown store key ${key}`);
    }
  }

  private putNetwork(rec: NetworkRecord, createRevision: number, modRevision: number): void {
    const old = this.networks.get(rec.name);
    const entry = { rec, createRevision, modRevision };
    if (old) {
      // Only mutable attributes change (definition updates keep CIDRs); keep the indexes.
      this.vnis.delete(old.entry.rec.vni);
      this.vnis.set(rec.vni, rec.name);
      this.networks.set(rec.name, { ...old, entry });
      return;
    }
    this.vnis.set(rec.vni, rec.name);
    this.networks.set(rec.name, {
      entry,
      v4: familyState(rec.ipv4Cidr, rec.ipv4BlockPrefix, rec.gateways),
      v6: rec.ipv6Cidr ? familyState(rec.ipv6Cidr, rec.ipv6BlockPrefix, rec.gateways) : null,
      blocks: new Map(),
      exceptions: new Map(),
      endpoints: new Map(),
      names: new Map(),
      dnsNames: new Map(),
      macs: new Map(),
      policies: new Map(),
      hostEndpoints: new Map(),
      hostBlocks: new Map(),
      hostExceptions: new Map(),
    });
  }

  private deleteNetwork(name: string): void {
    const net = this.networks.get(name);
    if (!net) return;
    for (const host of net.hostEndpoints.keys()) this.hostNetworks.get(host)?.delete(name);
    this.membershipVersion++;
    this.vnis.delete(net.entry.rec.vni);
    this.networks.delete(name);
  }

  private applyBlock(network: string, cidr: string, rec: BlockRecord | null, c: number, m: number): void {
    const net = this.networks.get(network);
    if (!net) return;
    const parsed = parseCidr(cidr);
    const fam = parsed.family === 4 ? net.v4 : net.v6;
    const old = net.blocks.get(cidr);
    if (old) removeFromSet(net.hostBlocks, old.rec.host, cidr);
    if (rec === null) {
      net.blocks.delete(cidr);
      fam?.blocks.delete(parsed.base);
      return;
    }
    const entry = { rec, createRevision: c, modRevision: m };
    net.blocks.set(cidr, entry);
    fam?.blocks.set(parsed.base, entry);
    addToSet(net.hostBlocks, rec.host, cidr);
  }

  private applyException(network: string, address: string, rec: ExceptionRecord | null, c: number, m: number): void {
    const net = this.networks.get(network);
    if (!net) return;
    const old = net.exceptions.get(address);
    if (old) removeFromSet(net.hostExceptions, old.rec.host, address);
    if (rec === null) {
      net.exceptions.delete(address);
      return;
    }
    net.exceptions.set(address, { rec, createRevision: c, modRevision: m });
    addToSet(net.hostExceptions, rec.host, address);
  }

  private applyEndpoint(network: string, id: string, rec: EndpointRecord | null, c: number, m: number): void {
    const net = this.networks.get(network);
    if (!net) return;
    const old = net.endpoints.get(id);
    if (old) {
      const o = old.rec;
      net.v4.used.delete(parseIp(o.ipv4).value);
      if (o.ipv6 && net.v6) net.v6.used.delete(parseIp(o.ipv6).value);
      net.names.delete(o.name);
      for (const n of endpointDnsNames(o)) removeFromSet(net.dnsNames, n, id);
      net.macs.delete(o.mac);
      const n = (net.hostEndpoints.get(o.host) ?? 1) - 1;
      if (n > 0) net.hostEndpoints.set(o.host, n);
      else {
        net.hostEndpoints.delete(o.host);
        this.hostNetworks.get(o.host)?.delete(network);
        this.membershipVersion++;
      }
      net.endpoints.delete(id);
    }
    if (rec === null) return;
    net.endpoints.set(id, { rec, createRevision: c, modRevision: m });
    net.v4.used.set(parseIp(rec.ipv4).value, id);
    if (rec.ipv6 && net.v6) net.v6.used.set(parseIp(rec.ipv6).value, id);
    net.names.set(rec.name, id);
    for (const n of endpointDnsNames(rec)) addToSet(net.dnsNames, n, id);
    net.macs.set(rec.mac, id);
    net.hostEndpoints.set(rec.host, (net.hostEndpoints.get(rec.host) ?? 0) + 1);
    let nets = this.hostNetworks.get(rec.host);
    if (!nets) this.hostNetworks.set(rec.host, (nets = new Set()));
    if (!nets.has(network)) {
      nets.add(network);
      this.membershipVersion++;
    }
  }
}

const EMPTY: ReadonlySet<string> = new Set();

/** Every DNS name an endpoint answers to in its network: derived from its name, its hostname, its aliases. */
export function endpointDnsNames(rec: Pick<EndpointRecord, 'name' | 'hostname' | 'aliases' | 'hostGateway'>): string[] {
  if (rec.hostGateway) return [];
  return [...new Set([dnsName(rec.name), ...(rec.hostname ? [rec.hostname] : []), ...(rec.aliases ?? [])])];
}
