import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/logging.js';
import type { AgentTraceReply, AgentTraceRequest } from '../../src/api/types.js';
import type { Mailbox } from '../../src/controller/store/types.js';
import { TraceAskError } from '../../src/controller/trace-broker.js';
import { REPLY_BOX, REQUEST_BOX, TraceRelay } from '../../src/controller/trace-relay.js';

/** One store's mailbox as etcd's watch delivers it: later, to every subscriber of the box. */
function sharedMailbox() {
  const boxes = new Map<string, Map<string, unknown>>();
  const subscribers = new Map<string, Set<(id: string, v: unknown) => void>>();
  const mailbox: Mailbox = {
    post: async (box, id, value) => {
      if (!boxes.has(box)) boxes.set(box, new Map());
      boxes.get(box)!.set(id, value);
      for (const fn of subscribers.get(box) ?? []) setImmediate(() => fn(id, value));
    },
    remove: async (box, id) => void boxes.get(box)?.delete(id),
    subscribe: (box, fn) => {
      if (!subscribers.has(box)) subscribers.set(box, new Set());
      subscribers.get(box)!.add(fn);
      return () => subscribers.get(box)!.delete(fn);
    },
  };
  return { mailbox, held: (box: string) => [...(boxes.get(box)?.keys() ?? [])] };
}

const REQ: Omit<AgentTraceRequest, 'id'> = { network: 'blue', role: 'source', containerId: 'c1', destination: '198.18.1.2' };
const reply = (host: string): AgentTraceReply => ({ id: 7, result: { flow: `from ${host}`, steps: [], datapathActions: 'output:2', verdict: { kind: 'delivered', explanation: '' } } }) as unknown as AgentTraceReply;

/** A controller's own agents: `hosts` stream to it; `answer` decides what its broker gives. */
function localAgents(hosts: string[], answer: (host: string) => Promise<AgentTraceReply> = async (h) => reply(h)) {
  const asked: string[] = [];
  return {
    asked,
    tracer: {
      connected: (host: string) => hosts.includes(host),
      ask: (host: string) => {
        asked.push(host);
        return answer(host);
      },
    },
  };
}

describe('trace relay between controllers', () => {
  it('asks an agent streaming here directly, posting nothing', async () => {
    const box = sharedMailbox();
    const here = localAgents(['h1']);
    const relay = new TraceRelay(box.mailbox, here.tracer, silentLogger());
    expect((await relay.ask('h1', REQ, 1000)).result?.flow).toBe('from h1');
    expect(box.held(REQUEST_BOX)).toEqual([]);
    relay.stop();
  });

  it('reaches an agent streaming to another controller through the mailbox, and clears its mail', async () => {
    const box = sharedMailbox();
    const leader = localAgents([]);
    const follower = localAgents(['h2']);
    const other = localAgents(['h3']);
    const relays = [leader, follower, other].map((c) => new TraceRelay(box.mailbox, c.tracer, silentLogger()));
    const r = await relays[0]!.ask('h2', REQ, 2000);
    expect(r.result?.flow).toBe('from h2');
    expect(follower.asked).toEqual(['h2']);
    expect(other.asked).toEqual([]); // only the controller holding the stream answers
    expect(box.held(REQUEST_BOX)).toEqual([]);
    expect(box.held(REPLY_BOX)).toEqual([]);
    for (const relay of relays) relay.stop();
  });

  it("passes on the other controller's failure as it was", async () => {
    const box = sharedMailbox();
    const follower = localAgents(['h2'], async (h) => {
      throw new TraceAskError('busy', h, `host ${h} already has 4 traces in flight; try again`);
    });
    const relays = [new TraceRelay(box.mailbox, localAgents([]).tracer, silentLogger()), new TraceRelay(box.mailbox, follower.tracer, silentLogger())];
    const err = await relays[0]!.ask('h2', REQ, 2000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TraceAskError);
    expect(err).toMatchObject({ failure: 'busy', host: 'h2', message: 'host h2 already has 4 traces in flight; try again' });
    for (const relay of relays) relay.stop();
  });

  it('says so when no controller holds the host, and leaves no request behind', async () => {
    const box = sharedMailbox();
    const relays = [new TraceRelay(box.mailbox, localAgents([]).tracer, silentLogger()), new TraceRelay(box.mailbox, localAgents(['h9']).tracer, silentLogger())];
    const err = await relays[0]!.ask('h2', REQ, 150).catch((e: unknown) => e);
    expect(err).toMatchObject({ failure: 'not_connected', message: 'no controller answered for host h2 within 150 ms: its agent streams to none of them' });
    expect(box.held(REQUEST_BOX)).toEqual([]);
    for (const relay of relays) relay.stop();
  });

  it('refuses an oversized relayed reply as the broker would', async () => {
    const box = sharedMailbox();
    const huge = { ...reply('h2'), result: { ...reply('h2').result!, steps: Array.from({ length: 100 }, () => ({ table: 0, match: '', actions: [] })) } } as unknown as AgentTraceReply;
    const relays = [new TraceRelay(box.mailbox, localAgents([]).tracer, silentLogger()), new TraceRelay(box.mailbox, localAgents(['h2'], async () => huge).tracer, silentLogger())];
    await expect(relays[0]!.ask('h2', REQ, 2000)).rejects.toMatchObject({ failure: 'bad_reply' });
    for (const relay of relays) relay.stop();
  });

  it('ignores mail that is not a trace request', async () => {
    const box = sharedMailbox();
    const follower = localAgents(['h2']);
    const relay = new TraceRelay(box.mailbox, follower.tracer, silentLogger());
    await box.mailbox.post(REQUEST_BOX, 'x', { host: 'h2' });
    await box.mailbox.post(REQUEST_BOX, 'y', 'nonsense');
    await new Promise((r) => setImmediate(r));
    expect(follower.asked).toEqual([]);
    relay.stop();
  });
});
