/**
 * Address management. A network's range is leased to hosts in blocks (default /26 for IPv4,
 * /120 for IPv6; more blocks on demand, a block is released when its last endpoint goes), so a
 * host's forwarding state is one route per block, not per endpoint. Endpoints get addresses
 * from their host's blocks. Exceptions, each a /32 or /128 route to the owning host:
 *  - a static address requested outside the host's blocks (even inside another host's block:
 *    the address is marked used, so the block owner never hands it out; longest prefix wins);
 *  - when no free block is left, an address borrowed from any free spot of the range.
 * IPv6 uses blocks exactly like IPv4 (rather than Docker's MAC-derived addresses, which would
 * scatter addresses and need a route per endpoint).
 * Functions here only read state and return store ops; the controller runs them one mutation
 * at a time, inside its commit queue, which is what rules out double allocation.
 */
import { cidrSize, formatIp, parseCidr, parseIp, tryParseIp, type Family } from '../common/ip.js';
import { alreadyExists, exhausted, invalid } from './errors.js';
import { keys, type EndpointRecord } from './model.js';
import type { ClusterState, FamilyState, NetworkState } from './state.js';
import type { StoreOp } from './store/types.js';

/** An address chosen for an endpoint plus the ops that lease it. */
export interface Allocation {
  value: bigint;
  address: string;
  ops: StoreOp[];
}

const familyName = (f: Family): string => (f === 4 ? 'IPv4' : 'IPv6');

/** How to pick a dynamic address: from the top of a block, and values taken in this mutation. */
export interface PickOptions {
  fromTop?: boolean;
  exclude?: ReadonlySet<bigint>;
}

function firstFree(fam: FamilyState, start: bigint, end: bigint, limit: number, pick: PickOptions = {}): bigint | null {
  let n = 0;
  const free = (v: bigint) => !fam.reserved.has(v) && !fam.used.has(v) && !pick.exclude?.has(v);
  if (pick.fromTop) {
    for (let v = end; v >= start && n <= limit; v--, n++) if (free(v)) return v;
    return null;
  }
  for (let v = start; v <= end && n <= limit; v++, n++) {
    if (free(v)) return v;
  }
  return null;
}

/** Explains why a static address cannot be used, or returns null when it can. */
function staticProblem(net: NetworkState, fam: FamilyState, value: bigint, text: string): Error | null {
  const name = net.entry.rec.name;
  const range = fam.family === 4 ? net.entry.rec.ipv4Cidr : net.entry.rec.ipv6Cidr;
  if (value < fam.cidr.base || value > fam.cidr.base + cidrSize(fam.cidr) - 1n) {
    return invalid(`address ${text} is outside network ${name}'s range ${range}`);
  }
  if (fam.reserved.has(value)) {
    const why = value === fam.cidr.base ? 'the network address' : net.entry.rec.gateways.includes(formatIp(fam.family, value)) ? 'the gateway' : 'the broadcast address';
    return invalid(`address ${text} is ${why} of network ${name} and cannot be assigned`);
  }
  const holder = fam.used.get(value);
  if (holder !== undefined) {
    return alreadyExists(`address ${text} is already in use by endpoint ${holder} on network ${name}`);
  }
  return null;
}

/**
 * Chooses an address of one family for a new endpoint of `host`: `requested` (static) or the
 * next free one in the host's blocks, leasing a new block or borrowing when needed.
 * Throws ApiError INVALID_ARGUMENT / ALREADY_EXISTS / RESOURCE_EXHAUSTED.
 */
export function allocateAddress(
  net: NetworkState,
  fam: FamilyState,
  host: string,
  containerId: string,
  requested?: string,
  pick: PickOptions = {},
): Allocation {
  const netName = net.entry.rec.name;
  const exceptionOp = (value: bigint): StoreOp => {
    const address = formatIp(fam.family, value);
    return { type: 'put', key: keys.exception(netName, address), value: { network: netName, address, host, containerId } };
  };
  const result = (value: bigint, ops: StoreOp[]): Allocation => ({ value, address: formatIp(fam.family, value), ops });

  if (requested) {
    const ip = tryParseIp(requested);
    if (ip === null) throw invalid(`"${requested}" is not a valid ${familyName(fam.family)} address`);
    if (ip.family !== fam.family) throw invalid(`"${requested}" is not an ${familyName(fam.family)} address`);
    const problem = staticProblem(net, fam, ip.value, requested);
    if (problem) throw problem;
    const block = fam.blocks.get(blockBase(fam, ip.value));
    return result(ip.value, block?.rec.host === host ? [] : [exceptionOp(ip.value)]);
  }

  const size = 1n << BigInt(bitsFor(fam) - fam.blockPrefix);
  // Scans stay short: every occupied candidate is accounted for by a used/reserved address.
  const scanLimit = fam.used.size + fam.reserved.size + (pick.exclude?.size ?? 0) + 1;
  for (const cidr of net.hostBlocks.get(host) ?? []) {
    const b = parseCidr(cidr);
    if (b.family !== fam.family) continue;
    const v = firstFree(fam, b.base, b.base + size - 1n, scanLimit, pick);
    if (v !== null) return result(v, []);
  }
  // Lease a new block: the first free aligned block of the range.
  const total = cidrSize(fam.cidr) / size;
  const maxCandidates = BigInt(fam.blocks.size + scanLimit);
  for (let i = 0n; i < total && i <= maxCandidates; i++) {
    const base = fam.cidr.base + i * size;
    if (fam.blocks.has(base)) continue;
    const v = firstFree(fam, base, base + size - 1n, scanLimit, pick);
    if (v === null) continue;
    const cidr = `${formatIp(fam.family, base)}/${fam.blockPrefix}`;
    return result(v, [{ type: 'put', key: keys.block(netName, cidr), value: { network: netName, cidr, host } }]);
  }
  // No block left: borrow any free address (it becomes an exception route).
  const v = firstFree(fam, fam.cidr.base, fam.cidr.base + cidrSize(fam.cidr) - 1n, scanLimit, { exclude: pick.exclude });
  if (v !== null) return result(v, [exceptionOp(v)]);
  throw exhausted(
    `network ${netName} has no free ${familyName(fam.family)} address left ` +
      `(${fam.used.size} endpoints in ${fam.family === 4 ? net.entry.rec.ipv4Cidr : net.entry.rec.ipv6Cidr})`,
  );
}

function bitsFor(fam: FamilyState): number {
  return fam.family === 4 ? 32 : 128;
}

function blockBase(fam: FamilyState, value: bigint): bigint {
  const hostBits = BigInt(bitsFor(fam) - fam.blockPrefix);
  return (value >> hostBits) << hostBits;
}

/**
 * Ops that free an endpoint's addresses: its exception routes, and the host's block when this
 * was the block's last endpoint of that host. (The endpoint key itself is the caller's.)
 */
export function releaseOps(state: ClusterState, net: NetworkState, ep: EndpointRecord, alsoLeaving: ReadonlySet<string> = new Set()): StoreOp[] {
  const ops: StoreOp[] = [];
  const netName = net.entry.rec.name;
  for (const text of [ep.ipv4, ep.ipv6]) {
    if (!text) continue;
    const ip = parseIp(text);
    const fam = state.family(net, ip.family);
    if (!fam) continue;
    if (net.exceptions.has(text)) ops.push({ type: 'delete', key: keys.exception(netName, text) });
    const block = state.blockContaining(fam, ip.value);
    if (!block || block.rec.host !== ep.host) continue;
    if (!blockHasOtherEndpoint(net, fam, blockBase(fam, ip.value), ep, alsoLeaving)) {
      ops.push({ type: 'delete', key: keys.block(netName, block.rec.cidr) });
    }
  }
  return ops;
}

function blockHasOtherEndpoint(net: NetworkState, fam: FamilyState, base: bigint, ep: EndpointRecord, leaving: ReadonlySet<string>): boolean {
  const size = 1n << BigInt(bitsFor(fam) - fam.blockPrefix);
  // Walk whichever is smaller: the block's addresses or the network's used addresses.
  if (BigInt(fam.used.size) < size) {
    for (const [v, id] of fam.used) {
      if (v >= base && v < base + size && id !== ep.containerId && !leaving.has(id) && net.endpoints.get(id)?.rec.host === ep.host) return true;
    }
    return false;
  }
  for (let v = base; v < base + size; v++) {
    const id = fam.used.get(v);
    if (id !== undefined && id !== ep.containerId && !leaving.has(id) && net.endpoints.get(id)?.rec.host === ep.host) return true;
  }
  return false;
}
