import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { ControllerSession, WATCH_PORT_FAILURES, WATCH_PORT_RETRY_MS, systemClock, type SessionApi, type WatchStream } from '../../src/agent/controller-session.js';
import type * as api from '../../src/api/types.js';

/** A Watch stream whose fate the test decides. */
class FakeStream extends EventEmitter implements WatchStream {
  destroyed = false;
  readonly written: api.WatchRequest[] = [];
  write(msg: api.WatchRequest): boolean {
    this.written.push(msg);
    return true;
  }
  cancel(): void {
    this.destroyed = true;
  }
  fail(): void {
    this.destroyed = true;
    this.emit('error', new Error('connection refused'));
  }
}

/** A controller port: counts Watch calls, and answers register/heartbeat while `up`. */
class FakePort implements SessionApi {
  up = true;
  readonly streams: FakeStream[] = [];
  constructor(private readonly watchPort: number) {}
  register(): Promise<api.RegisterResponse> {
    return this.up
      ? Promise.resolve({ revision: 0, heartbeatIntervalMs: 1000, watchPort: this.watchPort } as api.RegisterResponse)
      : Promise.reject(new Error('unavailable'));
  }
  heartbeat(): Promise<unknown> {
    return this.up ? Promise.resolve({}) : Promise.reject(new Error('unavailable'));
  }
  watch(): FakeStream {
    const s = new FakeStream();
    this.streams.push(s);
    return s;
  }
  close(): void {}
}

const update = (revision: number): api.WatchResponse => ({ revision, reset: true, storeId: 's', events: [], partial: false });

describe('ControllerSession: Watch-port fallback', () => {
  let apiPort: FakePort;
  let watchPort: FakePort;
  let session: ControllerSession;
  const changes: number[] = [];

  beforeEach(async () => {
    vi.useFakeTimers();
    apiPort = new FakePort(7403);
    watchPort = new FakePort(0);
    changes.length = 0;
    session = new ControllerSession({
      registration: { name: 'node1', vtep: '192.0.2.1', agentVersion: 't', capabilities: [] },
      controller: '192.0.2.100:7400',
      api: apiPort,
      watchApi: () => watchPort,
      appliedRevision: () => 0,
      onChange: (revision, ack) => {
        changes.push(revision);
        ack();
      },
      log: pino({ level: 'silent' }),
      clock: systemClock,
    });
    await session.start();
  });
  afterEach(() => {
    session.stop();
    vi.useRealTimers();
  });

  /** Lets the reconnect timer fire (backoff is at most 5 s). */
  const nextAttempt = () => vi.advanceTimersByTimeAsync(5_000);

  it('watches on the dedicated port first', () => {
    expect(watchPort.streams).toHaveLength(1);
    expect(apiPort.streams).toHaveLength(0);
    expect(session.watchTarget).toBe('watch-port');
    expect(watchPort.streams[0]!.written[0]?.start?.host).toBe('node1');
  });

  it(`falls back to the API port after ${WATCH_PORT_FAILURES} failures while the API answers, and returns after five minutes`, async () => {
    for (let i = 1; i <= WATCH_PORT_FAILURES; i++) {
      watchPort.streams.at(-1)!.fail();
      await nextAttempt();
    }
    expect(watchPort.streams).toHaveLength(WATCH_PORT_FAILURES);
    expect(apiPort.streams).toHaveLength(1);
    expect(session.watchTarget).toBe('api-port');

    // On the API port it works: updates flow and are acknowledged there.
    apiPort.streams[0]!.emit('data', update(5));
    expect(changes).toEqual([5]);
    expect(apiPort.streams[0]!.written.at(-1)).toEqual({ ack: { revision: 5 } });
    expect(session.connected).toBe(true);

    // A failure before the five minutes are up stays on the API port.
    await vi.advanceTimersByTimeAsync(60_000);
    apiPort.streams[0]!.fail();
    await nextAttempt();
    expect(apiPort.streams).toHaveLength(2);

    // After five minutes, the next attempt goes back to the Watch port, resuming from revision 5.
    await vi.advanceTimersByTimeAsync(WATCH_PORT_RETRY_MS);
    apiPort.streams[1]!.fail();
    await nextAttempt();
    expect(watchPort.streams).toHaveLength(WATCH_PORT_FAILURES + 1);
    expect(watchPort.streams.at(-1)!.written[0]?.start?.fromRevision).toBe(5);
    expect(session.watchTarget).toBe('watch-port');
  });

  it('does not fall back while the API port is silent too (the controller is down, not the port)', async () => {
    apiPort.up = false;
    await vi.advanceTimersByTimeAsync(20_000); // heartbeats fail; the API's last answer ages past 15 s
    for (let i = 1; i <= WATCH_PORT_FAILURES + 1; i++) {
      watchPort.streams.at(-1)!.fail();
      await nextAttempt();
    }
    expect(apiPort.streams).toHaveLength(0);
    expect(session.watchTarget).toBe('watch-port');
  });

  it('a Watch port that delivered before does not count towards the fallback', async () => {
    for (let i = 1; i <= WATCH_PORT_FAILURES + 1; i++) {
      const s = watchPort.streams.at(-1)!;
      s.emit('data', update(i));
      s.fail();
      await nextAttempt();
    }
    expect(apiPort.streams).toHaveLength(0);
    expect(changes).toEqual([1, 2, 3, 4]);
  });
});

describe('ControllerSession: several controllers', () => {
  afterEach(() => vi.useRealTimers());

  it('a broken Watch moves to the next controller\'s Watch port and resumes from the applied revision', async () => {
    vi.useFakeTimers();
    const api = new FakePort(7403);
    const ports = new Map<string, FakePort>();
    const homes = ['a:7400', 'b:7400', 'c:7400'];
    let home = 0;
    const session = new ControllerSession({
      registration: { name: 'node1', vtep: '192.0.2.1', agentVersion: 't', capabilities: [] },
      controller: homes.join(','),
      api,
      watchApi: (port, at) => {
        const p = new FakePort(0);
        ports.set(`${at}/${port}`, p);
        return p;
      },
      home: () => homes[home]!,
      homeFailed: (address) => {
        if (address === homes[home]) home = (home + 1) % homes.length;
      },
      appliedRevision: () => 0,
      onChange: (_revision, ack) => ack(),
      log: pino({ level: 'silent' }),
      clock: systemClock,
    });
    await session.start();
    const a = ports.get('a:7400/7403')!;
    a.streams[0]!.emit('data', update(9));
    a.streams[0]!.fail();
    await vi.advanceTimersByTimeAsync(5_000);
    const b = ports.get('b:7400/7403')!;
    expect(b.streams).toHaveLength(1);
    expect(b.streams[0]!.written[0]?.start).toMatchObject({ fromRevision: 9, storeId: 's' });
    expect(session.watchTarget).toBe('watch-port');
    session.stop();
  });
});
