/**
 * JSON-RPC 1.0 message shapes as used by OVSDB (RFC 7047 section 4), and classification of
 * parsed JSON into them.
 */

/** A request: expects a response with the same id. */
export interface RpcRequest {
  kind: 'request';
  id: RpcId;
  method: string;
  params: unknown[];
}

/** A notification: a request with id null; no response. */
export interface RpcNotification {
  kind: 'notification';
  method: string;
  params: unknown[];
}

/** A response: exactly one of result and error is non-null. */
export interface RpcResponse {
  kind: 'response';
  id: RpcId;
  result: unknown;
  error: unknown;
}

export type RpcId = string | number;
export type RpcMessage = RpcRequest | RpcNotification | RpcResponse;

/** Thrown for JSON that is not a JSON-RPC 1.0 message. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** Classifies one parsed JSON value as a request, notification or response. */
export function classifyMessage(json: unknown): RpcMessage {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ProtocolError(`JSON-RPC message is not an object: ${preview(json)}`);
  }
  const m = json as Record<string, unknown>;
  if (typeof m.method === 'string') {
    const params = m.params === undefined ? [] : m.params;
    if (!Array.isArray(params)) throw new ProtocolError(`"params" is not an array: ${preview(json)}`);
    if (m.id === null || m.id === undefined) return { kind: 'notification', method: m.method, params };
    if (!isId(m.id)) throw new ProtocolError(`unsupported request id: ${preview(json)}`);
    return { kind: 'request', id: m.id, method: m.method, params };
  }
  if ('result' in m || 'error' in m) {
    if (!isId(m.id)) throw new ProtocolError(`response without a usable id: ${preview(json)}`);
    return { kind: 'response', id: m.id, result: m.result ?? null, error: m.error ?? null };
  }
  throw new ProtocolError(`neither request nor response: ${preview(json)}`);
}

function isId(id: unknown): id is RpcId {
  return typeof id === 'string' || typeof id === 'number';
}

function preview(json: unknown): string {
  const s = JSON.stringify(json) ?? String(json);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}
