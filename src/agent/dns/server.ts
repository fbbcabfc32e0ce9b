// DNS over UDP and TCP on one address: each query is answered by the resolver in the scope of the
// asker (found from its address). Every peer-controlled quantity is bounded: queries in flight,
// TCP connections, message size, idle time.
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';
import sys from 'syscall-napi';
import { ipv4ToBytes, ipv6ToBytes } from '../../common/ip.js';
import { inNetns } from '../../netlink/netns.js';
import { MAX_UDP_ANSWER, fitUdp, type DnsResolver, type DnsScope } from './resolver.js';

export interface DnsServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The scope of a query from `address` (undefined: refuse silently, not one of ours). */
  scopeOf: (address: string) => DnsScope | undefined;
  /** Queries being answered at once (forwarding waits on upstreams); more are dropped, as a busy resolver does. */
  maxInFlight?: number;
  maxTcpConnections?: number;
  tcpIdleMs?: number;
  /** Serve TCP only, on this listening socket (from listeningTcpSocket) instead of binding host:port. */
  tcpListenFd?: number;
}

const SOCK_STREAM_NONBLOCK_CLOEXEC = 1n | 0o4000n | 0o2000000n;
const SOL_SOCKET = 1n;
const SO_REUSEADDR = 2n;
const IP_FREEBIND = 15n;
const IPPROTO_IPV6 = 41n;
const IPV6_FREEBIND = 78n;

/**
 * A listening TCP socket on `address`:`port`, created in the network namespace `netns` ('' = this
 * one): the host's, when the agent runs outside it. Bound with FREEBIND, so it may listen on a
 * gateway-port address before the address is configured. Returns its file descriptor.
 */
export function listeningTcpSocket(address: string, port: number, netns: string, backlog = 64): number {
  const v6 = net.isIPv6(address);
  const fd = inNetns(netns, () => sys.syscall.sync(sys.__NR_socket, v6 ? 10n : 2n, SOCK_STREAM_NONBLOCK_CLOEXEC, 0n));
  try {
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    sys.syscall.sync(sys.__NR_setsockopt, fd, SOL_SOCKET, SO_REUSEADDR, one, 4n);
    sys.syscall.sync(sys.__NR_setsockopt, fd, v6 ? IPPROTO_IPV6 : 0n, v6 ? IPV6_FREEBIND : IP_FREEBIND, one, 4n);
    const sa = Buffer.alloc(v6 ? 28 : 16);
    sa.writeUInt16LE(v6 ? 10 : 2, 0);
    sa.writeUInt16BE(port, 2);
    if (v6) Buffer.from(ipv6ToBytes(address)).copy(sa, 8);
    else Buffer.from(ipv4ToBytes(address)).copy(sa, 4);
    sys.syscall.sync(sys.__NR_bind, fd, sa, BigInt(sa.length));
    sys.syscall.sync(sys.__NR_listen, fd, BigInt(backlog));
    return Number(fd);
  } catch (err) {
    sys.syscall.sync(sys.__NR_close, fd);
    throw new Error(`listening on ${v6 ? `[${address}]` : address}:${port}: ${(err as Error).message}`, { cause: err });
  }
}

export class DnsServer {
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private inFlight = 0;
  private readonly connections = new Set<net.Socket>();
  dropped = 0;

  constructor(
    private readonly resolver: DnsResolver,
    private readonly o: DnsServerOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<{ port: number }> {
    if (this.o.tcpListenFd !== undefined) {
      const tcp = net.createServer((sock) => this.onTcp(sock));
      tcp.maxConnections = this.o.maxTcpConnections ?? 256;
      this.tcp = tcp;
      const fd = this.o.tcpListenFd;
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ fd }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      return { port: this.o.port };
    }
    const family = net.isIPv6(this.o.host) ? 'udp6' : 'udp4';
    const udp = dgram.createSocket({ type: family, reuseAddr: false });
    this.udp = udp;
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.o.port, this.o.host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', (err) => this.log.warn({ err }, 'DNS UDP socket error'));
    udp.on('message', (msg, rinfo) => this.onUdp(msg, rinfo));
    const port = udp.address().port;
    const tcp = net.createServer((sock) => this.onTcp(sock));
    tcp.maxConnections = this.o.maxTcpConnections ?? 256;
    this.tcp = tcp;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, this.o.host, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    return { port };
  }

  private answer(query: Buffer, address: string): Promise<Buffer | undefined> | undefined {
    const scope = this.o.scopeOf(address);
    if (!scope) return undefined;
    if (this.inFlight >= (this.o.maxInFlight ?? 1024)) {
      this.dropped++;
      return undefined;
    }
    this.inFlight++;
    return this.resolver.handle(query, scope).finally(() => this.inFlight--);
  }

  private onUdp(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const scope = this.o.scopeOf(rinfo.address);
    const cached = scope && this.resolver.answerFromCache(msg, scope);
    if (cached) {
      this.udp?.send(cached, rinfo.port, rinfo.address);
      return;
    }
    const pending = this.answer(msg, rinfo.address);
    pending
      ?.then((answer) => {
        if (!answer) return;
        this.udp?.send(fitUdp(msg, answer, MAX_UDP_ANSWER), rinfo.port, rinfo.address);
      })
      .catch((err: unknown) => this.log.warn({ err }, 'answering a DNS query failed'));
  }

  private onTcp(sock: net.Socket): void {
    this.connections.add(sock);
    sock.setTimeout(this.o.tcpIdleMs ?? 10_000, () => sock.destroy());
    sock.on('close', () => this.connections.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      // One 64 KiB message plus its length prefix at most is ever buffered.
      if (buf.length > 65_537) return sock.destroy();
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const pending = this.answer(Buffer.from(msg), sock.remoteAddress ?? '');
        if (!pending) return sock.destroy();
        pending.then(
          (answer) => {
            if (!answer || sock.destroyed) return;
            const len = Buffer.alloc(2);
            len.writeUInt16BE(answer.length);
            sock.write(Buffer.concat([len, answer]));
          },
          () => sock.destroy(),
        );
      }
    });
  }

  async stop(): Promise<void> {
    for (const s of this.connections) s.destroy();
    await Promise.all([
      new Promise<void>((r) => (this.udp ? this.udp.close(() => r()) : r())),
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
    ]);
  }
}
