// Forwards a query to upstream servers: UDP first, TCP when the answer comes back truncated, the
// next server when one fails or stays silent, all within one overall timeout.
import dgram from 'node:dgram';
import net from 'node:net';
import sys from 'syscall-napi';
import { joinHostPort, splitHostPort } from '../../common/config.js';
import { inNetns } from '../../netlink/netns.js';

export interface UpstreamOptions {
  /** Per server and attempt. */
  attemptTimeoutMs: number;
  /** For the whole query, all servers together. */
  totalTimeoutMs: number;
  /**
   * Network namespace (file) to ask from: the host's, when the agent runs outside it (simulated
   * hosts, `--host-netns`). Sockets are created there and used from here. Default: the agent's own.
   */
  netns?: string;
}

const AF_INET = 2n;
const AF_INET6 = 10n;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;

/** A socket created in `netns` (its routes and addresses apply to it wherever it is used). */
function socketIn(netns: string, v6: boolean, type: number): number {
  return inNetns(netns, () => Number(sys.syscall.sync(sys.__NR_socket, v6 ? AF_INET6 : AF_INET, BigInt(type | SOCK_NONBLOCK | SOCK_CLOEXEC), 0n)));
}

export const DEFAULT_UPSTREAM: UpstreamOptions = { attemptTimeoutMs: 1000, totalTimeoutMs: 2500 };

/** The largest DNS message over TCP (the 16-bit length prefix). */
const MAX_TCP_MESSAGE = 65_535;

export class UpstreamError extends Error {
  override name = 'UpstreamError';
}

/** `addr`, `addr:port` or `[v6]:port` to address and port (53 by default). */
export function parseServer(server: string): { host: string; port: number } {
  if (net.isIP(server)) return { host: server, port: 53 };
  const hp = splitHostPort(server);
  if (!net.isIP(hp.host) || !Number.isInteger(hp.port) || hp.port < 1 || hp.port > 65535) throw new UpstreamError(`not an upstream DNS server address: "${server}"`);
  return hp;
}

/**
 * Sends `query` (a whole DNS message) to `servers` in order and returns the first answer whose ID
 * matches. Throws UpstreamError when every server failed or the total timeout passed.
 */
export async function forward(query: Buffer, servers: readonly string[], o: UpstreamOptions = DEFAULT_UPSTREAM): Promise<Buffer> {
  if (servers.length === 0) throw new UpstreamError('no upstream servers');
  const deadline = Date.now() + o.totalTimeoutMs;
  const errors: string[] = [];
  for (const s of servers) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    const server = parseServer(s);
    const timeout = Math.min(o.attemptTimeoutMs, left);
    try {
      const answer = await udpExchange(query, server, timeout, o.netns);
      if (!truncated(answer)) return answer;
      return await tcpExchange(query, server, Math.max(1, deadline - Date.now()), o.netns);
    } catch (err) {
      errors.push(`${joinHostPort(server.host, server.port)}: ${(err as Error).message}`);
    }
  }
  throw new UpstreamError(errors.length ? errors.join('; ') : `no answer within ${o.totalTimeoutMs} ms`);
}

const truncated = (msg: Buffer) => msg.length >= 4 && (msg[2]! & 0x02) !== 0;
const sameId = (a: Buffer, b: Buffer) => a.length >= 2 && b.length >= 2 && a[0] === b[0] && a[1] === b[1];

function udpExchange(query: Buffer, server: { host: string; port: number }, timeoutMs: number, netns?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const v6 = net.isIPv6(server.host);
    const sock = dgram.createSocket(v6 ? 'udp6' : 'udp4');
    if (netns) sock.bind({ fd: socketIn(netns, v6, SOCK_DGRAM) });
    let finished = false; // a late send error or answer after the timeout must not close twice
    const done = (err: Error | undefined, msg?: Buffer) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(msg!);
    };
    const timer = setTimeout(() => done(new Error(`no UDP answer within ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', (err) => done(err));
    // Answers from elsewhere, or to another ID, are ignored (spoofing, late answers).
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port === server.port && sameId(msg, query)) done(undefined, msg);
    });
    // connect reports its failure (unreachable network, ...) to this callback, not as an event.
    sock.connect(server.port, server.host, (err?: Error) => {
      if (err) return done(err);
      sock.send(query, (sendErr) => sendErr && done(sendErr));
    });
  });
}

function tcpExchange(query: Buffer, server: { host: string; port: number }, timeoutMs: number, netns?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = netns ? new net.Socket({ fd: socketIn(netns, net.isIPv6(server.host), SOCK_STREAM), readable: true, writable: true }) : new net.Socket();
    sock.connect(server.port, server.host);
    let buf: Buffer = Buffer.alloc(0);
    const done = (err: Error | undefined, msg?: Buffer) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(msg!);
    };
    const timer = setTimeout(() => done(new Error(`no TCP answer within ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', (err) => done(err));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > MAX_TCP_MESSAGE + 2) return done(new Error('TCP answer too long'));
      if (buf.length < 2) return;
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) return;
      const msg = buf.subarray(2, 2 + len);
      if (!sameId(msg, query)) return done(new Error('TCP answer to another query'));
      done(undefined, msg);
    });
    sock.on('end', () => done(new Error('connection closed before the answer')));
  });
}
