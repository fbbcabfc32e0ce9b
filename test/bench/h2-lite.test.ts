import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectH2, grpcCall, H2_CANCEL, H2Error, type H2Connection, type GrpcCall } from '../../bench/lib/h2-lite.js';

const HOST = '127.0.0.1';
const COUNTED = 20_000;

const identity = (b: Buffer): Buffer => b;
const bidi = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({
  path,
  requestStream: true,
  responseStream: true,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});
const service: grpc.ServiceDefinition = {
  chat: bidi('/test.Echo/Chat'),
  counted: bidi('/test.Echo/Counted'),
  fail: bidi('/test.Echo/Fail'),
};

type Duplex = grpc.ServerDuplexStream<Buffer, Buffer>;

/** Everything a call saw, and a promise that settles when it ended or failed. */
interface Observed {
  call: GrpcCall;
  messages: Buffer[];
  done: Promise<'end' | Error>;
}

function observe(conn: H2Connection, path: string, authority: string): Observed {
  const messages: Buffer[] = [];
  let call!: GrpcCall;
  const done = new Promise<'end' | Error>((resolve) => {
    call = grpcCall(conn, path, authority, (m) => messages.push(Buffer.from(m)));
    call.onEnd = () => resolve('end');
    call.onError = (err) => resolve(err);
  });
  return { call, messages, done };
}

describe('h2-lite against grpc-js', () => {
  let server: grpc.Server;
  let port: number;
  let authority: string;
  const failed: string[] = [];

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(service, {
      // Echoes every message; ends with OK when the client half-closes.
      chat: (call: Duplex) => {
        call.on('data', (m: Buffer) => call.write(m));
        call.on('end', () => call.end());
      },
      // Echoes; ends with OK after COUNTED messages, the client still open.
      counted: (call: Duplex) => {
        let n = 0;
        call.on('data', (m: Buffer) => {
          call.write(m);
          if (++n === COUNTED) call.end();
        });
      },
      fail: (call: Duplex) => {
        call.on('data', () => {
          failed.push('fail');
          call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: 'no' });
        });
      },
    });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${HOST}:0`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    authority = `${HOST}:${port}`;
  });

  afterAll(() => {
    server.forceShutdown();
  });

  it('echoes 0 B, 10 B and 100 KiB messages intact and in order, then ends on half-close', async () => {
    const conn = await connectH2(HOST, port);
    const o = observe(conn, '/test.Echo/Chat', authority);
    const big = Buffer.alloc(100 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 10)) & 0xff;
    const sent = [Buffer.alloc(0), Buffer.from('0123456789'), big, Buffer.from('after')];
    for (const m of sent) o.call.send(m);
    o.call.end();
    expect(await o.done).toBe('end');
    expect(o.messages.length).toBe(sent.length);
    o.messages.forEach((m, i) => expect(m.equals(sent[i])).toBe(true));
    conn.close();
  });

  it('moves 20,000 messages each way on one stream (beyond the 64 KiB default windows)', async () => {
    const conn = await connectH2(HOST, port);
    const o = observe(conn, '/test.Echo/Counted', authority);
    const msg = Buffer.alloc(10);
    for (let i = 0; i < COUNTED; i++) {
      msg.writeUInt32BE(i, 0);
      o.call.send(msg);
    }
    expect(await o.done).toBe('end');
    expect(o.messages.length).toBe(COUNTED);
    expect(o.messages.every((m, i) => m.readUInt32BE(0) === i)).toBe(true);
    // The connection stays usable after a call ended with the client's side still open.
    const again = observe(conn, '/test.Echo/Chat', authority);
    again.call.send(Buffer.from('x'));
    again.call.end();
    expect(await again.done).toBe('end');
    expect(again.messages.map(String)).toEqual(['x']);
    conn.close();
  });

  it('ends the stream when the server ends the call with a non-OK status', async () => {
    const conn = await connectH2(HOST, port);
    const o = observe(conn, '/test.Echo/Fail', authority);
    o.call.send(Buffer.from('hi'));
    expect(await o.done).toBe('end');
    expect(o.messages).toEqual([]);
    expect(failed).toEqual(['fail']);
    conn.close();
  });
});

describe('h2-lite against node:http2', () => {
  let server: http2.Http2Server;
  let port: number;
  const onStream: Array<(s: http2.ServerHttp2Stream) => void> = [];

  beforeAll(async () => {
    // A small stream window: the client must queue and wait for WINDOW_UPDATEs.
    server = http2.createServer({ settings: { initialWindowSize: 1000 } });
    server.on('stream', (s) => onStream.shift()?.(s));
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('surfaces RST_STREAM as an error with its code', async () => {
    onStream.push((s) => {
      // As grpc-js answers: trailers pending, so close() sends a bare RST_STREAM.
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.once('data', () => s.close(http2.constants.NGHTTP2_CANCEL));
    });
    const conn = await connectH2(HOST, port);
    const o = observe(conn, '/x', `${HOST}:${port}`);
    o.call.send(Buffer.from('hi'));
    const res = await o.done;
    expect(res).toBeInstanceOf(H2Error);
    expect((res as H2Error).code).toBe(H2_CANCEL);
    conn.close();
  });

  it('answers PING', async () => {
    const pinged = new Promise<Error | null>((resolve) => {
      onStream.push((s) => {
        s.respond({ ':status': 200 }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        s.session!.ping((err) => {
          resolve(err);
          s.end();
        });
      });
    });
    const conn = await connectH2(HOST, port);
    const o = observe(conn, '/x', `${HOST}:${port}`);
    expect(await pinged).toBeNull();
    expect(await o.done).toBe('end');
    conn.close();
  });

  it('respects a small peer stream window and sends body data in order', async () => {
    // First a round trip, so the upload stream opens under the server's 1000-byte window.
    onStream.push((s) => {
      s.respond({ ':status': 200 });
      s.end();
    });
    const received = new Promise<Buffer>((resolve) => {
      onStream.push((s) => {
        const parts: Buffer[] = [];
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => {
          const body = Buffer.concat(parts);
          s.respond({ ':status': 200 });
          s.end(String(body.length));
          resolve(body);
        });
      });
    });
    const conn = await connectH2(HOST, port);
    await new Promise<void>((resolve, reject) => {
      const first = conn.request('/first', `${HOST}:${port}`);
      first.onEnd = () => resolve();
      first.onError = reject;
      first.end();
    });
    const stream = conn.request('/upload', `${HOST}:${port}`);
    const reply: Buffer[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.onData = (d) => reply.push(Buffer.from(d));
      stream.onEnd = () => resolve();
      stream.onError = reject;
    });
    const body = Buffer.alloc(200 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    stream.write(body.subarray(0, 500));
    stream.write(body.subarray(500));
    stream.end();
    expect((await received).equals(body)).toBe(true);
    await ended;
    expect(Buffer.concat(reply).toString()).toBe(String(body.length));
    conn.close();
  });

  it('reassembles gRPC messages however DATA frames cut them', async () => {
    const sizes = [0, 5, 1, 300, 0, 17];
    const msgs = sizes.map((n, k) => Buffer.alloc(n, 65 + k));
    const prefix = (m: Buffer): Buffer => {
      const p = Buffer.alloc(5);
      p.writeUInt32BE(m.length, 1);
      return p;
    };
    const wire = Buffer.concat(msgs.flatMap((m) => [prefix(m), m]));
    // Cuts inside prefixes, inside bodies, and frames holding several messages.
    const cuts = [1, 3, 2, 4, 6, 9, 150, 160, 5, 2, 1];
    onStream.push((s) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      void (async () => {
        let off = 0;
        for (const n of cuts) {
          s.write(wire.subarray(off, off + n));
          off += n;
          await new Promise((r) => setTimeout(r, 2)); // separate DATA frames
        }
        s.end(wire.subarray(off));
      })();
    });
    const conn = await connectH2(HOST, port);
    const o = observe(conn, '/x', `${HOST}:${port}`);
    expect(await o.done).toBe('end');
    expect(o.messages).toEqual(msgs);
    conn.close();
  });

  it('a GOAWAY with an error code fails open streams and closes the connection', async () => {
    onStream.push((s) => s.session!.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR));
    const conn = await connectH2(HOST, port);
    const closed = new Promise<Error | undefined>((resolve) => (conn.onClose = resolve));
    const o = observe(conn, '/x', `${HOST}:${port}`);
    o.call.send(Buffer.from('hi'));
    const res = await o.done;
    expect(res).toBeInstanceOf(H2Error);
    expect((res as H2Error).code).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
    expect(() => conn.request('/y', `${HOST}:${port}`)).toThrow();
    expect(await closed).toBeInstanceOf(Error);
  });

  it('a graceful GOAWAY lets the open stream finish, then the connection closes', async () => {
    onStream.push((s) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.session!.close();
      s.once('data', (d: Buffer) => s.end(d));
    });
    const conn = await connectH2(HOST, port);
    const closed = new Promise<Error | undefined>((resolve) => (conn.onClose = resolve));
    const o = observe(conn, '/x', `${HOST}:${port}`);
    o.call.send(Buffer.from('last'));
    expect(await o.done).toBe('end');
    expect(o.messages.map(String)).toEqual(['last']);
    expect(() => conn.request('/y', `${HOST}:${port}`)).toThrow();
    await closed;
  });
});

describe('h2-lite against a raw frame writer', () => {
  let server: net.Server;
  let port: number;
  beforeAll(async () => {
    server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const frame = (type: number, flags: number, id: number, payload: Buffer): Buffer => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(id, 5);
    return Buffer.concat([h, payload]);
  };
  const grpcMsg = (s: string): Buffer => {
    const p = Buffer.alloc(5);
    p.writeUInt32BE(s.length, 1);
    return Buffer.concat([p, Buffer.from(s)]);
  };

  it('opens as specified and honours padding, priority, CONTINUATION and frames cut across reads', async () => {
    const PADDED = 0x8;
    const opening = new Promise<Buffer>((resolve) => {
      server.once('connection', (sock: net.Socket) => {
        sock.setNoDelay(true);
        let got = Buffer.alloc(0);
        sock.on('data', (d: Buffer) => {
          got = Buffer.concat([got, d]);
          // preface 24 + SETTINGS 21 + WINDOW_UPDATE 13 + HEADERS
          if (got.length < 58 + 9 || got.length < 67 + got.readUIntBE(58, 3)) return;
          sock.removeAllListeners('data');
          resolve(got);
          const wire = Buffer.concat([
            frame(4, 0, 0, Buffer.alloc(0)), // SETTINGS
            frame(0xfa, 0, 0, Buffer.from('unknown type')),
            frame(1, PADDED | 0x20, 1, Buffer.from([2, 0, 0, 0, 0, 16, 0x88, 0xee, 0, 0])), // HEADERS, no END_HEADERS
            frame(9, 0, 1, Buffer.from([0x40])), // CONTINUATION
            frame(9, 0x4, 1, Buffer.from([0x41])), // CONTINUATION, END_HEADERS
            frame(2, 0, 1, Buffer.from([0, 0, 0, 0, 16])), // PRIORITY
            frame(0, PADDED, 1, Buffer.concat([Buffer.from([3]), grpcMsg('hi'), Buffer.alloc(3)])),
            frame(0, 0, 1, Buffer.concat([grpcMsg('there'), grpcMsg('')])),
            frame(1, 0x1 | PADDED, 1, Buffer.from([1, 0x88, 0])), // trailers: END_STREAM here,
            frame(9, 0x4, 1, Buffer.from([0x40])), // END_HEADERS on the CONTINUATION
          ]);
          void (async () => {
            for (let off = 0; off < wire.length; off += 4) {
              sock.write(wire.subarray(off, off + 4));
              await new Promise((r) => setTimeout(r, 1)); // separate reads on the client
            }
          })();
        });
      });
    });
    const conn = await connectH2(HOST, port);
    const o = observe(conn, '/raw.Svc/M', `${HOST}:${port}`);
    const got = await opening;
    expect(got.subarray(0, 24).toString('latin1')).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    // SETTINGS: ENABLE_PUSH=0, INITIAL_WINDOW_SIZE=2^31-1
    expect(got.subarray(24, 45).toString('hex')).toBe('00000c040000000000' + '000200000000' + '00047fffffff');
    // WINDOW_UPDATE on the connection to 2^31-1
    expect(got.subarray(45, 58).toString('hex')).toBe('000004080000000000' + (0x7fffffff - 65535).toString(16).padStart(8, '0'));
    expect(got[58 + 3]).toBe(1); // HEADERS
    expect(got[58 + 4]).toBe(0x4); // END_HEADERS only
    expect(got.readUInt32BE(58 + 5)).toBe(1);
    expect(await o.done).toBe('end');
    expect(o.messages.map(String)).toEqual(['hi', 'there', '']);
    conn.close();
  });
});
