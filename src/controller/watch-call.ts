/**
 * One agent's Watch call, whichever server carries it (grpc-js on the API port, or the dedicated
 * Watch server): the first request must be `start` for a registered host, later ones `ack`s.
 * The transport hands over decoded requests and closes; this file talks to the hub.
 */
import type { Logger } from 'pino';
import type { WatchRequest } from './api/types.js';
import type { WatchHub, WatchSession, WatchSink } from './watch.js';

/** gRPC status codes used here (numbers, so the dedicated server needs no grpc-js). */
export const Code = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, ABORTED: 10, INTERNAL: 13, UNAVAILABLE: 14 } as const;

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
  /** The call ended (client gone, cancelled, or ended by us). */
  closed(): void;
}

export function watchCall(hub: WatchHub, t: WatchTransport, log: Logger, onStarted?: () => void): WatchCall {
  let session: WatchSession | null = null;
  const sink: WatchSink = {
    write: (message, done) => t.write(message, done),
    abort: (details, unavailable) => t.fail(unavailable ? Code.UNAVAILABLE : Code.ABORTED, details),
  };
  const end = (code: number, details: string): void => {
    if (session) hub.close(session);
    t.fail(code, details);
  };
  return {
    request(req) {
      try {
        if (req.start) {
          if (session) return end(Code.INVALID_ARGUMENT, 'Watch: start sent twice on one stream');
          const host = req.start.host;
          if (!hub.knowsHost(host)) return end(Code.NOT_FOUND, `Watch: host ${host || '""'} is not registered; call Register first`);
          const opened = hub.open(host, req.start.fromRevision ?? 0, req.start.networks ?? [], sink, req.start.storeId ?? '');
          session = opened.session;
          onStarted?.();
          opened.replaced?.sink.abort(`superseded by a newer Watch from host ${host}`);
        } else if (req.ack) {
          if (!session) return end(Code.INVALID_ARGUMENT, 'Watch: ack before start');
          hub.ack(session, req.ack.revision);
        } else {
          end(Code.INVALID_ARGUMENT, 'Watch: a request must be start or ack');
        }
      } catch (err) {
        log.error({ err }, 'watch request failed');
        end(Code.INTERNAL, `internal error: ${(err as Error).message}`);
      }
    },
    closed() {
      if (session) hub.close(session);
    },
  };
}
