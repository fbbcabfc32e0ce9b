import { describe, expect, it } from 'vitest';
import { codecs } from '../../src/api/proto.js';
import pino from 'pino';
import { ackRevision, Code, watchCall } from '../../src/controller/watch-call.js';

describe('ack fast path', () => {
  it('reads the revision of exactly an ack, as the generic decoder would', () => {
    for (const revision of [0, 1, 127, 128, 300, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
      const bytes = codecs.watchRequest.encode({ ack: { revision } });
      expect(ackRevision(bytes)).toBe(revision);
      expect(codecs.watchRequest.decode(bytes).ack?.revision).toBe(revision);
    }
  });

  it('leaves everything else to the generic decoder', () => {
    expect(ackRevision(codecs.watchRequest.encode({ start: { host: 'h1', fromRevision: 3 } }))).toBeNull();
    expect(ackRevision(Buffer.from([0x12, 0x03, 0x08, 0x01]))).toBeNull(); // length disagrees
    expect(ackRevision(Buffer.from([0x12, 0x02, 0x10, 0x01]))).toBeNull(); // another field
    expect(ackRevision(Buffer.from([0x12, 0x02, 0x08, 0x81]))).toBeNull(); // truncated varint
    expect(ackRevision(Buffer.from([0x12, 0x04, 0x08, 0x01, 0x08, 0x02]))).toBeNull(); // trailing field
    expect(ackRevision(Buffer.from([]))).toBeNull();
  });
});

describe('trace replies on Watch', () => {
  it('are not acks, need a started stream, and go to the hub with the session', () => {
    const reply = { id: 4, error: 'no such endpoint', errorKind: 'not_found' };
    expect(ackRevision(codecs.watchRequest.encode({ traceReply: reply }))).toBeNull();
    expect(codecs.watchRequest.decode(codecs.watchRequest.encode({ traceReply: reply })).traceReply).toMatchObject(reply);
    const routed: unknown[] = [];
    const session = { host: 'h1' };
    const hub = {
      knowsHost: () => true,
      open: () => ({ session }),
      close: () => undefined,
      traceReply: (s: unknown, r: unknown) => routed.push([s, r]),
    } as unknown as Parameters<typeof watchCall>[0];
    const failures: Array<[number, string]> = [];
    const transport = { write: () => true, fail: (code: number, details: string) => failures.push([code, details]) };
    const early = watchCall(hub, transport, pino({ level: 'silent' }));
    early.request({ traceReply: reply });
    expect(failures).toEqual([[Code.INVALID_ARGUMENT, 'Watch: trace reply before start']]);
    const call = watchCall(hub, transport, pino({ level: 'silent' }));
    call.request({ start: { host: 'h1' } });
    call.request({ traceReply: reply });
    expect(routed).toEqual([[session, reply]]);
  });
});
