/** Turns transport replies into results or NetlinkErrors carrying the operation and subject. */
import { AddressError } from '../common/ip.js';
import { RTM_GETLINK, NLM_F_DUMP } from './codec/constants.js';
import { decodeLink, encodeLinkRequest, type Link } from './codec/link.js';
import type { NetlinkMessage } from './codec/message.js';
import { NetlinkError } from './errors.js';
import { type RtnetlinkTransport, TransportError } from './socket.js';

/** A link given by name or by index. */
export type LinkRef = string | number;

/** How often an interrupted dump (NLM_F_DUMP_INTR) is retried before giving up with EINTR. */
const DUMP_ATTEMPTS = 5;

export class Requester {
  constructor(readonly socket: RtnetlinkTransport) {}

  get netns(): string {
    return this.socket.netns;
  }

  /** Input the kernel would reject (or we cannot encode): EINVAL with the reason. */
  invalid(operation: string, subject: string | undefined, reason: string): NetlinkError {
    return new NetlinkError({ errno: 22, code: 'EINVAL', operation, netns: this.netns, detail: reason, ...(subject ? { subject } : {}) });
  }

  /** Runs an input-parsing step, turning TypeError/RangeError/AddressError into an EINVAL NetlinkError. */
  parse<T>(operation: string, subject: string | undefined, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof TypeError || err instanceof RangeError || err instanceof AddressError) {
        throw this.invalid(operation, subject, err.message);
      }
      throw err;
    }
  }

  /** One request that must succeed; returns the data messages of the reply. */
  async call(operation: string, subject: string | undefined, type: number, flags: number, payload: Buffer): Promise<NetlinkMessage[]> {
    const reply = await this.send(operation, subject, type, flags, payload);
    if (reply.status.errno !== 0) {
      throw NetlinkError.fromErrno(reply.status.errno, {
        operation,
        netns: this.netns,
        ...(subject ? { subject } : {}),
        ...(reply.status.extackMessage ? { detail: reply.status.extackMessage } : {}),
      });
    }
    return reply.messages;
  }

  /** A dump, retried while the kernel reports it interrupted by a concurrent change. */
  async dump(operation: string, type: number, payload: Buffer): Promise<NetlinkMessage[]> {
    for (let attempt = 1; ; attempt++) {
      const reply = await this.send(operation, undefined, type, NLM_F_DUMP, payload);
      if (reply.status.errno !== 0) {
        throw NetlinkError.fromErrno(reply.status.errno, {
          operation,
          netns: this.netns,
          ...(reply.status.extackMessage ? { detail: reply.status.extackMessage } : {}),
        });
      }
      // Each RTM_GET* dump answers with the matching RTM_NEW* messages (GET - 2).
      if (!reply.dumpInterrupted) return reply.messages.filter((m) => m.type === type - 2);
      if (attempt >= DUMP_ATTEMPTS) {
        throw new NetlinkError({ errno: 4, code: 'EINTR', operation, netns: this.netns, detail: `dump still inconsistent after ${attempt} attempts` });
      }
    }
  }

  private async send(operation: string, subject: string | undefined, type: number, flags: number, payload: Buffer) {
    try {
      return await this.socket.request(type, flags, payload);
    } catch (err) {
      if (err instanceof TransportError) {
        throw new NetlinkError({ errno: 0, code: err.code, operation, netns: this.netns, detail: err.message, cause: err, ...(subject ? { subject } : {}) });
      }
      throw err;
    }
  }

  /** Fetches one link by name or index (ENODEV if it does not exist). */
  async getLink(operation: string, ref: LinkRef): Promise<Link> {
    const req = this.parse(operation, String(ref), () => (typeof ref === 'number' ? encodeLinkRequest({ index: ref }) : encodeLinkRequest({ name: ref })));
    const [msg] = await this.call(operation, String(ref), RTM_GETLINK, 0, req);
    if (!msg) throw NetlinkError.fromErrno(19, { operation, subject: String(ref), netns: this.netns });
    return decodeLink(msg.payload);
  }

  /** Interface index for a name (one lookup) or the index itself. */
  async index(operation: string, ref: LinkRef): Promise<number> {
    if (typeof ref === 'number') return ref;
    return (await this.getLink(operation, ref)).index;
  }
}
