/** In-process controller over loopback gRPC, and simulated agents, for integration tests. */
import type * as grpc from '@grpc/grpc-js';
import { silentLogger } from '../../src/common/logging.js';
import { LoomClient } from '../../src/controller/api/client.js';
import type { WatchRequest, WatchResponse } from '../../src/controller/api/types.js';
import { ViewState } from '../../src/controller/api/view-state.js';
import { Controller, type ControllerOptions } from '../../src/controller/controller.js';
import { createGrpcServer, listen } from '../../src/controller/server.js';
import { SqliteStore } from '../../src/controller/store/sqlite.js';
import { WatchHub } from '../../src/controller/watch.js';

export interface TestController {
  controller: Controller;
  hub: WatchHub;
  client: LoomClient;
  target: string;
  stop(): Promise<void>;
}

export async function startController(
  opts: Partial<ControllerOptions> & { dbPath?: string; maxMessageBytes?: number; quietMs?: number; coalesceMs?: number } = {},
): Promise<TestController> {
  const logger = silentLogger();
  const store = new SqliteStore({ path: opts.dbPath ?? ':memory:' });
  const controller = await Controller.open(store, {
    hostDownAfterMs: 60_000,
    heartbeatIntervalMs: 1000,
    changeLogSize: 10_000,
    storeHistory: 10_000,
    logger,
    ...opts,
  });
  controller.start();
  const hub = new WatchHub(controller, { maxMessageBytes: opts.maxMessageBytes ?? 256 * 1024, quietMs: opts.quietMs, coalesceMs: opts.coalesceMs, logger });
  const server = createGrpcServer(controller, hub, { logger, maxReceiveBytes: 1 << 20 });
  const port = await listen(server, '127.0.0.1:0');
  const target = `127.0.0.1:${port}`;
  const client = new LoomClient(target);
  return {
    controller,
    hub,
    client,
    target,
    async stop() {
      client.close();
      server.forceShutdown();
      await controller.close();
    },
  };
}

/** A simulated agent: registers, watches, applies and (unless paused) acks. */
export class SimAgent {
  readonly view = new ViewState();
  readonly client: LoomClient;
  readonly messages: WatchResponse[] = [];
  call: grpc.ClientDuplexStream<WatchRequest, WatchResponse> | null = null;
  autoAck = true;
  error: grpc.ServiceError | null = null;
  private listeners: (() => void)[] = [];

  constructor(
    target: string,
    readonly name: string,
    readonly vtep: string,
  ) {
    // A distinct channel option gives each agent its own connection, as separate hosts would have.
    this.client = new LoomClient(target, { 'loom.test.agent': name } as grpc.ClientOptions);
  }

  async register(): Promise<void> {
    await this.client.register({ name: this.name, vtep: this.vtep, agentVersion: 'test', capabilities: ['vxlan'] });
  }

  watch(fromRevision = 0, networks: string[] = [], storeId = ''): void {
    const call = this.client.watch();
    this.call = call;
    call.on('data', (msg: WatchResponse) => {
      this.messages.push(msg);
      if (this.view.apply(msg) && this.autoAck) call.write({ ack: { revision: msg.revision } });
      for (const l of this.listeners.splice(0)) l();
    });
    call.on('error', (err: grpc.ServiceError) => {
      this.error = err;
      for (const l of this.listeners.splice(0)) l();
    });
    call.write({ start: { host: this.name, fromRevision, networks, storeId } });
  }

  /** Resolves once `pred` holds (checked after every message). */
  until(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent ${this.name}: condition not met in ${timeoutMs} ms (revision ${this.view.revision})`)), timeoutMs);
      const check = (): void => {
        if (pred()) {
          clearTimeout(timer);
          resolve();
        } else this.listeners.push(check);
      };
      this.listeners.push(check);
    });
  }

  untilRevision(rev: number, timeoutMs?: number): Promise<void> {
    return this.until(() => this.view.revision >= rev, timeoutMs);
  }

  stopWatch(): void {
    this.call?.cancel();
    this.call = null;
  }

  close(): void {
    this.stopWatch();
    this.client.close();
  }
}
