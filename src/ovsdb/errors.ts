/** Error classes of the OVSDB client; callers branch on them with `instanceof`. */
import type { Operation } from './operations.js';

/** Base class of every error the client raises. */
export class OvsdbError extends Error {
  override name = 'OvsdbError';
}

/** The server answered a request with a JSON-RPC error (e.g. "unknown database"). */
export class OvsdbRpcError extends OvsdbError {
  override name = 'OvsdbRpcError';
  constructor(
    readonly method: string,
    /** The server's short error tag, e.g. "unknown database", "unknown method", "canceled". */
    readonly error: string,
    readonly details?: string,
  ) {
    super(`ovsdb ${method} failed: ${error}${details ? `: ${details}` : ''}`);
  }
}

/**
 * One operation of a transaction failed. `index` is the operation's position; an index equal to
 * the number of operations means the commit itself failed (e.g. a referential integrity
 * violation), and then `op` is undefined.
 */
export class TransactionError extends OvsdbError {
  override name = 'TransactionError';
  constructor(
    readonly db: string,
    readonly index: number,
    readonly op: Operation | undefined,
    readonly error: string,
    readonly details: string | undefined,
    /** The raw per-operation results the server returned. */
    readonly results: readonly unknown[],
  ) {
    const what = op ? `operation #${index} (${describeOp(op)})` : `commit (after ${index} operations)`;
    super(`transaction on ${db} failed at ${what}: ${error}${details ? `: ${details}` : ''}`);
  }
}

/** No response arrived within the request timeout. */
export class RequestTimeoutError extends OvsdbError {
  override name = 'RequestTimeoutError';
  constructor(
    readonly method: string,
    readonly timeoutMs: number,
  ) {
    super(`ovsdb ${method} got no response within ${timeoutMs} ms`);
  }
}

/** The connection closed (or failed) while the request was pending, or before it was sent. */
export class ConnectionClosedError extends OvsdbError {
  override name = 'ConnectionClosedError';
  constructor(
    readonly remote: string,
    readonly reason: string,
  ) {
    super(`ovsdb connection to ${remote} closed: ${reason}`);
  }
}

function describeOp(op: Operation): string {
  return 'table' in op ? `${op.op} on ${op.table}` : op.op;
}
