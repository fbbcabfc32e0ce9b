// Heartbeats carry the host's drops, and a slow or failing read of them never delays a heartbeat.
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { ControllerSession, systemClock, type SessionApi, type WatchStream } from '../../src/agent/controller-session.js';
import type * as api from '../../src/api/types.js';

class IdleStream extends EventEmitter implements WatchStream {
  destroyed = false;
  write(): boolean {
    return true;
  }
  cancel(): void {
    this.destroyed = true;
  }
}

class Port implements SessionApi {
  readonly beats: Array<{ at: number; drops?: api.DropCount[] }> = [];
  register(): Promise<api.RegisterResponse> {
    return Promise.resolve({ revision: 0, heartbeatIntervalMs: 1000, watchPort: 0 } as api.RegisterResponse);
  }
  heartbeat(_name: string, _rev: number, _o?: unknown, drops?: api.DropCount[]): Promise<unknown> {
    this.beats.push({ at: Date.now(), drops });
    return Promise.resolve({});
  }
  watch(): WatchStream {
    return new IdleStream();
  }
  close(): void {}
}

describe('ControllerSession heartbeats with drops', () => {
  let session: ControllerSession | undefined;
  afterEach(() => {
    session?.stop();
    vi.useRealTimers();
  });

  const start = async (drops: () => Promise<api.DropCount[]>) => {
    vi.useFakeTimers();
    const port = new Port();
    session = new ControllerSession({
      registration: { name: 'node1', vtep: '192.0.2.1', agentVersion: 't', capabilities: [] },
      controller: '192.0.2.100:7400',
      api: port,
      watchApi: () => port,
      appliedRevision: () => 0,
      drops,
      onChange: (_r, ack) => ack(),
      log: pino({ level: 'silent' }),
      clock: systemClock,
    });
    await session.start();
    return port;
  };

  it('carries what the read returns', async () => {
    const port = await start(() => Promise.resolve([{ reason: 'spoof_guard', packets: 3, bytes: 294 }]));
    await vi.advanceTimersByTimeAsync(2_100);
    expect(port.beats.length).toBeGreaterThanOrEqual(2);
    expect(port.beats[0]!.drops).toEqual([{ reason: 'spoof_guard', packets: 3, bytes: 294 }]);
  });

  it('a read that hangs or fails sends the heartbeat without drops, within 250 ms of its time', async () => {
    const hung = await start(() => new Promise(() => undefined));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(hung.beats).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(250);
    expect(hung.beats).toHaveLength(1);
    expect(hung.beats[0]!.drops).toBeUndefined();
    session!.stop();
    vi.useRealTimers();
    const failing = await start(() => Promise.reject(new Error('switch gone')));
    await vi.advanceTimersByTimeAsync(1_001);
    expect(failing.beats).toHaveLength(1);
    expect(failing.beats[0]!.drops).toBeUndefined();
  });
});
