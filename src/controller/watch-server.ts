/**
 * The dedicated Watch server: the same Watch method as on the API port (watch-call.ts drives the
 * hub either way), served by src/http2's small gRPC server instead of grpc-js, because per
 * agent and per update it costs the controller about half as much CPU (see architecture.md).
 */
import type { Logger } from 'pino';
import { GrpcStreamServer } from '../http2/grpc-server.js';
import { serverTlsOptions, type ServerTls } from '../common/tls.js';
import { codecs, watchMethod } from '../api/proto.js';
import { ackRevision, Code, watchCall } from './watch-call.js';
import type { WatchHub } from './watch.js';
import type { Authorizer } from './authz.js';

export interface WatchServerOptions {
  logger: Logger;
  /** Largest request accepted (a start with many network names is the biggest). */
  maxReceiveBytes: number;
  /** Open connections per client address (default: src/http2's). */
  maxConnectionsPerPeer?: number;
  tls: ServerTls;
  onStarted?: () => void;
  /** Who may watch as which host (authz.ts); without it anyone may. */
  authorizer?: Authorizer;
}

export function createWatchServer(hub: WatchHub, opts: WatchServerOptions): GrpcStreamServer {
  const log = opts.logger;
  return new GrpcStreamServer({
    maxMessageBytes: opts.maxReceiveBytes,
    tls: serverTlsOptions(opts.tls) ?? undefined,
    keepaliveMs: 30_000, // as the API port: a dead agent's stream does not linger
    maxConnectionsPerPeer: opts.maxConnectionsPerPeer,
    // The other limits keep src/http2's defaults (see GrpcStreamServerOptions); each hit is logged and counted.
    onLimit: (limit, peer, detail) => log.warn({ limit, peer, detail }, 'watch server: peer hit a limit'),
    onError: (err, peer) => log.warn({ err: err.message, peer }, 'watch server: connection problem'),
    handlers: {
      [watchMethod.path]: (call) => {
        const w = watchCall(
          hub,
          {
            write: (message, done) => call.send(message, done),
            fail: (code, details) => call.end(code, details),
          },
          log,
          opts.onStarted,
          opts.authorizer && { authorizer: opts.authorizer, caller: opts.authorizer.caller(call.peerCertificate, call.peer) },
        );
        call.onMessage = (bytes) => {
          const revision = ackRevision(bytes);
          if (revision !== null) return w.ack(revision);
          let req;
          try {
            req = codecs.watchRequest.decode(bytes);
          } catch (err) {
            call.end(Code.INVALID_ARGUMENT, `Watch: undecodable request: ${(err as Error).message}`);
            w.closed();
            return;
          }
          w.request(req);
        };
        call.onHalfClose = () => {
          w.closed();
          call.end(0, '');
        };
        call.onCancel = () => w.closed();
      },
    },
  });
}
