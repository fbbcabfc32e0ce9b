// OpenFlowConnection against a scripted fake switch on a unix socket: handshake, version
// negotiation, echo both ways, xid tracking, timeouts, multipart, inactivity probe, reconnect.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  OpenFlowConnection, OpenFlowConnectionError, OpenFlowTimeoutError, OpenFlowVersionError, parseTarget,
} from '../../src/openflow/connection.js';
import { OpenFlowError } from '../../src/openflow/errors.js';
import { Framer } from '../../src/openflow/framer.js';
import {
  OFPMP, OFPT, decodeHeader, encodeBarrierReply, encodeEchoReply, encodeEchoRequest, encodeError, encodeFeaturesReply,
  encodeHello, encodeMultipartReply, encodeFlowStatsRequest, encodeFlowMod,
} from '../../src/openflow/messages.js';

type Handler = (msg: Buffer, sock: Socket) => void;

/** A fake switch: answers hello and features; `on` scripts replies to other message types. */
class FakeSwitch {
  readonly server: Server;
  readonly received: Buffer[] = [];
  readonly sockets = new Set<Socket>();
  handlers = new Map<number, Handler>();
  helloVersions = [4];
  constructor(readonly path: string) {
    this.server = createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => undefined);
      sock.write(encodeHello(1, this.helloVersions));
      const framer = new Framer();
      sock.on('data', (chunk) => {
        for (const msg of framer.push(chunk)) {
          this.received.push(msg);
          const { type, xid } = decodeHeader(msg);
          const h = this.handlers.get(type);
          if (h) h(msg, sock);
          else if (type === OFPT.FEATURES_REQUEST) {
            sock.write(encodeFeaturesReply({ xid, datapathId: 0xabcn, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0 }));
          } else if (type === OFPT.ECHO_REQUEST) sock.write(encodeEchoReply(xid));
          else if (type === OFPT.BARRIER_REQUEST) sock.write(encodeBarrierReply(xid));
        }
      });
    });
  }
  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }
  /** Drops every client connection (like ovs-vswitchd exiting) and stops listening. */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let dir: string;
let sw: FakeSwitch;
let conn: OpenFlowConnection | undefined;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ofconn-'));
  sw = new FakeSwitch(join(dir, 'br0.mgmt'));
  await sw.listen();
});

afterEach(async () => {
  await conn?.close();
  conn = undefined;
  await sw.stop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

const target = (): string => `unix:${sw.path}`;

describe('parseTarget', () => {
  it('accepts unix:, tcp: (IPv4 and bracketed IPv6) and bare paths; rejects the rest', () => {
    expect(parseTarget('unix:/run/br0.mgmt')).toEqual({ kind: 'unix', path: '/run/br0.mgmt' });
    expect(parseTarget('/run/br0.mgmt')).toEqual({ kind: 'unix', path: '/run/br0.mgmt' });
    expect(parseTarget('tcp:127.0.0.1:6653')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 6653 });
    expect(parseTarget('tcp:[::1]:6653')).toEqual({ kind: 'tcp', host: '::1', port: 6653 });
    expect(() => parseTarget('ssl:1.2.3.4:6653')).toThrow(/expected unix:<path> or tcp:<host>:<port>/);
    expect(() => parseTarget('tcp:host:99999')).toThrow(TypeError);
  });
});

describe('handshake', () => {
  it('negotiates OpenFlow 1.3, sets miss_send_len and reads features', async () => {
    conn = await OpenFlowConnection.connect(target());
    expect(conn.connected).toBe(true);
    expect(conn.features?.datapathId).toBe(0xabcn);
    const types = sw.received.map((m) => m[1]);
    expect(types.slice(0, 3)).toEqual([OFPT.HELLO, OFPT.SET_CONFIG, OFPT.FEATURES_REQUEST]);
  });

  it('refuses a switch that offers no OpenFlow 1.3, naming what it offers', async () => {
    sw.helloVersions = [1, 5];
    const err = await OpenFlowConnection.connect(target(), { reconnect: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenFlowVersionError);
    expect((err as Error).message).toContain('offers OpenFlow10, OpenFlow14');
  });

  it('turns a HELLO_FAILED error into a version error with the switch text', async () => {
    sw.handlers.set(OFPT.HELLO, (_m, sock) => sock.write(encodeError(0, 0, 0, Buffer.from('We support versions 0x01 only'))));
    sw.helloVersions = [4];
    sw.handlers.set(OFPT.SET_CONFIG, () => undefined);
    sw.handlers.set(OFPT.FEATURES_REQUEST, () => undefined);
    // The error may arrive before or after the switch hello; either way the connect fails readably.
    const err = await OpenFlowConnection.connect(target(), { connectTimeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenFlowVersionError);
    expect((err as Error).message).toContain('We support versions 0x01 only');
  });

  it('connects over TCP as well', async () => {
    const tcp = new FakeSwitch('');
    await new Promise<void>((resolve) => tcp.server.listen(0, '127.0.0.1', resolve));
    const { port } = tcp.server.address() as { port: number };
    try {
      conn = await OpenFlowConnection.connect(`tcp:127.0.0.1:${port}`);
      expect(conn.features?.datapathId).toBe(0xabcn);
      expect(await conn.echo()).toBeGreaterThanOrEqual(0);
      await conn.close();
      conn = undefined;
    } finally {
      await tcp.stop();
    }
  });

  it('says what failed when nothing listens', async () => {
    const err = await OpenFlowConnection.connect(`unix:${join(dir, 'nope.mgmt')}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenFlowConnectionError);
    expect((err as Error).message).toMatch(/cannot connect to unix:.*nope\.mgmt: .*ENOENT/);
  });
});

describe('requests', () => {
  it('answers echo requests from the switch with the same xid and payload', async () => {
    conn = await OpenFlowConnection.connect(target());
    const reply = new Promise<Buffer>((resolve) => sw.handlers.set(OFPT.ECHO_REPLY, (m) => resolve(m)));
    for (const s of sw.sockets) s.write(encodeEchoRequest(0x99, Buffer.from('are you there')));
    const m = await reply;
    expect(decodeHeader(m).xid).toBe(0x99);
    expect(m.subarray(8).toString()).toBe('are you there');
  });

  it('rejects a request with OpenFlowError when the switch answers its xid with an error', async () => {
    conn = await OpenFlowConnection.connect(target());
    sw.handlers.set(OFPT.BARRIER_REQUEST, (m, sock) => sock.write(encodeError(decodeHeader(m).xid, 1, 1, m)));
    const err = await conn.barrier().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenFlowError);
    expect((err as OpenFlowError).code).toBe('OFPBRC_BAD_TYPE');
    expect((err as Error).message).toContain('BARRIER_REQUEST');
  });

  it('times out a request that gets no reply', async () => {
    conn = await OpenFlowConnection.connect(target());
    sw.handlers.set(OFPT.BARRIER_REQUEST, () => undefined);
    await expect(conn.barrier(100)).rejects.toThrow(OpenFlowTimeoutError);
  });

  it('reassembles a multipart reply sent in parts', async () => {
    conn = await OpenFlowConnection.connect(target());
    sw.handlers.set(OFPT.MULTIPART_REQUEST, (m, sock) => {
      const xid = decodeHeader(m).xid;
      sock.write(encodeMultipartReply({ xid, mpType: OFPMP.FLOW, flags: 1, body: Buffer.from('ab') }));
      setTimeout(() => sock.write(encodeMultipartReply({ xid, mpType: OFPMP.FLOW, flags: 0, body: Buffer.from('cd') })), 20);
    });
    const xid = conn.nextXid();
    expect((await conn.requestMultipart(encodeFlowStatsRequest(xid), xid)).toString()).toBe('abcd');
  });

  it('emits errors that answer no request as ofp_error events', async () => {
    conn = await OpenFlowConnection.connect(target());
    const got = new Promise((resolve) => conn!.once('ofp_error', resolve));
    for (const s of sw.sockets) s.write(encodeError(0x777, 5, 1, encodeFlowMod(0x777, { command: 'add' })));
    expect(await got).toMatchObject({ xid: 0x777, name: 'OFPFMFC_TABLE_FULL', failedTypeName: 'FLOW_MOD' });
  });

  it('collects errors for fire-and-forget messages up to the barrier', async () => {
    conn = await OpenFlowConnection.connect(target());
    sw.handlers.set(OFPT.FLOW_MOD, (m, sock) => {
      const xid = decodeHeader(m).xid;
      if (xid % 2 === 0) sock.write(encodeError(xid, 5, 6, m));
    });
    const first = conn.reserveXids(4);
    const msgs = Buffer.concat([0, 1, 2, 3].map((i) => encodeFlowMod(first + i, { command: 'add' })));
    const errors = await conn.sendConfirmed(msgs, first, 4);
    expect(errors.map((e) => [e.xid - first, e.name])).toEqual(
      [0, 1, 2, 3].filter((i) => (first + i) % 2 === 0).map((i) => [i, 'OFPFMFC_BAD_COMMAND']));
  });
});

describe('malformed messages from the switch', () => {
  /** A raw message: OpenFlow 1.3 header with the given type and xid, then `body`. */
  const raw = (type: number, xid: number, body: Buffer = Buffer.alloc(0)): Buffer => {
    const b = Buffer.alloc(8 + body.length);
    b[0] = 4;
    b[1] = type;
    b.writeUInt16BE(b.length, 2);
    b.writeUInt32BE(xid, 4);
    body.copy(b, 8);
    return b;
  };
  /** PACKET_IN whose ofp_match declares `matchLen` bytes (type OXM at offset 24). */
  const packetIn = (matchLen: number): Buffer => {
    const body = Buffer.alloc(32);
    body.writeUInt16BE(1, 16); // ofp_match.type = OXM
    body.writeUInt16BE(matchLen, 18);
    return raw(OFPT.PACKET_IN, 0, body);
  };

  const cases: Array<[string, () => Buffer]> = [
    ['an 8-byte OFPT_ERROR', () => raw(OFPT.ERROR, 0x4242)],
    ['a PACKET_IN whose match length is 0', () => packetIn(0)],
    ['a PACKET_IN whose match is longer than the message', () => packetIn(4000)],
  ];
  for (const [what, build] of cases) {
    it(`drops ${what}, reports it, and the session goes on`, async () => {
      conn = await OpenFlowConnection.connect(target());
      const dropped = new Promise<[Error, Buffer]>((resolve) => conn!.once('message_error', (err, msg) => resolve([err, msg])));
      const bad = build();
      for (const s of sw.sockets) s.write(bad);
      const [err, msg] = await dropped;
      expect(err.name).toBe('OpenFlowDecodeError');
      expect(msg.equals(bad)).toBe(true);
      expect(conn.connected).toBe(true);
      expect(await conn.echo()).toBeGreaterThanOrEqual(0);
    });
  }

  it('rejects the request a malformed reply answers, with the decode error', async () => {
    conn = await OpenFlowConnection.connect(target());
    sw.handlers.set(OFPT.BARRIER_REQUEST, (m, sock) => sock.write(raw(OFPT.ERROR, decodeHeader(m).xid)));
    await expect(conn.barrier()).rejects.toThrow(/ERROR: bad length 8/);
    expect(conn.connected).toBe(true);
  });

  it('keeps a packet_in listener that throws inside the session', async () => {
    conn = await OpenFlowConnection.connect(target());
    conn.on('packet_in', () => {
      throw new Error('listener bug');
    });
    const dropped = new Promise<Error>((resolve) => conn!.once('message_error', resolve));
    for (const s of sw.sockets) s.write(packetIn(4));
    expect((await dropped).message).toBe('listener bug');
    expect(await conn.echo()).toBeGreaterThanOrEqual(0);
  });

  it('fails the handshake, not the process, on a malformed FEATURES_REPLY', async () => {
    sw.handlers.set(OFPT.FEATURES_REQUEST, (m, sock) => sock.write(raw(OFPT.FEATURES_REPLY, decodeHeader(m).xid)));
    await expect(OpenFlowConnection.connect(target(), { reconnect: false })).rejects.toThrow(/handshake .* failed: FEATURES_REPLY: bad length/);
  });
});

describe('liveness', () => {
  it('drops a silent switch after the inactivity probe and reconnects when it is back', async () => {
    conn = await OpenFlowConnection.connect(target(), { probeIntervalMs: 100, backoffMinMs: 20 });
    sw.handlers.set(OFPT.ECHO_REQUEST, () => undefined); // silent from now on
    const down = new Promise((resolve) => conn!.once('disconnected', resolve));
    const up = new Promise((resolve) => conn!.once('reconnected', resolve));
    await down;
    sw.handlers.delete(OFPT.ECHO_REQUEST);
    await up;
    expect(conn.connected).toBe(true);
    expect(await conn.echo()).toBeGreaterThanOrEqual(0);
  });

  it('fails pending requests when the switch goes away, then reconnects with backoff', async () => {
    conn = await OpenFlowConnection.connect(target(), { backoffMinMs: 20, probeIntervalMs: 0 });
    sw.handlers.set(OFPT.BARRIER_REQUEST, () => undefined);
    const pending = conn.barrier(5000);
    await new Promise((r) => setTimeout(r, 20));
    await sw.stop();
    await expect(pending).rejects.toThrow(OpenFlowConnectionError);
    expect(conn.connected).toBe(false);
    expect(() => conn!.send(encodeEchoRequest(1))).toThrow(/not connected/);
    const waiting = conn.waitConnected(5000);
    sw = new FakeSwitch(sw.path);
    rmSync(sw.path, { force: true });
    await sw.listen();
    await waiting;
    expect(await conn.echo()).toBeGreaterThanOrEqual(0);
  });

  it('does not wait for a connection that was closed', async () => {
    conn = await OpenFlowConnection.connect(target());
    await conn.close();
    await expect(conn.waitConnected(5000)).rejects.toThrow(/closed/);
  });
});
