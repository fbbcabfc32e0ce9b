/**
 * gRPC transport: binds the controller and the watch hub to grpc-js services. Handlers only
 * translate: request -> controller call -> reply, ApiError -> gRPC status. Anything else
 * thrown is logged and reported as INTERNAL; the process never dies on a bad request.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { methods, watchServerMethod } from './api/proto.js';
import type { CreateEndpointRequest, CreateNetworkRequest, RegisterRequest, WatchRequest } from './api/types.js';
import type { Controller } from './controller.js';
import { ApiError, type ApiErrorCode } from './errors.js';
import type { WatchHub, WatchSession } from './watch.js';

const STATUS: Record<ApiErrorCode, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  NOT_FOUND: grpc.status.NOT_FOUND,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  INTERNAL: grpc.status.INTERNAL,
};

export interface ServerOptions {
  logger: Logger;
  /** Largest request accepted (grpc.max_receive_message_length). */
  maxReceiveBytes: number;
  /** Per-RPC hook for metrics: method name and status code name. */
  onRequest?: (method: string, code: string) => void;
}

type Handler<Req, Res> = (req: Req) => Res | Promise<Res>;

export function createGrpcServer(controller: Controller, hub: WatchHub, opts: ServerOptions): grpc.Server {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxReceiveBytes,
    'grpc.max_send_message_length': -1,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_permit_without_calls': 1,
    // Channelz bookkeeping costs per message; with thousands of streams it shows.
    'grpc.enable_channelz': 0,
  });
  const log = opts.logger;

  function unary<Req, Res>(name: string, fn: Handler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const fail = (err: unknown): void => {
        if (err instanceof ApiError) {
          opts.onRequest?.(name, err.code);
          callback({ code: STATUS[err.code], details: err.message });
          return;
        }
        log.error({ err, method: name }, 'request failed unexpectedly');
        opts.onRequest?.(name, 'INTERNAL');
        callback({ code: grpc.status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` });
      };
      try {
        Promise.resolve(fn(call.request)).then((res) => {
          opts.onRequest?.(name, 'OK');
          callback(null, res);
        }, fail);
      } catch (err) {
        fail(err);
      }
    };
  }

  const n = methods.network;
  server.addService(n as unknown as grpc.ServiceDefinition, {
    CreateNetwork: unary('CreateNetwork', (r: CreateNetworkRequest) => controller.createNetwork(r.network)),
    GetNetwork: unary('GetNetwork', (r: { name: string }) => controller.getNetwork(r.name)),
    ListNetworks: unary('ListNetworks', () => ({ networks: controller.listNetworks(), revision: controller.revision() })),
    DeleteNetwork: unary('DeleteNetwork', async (r: { name: string }) => ({ revision: await controller.deleteNetwork(r.name) })),
  });
  server.addService(methods.endpoint as unknown as grpc.ServiceDefinition, {
    CreateEndpoint: unary('CreateEndpoint', (r: CreateEndpointRequest) => controller.createEndpoint(r)),
    GetEndpoint: unary('GetEndpoint', (r: { network: string; containerId: string }) => controller.getEndpoint(r.network, r.containerId)),
    ListEndpoints: unary('ListEndpoints', (r: { network: string; host: string }) => ({
      endpoints: controller.listEndpoints(r),
      revision: controller.revision(),
    })),
    DeleteEndpoint: unary('DeleteEndpoint', async (r: { network: string; containerId: string }) => ({
      revision: await controller.deleteEndpoint(r.network, r.containerId),
    })),
  });
  server.addService({ ...methods.host, Watch: watchServerMethod } as unknown as grpc.ServiceDefinition, {
    Register: unary('Register', async (r: RegisterRequest) => ({
      ...(await controller.register(r)),
      heartbeatIntervalMs: controller.opts.heartbeatIntervalMs,
    })),
    Heartbeat: unary('Heartbeat', async (r: { name: string; appliedRevision: number }) => {
      const revision = await controller.heartbeat(r.name);
      const s = hub.session(r.name);
      if (s && r.appliedRevision > 0) hub.ack(s, r.appliedRevision);
      return { revision };
    }),
    ListHosts: unary('ListHosts', () => ({ hosts: controller.listHosts(), revision: controller.revision() })),
    Watch: (call: grpc.ServerDuplexStream<WatchRequest, Buffer>) => watch(call),
  });
  server.addService(methods.status as unknown as grpc.ServiceDefinition, {
    GetStatus: unary('GetStatus', () => ({ revision: controller.revision(), hosts: hub.status() })),
    Wait: unary('Wait', async (r: { revision: number; timeoutMs: number }) => {
      const revision = r.revision || controller.revision();
      const converged = await hub.wait(revision, Math.min(r.timeoutMs || 30_000, 3_600_000));
      return { converged, revision, pendingHosts: converged ? [] : hub.pending(revision) };
    }),
  });

  function watch(call: grpc.ServerDuplexStream<WatchRequest, Buffer>): void {
    let session: WatchSession | null = null;
    const end = (code: grpc.status, details: string): void => {
      if (session) hub.close(session);
      call.emit('error', { code, details });
    };
    call.on('data', (req: WatchRequest) => {
      try {
        if (req.start) {
          if (session) return end(grpc.status.INVALID_ARGUMENT, 'Watch: start sent twice on one stream');
          const host = req.start.host;
          if (!controller.state.hosts.has(host)) {
            return end(grpc.status.NOT_FOUND, `Watch: host ${host || '""'} is not registered; call Register first`);
          }
          controller.touch(host);
          const opened = hub.open(host, req.start.fromRevision ?? 0, req.start.networks ?? [], call, req.start.storeId ?? '');
          session = opened.session;
          opts.onRequest?.('Watch', 'OK');
          const old = opened.replaced?.sink as grpc.ServerDuplexStream<WatchRequest, Buffer> | undefined;
          old?.emit('error', { code: grpc.status.ABORTED, details: `superseded by a newer Watch from host ${host}` });
        } else if (req.ack) {
          if (!session) return end(grpc.status.INVALID_ARGUMENT, 'Watch: ack before start');
          hub.ack(session, req.ack.revision);
        }
      } catch (err) {
        log.error({ err }, 'watch request failed');
        end(grpc.status.INTERNAL, `internal error: ${(err as Error).message}`);
      }
    });
    const closed = (): void => {
      if (session) hub.close(session);
    };
    call.on('end', () => {
      closed();
      call.end();
    });
    call.on('cancelled', closed);
    call.on('error', closed);
    call.on('close', closed);
  }

  return server;
}

/** Binds and starts listening; resolves with the bound port (useful with port 0). */
export function listen(server: grpc.Server, address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}
