// Loom's controller for tests: in-process over loopback gRPC (fast, for most tests) or, in
// controller-daemon.ts, the real daemon as a child process (for restarts and the CLI).
import { silentLogger } from '../../src/common/logging.js';
import { LoomClient } from '../../src/api/client.js';
import { Controller, type ControllerOptions } from '../../src/controller/controller.js';
import { Convergence } from '../../src/controller/convergence.js';
import { apiHandlers, createGrpcServer, listen } from '../../src/controller/server.js';
import { createWatchServer } from '../../src/controller/watch-server.js';
import { SqliteStore } from '../../src/controller/store/sqlite.js';
import type { Store } from '../../src/controller/store/types.js';
import { WatchHub } from '../../src/controller/watch.js';

export interface TestController {
  controller: Controller;
  hub: WatchHub;
  convergence: Convergence;
  client: LoomClient;
  /** The API port. */
  target: string;
  /** The dedicated Watch server (what RegisterResponse.watchPort points at). */
  watchTarget: string;
  /** Closes the Watch server (as if its port were firewalled): streams on it end UNAVAILABLE. */
  stopWatchServer(): Promise<void>;
  stop(): Promise<void>;
}

export async function startController(
  opts: Partial<ControllerOptions> & { dbPath?: string; store?: Store; maxMessageBytes?: number; quietMs?: number; coalesceMs?: number; ackTimeoutMs?: number } = {},
): Promise<TestController> {
  const logger = silentLogger();
  const store = opts.store ?? new SqliteStore({ path: opts.dbPath ?? ':memory:' });
  const controller = await Controller.open(store, {
    hostDownAfterMs: 60_000,
    heartbeatIntervalMs: 1000,
    changeLogSize: 10_000,
    storeHistory: 10_000,
    logger,
    ...opts,
  });
  controller.start();
  const convergence = new Convergence(controller);
  const hub = new WatchHub(controller, {
    maxMessageBytes: opts.maxMessageBytes ?? 256 * 1024,
    quietMs: opts.quietMs,
    coalesceMs: opts.coalesceMs,
    ackTimeoutMs: opts.ackTimeoutMs,
    logger,
    onProgress: (batch) => convergence.report(batch),
  });
  let watchPort = 0;
  const server = createGrpcServer(apiHandlers(controller, convergence, () => watchPort, hub.traces), hub, { logger, maxReceiveBytes: 1 << 20 });
  const watchServer = createWatchServer(hub, { logger, maxReceiveBytes: 1 << 20, tls: { cert: '', key: '', clientCa: '' } });
  const port = await listen(server, '127.0.0.1:0');
  watchPort = await watchServer.listen('127.0.0.1', 0);
  const target = `127.0.0.1:${port}`;
  const client = new LoomClient(target);
  return {
    controller,
    hub,
    convergence,
    client,
    target,
    watchTarget: `127.0.0.1:${watchPort}`,
    stopWatchServer: () => watchServer.close(0),
    async stop() {
      client.close();
      server.forceShutdown();
      await watchServer.close(0);
      await controller.close();
    },
  };
}
