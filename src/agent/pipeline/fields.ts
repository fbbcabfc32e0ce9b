// Register bits, cookie fields and table numbers of the agent's OpenFlow pipeline: the one place
// that names them (as Antrea's fields.go does). docs/architecture.md draws the same layout.
import { bytesToMac } from '../../common/ip.js';
import type { FieldRef, Instruction, MatchField } from '../../openflow/types.js';

/** Tables, in the order a packet visits them. Gaps leave room for features to come. */
export const Table = {
  /** Where did the packet come from: a local endpoint port, a tunnel port, or something else (drop). */
  Classifier: 0,
  /** A local endpoint may only send with its own MAC and addresses. */
  SpoofGuard: 10,
  /** Answers ARP and IPv6 neighbour solicitations for the network's gateway; nothing is flooded. */
  ArpNd: 20,
  /** Routes by destination address within the packet's network: local delivery or a tunnel. */
  L3Forwarding: 30,
  /** Allows or drops the routed packet (network isolation is built into the match on the VNI). */
  Policy: 40,
  /** Sends the packet to the port L3Forwarding chose. */
  Output: 50,
  /** --nat-path ovs (ovs-nat.ts): destinations that stay on the kernel path, else conntrack in NAT_ZONE. */
  NatConntrack: 60,
  /** --nat-path ovs: by connection state: replies of published ports, established, new (SYN / UDP), else the kernel path. */
  NatState: 61,
  /** --nat-path ovs: the next hop's MAC by destination (the underlay's routes and neighbours), else the kernel path. */
  NatNextHop: 62,
  /** --nat-path ovs: commits a new connection with SNAT to the VTEP address, out through the patch port. */
  NatCommit: 63,
} as const;
export type TableId = (typeof Table)[keyof typeof Table];

/** reg0[0..3]: where the packet entered the bridge. Bit 0 set: it entered on this host. */
export const SourceReg = { field: 'reg', index: 0, ofs: 0, nBits: 4 } as const satisfies FieldRef;
export const Source = { LocalEndpoint: 1, Tunnel: 2, GatewayPort: 3 } as const;

/** reg1[0..23]: the VNI of the packet's network, from the ingress port or the tunnel key. */
export const VniReg = { field: 'reg', index: 1, ofs: 0, nBits: 24 } as const satisfies FieldRef;

/** reg2: the OpenFlow port the packet leaves by (a local endpoint or a tunnel port). */
export const OutPortReg = { field: 'reg', index: 2, ofs: 0, nBits: 32 } as const satisfies FieldRef;

/**
 * reg0[4..5], --nat-path ovs: set on an endpoint's IPv4 packet to the outside (the host path's
 * catch-all). Bit 4: replies of published ports and established NAT connections may leave through
 * the patch port; bit 5 too: the network's egress is NAT, a new connection may be committed.
 */
export const NatReg = { field: 'reg', index: 0, ofs: 4, nBits: 2 } as const satisfies FieldRef;
export const NatMode = { RepliesOnly: 1, Egress: 3 } as const;
export function matchNatMode(mode: number): MatchField {
  return { field: 'reg', index: NatReg.index, value: mode << NatReg.ofs, mask: 0x3 << NatReg.ofs };
}
export function matchNatPath(): MatchField {
  return { field: 'reg', index: NatReg.index, value: 1 << NatReg.ofs, mask: 1 << NatReg.ofs };
}

/**
 * Tables of the underlay bridge (br-phy) that --nat-path ovs uses. Its table 0 gets only
 * high-priority flows for TCP/UDP to the VTEP address in the SNAT range or a published port; the
 * operator's flows (NORMAL) handle the rest as before.
 */
export const PhyTable = {
  Classifier: 0,
  /** Replies to SNATed connections, after un-NAT: +est into the patch port. */
  NatReply: 201,
  /** Published ports from allowed sources: DNAT committed, the client's MAC kept in ct_label. */
  Publish: 202,
  /**
   * After the commit, recirculated: into the patch port. (OVS translates a patch port's far side
   * in the same pass: without the recirculation br-int would see the address before DNAT.)
   */
  PublishOut: 203,
} as const;

/** Conntrack zone of --nat-path ovs (SNAT and published ports); ctZone() never gives it to a network. */
export const NAT_ZONE = 0xfffe;

export function matchSource(source: number): MatchField {
  return { field: 'reg', index: SourceReg.index, value: source, mask: 0xf };
}
/** A local endpoint or the host's gateway port: what may enter a tunnel. */
export function matchFromThisHost(): MatchField {
  return { field: 'reg', index: SourceReg.index, value: 1, mask: 0x1 };
}
export function matchVni(vni: number): MatchField {
  return { field: 'reg', index: VniReg.index, value: vni, mask: 0xffffff };
}
/** The classifier's verdict: where the packet came from and which network it belongs to. */
export function classify(source: number, vni: number, next: TableId): Instruction[] {
  return [
    {
      type: 'apply_actions',
      actions: [
        { type: 'load', dst: SourceReg, value: source },
        { type: 'load', dst: VniReg, value: vni },
      ],
    },
    { type: 'goto_table', table: next },
  ];
}

export function matchOutPort(port: number): MatchField {
  return { field: 'reg', index: OutPortReg.index, value: port };
}

/**
 * Cookie layout (64 bits):
 *   [63..48] generation: bumped at every agent start; old-generation flows are removed only after
 *            the new generation is installed, so an agent restart loses no packet.
 *   [47..40] feature that owns the flow (Feature below).
 *   [39..0]  object: VNI for network-wide flows, OpenFlow port for per-endpoint flows, 0 otherwise.
 * The host path's flows are network-wide (object = VNI) or, for the port's output flow, 0.
 */
export const Feature = {
  Base: 1,
  Connectivity: 2,
  SpoofGuard: 3,
  ArpNd: 4,
  Tunnel: 5,
  Policy: 6,
  /** The gateway port to the host's own stack (host path, egress, published ports): host-path.ts. */
  HostPath: 7,
  /** UDP to a network's gateway on port 53, to the agent's resolver: dns.ts. */
  Dns: 8,
  /** Network policy (isolation, allow rules): object = conjunction id of a rule, DENY_OBJECT | VNI, INVALID_OBJECT | VNI, or the VNI. */
  NetworkPolicy: 9,
  /** Short-lived observation flows of a live trace (live-trace.ts): object = DSCP << 8 | outcome. */
  Trace: 10,
  /** --nat-path ovs (ovs-nat.ts), in br-int and br-phy: object = VNI for per-network flows, else 0. */
  OvsNat: 11,
} as const;
export type FeatureId = (typeof Feature)[keyof typeof Feature];

export const GENERATION_MASK = 0xffff_0000_0000_0000n;
export const FEATURE_MASK = 0x0000_ff00_0000_0000n;
export const OBJECT_MASK = 0x0000_00ff_ffff_ffffn;

export function cookie(generation: number, feature: FeatureId, object: number | bigint = 0): bigint {
  if (generation < 0 || generation > 0xffff) throw new RangeError(`generation ${generation} out of 16 bits`);
  return (BigInt(generation) << 48n) | (BigInt(feature) << 40n) | (BigInt(object) & OBJECT_MASK);
}

export function cookieGeneration(c: bigint): number {
  return Number((c & GENERATION_MASK) >> 48n);
}

export function cookieFeature(c: bigint): number {
  return Number((c & FEATURE_MASK) >> 40n);
}

/** The gateway's MAC in a network: locally administered, 02:4c (Loom) then the 24-bit VNI. */
export function gatewayMac(vni: number): string {
  return bytesToMac(Uint8Array.of(0x02, 0x4c, 0x00, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff));
}

/** OpenFlow meter of the denied-attempts log (--log-denied): bounds the deny flows' packet-ins. */
export const DENIED_LOG_METER = 1;

/** Cookie object of an isolated network's default-deny flow: bit 39 set, then the VNI. */
export const DENY_OBJECT = 1n << 39n;
/** Cookie object of an isolated network's flow that drops invalid packets: bit 38 set, then the VNI. */
export const INVALID_OBJECT = 1n << 38n;

/**
 * Conntrack zone of a network: its VNI's low 16 bits (zones are 16 bits wide, VNIs 24). Two
 * networks on one host share a zone only when their VNIs agree in those bits; their connections
 * then still differ unless their address ranges overlap too. Zone 0 (the default zone) and NAT_ZONE are avoided (both become 0xffff).
 */
export function ctZone(vni: number): number {
  const zone = vni & 0xffff;
  return zone === 0 || zone === NAT_ZONE ? 0xffff : zone;
}
