/**
 * Special-purpose address ranges (RFC 6890 and the RFCs it lists) that can be neither an overlay
 * network nor a tunnel endpoint, and the checks the controller and the agent make with them.
 */
import { cidrContains, cidrOverlaps, parseCidr, type Cidr, type IpAddr } from './ip.js';

interface Reserved {
  cidr: Cidr;
  text: string;
  what: string;
}

const reserved = (text: string, what: string): Reserved => ({ cidr: parseCidr(text), text, what });

/** Ranges no overlay network may overlap. */
const NETWORK_RESERVED: readonly Reserved[] = [
  reserved('0.0.0.0/8', '"this network" (RFC 1122)'),
  reserved('127.0.0.0/8', 'loopback (RFC 1122)'),
  reserved('169.254.0.0/16', 'link-local (RFC 3927)'),
  reserved('224.0.0.0/4', 'multicast (RFC 5771)'),
  reserved('240.0.0.0/4', 'reserved, with the limited broadcast 255.255.255.255 (RFC 1112, RFC 919)'),
  reserved('::/128', 'the unspecified address (RFC 4291)'),
  reserved('::1/128', 'loopback (RFC 4291)'),
  reserved('::ffff:0:0/96', 'IPv4-mapped (RFC 4291)'),
  reserved('fe80::/10', 'link-local (RFC 4291)'),
  reserved('ff00::/8', 'multicast (RFC 4291)'),
];

/**
 * Ranges a VTEP may not lie in. Not in this list, on purpose: IPv4 link-local (169.254.0.0/16).
 * RFC 3927 lets hosts on one link talk with such addresses, and a VTEP on a flat layer-2
 * underlay may well have one; OVS tunnels to it like to any IPv4 address. IPv6 link-local is
 * refused: such an address means nothing without a zone (interface), and neither the API nor
 * OVS's remote_ip can carry one.
 */
const VTEP_RESERVED: readonly Reserved[] = [
  reserved('0.0.0.0/8', 'unspecified ("this network", RFC 1122)'),
  reserved('127.0.0.0/8', 'loopback (RFC 1122)'),
  reserved('224.0.0.0/4', 'multicast (RFC 5771)'),
  reserved('240.0.0.0/4', 'reserved or broadcast (RFC 1112, RFC 919)'),
  reserved('::/128', 'unspecified (RFC 4291)'),
  reserved('::1/128', 'loopback (RFC 4291)'),
  reserved('::ffff:0:0/96', 'IPv4-mapped (RFC 4291); give the IPv4 address itself'),
  reserved('fe80::/10', 'IPv6 link-local (RFC 4291): it needs a zone, which a tunnel endpoint cannot carry'),
  reserved('ff00::/8', 'multicast (RFC 4291)'),
];

/** The reserved range a network overlaps, as "<range>, <what>", or undefined. */
export function reservedNetworkOverlap(c: Cidr): string | undefined {
  const r = NETWORK_RESERVED.find((x) => x.cidr.family === c.family && cidrOverlaps(x.cidr, c));
  return r && `${r.text}, ${r.what}`;
}

/** Why `ip` cannot be a tunnel endpoint ("is in <range>, <what>"), or undefined. */
export function vtepAddressProblem(ip: IpAddr): string | undefined {
  const r = VTEP_RESERVED.find((x) => x.cidr.family === ip.family && cidrContains(x.cidr, ip.family, ip.value));
  return r && `is in ${r.text}, ${r.what}`;
}
