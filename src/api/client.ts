/**
 * Typed promise client for the controller API (loomctl, the agent, tests, benchmarks).
 * Errors are grpc-js ServiceErrors: `code` (grpc.status) and `details` (the operator message).
 */
import * as grpc from '@grpc/grpc-js';
import { methods, watchMethod } from './proto.js';
import type * as T from './types.js';

export interface CallOptions {
  /** Deadline in ms from now (default 30 s). */
  timeoutMs?: number;
}

/** Whether `err` is a gRPC error with a status code. */
export function isServiceError(err: unknown): err is grpc.ServiceError {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number' && 'details' in err;
}

export class LoomClient {
  readonly raw: grpc.Client;

  /** `target` like "127.0.0.1:7400"; plaintext unless TLS `credentials` are given. */
  constructor(target: string, options: grpc.ClientOptions = {}, credentials = grpc.credentials.createInsecure()) {
    this.raw = new grpc.Client(target, credentials, {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.enable_channelz': 0,
      ...options,
    });
  }

  private call<Req, Res>(m: grpc.MethodDefinition<Req, Res>, req: Req, opts: CallOptions = {}): Promise<Res> {
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    return new Promise((resolve, reject) => {
      this.raw.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, { deadline }, (err, res) =>
        err || res === undefined ? reject(err ?? new Error(`${m.path}: empty response`)) : resolve(res),
      );
    });
  }

  createNetwork(network: Partial<T.Network>, o?: CallOptions): Promise<T.Network> {
    return this.call(methods.network.CreateNetwork, { network }, o);
  }
  getNetwork(name: string, o?: CallOptions): Promise<T.Network> {
    return this.call(methods.network.GetNetwork, { name }, o);
  }
  listNetworks(o?: CallOptions): Promise<T.ListNetworksResponse> {
    return this.call(methods.network.ListNetworks, {}, o);
  }
  deleteNetwork(name: string, o?: CallOptions): Promise<T.DeleteResponse> {
    return this.call(methods.network.DeleteNetwork, { name }, o);
  }
  updateNetwork(req: T.UpdateNetworkRequest, o?: CallOptions): Promise<T.Network> {
    return this.call(methods.network.UpdateNetwork, req, o);
  }
  createPolicy(policy: T.CreatePolicyRequest['policy'], o?: CallOptions): Promise<T.Policy> {
    return this.call(methods.policy.CreatePolicy, { policy }, o);
  }
  getPolicy(network: string, name: string, o?: CallOptions): Promise<T.Policy> {
    return this.call(methods.policy.GetPolicy, { network, name }, o);
  }
  listPolicies(filter: T.ListPoliciesRequest = {}, o?: CallOptions): Promise<T.ListPoliciesResponse> {
    return this.call(methods.policy.ListPolicies, filter, o);
  }
  deletePolicy(network: string, name: string, o?: CallOptions): Promise<T.DeleteResponse> {
    return this.call(methods.policy.DeletePolicy, { network, name }, o);
  }
  explainPolicy(req: T.ExplainPolicyRequest, o?: CallOptions): Promise<T.ExplainPolicyResponse> {
    return this.call(methods.policy.ExplainPolicy, req, o);
  }
  createEndpoint(req: T.CreateEndpointRequest, o?: CallOptions): Promise<T.Endpoint> {
    return this.call(methods.endpoint.CreateEndpoint, req, o);
  }
  getEndpoint(network: string, containerId: string, o?: CallOptions): Promise<T.Endpoint> {
    return this.call(methods.endpoint.GetEndpoint, { network, containerId }, o);
  }
  listEndpoints(filter: T.ListEndpointsRequest = {}, o?: CallOptions): Promise<T.ListEndpointsResponse> {
    return this.call(methods.endpoint.ListEndpoints, filter, o);
  }
  deleteEndpoint(network: string, containerId: string, o?: CallOptions): Promise<T.DeleteResponse> {
    return this.call(methods.endpoint.DeleteEndpoint, { network, containerId }, o);
  }
  updateEndpoint(req: T.UpdateEndpointRequest, o?: CallOptions): Promise<T.Endpoint> {
    return this.call(methods.endpoint.UpdateEndpoint, req, o);
  }
  register(req: T.RegisterRequest, o?: CallOptions): Promise<T.RegisterResponse> {
    return this.call(methods.host.Register, req, o);
  }
  heartbeat(name: string, appliedRevision = 0, o?: CallOptions, drops?: T.DropCount[]): Promise<T.HeartbeatResponse> {
    return this.call(methods.host.Heartbeat, { name, appliedRevision, ...(drops?.length ? { drops } : {}) }, o);
  }
  listHosts(o?: CallOptions): Promise<T.ListHostsResponse> {
    return this.call(methods.host.ListHosts, {}, o);
  }
  getStatus(o?: CallOptions): Promise<T.GetStatusResponse> {
    return this.call(methods.status.GetStatus, {}, o);
  }
  /** Waits server-side for convergence; the call deadline is set past the wait timeout. */
  wait(revision: number, timeoutMs: number): Promise<T.WaitResponse> {
    return this.call(methods.status.Wait, { revision, timeoutMs }, { timeoutMs: timeoutMs + 10_000 });
  }
  /**
   * Traces a packet across hosts. The deadline leaves room for the controller asking two agents,
   * each within `timeoutMs` (five asks, two of them observing up to 3 s, with --live).
   */
  trace(req: T.TraceRequest, o?: CallOptions): Promise<T.TraceResponse> {
    const perHost = Math.min(req.timeoutMs || 5000, 30_000);
    return this.call(methods.status.Trace, req, { timeoutMs: o?.timeoutMs ?? (req.live ? 5 * perHost + 6000 : 2 * perHost) + 10_000 });
  }
  /** Opens a Watch stream; write `{ start: ... }` first, then `{ ack: ... }` after applying. */
  watch(): grpc.ClientDuplexStream<T.WatchRequest, T.WatchResponse> {
    return this.raw.makeBidiStreamRequest(watchMethod.path, watchMethod.requestSerialize, watchMethod.responseDeserialize);
  }
  close(): void {
    this.raw.close();
  }
}
