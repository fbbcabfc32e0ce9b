/** Simulated agents for the controller's integration tests (the controller itself: test/harness/controller.ts). */
import type * as grpc from '@grpc/grpc-js';
import { LoomClient } from '../../src/api/client.js';
import type { WatchRequest, WatchResponse } from '../../src/api/types.js';
import { ViewState } from '../../src/api/view-state.js';

export { startController, type TestController } from '../harness/controller.js';

/** A simulated agent: registers, watches, applies and (unless paused) acks. */
export class SimAgent {
  readonly view = new ViewState();
  readonly client: LoomClient;
  /** Where Watch goes: the API channel, or a channel of its own to the dedicated Watch port. */
  readonly watchClient: LoomClient;
  readonly messages: WatchResponse[] = [];
  call: grpc.ClientDuplexStream<WatchRequest, WatchResponse> | null = null;
  autoAck = true;
  error: grpc.ServiceError | null = null;
  private listeners: (() => void)[] = [];

  constructor(
    target: string,
    readonly name: string,
    readonly vtep: string,
    connection = name,
    watchTarget = target,
  ) {
    // A distinct channel option gives each agent its own connection, as separate hosts would have.
    this.client = new LoomClient(target, { 'loom.test.agent': connection } as grpc.ClientOptions);
    this.watchClient = watchTarget === target ? this.client : new LoomClient(watchTarget, { 'loom.test.agent': connection } as grpc.ClientOptions);
  }

  async register(): Promise<void> {
    await this.client.register({ name: this.name, vtep: this.vtep, agentVersion: 'test', capabilities: ['vxlan'] });
  }

  watch(fromRevision = 0, networks: string[] = [], storeId = ''): void {
    const call = this.watchClient.watch();
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
    this.watchClient.close();
  }
}
