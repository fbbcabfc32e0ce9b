/**
 * What a policy rule names, decided the same way by the controller (`policy explain`) and the
 * agent (compiling rules to flows): an endpoint is named by its name or by carrying every label
 * of a non-empty selector; a source address by a CIDR.
 */
import { cidrContains, parseCidr, tryParseIp } from '../common/ip.js';

export interface PeerSpec {
  endpoints: readonly string[];
  labels: Readonly<Record<string, string>>;
  cidrs: readonly string[];
  /** Sources only: what enters the network through a host's gateway port (the host path). */
  outside?: boolean;
}

export interface NamedEndpoint {
  name: string;
  labels?: Readonly<Record<string, string>>;
}

/** Whether every pair of a non-empty selector is among the endpoint's labels. */
export function labelsMatch(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>> | undefined): boolean {
  const pairs = Object.entries(selector);
  if (pairs.length === 0) return false;
  return pairs.every(([k, v]) => labels?.[k] === v);
}

/** Whether `peer` names this endpoint (by name or labels; CIDRs are matched on addresses). */
export function peerSelects(peer: PeerSpec, ep: NamedEndpoint): boolean {
  return peer.endpoints.includes(ep.name) || labelsMatch(peer.labels, ep.labels);
}

/** Whether one of `peer`'s CIDRs contains `address`. */
export function cidrsContain(peer: PeerSpec, address: string): boolean {
  const ip = tryParseIp(address);
  if (!ip) return false;
  return peer.cidrs.some((c) => {
    const cidr = parseCidr(c, false);
    return cidr.family === ip.family && cidrContains(cidr, ip.family, ip.value);
  });
}

/**
 * Splits ports first..last into value/mask pairs a switch can match (each mask a run of high
 * bits): the fewest aligned blocks that cover exactly the range.
 */
export function portMasks(first: number, last: number): { value: number; mask: number }[] {
  const out: { value: number; mask: number }[] = [];
  let p = first;
  while (p <= last) {
    let size = 1;
    // Grow the block while it stays aligned and inside the range.
    while (size < 0x10000 && p % (size * 2) === 0 && p + size * 2 - 1 <= last) size *= 2;
    out.push({ value: p, mask: 0xffff & ~(size - 1) });
    p += size;
  }
  return out;
}
