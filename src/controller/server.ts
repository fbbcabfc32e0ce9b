/**
 * gRPC transport: binds the unary API (a table of plain handlers) and the watch hub to grpc-js
 * services. Handlers only translate: request -> controller call -> reply, ApiError -> gRPC
 * status. Anything else thrown is logged and reported as INTERNAL; the process never dies on a
 * bad request.
 */
import type { DropCount } from '../api/types.js';
import { checkDrops } from './host-drops.js';
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type { Logger } from 'pino';
import { methods, watchServerMethod } from '../api/proto.js';
import type {
  CreateEndpointRequest,
  UpdateEndpointRequest,
  CreateNetworkRequest,
  CreatePolicyRequest,
  ExplainPolicyRequest,
  PolicyRef,
  RegisterRequest,
  UpdateNetworkRequest,
  WatchRequest,
} from '../api/types.js';
import type { Controller } from './controller.js';
import type { Convergence } from './convergence.js';
import { logCaller, MUTATIONS, type Authorizer, type Caller } from './authz.js';
import { ApiError, LEADER_TRAILER, type ApiErrorCode } from './errors.js';
import type { WatchHub } from './watch.js';
import { watchCall } from './watch-call.js';
import type { AgentTracer } from './trace-relay.js';
import { traceAcrossHosts, type TraceDeps, type TraceEndpoint } from './trace.js';
import type { TraceRequest } from '../api/types.js';

const STATUS: Record<ApiErrorCode, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  NOT_FOUND: grpc.status.NOT_FOUND,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
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
  /** Who may call what (authz.ts); without it every caller may do anything. */
  authorizer?: Authorizer;
}

/** The caller of a grpc-js call: its TLS certificate and address. */
export function grpcCaller(authorizer: Authorizer | undefined, call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null; getPeer(): string }): Caller {
  const peer = call.getPeer();
  return authorizer ? authorizer.caller(call.getAuthContext()?.sslPeerCertificate, peer) : { identity: '', role: 'unauthenticated', host: '', peer };
}

/** What a mutation names (network, host, container), for its log line. */
function mutationTarget(method: string, req: unknown): Record<string, unknown> {
  const r = (req ?? {}) as Record<string, unknown>;
  if (method === 'CreateNetwork') return { network: (r.network as { name?: string } | null)?.name };
  if (method === 'CreatePolicy') {
    const p = r.policy as { network?: string; name?: string } | null;
    return { network: p?.network, policy: p?.name };
  }
  const out: Record<string, unknown> = {};
  for (const k of ['name', 'network', 'host', 'containerId', 'vtep']) if (typeof r[k] === 'string' && r[k]) out[k] = r[k];
  return out;
}

/** A unary method as a plain function of the decoded request. */
export type Handler = (req: never) => unknown;

/** The unary methods by name (as in the proto), Watch excluded. */
export const UNARY_METHODS = [
  ...Object.keys(methods.network),
  ...Object.keys(methods.endpoint),
  ...Object.keys(methods.host),
  ...Object.keys(methods.status),
  ...Object.keys(methods.policy),
];

export type ApiHandlers = Record<string, Handler>;

/** What a trace reads from the controller's state, and how it asks agents. */
export function traceDeps(controller: Controller, traces: AgentTracer): TraceDeps {
  const state = controller.state;
  return {
    *endpoints(): Iterable<TraceEndpoint> {
      for (const [network, net] of state.networks) {
        const { vni, tunnel } = net.entry.rec;
        for (const e of net.endpoints.values()) {
          const r = e.rec;
          yield { network, name: r.name, containerId: r.containerId, host: r.host, ipv4: r.ipv4, ipv6: r.ipv6, vni, tunnel };
        }
      }
    },
    host: (name) => {
      const h = state.hosts.get(name)?.rec;
      return h && { vtep: h.vtep, up: h.up };
    },
    hostByVtep: (vtep) => [...state.hosts.values()].find((h) => h.rec.vtep === vtep)?.rec.name,
    ask: (host, req, timeoutMs) => traces.ask(host, req, timeoutMs),
  };
}

/**
 * The unary API. `watchPort`: where the dedicated Watch server listens (0: none), for Register;
 * `traces`: how agents are asked to trace (the Watch hub's broker, or with several controllers the
 * relay through the store); without it Trace answers UNAVAILABLE.
 */
export function apiHandlers(controller: Controller, convergence: Convergence, watchPort: () => number = () => 0, traces?: AgentTracer): ApiHandlers {
  const api = {
    CreateNetwork: (r: CreateNetworkRequest) => controller.createNetwork(r.network),
    GetNetwork: (r: { name: string }) => controller.getNetwork(r.name),
    ListNetworks: () => ({ networks: controller.listNetworks(), revision: controller.revision() }),
    DeleteNetwork: async (r: { name: string }) => ({ revision: await controller.deleteNetwork(r.name) }),
    UpdateNetwork: (r: UpdateNetworkRequest) => controller.updateNetwork(r),
    CreatePolicy: (r: CreatePolicyRequest) => controller.createPolicy(r.policy),
    GetPolicy: (r: PolicyRef) => controller.getPolicy(r.network, r.name),
    ListPolicies: (r: { network: string }) => ({ policies: controller.listPolicies(r.network || undefined), revision: controller.revision() }),
    DeletePolicy: async (r: PolicyRef) => ({ revision: await controller.deletePolicy(r.network, r.name) }),
    ExplainPolicy: (r: ExplainPolicyRequest) => controller.explainPolicy(r),
    CreateEndpoint: (r: CreateEndpointRequest) => controller.createEndpoint(r),
    GetEndpoint: (r: { network: string; containerId: string }) => controller.getEndpoint(r.network, r.containerId),
    ListEndpoints: (r: { network: string; host: string }) => ({ endpoints: controller.listEndpoints(r), revision: controller.revision() }),
    DeleteEndpoint: async (r: { network: string; containerId: string }) => ({ revision: await controller.deleteEndpoint(r.network, r.containerId) }),
    UpdateEndpoint: (r: UpdateEndpointRequest) => controller.updateEndpoint(r),
    Register: async (r: RegisterRequest) => ({
      ...(await controller.register(r)),
      heartbeatIntervalMs: controller.opts.heartbeatIntervalMs,
      watchPort: watchPort(),
    }),
    Heartbeat: async (r: { name: string; appliedRevision?: number; drops?: DropCount[] }) => {
      const drops = checkDrops(r.drops ?? []);
      const revision = await controller.heartbeat(r.name);
      convergence.drops.report(r.name, drops);
      // An agent whose Watch stream is on another controller (a follower): its heartbeat says what it applied.
      if (r.appliedRevision) convergence.heard(r.name, r.appliedRevision);
      return { revision };
    },
    ListHosts: () => ({ hosts: controller.listHosts(), revision: controller.revision() }),
    // The leader's alone: it hears every agent's heartbeats; a follower only its own streams.
    GetStatus: () => {
      controller.requireLeader();
      return { revision: controller.revision(), hosts: convergence.status() };
    },
    Wait: async (r: { revision: number; timeoutMs: number }) => {
      controller.requireLeader();
      const revision = r.revision || controller.revision();
      const converged = await convergence.wait(revision, Math.min(r.timeoutMs || 30_000, 3_600_000));
      return { converged, revision, pendingHosts: converged ? [] : convergence.pending(revision) };
    },
    Trace: (r: TraceRequest) => {
      if (!traces) throw new ApiError('UNAVAILABLE', 'trace: this controller cannot reach agents');
      return traceAcrossHosts(r, traceDeps(controller, traces)).then((res) => {
        // A read, but a live one injects a packet: every trace is logged with what it found.
        controller.opts.logger.info({ method: 'Trace', from: r.from, to: r.to, protocol: r.protocol || 'icmp', port: r.port || undefined, live: r.live || undefined, verdict: res.verdict, host: res.host, liveAgrees: res.live?.agrees }, 'trace');
        return res;
      });
    },
  } satisfies ApiHandlers;
  const missing = UNARY_METHODS.filter((m) => !(m in api));
  if (missing.length > 0) throw new Error(`no handler for ${missing.join(', ')}`);
  return api;
}

export function createGrpcServer(api: ApiHandlers, hub: WatchHub, opts: ServerOptions): grpc.Server {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxReceiveBytes,
    'grpc.max_send_message_length': -1,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_permit_without_calls': 1,
    // Channelz bookkeeping costs per message; with thousands of streams it shows.
    'grpc.enable_channelz': 0,
    // node:http2 (nghttp2) already cuts CONTINUATION, PING/SETTINGS and rapid-reset floods
    // (test/http2/abuse.int.test.ts); these bound what a legitimate-looking peer may hold open.
    'grpc.max_concurrent_streams': 128,
    'grpc-node.max_session_memory': 16,
  });
  const log = opts.logger;

  function unary(name: string, fn: (req: unknown) => unknown): grpc.handleUnaryCall<unknown, unknown> {
    return (call, callback) => {
      const caller = grpcCaller(opts.authorizer, call);
      // Every mutation is logged with its caller; heartbeats (every agent, every few seconds) at debug.
      const audit = (code: string, details?: string): void => {
        if (!MUTATIONS.has(name) && code !== 'PERMISSION_DENIED') return;
        const level = code === 'PERMISSION_DENIED' ? 'warn' : name === 'Heartbeat' && code === 'OK' ? 'debug' : 'info';
        log[level]({ method: name, caller: logCaller(caller), ...mutationTarget(name, call.request), code, details }, code === 'PERMISSION_DENIED' ? 'request refused' : 'mutation');
      };
      const fail = (err: unknown): void => {
        if (err instanceof ApiError) {
          opts.onRequest?.(name, err.code);
          audit(err.code, err.message);
          const metadata = new grpc.Metadata();
          if (err.leader) metadata.set(LEADER_TRAILER, err.leader);
          callback({ code: STATUS[err.code], details: err.message, metadata });
          return;
        }
        log.error({ err, method: name }, 'request failed unexpectedly');
        opts.onRequest?.(name, 'INTERNAL');
        audit('INTERNAL');
        callback({ code: grpc.status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` });
      };
      try {
        opts.authorizer?.check(caller, name, call.request);
        Promise.resolve(fn(call.request)).then((res) => {
          opts.onRequest?.(name, 'OK');
          audit('OK');
          callback(null, res);
        }, fail);
      } catch (err) {
        fail(err);
      }
    };
  }

  const bind = (names: string[]): grpc.UntypedServiceImplementation =>
    Object.fromEntries(names.map((name) => [name, unary(name, api[name] as (req: unknown) => unknown)]));
  server.addService(methods.network as unknown as grpc.ServiceDefinition, bind(Object.keys(methods.network)));
  server.addService(methods.endpoint as unknown as grpc.ServiceDefinition, bind(Object.keys(methods.endpoint)));
  server.addService({ ...methods.host, Watch: watchServerMethod } as unknown as grpc.ServiceDefinition, {
    ...bind(Object.keys(methods.host)),
    // A heartbeat also carries the agent's applied revision: an ack for its stream, on either port.
    Heartbeat: unary('Heartbeat', async (req) => {
      const r = req as { name: string; appliedRevision: number };
      const res = await (api.Heartbeat as (r: unknown) => unknown)(r);
      const s = hub.session(r.name);
      if (s && r.appliedRevision > 0) hub.ack(s, r.appliedRevision);
      return res;
    }),
    Watch: (call: grpc.ServerDuplexStream<WatchRequest, Buffer>) => watch(call),
  });
  server.addService(methods.status as unknown as grpc.ServiceDefinition, bind(Object.keys(methods.status)));
  server.addService(methods.policy as unknown as grpc.ServiceDefinition, bind(Object.keys(methods.policy)));

  function watch(call: grpc.ServerDuplexStream<WatchRequest, Buffer>): void {
    const caller = grpcCaller(opts.authorizer, call);
    const w = watchCall(
      hub,
      {
        write: (message, done) => call.write(message, done),
        fail: (code, details) => call.emit('error', { code, details }),
      },
      log,
      () => opts.onRequest?.('Watch', 'OK'),
      opts.authorizer && { authorizer: opts.authorizer, caller },
    );
    call.on('data', (req: WatchRequest) => w.request(req));
    call.on('end', () => {
      w.closed();
      call.end();
    });
    for (const ev of ['cancelled', 'error', 'close']) call.on(ev, () => w.closed());
  }

  return server;
}

/** Binds and starts listening; resolves with the bound port (useful with port 0). */
export function listen(server: grpc.Server, address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}
