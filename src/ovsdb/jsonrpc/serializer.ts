/**
 * JSON-RPC 1.0 encoding for OVSDB. Values with a `toJSON()` (OVSDB uuids, sets, maps) are
 * serialised to their wire forms by `JSON.stringify`.
 */
import type { RpcId } from './messages.js';

/** Encodes a request. */
export function encodeRequest(id: RpcId, method: string, params: readonly unknown[]): string {
  return JSON.stringify({ id, method, params });
}

/** Encodes a notification (a request with id null). */
export function encodeNotification(method: string, params: readonly unknown[]): string {
  return JSON.stringify({ id: null, method, params });
}

/** Encodes a successful response. */
export function encodeResult(id: RpcId, result: unknown): string {
  return JSON.stringify({ id, result, error: null });
}

/** Encodes an error response. */
export function encodeError(id: RpcId, error: unknown): string {
  return JSON.stringify({ id, result: null, error });
}
