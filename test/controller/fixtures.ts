/** A controller on an in-memory SQLite store, no network: for unit tests of the core. */
import { silentLogger } from '../../src/common/logging.js';
import { Controller } from '../../src/controller/controller.js';
import { SqliteStore } from '../../src/controller/store/sqlite.js';

export async function memoryController(hostDownAfterMs = 60_000): Promise<Controller> {
  return Controller.open(new SqliteStore({ path: ':memory:' }), {
    hostDownAfterMs,
    heartbeatIntervalMs: 1000,
    changeLogSize: 10_000,
    storeHistory: 10_000,
    logger: silentLogger(),
  });
}

/** Registers hosts h1..hN with VTEPs 192.0.2.1..N. */
export async function registerHosts(c: Controller, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) await c.register({ name: `h${i}`, vtep: `192.0.2.${i}` });
}
