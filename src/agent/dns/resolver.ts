// Answers a container's DNS query: endpoint names of the asker's networks from the directory
// (A, AAAA, PTR), NXDOMAIN for other names under Loom's zones, everything else forwarded upstream
// (SERVFAIL when no upstream answers). Wire format by dns-packet.
import * as dnsPacket from 'dns-packet';
import { DnsDirectory, type Lookup } from './directory.js';
import { forward, DEFAULT_UPSTREAM, type UpstreamOptions } from './upstream.js';

/** Who asks: the networks whose names it may see, and where other names go. */
export interface DnsScope {
  networks: readonly string[];
  upstreams: readonly string[];
  /** The asker's interface MTU (UDP answers must fit it unfragmented); default 1500. */
  mtu?: number;
}

export interface DnsMetrics {
  observe(rcode: string, source: 'local' | 'forwarded' | 'error', seconds: number): void;
}

/** Answers for endpoints are short-lived: they come and go with containers. */
export const LOCAL_TTL = 5;
const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
/** Encoded local answers kept, by scope, name and type; cleared when the directory changes. */
const MAX_CACHED = 50_000;

export class DnsResolver {
  private directory = new DnsDirectory([], []);
  private readonly cache = new Map<string, Buffer>();

  constructor(
    private readonly metrics?: DnsMetrics,
    private readonly upstream: UpstreamOptions = DEFAULT_UPSTREAM,
  ) {}

  /** Replaces the names answered (on every view change). */
  setDirectory(d: DnsDirectory): void {
    this.directory = d;
    this.cache.clear();
  }

  /** The answer to one query message, or undefined when it cannot even be answered with an error. */
  async handle(query: Buffer, scope: DnsScope): Promise<Buffer | undefined> {
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    if (query.length < 12) return undefined; // not even a header to answer
    const cached = this.answerFromCache(query, scope);
    if (cached) return cached;
    const cacheKey = this.cacheKey(query, scope);
    let packet: dnsPacket.Packet;
    try {
      packet = dnsPacket.decode(query);
    } catch {
      return this.error(query, RCODE.FORMERR, seconds);
    }
    if (packet.type !== 'query' || (packet.flags ?? 0) & 0x7800) return this.error(query, RCODE.NOTIMP, seconds);
    const q = packet.questions?.[0];
    if (!q || packet.questions!.length !== 1) return this.error(query, RCODE.FORMERR, seconds);
    const found = this.directory.lookup(q.name, q.type, scope.networks);
    if (found.kind === 'forward') {
      try {
        const answer = await forward(query, scope.upstreams, this.upstream);
        this.metrics?.observe(rcodeName(answer), 'forwarded', seconds());
        return answer;
      } catch {
        return this.error(query, RCODE.SERVFAIL, seconds);
      }
    }
    const answer = this.local(packet, q, found);
    if (cacheKey && this.cache.size < MAX_CACHED) this.cache.set(cacheKey, answer);
    this.metrics?.observe(rcodeName(answer), 'local', seconds());
    return answer;
  }

  /**
   * The fast path, synchronous: a plain query for a local name answered before, from the encoded
   * answer with the asker's ID and RD flag. Undefined when the full path must run.
   */
  answerFromCache(query: Buffer, scope: DnsScope): Buffer | undefined {
    if (query.length < 12) return undefined;
    const key = this.cacheKey(query, scope);
    const cached = key === undefined ? undefined : this.cache.get(key);
    if (!cached) return undefined;
    const answer = Buffer.from(cached);
    query.copy(answer, 0, 0, 2); // the asker's ID
    answer.writeUInt16BE((answer.readUInt16BE(2) & ~FLAG_RD) | (query.readUInt16BE(2) & FLAG_RD), 2);
    this.metrics?.observe(rcodeName(answer), 'local', 0);
    return answer;
  }

  private local(packet: dnsPacket.Packet, q: dnsPacket.Question, found: Exclude<Lookup, { kind: 'forward' }>): Buffer {
    const answers: dnsPacket.Answer[] =
      found.kind === 'local'
        ? found.addresses.map((data) => ({ type: q.type === 'AAAA' ? 'AAAA' : 'A', name: q.name, class: 'IN', ttl: LOCAL_TTL, data }) as dnsPacket.Answer)
        : found.kind === 'ptr'
          ? found.names.map((data) => ({ type: 'PTR', name: q.name, class: 'IN', ttl: LOCAL_TTL, data }) as dnsPacket.Answer)
          : [];
    const rcode = found.kind === 'nxdomain' ? RCODE.NXDOMAIN : RCODE.NOERROR;
    return dnsPacket.encode({
      type: 'response',
      id: packet.id ?? 0,
      flags: FLAG_AA | FLAG_RA | ((packet.flags ?? 0) & FLAG_RD) | rcode,
      questions: [q],
      answers,
    });
  }

  /** An error answer that echoes the header and, if it parses, the question. */
  private error(query: Buffer, rcode: number, seconds: () => number): Buffer {
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2);
    header.writeUInt16BE(FLAG_QR | FLAG_RA | (query.readUInt16BE(2) & (FLAG_RD | 0x7800)) | rcode, 2);
    this.metrics?.observe(rcodeName(header), rcode === RCODE.SERVFAIL ? 'forwarded' : 'error', seconds());
    return header;
  }

  /**
   * The cache key of a plain one-question query (no EDNS or other records): the scope, then the
   * question's bytes as sent (so a 0x20-randomised name is echoed as asked). Undefined for anything else, which takes the full path.
   */
  private cacheKey(query: Buffer, scope: DnsScope): string | undefined {
    // QDCOUNT 1, ANCOUNT/NSCOUNT/ARCOUNT 0, opcode QUERY, QR clear.
    if (query.readUInt16BE(4) !== 1 || query.readUInt32BE(6) !== 0 || query.readUInt16BE(10) !== 0 || query.readUInt16BE(2) & 0xf800) return undefined;
    return `${scope.networks.join(',')}|${query.toString('latin1', 12)}`;
  }
}

const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
function rcodeName(msg: Buffer): string {
  const code = msg.length >= 4 ? msg[3]! & 0x0f : 2;
  return RCODE_NAMES[code] ?? `RCODE${code}`;
}

/** The largest answer sent over UDP (DNS flag day 2020: 1232 bytes, no fragmentation); larger ones are truncated. */
export const MAX_UDP_ANSWER = 1232;
/** What a client without EDNS0 takes over UDP (RFC 1035 4.2.1). */
export const CLASSIC_UDP_ANSWER = 512;

/**
 * The largest UDP answer to `query`: 512 octets without EDNS0, else the payload size the client
 * advertised (RFC 6891 6.2.5: at least 512), at most `pathMax` (what reaches the client
 * unfragmented: its interface MTU less the IP and UDP headers). Larger answers go out truncated.
 */
export function udpAnswerLimit(query: Buffer, pathMax: number): number {
  // ARCOUNT 0: no OPT record, no decoding needed.
  if (query.length < 12 || query.readUInt16BE(10) === 0) return Math.min(CLASSIC_UDP_ANSWER, pathMax);
  let advertised: number;
  try {
    const opt = dnsPacket.decode(query).additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    advertised = opt?.udpPayloadSize ?? 0;
  } catch {
    advertised = 0; // undecodable: the resolver answers FORMERR, which fits anyway
  }
  return Math.min(Math.max(advertised, CLASSIC_UDP_ANSWER), Math.max(pathMax, CLASSIC_UDP_ANSWER));
}

/** `answer` as sent over UDP to `query`: whole when it fits the limit, else truncated. */
export function fitUdp(query: Buffer, answer: Buffer, pathMax: number): Buffer {
  if (answer.length <= CLASSIC_UDP_ANSWER && answer.length <= pathMax) return answer;
  return answer.length > udpAnswerLimit(query, pathMax) ? truncateAnswer(answer) : answer;
}

/** Header and question only, TC set: the client may retry over TCP. */
export function truncateAnswer(answer: Buffer): Buffer {
  let end = 12;
  const qd = answer.readUInt16BE(4);
  for (let i = 0; i < qd && end < answer.length; i++) {
    while (end < answer.length && answer[end] !== 0) {
      if ((answer[end]! & 0xc0) === 0xc0) {
        end += 1;
        break;
      }
      end += answer[end]! + 1;
    }
    end += 1 + 4;
  }
  const out = Buffer.from(answer.subarray(0, Math.min(end, answer.length)));
  out.writeUInt16BE(out.readUInt16BE(2) | 0x0200, 2);
  out.fill(0, 6, 12);
  return out;
}
