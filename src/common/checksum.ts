// The Internet checksum (RFC 1071) and the pseudo-header TCP, UDP and ICMPv6 checksums cover: for
// the packets agents build themselves (ND answers, DNS answers, live trace probes).

/** Ones'-complement sum of 16-bit words over `parts` (each of even length but the last), folded and complemented. */
export function internetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  for (const b of parts) {
    for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The pseudo-header of an upper-layer checksum: IPv4 (RFC 768, 793) or IPv6 (RFC 8200 8.1) by the address length. */
export function pseudoHeader(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): Buffer {
  if (src.length === 4) {
    const p = Buffer.alloc(12);
    p.set(src, 0);
    p.set(dst, 4);
    p[9] = protocol;
    p.writeUInt16BE(length, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  p.set(src, 0);
  p.set(dst, 16);
  p.writeUInt32BE(length, 32);
  p[39] = protocol;
  return p;
}
