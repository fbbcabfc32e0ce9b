/**
 * One agent's Watch call, whichever server carries it (grpc-js on the API port, or the dedicated
 * Watch server): the first request must be `start` for a registered host, later ones `ack`s.
 * The transport hands over decoded requests and closes; this file talks to the hub.
 */
import type { Logger } from 'pino';
import { GrpcStatus } from '../http2/grpc-server.js';
import type { WatchRequest } from '../api/types.js';
import { logCaller, type Authorizer, type Caller } from './authz.js';
import { ApiError } from './errors.js';
import type { WatchHub, WatchSession, WatchSink } from './watch.js';

/** gRPC status codes (numbers, as both servers take them). */
export const Code = GrpcStatus;

/** What a transport provides for one call. */
export interface WatchTransport {
  /** Writes one encoded WatchResponse; `done` once it left (see WatchSink). */
  write(message: Buffer, done: () => void): boolean;
  /** Ends the call with an error status. */
  fail(code: number, details: string): void;
}

export interface WatchCall {
  /** A decoded request from the agent. */
  request(req: WatchRequest): void;
  /** An ack, decoded by the transport's fast path (see ackRevision). */
  ack(revision: number): void;
  /** The call ended (client gone, cancelled, or ended by us). */
  closed(): void;
}

/**
 * With `auth`, a start is checked against the caller before the hub sees it: a refused start
 * (PERMISSION_DENIED) supersedes nobody's stream.
 */
export function watchCall(hub: WatchHub, t: WatchTransport, log: Logger, onStarted?: () => void, auth?: { authorizer: Authorizer; caller: Caller }): WatchCall {
  let session: WatchSession | null = null;
  const sink: WatchSink = {
    write: (message, done) => t.write(message, done),
    abort: (details, unavailable) => t.fail(unavailable ? Code.UNAVAILABLE : Code.ABORTED, details),
  };
  const end = (code: number, details: string): void => {
    if (session) hub.close(session);
    t.fail(code, details);
  };
  const ack = (revision: number): void => {
    if (!session) return end(Code.INVALID_ARGUMENT, 'Watch: ack before start');
    hub.ack(session, revision);
  };
  return {
    request(req) {
      try {
        if (req.start) {
          if (session) return end(Code.INVALID_ARGUMENT, 'Watch: start sent twice on one stream');
          const host = req.start.host;
          try {
            auth?.authorizer.checkWatch(auth.caller, host);
          } catch (err) {
            if (!(err instanceof ApiError)) throw err;
            log.warn({ method: 'Watch', caller: logCaller(auth!.caller), host, code: err.code, details: err.message }, 'request refused');
            return end(Code.PERMISSION_DENIED, err.message);
          }
          if (!hub.knowsHost(host)) return end(Code.NOT_FOUND, `Watch: host ${host || '""'} is not registered; call Register first`);
          const opened = hub.open(host, req.start.fromRevision ?? 0, req.start.networks ?? [], sink, req.start.storeId ?? '');
          session = opened.session;
          onStarted?.();
          opened.replaced?.sink.abort(`superseded by a newer Watch from host ${host}`);
        } else if (req.ack) {
          ack(req.ack.revision);
        } else if (req.traceReply) {
          if (!session) return end(Code.INVALID_ARGUMENT, 'Watch: trace reply before start');
          hub.traceReply(session, req.traceReply);
        } else {
          end(Code.INVALID_ARGUMENT, 'Watch: a request must be start, ack or trace_reply');
        }
      } catch (err) {
        log.error({ err }, 'watch request failed');
        end(Code.INTERNAL, `internal error: ${(err as Error).message}`);
      }
    },
    ack,
    closed() {
      if (session) hub.close(session);
    },
  };
}

/**
 * The revision of an encoded WatchRequest that is exactly an ack (field 2 holding field 1), or
 * null for anything else. Acks are most of what agents send; this skips the generic decoder.
 */
export function ackRevision(b: Uint8Array): number | null {
  if (b.length < 2 || b[0] !== 0x12 || b[1] !== b.length - 2) return null;
  if (b.length === 2) return 0;
  if (b[2] !== 0x08) return null;
  let v = 0;
  let mul = 1;
  for (let i = 3; i < b.length && i < 11; i++) {
    v += (b[i] & 0x7f) * mul;
    if (b[i] < 0x80) return i === b.length - 1 && Number.isSafeInteger(v) ? v : null;
    mul *= 128;
  }
  return null;
}
