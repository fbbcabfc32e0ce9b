import { describe, expect, it } from 'vitest';
import { encodeLinkRequest, NLM_F_DUMP, RTM_GETLINK, RTM_NEWLINK } from '../../src/netlink/codec/index.js';
import { NetlinkError } from '../../src/netlink/errors.js';
import { Requester } from '../../src/netlink/requester.js';
import { type Reply, type RtnetlinkSocket, TransportError } from '../../src/netlink/socket.js';

// A scripted stand-in for the transport: the logic under test is the retry/error mapping.
function fakeSocket(replies: Array<Reply | Error>): { socket: RtnetlinkSocket; calls: Array<[number, number]> } {
  const calls: Array<[number, number]> = [];
  const socket = {
    netns: '/run/netns/test',
    request(type: number, flags: number): Promise<Reply> {
      calls.push([type, flags]);
      const next = replies.shift();
      if (!next) return Promise.reject(new Error('no scripted reply left'));
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    },
  } as unknown as RtnetlinkSocket;
  return { socket, calls };
}

const link = (index: number, name: string) => ({ type: RTM_NEWLINK, flags: 2, seq: 1, pid: 0, payload: encodeLinkRequest({ index, name }) });

describe('Requester', () => {
  it('retries a dump the kernel marked interrupted and returns the consistent one', async () => {
    const { socket, calls } = fakeSocket([
      { messages: [link(1, 'lo')], status: { errno: 0 }, dumpInterrupted: true },
      { messages: [link(1, 'lo'), link(2, 'eth0')], status: { errno: 0 }, dumpInterrupted: false },
    ]);
    const msgs = await new Requester(socket).dump('link.list', RTM_GETLINK, encodeLinkRequest({}));
    expect(msgs).toHaveLength(2);
    expect(calls).toEqual([[RTM_GETLINK, NLM_F_DUMP], [RTM_GETLINK, NLM_F_DUMP]]);
  });

  it('gives up with EINTR when every attempt is interrupted', async () => {
    const interrupted: Reply = { messages: [], status: { errno: 0 }, dumpInterrupted: true };
    const { socket } = fakeSocket(Array.from({ length: 5 }, () => interrupted));
    await expect(new Requester(socket).dump('link.list', RTM_GETLINK, Buffer.alloc(16))).rejects.toMatchObject({ code: 'EINTR', operation: 'link.list' });
  });

  it('maps a kernel errno to a NetlinkError naming the operation, subject, namespace and kernel text', async () => {
    const { socket } = fakeSocket([{ messages: [], status: { errno: 19, extackMessage: 'Device not found' }, dumpInterrupted: false }]);
    const err = await new Requester(socket).call('link.setMtu', 'eth9', 19, 0, Buffer.alloc(16)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toMatchObject({ code: 'ENODEV', errno: 19, operation: 'link.setMtu', subject: 'eth9', netns: '/run/netns/test' });
    expect((err as Error).message).toBe("link.setMtu 'eth9' in netns /run/netns/test failed: ENODEV (no such device): Device not found");
  });

  it('maps a transport timeout to code ETIMEDOUT', async () => {
    const { socket } = fakeSocket([new TransportError('no netlink reply within 10 ms', 'ETIMEDOUT')]);
    await expect(new Requester(socket).call('route.add', 'default', 24, 0, Buffer.alloc(12))).rejects.toMatchObject({
      code: 'ETIMEDOUT',
      message: expect.stringContaining('no netlink reply within 10 ms'),
    });
  });

  it('resolves a name to an index with one lookup, and a number without any', async () => {
    const { socket, calls } = fakeSocket([{ messages: [link(7, 'eth0')], status: { errno: 0 }, dumpInterrupted: false }]);
    const r = new Requester(socket);
    expect(await r.index('address.add', 'eth0')).toBe(7);
    expect(await r.index('address.add', 3)).toBe(3);
    expect(calls).toHaveLength(1);
  });
});
