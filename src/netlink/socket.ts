/**
 * Transport: a NETLINK_ROUTE socket in a chosen network namespace, driven by node-netlink.
 *
 * node-netlink creates its socket with an async syscall on a libuv worker thread, which stays in
 * the process's original namespace. So the socket is created here, synchronously, between two
 * setns() calls (see netns.ts), and handed to node-netlink's open() in place of the socket it
 * would create (see node-netlink.ts). node-netlink then binds it, polls it, sends requests
 * (tryTalk) and matches replies by sequence number.
 *
 * node-netlink drops the payload of NLMSG_ERROR/NLMSG_DONE, so a 'message' listener keeps the
 * terminal message of the request in flight (for the errno, the kernel's extended-ack text and
 * NLM_F_DUMP_INTR). Requests on one socket are serialized so that attribution is unambiguous.
 */
import type { NetlinkSocketHandle, RawMessage } from 'node-netlink';
import sys from 'syscall-napi';
import { closeSync } from 'node:fs';
import { NLM_F_ACK, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP } from './codec/constants.js';
import { decodeStatus, encodeMessage, type NetlinkMessage, type NetlinkStatus } from './codec/message.js';
import { NetlinkDecodeError } from './codec/errors.js';
import { openRouteSocketIn } from './netns.js';
import { adoptWithNodeNetlink, countOpenSockets } from './node-netlink.js';

export interface SocketOptions {
  /** Network namespace file to create the socket in; '' or absent = the caller's own. */
  netns?: string;
  /** Per-request timeout (ms). Default 10 s. */
  timeoutMs?: number;
}

/** Everything the kernel answered to one request. */
export interface Reply {
  /** Data messages (dump entries, a GET answer), without the closing ERROR/DONE. */
  messages: NetlinkMessage[];
  /** errno 0 on success. */
  status: NetlinkStatus;
  /** The kernel flagged the dump as inconsistent (NLM_F_DUMP_INTR): retry it. */
  dumpInterrupted: boolean;
}

/** Transport failure that is not a kernel errno (timeout, closed socket). */
export class TransportError extends Error {
  constructor(message: string, readonly code: 'ETIMEDOUT' | 'ECLOSED' | 'EIO') {
    super(message);
    this.name = 'TransportError';
  }
}

function toMessage(raw: RawMessage): NetlinkMessage {
  return {
    type: Number(raw.header.nlmsg_type),
    flags: Number(raw.header.nlmsg_flags),
    seq: Number(raw.header.nlmsg_seq),
    pid: Number(raw.header.nlmsg_pid),
    payload: raw.payload,
  };
}

interface InFlight {
  seq: number;
  messages: NetlinkMessage[];
  terminal?: NetlinkMessage;
  interrupted: boolean;
}

/** What requests need of a socket: RtnetlinkSocket, or BlockingRtnetlinkSocket (blocking-socket.ts). */
export interface RtnetlinkTransport {
  readonly netns: string;
  request(type: number, flags: number, payload: Buffer): Promise<Reply>;
  close(): Promise<void>;
}

/** A request/reply rtnetlink socket bound to one network namespace. */
export class RtnetlinkSocket implements RtnetlinkTransport {
  private tail: Promise<unknown> = Promise.resolve();
  /** Mirrors node-netlink's sequence counter: it starts at 1 and counts tryTalk() calls. */
  private lastSeq = 0;
  private inFlight: InFlight | undefined;
  private closed = false;

  private constructor(
    private readonly nl: NetlinkSocketHandle,
    private readonly fd: number,
    readonly netns: string,
    private readonly timeoutMs: number,
  ) {
    nl.on('message', (raw) => this.onMessage(raw));
  }

  /** Opens a socket in `options.netns` (the caller's own namespace by default). */
  static async open(options: SocketOptions = {}): Promise<RtnetlinkSocket> {
    const netns = options.netns ?? '';
    const fd = openRouteSocketIn(netns);
    let nl: NetlinkSocketHandle;
    try {
      nl = await adoptWithNodeNetlink(fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    countOpenSockets(1);
    return new RtnetlinkSocket(nl, fd, netns, options.timeoutMs ?? 10_000);
  }

  /**
   * Sends one request (payload = everything after the nlmsghdr) and collects its reply.
   * Kernel errors come back in `status`; only transport failures reject.
   */
  request(type: number, flags: number, payload: Buffer): Promise<Reply> {
    if (this.closed) return Promise.reject(new TransportError('netlink socket is closed', 'ECLOSED'));
    const run = (): Promise<Reply> => this.exchange(type, flags, payload);
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => undefined);
    return result;
  }

  private async exchange(type: number, flags: number, payload: Buffer): Promise<Reply> {
    const current: InFlight = { seq: ++this.lastSeq, messages: [], interrupted: false };
    this.inFlight = current;
    try {
      const res = await this.nl.tryTalk(
        { header: { nlmsg_type: BigInt(type), nlmsg_flags: BigInt(flags | NLM_F_REQUEST | NLM_F_ACK) }, payload },
        { timeout: this.timeoutMs },
      );
      if (current.terminal) {
        const status = decodeStatus(current.terminal) ?? { errno: res.errorCode };
        return { messages: current.messages, status, dumpInterrupted: current.interrupted };
      }
      // Our view of the sequence drifted from node-netlink's: fall back to what tryTalk returned.
      return { messages: res.packets.map(toMessage), status: { errno: res.errorCode }, dumpInterrupted: false };
    } catch (err) {
      if (err instanceof NetlinkDecodeError) throw new TransportError(`malformed netlink reply: ${err.message}`, 'EIO');
      const timedOut = err instanceof Error && /timeout/.test(err.message);
      throw new TransportError(
        timedOut ? `no netlink reply within ${this.timeoutMs} ms` : `netlink send failed: ${String(err)}`,
        timedOut ? 'ETIMEDOUT' : 'EIO',
      );
    } finally {
      if (this.inFlight === current) this.inFlight = undefined;
    }
  }

  private onMessage(raw: RawMessage): void {
    const current = this.inFlight;
    if (!current || Number(raw.header.nlmsg_seq) !== current.seq) return;
    const msg = toMessage(raw);
    if (msg.flags & NLM_F_DUMP_INTR) current.interrupted = true;
    if (msg.type === NLMSG_ERROR || msg.type === NLMSG_DONE) current.terminal = msg;
    else current.messages.push(msg);
  }

  /** Lets requests already made finish, then closes the socket; later requests fail with ECLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    const closing = this.nl.close();
    // node-netlink's poller only notices a close when its ppoll() returns (up to 100 ms). A NOOP
    // with NLM_F_ACK makes the kernel queue an ack, which wakes it at once.
    try {
      const noop = encodeMessage({ type: NLMSG_NOOP, flags: NLM_F_REQUEST | NLM_F_ACK, seq: 0, pid: 0 }, Buffer.alloc(0));
      sys.syscall.sync(sys.__NR_sendto, BigInt(this.fd), noop, BigInt(noop.length), 0n, 0n, 0n);
    } catch {
      // Closing still completes after the poll timeout.
    }
    await closing;
    countOpenSockets(-1);
  }
}
