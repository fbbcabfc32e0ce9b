// The small gRPC server against real @grpc/grpc-js clients, on 127.0.0.1 only.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CLIENT_PREFACE, Flag, FrameReader, FrameType, encodeFrame } from '../../src/http2/frames.js';
import { HpackDecoder, encodeHeaderBlock } from '../../src/http2/hpack.js';
import { GrpcStatus, GrpcStreamServer, type GrpcStreamCall, type GrpcStreamServerOptions } from '../../src/http2/grpc-server.js';
import { makeCert } from '../harness/pki.js';

const HOST = '127.0.0.1';
const MAX_MESSAGE = 2 << 20;
const identity = (b: Buffer): Buffer => b;

type Duplex = grpc.ClientDuplexStream<Buffer, Buffer>;

interface Observed {
  call: Duplex;
  messages: Buffer[];
  status: Promise<grpc.StatusObject>;
}

function observe(client: grpc.Client, path: string): Observed {
  const call = client.makeBidiStreamRequest(path, identity, identity);
  const messages: Buffer[] = [];
  call.on('data', (m: Buffer) => messages.push(m));
  call.on('error', () => undefined); // the status below carries the code
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  return { call, messages, status };
}

function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) return resolve();
      if (Date.now() - start > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Echoes every message; ends OK when the client half-closes. */
function echo(call: GrpcStreamCall): void {
  call.onMessage = (m) => call.send(m);
  call.onHalfClose = () => call.end(GrpcStatus.OK);
}

async function startServer(extra: Partial<GrpcStreamServerOptions> = {}, handlers: GrpcStreamServerOptions['handlers'] = {}) {
  const errors: Error[] = [];
  const server = new GrpcStreamServer({
    maxMessageBytes: MAX_MESSAGE,
    handlers: { '/test.Echo/Chat': echo, ...handlers },
    onError: (err) => errors.push(err),
    maxConnectionsPerPeer: 1000, // one test opens 200 connections, all from 127.0.0.1
    ...extra,
  });
  const port = await server.listen(HOST, 0);
  return { server, port, errors };
}

function insecureClient(port: number, options: grpc.ChannelOptions = {}): grpc.Client {
  return new grpc.Client(`${HOST}:${port}`, grpc.credentials.createInsecure(), options);
}

describe('GrpcStreamServer with grpc-js clients', () => {
  let server: GrpcStreamServer;
  let port: number;
  let errors: Error[];
  let client: grpc.Client;
  const cancels: string[] = [];
  const held: GrpcStreamCall[] = [];
  const big = {
    sendResult: true,
    drains: 0,
    done: false,
  };
  const BIG = Buffer.alloc(8 << 20);
  for (let i = 0; i < BIG.length; i += 4) BIG.writeUInt32BE(i, i);

  beforeAll(async () => {
    ({ server, port, errors } = await startServer({ maxConcurrentStreams: 1000 }, {
      '/test.Echo/Fail': (call) => {
        call.onMessage = () => call.end(GrpcStatus.PERMISSION_DENIED, 'no entry for you: 100% denied, ünïcode');
      },
      '/test.Echo/Hold': (call) => {
        held.push(call);
        call.onMessage = (m) => call.send(m);
        call.onCancel = (reason) => cancels.push(reason);
      },
      '/test.Echo/Big': (call) => {
        call.onMessage = () => {
          big.sendResult = call.send(BIG, () => (big.done = true));
          call.onDrain = () => {
            big.drains++;
            call.end(GrpcStatus.OK);
          };
        };
      },
      '/test.Echo/Headers': (call) => {
        call.onMessage = () => {
          call.send(Buffer.from(JSON.stringify({ path: call.path, peer: call.peer, headers: Object.fromEntries(call.headers) })));
          call.end(GrpcStatus.OK);
        };
      },
    }));
    client = insecureClient(port);
  });

  afterAll(async () => {
    client.close();
    await server.close(100);
  });

  it('echoes 0-byte, small and 1 MiB messages in order, then ends OK', async () => {
    const o = observe(client, '/test.Echo/Chat');
    const mib = Buffer.alloc(1 << 20);
    for (let i = 0; i < mib.length; i++) mib[i] = (i * 7) & 0xff;
    const sent = [Buffer.alloc(0), Buffer.from('hello'), mib, Buffer.from('after'), Buffer.alloc(0), mib.subarray(0, 70_000)];
    for (const m of sent) o.call.write(m);
    o.call.end();
    const status = await o.status;
    expect(status.code).toBe(grpc.status.OK);
    expect(o.messages.map((m) => m.length)).toEqual(sent.map((m) => m.length));
    o.messages.forEach((m, i) => expect(m.equals(sent[i]), `message ${i}`).toBe(true));
  });

  it('receives more than its stream window on one call (it tops the window up)', async () => {
    const o = observe(client, '/test.Echo/Chat');
    const mib = Buffer.alloc(1 << 20, 0x5a);
    for (let i = 0; i < 20; i++) o.call.write(mib); // 20 MiB > the 8 MiB stream window
    o.call.end();
    expect((await o.status).code).toBe(grpc.status.OK);
    expect(o.messages).toHaveLength(20);
    expect(o.messages.every((m) => m.equals(mib))).toBe(true);
  });

  it('passes request headers, path and peer to the handler', async () => {
    const o = observe(client, '/test.Echo/Headers');
    o.call.write(Buffer.from('x'));
    expect((await o.status).code).toBe(grpc.status.OK);
    const seen = JSON.parse(o.messages[0].toString()) as { path: string; peer: string; headers: Record<string, string> };
    expect(seen.path).toBe('/test.Echo/Headers');
    expect(seen.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(seen.headers['content-type']).toBe('application/grpc');
    expect(seen.headers.te).toBe('trailers');
    expect(seen.headers['user-agent']).toMatch(/grpc-node-js/);
  });

  it('runs 200 concurrent calls on one connection', async () => {
    const before = server.streams;
    const calls = Array.from({ length: 200 }, () => observe(client, '/test.Echo/Chat'));
    calls.forEach((o, i) => o.call.write(Buffer.from(`first ${i}`)));
    await waitFor(() => calls.every((o) => o.messages.length === 1), 'the first echoes');
    expect(server.streams - before).toBe(200);
    calls.forEach((o, i) => {
      o.call.write(Buffer.from(`second ${i}`));
      o.call.end();
    });
    const statuses = await Promise.all(calls.map((o) => o.status));
    expect(statuses.every((s) => s.code === grpc.status.OK)).toBe(true);
    calls.forEach((o, i) => expect(o.messages.map(String)).toEqual([`first ${i}`, `second ${i}`]));
    await waitFor(() => server.streams === before, 'the calls to close');
  });

  it('runs 200 calls on 200 separate connections', async () => {
    const before = server.connections;
    // Distinct channel options: grpc-js does not share the subchannel (the connection).
    const clients = Array.from({ length: 200 }, (_, i) => insecureClient(port, { 'test.channel': i }));
    const calls = clients.map((c) => observe(c, '/test.Echo/Chat'));
    calls.forEach((o, i) => o.call.write(Buffer.from(`hi ${i}`)));
    await waitFor(() => calls.every((o) => o.messages.length === 1), 'the echoes');
    expect(server.connections - before).toBe(200);
    for (const o of calls) o.call.end();
    const statuses = await Promise.all(calls.map((o) => o.status));
    expect(statuses.every((s) => s.code === grpc.status.OK)).toBe(true);
    calls.forEach((o, i) => expect(o.messages.map(String)).toEqual([`hi ${i}`]));
    for (const c of clients) c.close();
    await waitFor(() => server.connections === before, 'the connections to close');
  });

  it('ends a call with the status and message the handler gives', async () => {
    const o = observe(client, '/test.Echo/Fail');
    o.call.write(Buffer.from('let me in'));
    const status = await o.status;
    expect(status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(status.details).toBe('no entry for you: 100% denied, ünïcode');
  });

  it('answers an unknown method with UNIMPLEMENTED naming it', async () => {
    const o = observe(client, '/test.Echo/Nope');
    o.call.write(Buffer.from('?'));
    const status = await o.status;
    expect(status.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(status.details).toContain('/test.Echo/Nope');
  });

  it('refuses a message above maxMessageBytes with RESOURCE_EXHAUSTED', async () => {
    const o = observe(client, '/test.Echo/Chat');
    o.call.write(Buffer.alloc(MAX_MESSAGE + 1));
    const status = await o.status;
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details).toContain(String(MAX_MESSAGE + 1));
  });

  it('tells the handler when the client cancels', async () => {
    const o = observe(client, '/test.Echo/Hold');
    o.call.write(Buffer.from('ping'));
    await waitFor(() => o.messages.length === 1, 'the echo');
    const call = held[held.length - 1];
    o.call.cancel();
    await waitFor(() => cancels.length === 1, 'onCancel');
    expect(cancels[0]).toMatch(/reset by the client \(CANCEL\)/);
    expect(call.ended).toBe(true);
    expect(call.send(Buffer.from('late'))).toBe(false);
    expect((await o.status).code).toBe(grpc.status.CANCELLED);
  });

  it('sends 8 MiB through default flow-control windows, with back-pressure and onDrain', async () => {
    const roomy = insecureClient(port, { 'grpc.max_receive_message_length': -1 });
    onTestFinished(() => roomy.close());
    const o = observe(roomy, '/test.Echo/Big');
    o.call.write(Buffer.from('go'));
    const status = await o.status;
    expect(status.code).toBe(grpc.status.OK);
    expect(o.messages).toHaveLength(1);
    expect(o.messages[0].equals(BIG)).toBe(true);
    expect(big.sendResult).toBe(false);
    expect(big.drains).toBe(1);
    expect(big.done).toBe(true);
  });

  it('stays connected to a client that pings every second (PINGs answered)', async () => {
    const pinger = insecureClient(port, {
      'grpc.keepalive_time_ms': 1000,
      'grpc.keepalive_timeout_ms': 1000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    try {
      const o = observe(pinger, '/test.Echo/Chat');
      o.call.write(Buffer.from('one'));
      await waitFor(() => o.messages.length === 1, 'the first echo');
      await sleep(3000);
      o.call.write(Buffer.from('two'));
      o.call.end();
      const status = await o.status;
      expect(status.code).toBe(grpc.status.OK);
      expect(o.messages.map(String)).toEqual(['one', 'two']);
    } finally {
      pinger.close();
    }
  });

  it('reported no errors', () => {
    expect(errors).toEqual([]);
  });
});

describe('GrpcStreamServer limits and keepalive', () => {
  it('serves more calls than MAX_CONCURRENT_STREAMS on one connection (the client waits)', async () => {
    const { server, port } = await startServer({ maxConcurrentStreams: 10 });
    const client = insecureClient(port);
    try {
      let peak = 0;
      const calls = Array.from({ length: 50 }, (_, i) => {
        const o = observe(client, '/test.Echo/Chat');
        o.call.write(Buffer.from(`m${i}`));
        o.call.end();
        return o;
      });
      const timer = setInterval(() => (peak = Math.max(peak, server.streams)), 1);
      const statuses = await Promise.all(calls.map((o) => o.status));
      clearInterval(timer);
      expect(statuses.every((s) => s.code === grpc.status.OK)).toBe(true);
      calls.forEach((o, i) => expect(o.messages.map(String)).toEqual([`m${i}`]));
      expect(peak).toBeLessThanOrEqual(10);
    } finally {
      client.close();
      await server.close(100);
    }
  });

  it('pings an idle client and keeps the connection while it answers', async () => {
    const { server, port, errors } = await startServer({ keepaliveMs: 100, keepaliveTimeoutMs: 300 });
    const client = insecureClient(port);
    try {
      const o = observe(client, '/test.Echo/Chat');
      o.call.write(Buffer.from('a'));
      await waitFor(() => o.messages.length === 1, 'the echo');
      await sleep(1000);
      o.call.write(Buffer.from('b'));
      o.call.end();
      expect((await o.status).code).toBe(grpc.status.OK);
      expect(errors).toEqual([]);
    } finally {
      client.close();
      await server.close(100);
    }
  });

  it('drops a connection whose client does not answer PING', async () => {
    const { server, port, errors } = await startServer({ keepaliveMs: 100, keepaliveTimeoutMs: 300 });
    try {
      const socket = net.connect(port, HOST);
      let pings = 0;
      const reader = new FrameReader((type, flags) => {
        if (type === FrameType.PING && !(flags & 1)) pings++;
      });
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.write(Buffer.concat([CLIENT_PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0)]));
      await closed;
      expect(pings).toBe(1);
      expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/keepalive PING unanswered/)]);
    } finally {
      await server.close(100);
    }
  });
});

describe('GrpcStreamServer.close', () => {
  it('ends open calls with UNAVAILABLE, tells their handlers, and closes the connections', async () => {
    const cancelled: string[] = [];
    const { server, port } = await startServer({}, {
      '/test.Echo/Hold': (call) => {
        call.onMessage = (m) => call.send(m);
        call.onCancel = (reason) => cancelled.push(reason);
      },
    });
    const client = insecureClient(port);
    try {
      const o = observe(client, '/test.Echo/Hold');
      o.call.write(Buffer.from('x'));
      await waitFor(() => o.messages.length === 1, 'the echo');
      await server.close(2000);
      const status = await o.status;
      expect(status.code).toBe(grpc.status.UNAVAILABLE);
      expect(cancelled).toEqual(['server shutting down']);
      expect(server.connections).toBe(0);
      expect(server.streams).toBe(0);
    } finally {
      client.close();
    }
  });
});

describe('GrpcStreamServer over mutual TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loom-h2-tls-'));
  const pem = (name: string): Buffer => readFileSync(join(dir, `${name}.pem`));
  const key = (name: string): Buffer => readFileSync(join(dir, `${name}.key`));
  let server: GrpcStreamServer;
  let port: number;
  let errors: Error[];

  beforeAll(async () => {
    await makeCert(dir, 'ca');
    await makeCert(dir, 'server', 'ca');
    await makeCert(dir, 'client', 'ca');
    await makeCert(dir, 'rogue-ca');
    await makeCert(dir, 'rogue', 'rogue-ca');
    ({ server, port, errors } = await startServer({
      tls: { key: key('server'), cert: pem('server'), ca: pem('ca'), requestCert: true, rejectUnauthorized: true },
    }));
  });

  afterAll(async () => {
    await server?.close(100);
    rmSync(dir, { recursive: true, force: true });
  });

  async function tryEcho(creds: grpc.ChannelCredentials): Promise<grpc.StatusObject & { messages: string[] }> {
    const client = new grpc.Client(`${HOST}:${port}`, creds);
    try {
      const o = observe(client, '/test.Echo/Chat');
      o.call.write(Buffer.from('secret'));
      o.call.end();
      const status = await o.status;
      return { ...status, messages: o.messages.map(String) };
    } finally {
      client.close();
    }
  }

  it('serves a client with a certificate from the right CA', async () => {
    const r = await tryEcho(grpc.credentials.createSsl(pem('ca'), key('client'), pem('client')));
    expect(r.code).toBe(grpc.status.OK);
    expect(r.messages).toEqual(['secret']);
  });

  it('refuses a client without a certificate', async () => {
    const before = errors.length;
    const r = await tryEcho(grpc.credentials.createSsl(pem('ca')));
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.messages).toEqual([]);
    await waitFor(() => errors.length > before, 'the TLS error report');
  });

  it('refuses a client with a certificate from another CA', async () => {
    const r = await tryEcho(grpc.credentials.createSsl(pem('ca'), key('rogue'), pem('rogue')));
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.messages).toEqual([]);
  });
});

/** A raw node:http2 request: the response headers, trailers and body it got. */
async function rawRequest(
  port: number,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer; rstCode: number }> {
  const session = http2.connect(`http://${HOST}:${port}`);
  session.on('error', () => undefined);
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request(headers, { endStream: body === undefined });
      let head: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on('response', (h) => (head = h));
      req.on('trailers', (t) => (trailers = t));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('error', reject);
      req.on('close', () => resolve({ headers: head, trailers, body: Buffer.concat(chunks), rstCode: req.rstCode ?? 0 }));
      if (body !== undefined) req.end(body);
    });
  } finally {
    session.destroy();
  }
}

/** Sends the preface, SETTINGS and `frames` on a raw socket; returns the header blocks that ended streams, by stream. */
async function rawExchange(port: number, frames: Buffer[], streams: number): Promise<Map<number, Map<string, string>>> {
  const socket = net.connect(port, HOST);
  const decoder = new HpackDecoder();
  const ended = new Map<number, Map<string, string>>();
  try {
    return await new Promise((resolve, reject) => {
      const reader = new FrameReader((type, flags, id, payload) => {
        if (type === FrameType.HEADERS && flags & Flag.END_STREAM) {
          ended.set(id, new Map(decoder.decode(payload)));
          if (ended.size === streams) resolve(ended);
        }
      });
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => reject(new Error('connection closed')));
      socket.write(Buffer.concat([CLIENT_PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0), ...frames]));
    });
  } finally {
    socket.destroy();
  }
}

const grpcMessage = (payload: Buffer, compressed = 0): Buffer => {
  const prefix = Buffer.alloc(5);
  prefix[0] = compressed;
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
};

describe('GrpcStreamServer with raw HTTP/2 requests', () => {
  let server: GrpcStreamServer;
  let port: number;
  const seen: Array<ReadonlyMap<string, string>> = [];

  beforeAll(async () => {
    ({ server, port } = await startServer({ maxHeaderListBytes: 64 << 10 }, {
      '/test.Echo/Seen': (call) => {
        seen.push(call.headers);
        echo(call);
      },
    }));
  });

  afterAll(() => server.close(100));

  const grpcHeaders = (path: string, extra: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders => ({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...extra,
  });

  it('answers a content-type other than application/grpc with HTTP 415', async () => {
    const r = await rawRequest(port, grpcHeaders('/test.Echo/Chat', { 'content-type': 'application/json' }), Buffer.from('{}'));
    expect(r.headers[':status']).toBe(415);
    expect(r.headers['grpc-status']).toBe('13');
  });

  it('answers a method other than POST with HTTP 405', async () => {
    const r = await rawRequest(port, { ':method': 'GET', ':path': '/test.Echo/Chat', 'content-type': 'application/grpc' });
    expect(r.headers[':status']).toBe(405);
    expect(r.headers['grpc-status']).toBe('13');
  });

  it('ends a call that sends a compressed message with UNIMPLEMENTED', async () => {
    const r = await rawRequest(port, grpcHeaders('/test.Echo/Chat', { 'grpc-encoding': 'gzip' }), grpcMessage(Buffer.from('zz'), 1));
    expect(r.headers[':status']).toBe(200);
    const status = r.trailers['grpc-status'] ?? r.headers['grpc-status'];
    expect(status).toBe(String(GrpcStatus.UNIMPLEMENTED));
  });

  it('echoes messages split across DATA frames, and over the stream in one piece', async () => {
    const payloads = [Buffer.from('a'), Buffer.alloc(40_000, 1), Buffer.alloc(0), Buffer.from('z')];
    const r = await rawRequest(port, grpcHeaders('/test.Echo/Chat'), Buffer.concat(payloads.map((p) => grpcMessage(p))));
    expect(r.trailers['grpc-status']).toBe('0');
    expect(r.body.equals(Buffer.concat(payloads.map((p) => grpcMessage(p))))).toBe(true);
  });

  it('reassembles a header block sent as HEADERS + CONTINUATION', async () => {
    const large = 'v'.repeat(40_000); // above the 16 KiB frame size: nghttp2 continues the block
    const r = await rawRequest(port, grpcHeaders('/test.Echo/Seen', { 'x-large': large }), grpcMessage(Buffer.from('hi')));
    expect(r.trailers['grpc-status']).toBe('0');
    expect(seen[seen.length - 1].get('x-large')).toBe(large);
  });

  it('refuses request headers above maxHeaderListBytes with RESOURCE_EXHAUSTED, and the connection stays usable', async () => {
    // node:http2 will not send more than our SETTINGS_MAX_HEADER_LIST_SIZE: a raw client does.
    const huge = encodeHeaderBlock([
      [':method', 'POST'], [':scheme', 'http'], [':path', '/test.Echo/Seen'], ['content-type', 'application/grpc'],
      ['x-huge', 'h'.repeat(70_000)],
    ]);
    const frames: Buffer[] = [];
    for (let off = 0; off < huge.length; off += 16_384) {
      const last = off + 16_384 >= huge.length;
      const type = off === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
      frames.push(encodeFrame(type, (off === 0 ? Flag.END_STREAM : 0) | (last ? Flag.END_HEADERS : 0), 1, huge.subarray(off, off + 16_384)));
    }
    const next = encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/test.Echo/Other'], ['content-type', 'application/grpc']]);
    frames.push(encodeFrame(FrameType.HEADERS, Flag.END_STREAM | Flag.END_HEADERS, 3, next));
    const answers = await rawExchange(port, frames, 2);
    expect(answers.get(1)?.get('grpc-status')).toBe(String(GrpcStatus.RESOURCE_EXHAUSTED));
    expect(answers.get(3)?.get('grpc-status')).toBe(String(GrpcStatus.UNIMPLEMENTED));
  });

  it('closes a connection that does not start with the HTTP/2 preface, without a GOAWAY', async () => {
    const socket = net.connect(port, HOST);
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    // Only our SETTINGS and WINDOW_UPDATE (sent at accept), no GOAWAY.
    const types: number[] = [];
    new FrameReader((type) => types.push(type)).push(Buffer.concat(received));
    expect(types).toEqual([FrameType.SETTINGS, FrameType.WINDOW_UPDATE]);
  });
});
