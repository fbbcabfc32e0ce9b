/**
 * loomctl's policy syntax, pure: ports (`22`, `8000-8080`, `53/udp`), protocols, labels
 * (`app=web`), and the policy a `link` stands for. Errors are UsageErrors naming the input.
 */
import type { PolicyPeer, Policy, PortRange, Protocol } from '../api/types.js';
import { UsageError } from './args.js';

export type ProtocolName = 'tcp' | 'udp' | 'icmp' | 'any';

export function protocolOf(name: string): Protocol {
  switch (name.toLowerCase()) {
    case 'tcp':
      return 'PROTOCOL_TCP';
    case 'udp':
      return 'PROTOCOL_UDP';
    case 'icmp':
    case 'icmp6':
    case 'icmpv6':
      return 'PROTOCOL_ICMP';
    case 'any':
    case '':
      return 'PROTOCOL_UNSPECIFIED';
    default:
      throw new UsageError(`protocol "${name}" is not tcp, udp, icmp or any`);
  }
}

function portNumber(text: string, spec: string): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n < 1 || n > 65535) throw new UsageError(`port "${spec}": ${text} is not a port number 1..65535`);
  return n;
}

/** `22`, `8000-8080`, `22/tcp`, `53/udp`, `8000-8080/tcp`: the range and the protocol if named. */
export function parsePortSpec(spec: string): { range: PortRange; protocol?: Protocol } {
  const [ports = '', proto, extra] = spec.split('/');
  if (extra !== undefined) throw new UsageError(`port "${spec}" is not like 22, 8000-8080 or 53/udp`);
  const [a = '', b] = ports.split('-');
  const first = portNumber(a, spec);
  const last = b === undefined ? first : portNumber(b, spec);
  if (last < first) throw new UsageError(`port range "${spec}" ends before it starts`);
  const protocol = proto === undefined ? undefined : protocolOf(proto);
  if (protocol !== undefined && protocol !== 'PROTOCOL_TCP' && protocol !== 'PROTOCOL_UDP') throw new UsageError(`port "${spec}": only tcp and udp have ports`);
  return { range: { first, last: last === first ? 0 : last }, protocol };
}

/** Port specs sharing one protocol (tcp when none is named); the protocol and the ranges. */
export function parsePorts(specs: string[], protocolFlag?: string): { protocol: Protocol; ports: PortRange[] } {
  let protocol: Protocol | undefined = protocolFlag === undefined ? undefined : protocolOf(protocolFlag);
  const ports: PortRange[] = [];
  for (const s of specs) {
    const p = parsePortSpec(s);
    if (p.protocol && protocol && p.protocol !== protocol && protocolFlag === undefined) throw new UsageError(`ports ${specs.join(', ')} mix protocols; one policy has one protocol`);
    if (p.protocol && protocol && p.protocol !== protocol) throw new UsageError(`port "${s}" contradicts --protocol ${protocolFlag}`);
    protocol = p.protocol ?? protocol;
    ports.push(p.range);
  }
  if (ports.length > 0 && protocol === undefined) protocol = 'PROTOCOL_TCP';
  return { protocol: protocol ?? 'PROTOCOL_UNSPECIFIED', ports };
}

/** `key=value` pairs into a selector. */
export function parseLabels(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new UsageError(`label "${p}" is not like app=web`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

export function peer(endpoints: string[] = [], labels: string[] = [], cidrs: string[] = [], outside = false): PolicyPeer {
  return { endpoints, labels: parseLabels(labels), cidrs, ...(outside ? { outside } : {}) };
}

/** `--from outside`: the only source named by a word (the host path: published ports). */
export function fromWord(word: string | undefined): boolean {
  if (word === undefined) return false;
  if (word !== 'outside') throw new UsageError(`--from "${word}": the only source word is "outside" (traffic entering through the host's gateway port); name endpoints with --from-endpoint, --from-label, --from-cidr`);
  return true;
}

/**
 * What Docker's `--link server` means on an isolated network: the client may open connections
 * to the server's exposed ports (and the replies come back); nothing else is opened, and the
 * server may not open connections to the client.
 */
export function linkPolicy(network: string, client: string, server: string, portSpecs: string[], name?: string): Partial<Policy> {
  if (portSpecs.length === 0) throw new UsageError('link needs --port N[/tcp|udp] (the server port the client may open)');
  const { protocol, ports } = parsePorts(portSpecs);
  const proto = protocol.replace('PROTOCOL_', '').toLowerCase();
  const portText = ports.map((p) => (p.last ? `${p.first}-${p.last}` : String(p.first))).join('_');
  return {
    network,
    name: name ?? `link.${client}.${server}.${proto}${portText}`,
    from: peer([client]),
    to: peer([server]),
    protocol,
    ports,
  };
}
