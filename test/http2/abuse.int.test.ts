/**
 * Abuse suite (issue 18): raw-socket attackers on loopback against src/http2's server, in this
 * process and as the controller daemon's Watch port. Each attack gives up after ATTACK_MS; the server
 * must cut it off (or make it harmless), stay alive, keep its memory bounded, and keep serving a
 * legitimate call meanwhile.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectH2, grpcCall } from '../../bench/lib/h2-lite.js';
import { watchMethod } from '../../src/api/proto.js';
import { CLIENT_PREFACE, ErrorCode, FrameType, encodeFrame } from '../../src/http2/frames.js';
import { GrpcStreamServer, type GrpcStreamCall } from '../../src/http2/grpc-server.js';
import { startDaemon, tempDir, type Daemon } from '../harness/controller-daemon.js';
import { continuationFlood, flood, pingFlood, rapidReset, settingsFlood, slowloris, unknownMethodFlood, type AttackResult } from './attacks.js';

const HOST = '127.0.0.1';
const ECHO = '/test.Echo/Chat';
const ATTACK_MS = 3000;
/** RSS growth allowed over all attacks on one server (the floods would take GiBs unchecked). */
const RSS_BOUND_MIB = 96;

/** One echo round trip on a fresh connection; rejects after `ms`. */
async function echoOnce(port: number, ms = 2000): Promise<number> {
  const t0 = performance.now();
  const conn = await connectH2(HOST, port);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no echo within ${ms} ms`)), ms);
      const call = grpcCall(conn, ECHO, `${HOST}:${port}`, (m) => {
        clearTimeout(timer);
        if (m.toString() === 'ping') resolve();
        else reject(new Error(`echoed ${m.toString()}`));
      });
      call.onError = (err) => reject(err);
      call.send(Buffer.from('ping'));
    });
  } finally {
    conn.close();
  }
  return performance.now() - t0;
}

/** Runs `attack` while checking, every 200 ms, that `healthy()` still answers; returns the attack's result. */
async function underAttack<T>(attack: Promise<T>, healthy: () => Promise<unknown>): Promise<{ result: T; checks: number }> {
  let done = false;
  let checks = 0;
  const probing = (async () => {
    while (!done) {
      await healthy();
      checks++;
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const result = await attack;
  done = true;
  await probing;
  return { result, checks };
}

describe('src/http2 under attack (in process)', () => {
  let server: GrpcStreamServer;
  let port: number;
  const rssStart = process.memoryUsage().rss;
  let rssPeak = rssStart;
  let sampler: NodeJS.Timeout;

  beforeAll(async () => {
    server = new GrpcStreamServer({
      maxMessageBytes: 1 << 20,
      handlers: {
        [ECHO]: (call: GrpcStreamCall) => {
          call.onMessage = (m) => call.send(m);
          call.onHalfClose = () => call.end(0);
        },
      },
      handshakeTimeoutMs: 500,
      idleTimeoutMs: 800,
      maxConnectionsPerPeer: 40,
    });
    port = await server.listen(HOST, 0);
    sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 50);
  });
  afterAll(async () => {
    clearInterval(sampler);
    await server.close(500);
  });

  const attacked = async (attack: Promise<AttackResult>): Promise<AttackResult> => {
    const { result, checks } = await underAttack(attack, () => echoOnce(port));
    expect(checks).toBeGreaterThan(0);
    await echoOnce(port);
    return result;
  };

  it('closes a CONTINUATION flood with GOAWAY ENHANCE_YOUR_CALM at once', async () => {
    const r = await attacked(continuationFlood(port, ATTACK_MS));
    expect(r.goaway).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(r.closedByServer).toBe(true);
    expect(r.ms).toBeLessThan(ATTACK_MS); // cut by the server, not by the attacker giving up
    expect(server.limitsHit['continuation-frames']).toBe(1);
  });

  it('ends a PING flood whose client does not read (control frames queued past the limit)', async () => {
    const r = await attacked(pingFlood(port, ATTACK_MS));
    expect(r.closedByServer).toBe(true);
    expect(server.limitsHit['queued-control-frames']).toBe(1);
  });

  it('ends a SETTINGS flood whose client does not read', async () => {
    const r = await attacked(settingsFlood(port, ATTACK_MS));
    expect(r.closedByServer).toBe(true);
    expect(server.limitsHit['queued-control-frames']).toBe(2);
  });

  it('answers unknown methods small (no echo of a long :path) and ends the flood', async () => {
    const r = await attacked(unknownMethodFlood(port, ATTACK_MS));
    // Before: ~4 KiB per 5-octet request. Now the answer names no long path, and the flood ends.
    expect(r.received / r.sent).toBeLessThan(10);
    expect(r.goaway).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(server.limitsHit['stream-resets']).toBeGreaterThan(0);
  });

  it('ends a rapid reset (CVE-2023-44487) with GOAWAY ENHANCE_YOUR_CALM within a second', async () => {
    const before = server.limitsHit['stream-resets'];
    const r = await attacked(rapidReset(port, ECHO, ATTACK_MS));
    expect(r.goaway).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(r.ms).toBeLessThan(ATTACK_MS); // cut by the server, not by the attacker giving up
    expect(server.limitsHit['stream-resets']).toBe(before + 1);
  });

  it('closes slowloris connections at the handshake timeout, and refuses connections past the per-peer limit', async () => {
    const { result: closed } = await underAttack(slowloris(port, 30, 1200), () => echoOnce(port));
    expect(closed).toBe(30);
    expect(server.limitsHit['handshake-timeout']).toBeGreaterThanOrEqual(30);
    const { result: refused } = await underAttack(slowloris(port, 60, 300), () => Promise.resolve());
    expect(refused).toBeGreaterThanOrEqual(20); // 40 admitted (minus any still open), the rest cut at accept
    expect(server.limitsHit['connections-per-peer']).toBeGreaterThan(0);
  });

  it('closes a connection that opens no call within the idle timeout', async () => {
    const before = server.limitsHit['idle-timeout'];
    const conn = await connectH2(HOST, port);
    const closed = new Promise<void>((resolve) => (conn.onClose = () => resolve()));
    await closed;
    expect(server.limitsHit['idle-timeout']).toBe(before + 1);
  });

  it(`stayed within ${RSS_BOUND_MIB} MiB of RSS growth`, () => {
    expect((rssPeak - rssStart) / 2 ** 20).toBeLessThan(RSS_BOUND_MIB);
  });
});

describe('src/http2 limits a handler or a peer could still reach', () => {
  it('closes a connection whose client leaves more than maxOutputBytes unread (a handler ignoring send() = false)', async () => {
    const server = new GrpcStreamServer({
      maxMessageBytes: 1 << 20,
      maxOutputBytes: 1 << 20,
      handlers: {
        [ECHO]: (call: GrpcStreamCall) => {
          const chunk = Buffer.alloc(60_000);
          call.onMessage = () => {
            for (let i = 0; i < 400 && !call.ended; i++) call.send(chunk); // 24 MB, back-pressure ignored
          };
        },
      },
    });
    const port = await server.listen(HOST, 0);
    try {
      const conn = await connectH2(HOST, port);
      conn.socket.pause(); // never reads (so it does not notice the close either: watch the server)
      grpcCall(conn, ECHO, `${HOST}:${port}`, () => {}).send(Buffer.from('go'));
      for (let waited = 0; server.connections > 0 && waited < 5000; waited += 20) await new Promise((r) => setTimeout(r, 20));
      expect(server.limitsHit['output-bytes']).toBe(1);
      expect(server.connections).toBe(0);
      conn.socket.destroy();
    } finally {
      await server.close(100);
    }
  });

  it('ends a header block above maxHeaderBlockBytes with GOAWAY ENHANCE_YOUR_CALM', async () => {
    const server = new GrpcStreamServer({ maxMessageBytes: 1024, maxContinuationFrames: 1000, maxHeaderBlockBytes: 64 << 10, handlers: {} });
    const port = await server.listen(HOST, 0);
    try {
      const fragment = Buffer.alloc(16_000, 0x41); // not decoded before the block is whole
      const frame = Buffer.concat([Buffer.from([0, 0x3e, 0x80, FrameType.CONTINUATION, 0, 0, 0, 0, 1]), fragment]);
      const headers = Buffer.concat([Buffer.from([0, 0x3e, 0x80, FrameType.HEADERS, 0, 0, 0, 0, 1]), fragment]);
      const r = await flood(port, { first: Buffer.concat([CLIENT_PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0), headers]), next: () => frame, ms: 1000, read: true });
      expect(r.goaway).toBe(ErrorCode.ENHANCE_YOUR_CALM);
      expect(server.limitsHit['header-block-bytes']).toBe(1);
    } finally {
      await server.close(100);
    }
  });
});

// ---------------------------------------------------------------- the controller daemon

function rssMib(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function healthz(port: number, ms = 2000): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path: '/healthz', timeout: ms }, (res) => {
      res.resume();
      if (res.statusCode === 200) resolve();
      else reject(new Error(`/healthz answered ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error(`/healthz did not answer within ${ms} ms`)));
    req.on('error', reject);
  });
}

/** A legitimate Watch on the Watch port, for a host that is not registered: answered NOT_FOUND at once. */
function watchAnswers(port: number, ms = 2000): Promise<void> {
  const client = new grpc.Client(`${HOST}:${port}`, grpc.credentials.createInsecure());
  return new Promise<void>((resolve, reject) => {
    const call = client.makeBidiStreamRequest(watchMethod.path, watchMethod.requestSerialize, watchMethod.responseDeserialize, new grpc.Metadata(), {
      deadline: Date.now() + ms,
    });
    call.on('data', () => {});
    call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.NOT_FOUND ? resolve() : reject(err)));
    call.write({ start: { host: 'nobody', fromRevision: 0, networks: [], storeId: '' } });
  }).finally(() => client.close());
}

describe('the controller daemon under attack', () => {
  let daemon: Daemon;
  let rssStart: number;
  let rssPeak: number;
  let sampler: NodeJS.Timeout;
  const tmp = tempDir();

  beforeAll(async () => {
    daemon = await startDaemon(['--db', path.join(tmp.dir, 'controller.db'), '--sync', 'normal']);
    await watchAnswers(daemon.watchPort);
    rssStart = rssMib(daemon.proc.pid!);
    rssPeak = rssStart;
    sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMib(daemon.proc.pid!))), 50);
  });
  afterAll(async () => {
    clearInterval(sampler);
    await daemon?.stop();
    tmp.cleanup();
  });

  const healthy = async (): Promise<void> => {
    await healthz(daemon.httpPort);
    await watchAnswers(daemon.watchPort);
  };

  it('survives every flood on its Watch port (src/http2), /healthz and Watch answering throughout, RSS bounded', async () => {
    const p = daemon.watchPort;
    const attacks: Array<[string, () => Promise<AttackResult>]> = [
      ['continuation', () => continuationFlood(p, ATTACK_MS)],
      ['ping', () => pingFlood(p, ATTACK_MS)],
      ['settings', () => settingsFlood(p, ATTACK_MS)],
      ['unknown-method', () => unknownMethodFlood(p, ATTACK_MS)],
      ['rapid-reset', () => rapidReset(p, watchMethod.path, ATTACK_MS)],
    ];
    for (const [name, attack] of attacks) {
      const t0 = performance.now();
      const { result, checks } = await underAttack(attack(), healthy).catch((err: Error) => {
        throw new Error(`${name} after ${(performance.now() - t0).toFixed(0)} ms: ${err.message}\n${daemon.output().slice(-3000)}`);
      });
      expect(checks, name).toBeGreaterThan(0);
      expect(result.closedByServer, name).toBe(true);
      if (name !== 'ping' && name !== 'settings') expect(result.goaway, name).toBe(ErrorCode.ENHANCE_YOUR_CALM); // the others do not read
    }
    await healthy();
    expect(daemon.proc.exitCode).toBeNull();
    expect(rssPeak - rssStart).toBeLessThan(RSS_BOUND_MIB);
    expect(daemon.output()).toMatch(/"limit":"continuation-frames"/);
    expect(daemon.output()).toMatch(/"limit":"stream-resets"/);
    expect(daemon.output()).toMatch(/"limit":"queued-control-frames"/);
  });

  it('survives the same floods on its grpc-js API port (node:http2), /healthz answering throughout', async () => {
    const p = daemon.grpcPort;
    const attacks: Array<[string, () => Promise<AttackResult>]> = [
      ['continuation', () => continuationFlood(p, ATTACK_MS)],
      ['ping', () => pingFlood(p, ATTACK_MS)],
      ['settings', () => settingsFlood(p, ATTACK_MS)],
      ['unknown-method', () => unknownMethodFlood(p, ATTACK_MS)],
      ['rapid-reset', () => rapidReset(p, '/loom.v1.NetworkService/ListNetworks', ATTACK_MS)],
    ];
    for (const [name, attack] of attacks) {
      const { result, checks } = await underAttack(attack(), () => healthz(daemon.httpPort));
      expect(checks, name).toBeGreaterThan(0);
      expect(result.closedByServer, name).toBe(true); // nghttp2 cuts each of them (GOAWAY or close) within ~150 ms
    }
    await healthy();
    expect(daemon.proc.exitCode).toBeNull();
    expect(rssPeak - rssStart).toBeLessThan(RSS_BOUND_MIB);
  });
});
