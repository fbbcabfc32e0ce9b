import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { LoomClient } from '../../src/api/client.js';
import { startDaemon, tempDir } from '../harness/controller-daemon.js';
import { SimAgent, startController, type TestController } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function controller(): Promise<TestController> {
  const tc = await startController();
  cleanups.push(() => tc.stop());
  return tc;
}

function simAgent(tc: TestController, name: string, viaWatchPort: boolean, connection = name): SimAgent {
  const a = new SimAgent(tc.target, name, '192.0.2.1', connection, viaWatchPort ? tc.watchTarget : tc.target);
  cleanups.push(() => a.close());
  return a;
}

describe('the dedicated Watch server', () => {
  it('is advertised at registration and refuses what is not a Watch of a registered host', async () => {
    const tc = await controller();
    const reply = await tc.client.register({ name: 'h1', vtep: '192.0.2.1' });
    expect(`127.0.0.1:${reply.watchPort}`).toBe(tc.watchTarget);

    const stranger = simAgent(tc, 'nobody', true);
    stranger.watch();
    await stranger.until(() => stranger.error !== null);
    expect(stranger.error).toMatchObject({ code: grpc.status.NOT_FOUND, details: 'Watch: host nobody is not registered; call Register first' });

    // The API is not served there: a clear UNIMPLEMENTED, not a hang.
    const wrongPort = new LoomClient(tc.watchTarget);
    cleanups.push(() => wrongPort.close());
    await expect(wrongPort.listNetworks()).rejects.toMatchObject({ code: grpc.status.UNIMPLEMENTED, details: expect.stringMatching(/ListNetworks/) });
  });

  it('ends the stream a host had on the API port when it watches on the Watch port, and the other way round', async () => {
    const tc = await controller();
    await tc.client.createNetwork({ name: 'blue', ipv4Cidr: '10.1.0.0/24' });
    const onApi = simAgent(tc, 'h1', false, 'first');
    await onApi.register();
    const rev = (await tc.client.createEndpoint({ network: 'blue', host: 'h1', containerId: 'a' })).modRevision;
    onApi.watch();
    await onApi.untilRevision(rev);
    const onWatch = simAgent(tc, 'h1', true, 'second');
    onWatch.watch();
    await onApi.until(() => onApi.error !== null);
    expect(onApi.error).toMatchObject({ code: grpc.status.ABORTED, details: 'superseded by a newer Watch from host h1' });
    await onWatch.untilRevision(rev);
    const again = simAgent(tc, 'h1', false, 'third');
    again.watch();
    await onWatch.until(() => onWatch.error !== null);
    expect(onWatch.error).toMatchObject({ code: grpc.status.ABORTED });
    await again.untilRevision(rev);
    expect((await tc.client.wait(rev, 5000)).converged).toBe(true);
  });

  it('ends open streams with UNAVAILABLE when the controller stops, so agents come back', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const d = await startDaemon(['--db', `${dir}/controller.db`]);
    cleanups.push(() => d.kill9());
    const client = new LoomClient(d.target);
    cleanups.push(() => client.close());
    const reply = await client.register({ name: 'h1', vtep: '192.0.2.1' });
    expect(reply.watchPort).toBeGreaterThan(0);
    expect(reply.watchPort).not.toBe(d.grpcPort);
    const a = new SimAgent(d.target, 'h1', '192.0.2.1', 'h1', `127.0.0.1:${reply.watchPort}`);
    cleanups.push(() => a.close());
    a.watch();
    await a.until(() => a.messages.length > 0);
    expect(await d.stop()).toBe(0);
    await a.until(() => a.error !== null);
    expect(a.error).toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it("is off with --watch-listen '': agents are told to watch on the API port", async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const d = await startDaemon(['--db', `${dir}/controller.db`, '--watch-listen', '']);
    cleanups.push(() => d.kill9());
    const client = new LoomClient(d.target);
    cleanups.push(() => client.close());
    expect((await client.register({ name: 'h1', vtep: '192.0.2.1' })).watchPort).toBe(0);
  });
});
