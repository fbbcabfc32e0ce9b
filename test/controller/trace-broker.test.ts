import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_REPLY_STEPS, MAX_TRACES_PER_AGENT, TraceAskError, TraceBroker, type TraceTransport } from '../../src/controller/trace-broker.js';
import type { AgentTraceRequest } from '../../src/api/types.js';

function fake(over: Partial<TraceTransport> = {}) {
  const sent: Array<{ host: string; req: AgentTraceRequest }> = [];
  const t: TraceTransport = { connected: () => true, capable: () => true, send: (host, req) => (sent.push({ host, req }), true), ...over };
  return { broker: new TraceBroker(t), sent };
}
const req = { network: 'blue', role: 'source', destination: '198.18.0.9' };
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: TraceAskError) => e);

describe('TraceBroker', () => {
  afterEach(() => vi.useRealTimers());

  it('correlates replies by id and host; a reply from another host or with an unknown id is ignored', async () => {
    const { broker, sent } = fake();
    const a = broker.ask('h1', req, 1000);
    const b = broker.ask('h2', req, 1000);
    const [ra, rb] = sent;
    expect(ra!.req.id).not.toBe(rb!.req.id);
    broker.reply('h1', { id: rb!.req.id, error: 'wrong host' }); // h2's id from h1: ignored
    broker.reply('h2', { id: 999, error: 'unknown' });
    broker.reply('h2', { id: rb!.req.id, result: null });
    broker.reply('h1', { id: ra!.req.id, error: 'gone', errorKind: 'not_found' });
    await expect(a).resolves.toMatchObject({ error: 'gone' });
    await expect(b).resolves.toMatchObject({ id: rb!.req.id });
    expect(broker.inFlight).toBe(0);
  });

  it('never asks an agent that is not connected or too old; times out a silent one', async () => {
    expect(await failure(fake({ connected: () => false }).broker.ask('h1', req, 100))).toMatchObject({ failure: 'not_connected', host: 'h1' });
    expect(await failure(fake({ capable: () => false }).broker.ask('h1', req, 100))).toMatchObject({ failure: 'too_old', message: expect.stringMatching(/too old to trace/) });
    vi.useFakeTimers();
    const { broker } = fake();
    const p = failure(broker.ask('h1', req, 250));
    await vi.advanceTimersByTimeAsync(250);
    expect(await p).toMatchObject({ failure: 'timeout', message: 'the agent of host h1 did not answer within 250 ms' });
    expect(broker.inFlight).toBe(0);
  });

  it(`bounds requests in flight per agent (${MAX_TRACES_PER_AGENT}) and fails them when the stream closes`, async () => {
    const { broker } = fake();
    const pending = Array.from({ length: MAX_TRACES_PER_AGENT }, () => failure(broker.ask('h1', req, 10_000)));
    expect(await failure(broker.ask('h1', req, 10_000))).toMatchObject({ failure: 'busy' });
    const other = failure(broker.ask('h2', req, 10_000)); // other agents are not affected
    broker.streamClosed('h1');
    for (const p of pending) expect(await p).toMatchObject({ failure: 'stream_closed' });
    expect(broker.inFlight).toBe(1);
    broker.streamClosed('h2');
    expect(await other).toBeInstanceOf(TraceAskError);
  });

  it('refuses a reply larger than its bounds', async () => {
    const { broker, sent } = fake();
    const p = failure(broker.ask('h1', req, 1000));
    const step = { table: 0, tableName: 'classifier', feature: 'base', priority: 0, cookie: '', match: '', actions: [] };
    broker.reply('h1', { id: sent[0]!.req.id, result: { host: 'h1', role: 'source', flow: '', steps: Array(MAX_REPLY_STEPS + 1).fill(step), verdict: null, datapathActions: '' } });
    expect(await p).toMatchObject({ failure: 'bad_reply', message: expect.stringMatching(/65 steps/) });
    const q = failure(broker.ask('h1', req, 1000));
    broker.reply('h1', { id: sent[1]!.req.id, error: 'x'.repeat(100_000) });
    expect(await q).toMatchObject({ failure: 'bad_reply' });
  });
});
