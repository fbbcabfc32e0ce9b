/**
 * Transport: a NETLINK_ROUTE socket driven on the calling thread, one sendto() and recvfrom()s
 * per request. rtnetlink handles a request inside sendto(), so its answer is queued by the time
 * recvfrom() runs; SO_RCVTIMEO bounds the wait all the same. This saves the asynchronous socket's
 * thread-pool hops (send, poll) per request and its open/close, and blocks the event loop for as
 * long as the kernel works: meant for short requests (link up, addresses, neighbours, routes
 * inside a container), not for deleting links (RCU grace periods) or large dumps.
 */
import sys from 'syscall-napi';
import { closeSync } from 'node:fs';
import { NLM_F_ACK, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR } from './codec/constants.js';
import { decodeMessages, decodeStatus, encodeMessage, type NetlinkMessage } from './codec/message.js';
import { NetlinkDecodeError } from './codec/errors.js';
import { errnoFromText } from './errors.js';
import { openRouteSocketIn } from './netns.js';
import { TransportError, type Reply, type SocketOptions } from './socket.js';

const SOL_SOCKET = 1n;
const SO_RCVTIMEO = 20n;
const EAGAIN = 11;
/** Large enough for any one datagram a dump part or an error with extended ack can be. */
const RECV_BUFFER = 64 * 1024;

export class BlockingRtnetlinkSocket {
  private lastSeq = 0;
  private closed = false;
  private readonly buf = Buffer.alloc(RECV_BUFFER);

  private constructor(
    private readonly fd: number,
    readonly netns: string,
    private readonly timeoutMs: number,
  ) {}

  /** Opens a socket in `options.netns` (the caller's own namespace by default). */
  static open(options: SocketOptions = {}): BlockingRtnetlinkSocket {
    const netns = options.netns ?? '';
    const timeoutMs = options.timeoutMs ?? 10_000;
    const fd = openRouteSocketIn(netns);
    try {
      const tv = Buffer.alloc(16); // struct timeval: tv_sec, tv_usec (64-bit each)
      tv.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
      tv.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
      sys.syscall.sync(sys.__NR_setsockopt, BigInt(fd), SOL_SOCKET, SO_RCVTIMEO, tv, 16n);
    } catch (err) {
      closeSync(fd);
      throw new TransportError(`netlink socket setup failed: ${String(err)}`, 'EIO');
    }
    return new BlockingRtnetlinkSocket(fd, netns, timeoutMs);
  }

  /** Same contract as RtnetlinkSocket.request: kernel errors in `status`, transport failures reject. */
  request(type: number, flags: number, payload: Buffer): Promise<Reply> {
    try {
      return Promise.resolve(this.exchange(type, flags, payload));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private exchange(type: number, flags: number, payload: Buffer): Reply {
    if (this.closed) throw new TransportError('netlink socket is closed', 'ECLOSED');
    const seq = (this.lastSeq = (this.lastSeq + 1) >>> 0);
    const msg = encodeMessage({ type, flags: flags | NLM_F_REQUEST | NLM_F_ACK, seq, pid: 0 }, payload);
    const fd = BigInt(this.fd);
    try {
      sys.syscall.sync(sys.__NR_sendto, fd, msg, BigInt(msg.length), 0n, 0n, 0n);
    } catch (err) {
      throw new TransportError(`netlink send failed: ${String(err)}`, 'EIO');
    }
    const messages: NetlinkMessage[] = [];
    let interrupted = false;
    for (;;) {
      let n: number;
      try {
        n = Number(sys.syscall.sync(sys.__NR_recvfrom, fd, this.buf, BigInt(this.buf.length), 0n, 0n, 0n));
      } catch (err) {
        const timedOut = err instanceof Error && errnoFromText(err.message) === EAGAIN;
        throw new TransportError(timedOut ? `no netlink reply within ${this.timeoutMs} ms` : `netlink receive failed: ${String(err)}`, timedOut ? 'ETIMEDOUT' : 'EIO');
      }
      let parts: NetlinkMessage[];
      try {
        parts = decodeMessages(Buffer.from(this.buf.subarray(0, n)));
      } catch (err) {
        if (err instanceof NetlinkDecodeError) throw new TransportError(`malformed netlink reply: ${err.message}`, 'EIO');
        throw err;
      }
      for (const m of parts) {
        if (m.seq !== seq) continue; // an answer to an earlier request that timed out
        if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (m.type === NLMSG_ERROR || m.type === NLMSG_DONE) {
          let status;
          try {
            status = decodeStatus(m) ?? { errno: 0 };
          } catch (err) {
            throw new TransportError(`malformed netlink reply: ${(err as Error).message}`, 'EIO');
          }
          return { messages, status, dumpInterrupted: interrupted };
        }
        messages.push(m);
      }
    }
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      closeSync(this.fd);
    }
    return Promise.resolve();
  }
}
