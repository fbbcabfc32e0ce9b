/**
 * Codecs and gRPC method definitions for proto/loom/v1, built at load time with protobufjs
 * reflection (no generated code). Serialization is kept apart from transport: the server and
 * client modules only see `MethodDefinition`s.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import protobuf from 'protobufjs';
import type { MethodDefinition } from '@grpc/grpc-js';
import type * as T from './types.js';

const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url));

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(PROTO_ROOT, target);
  root.loadSync(['loom/v1/types.proto', 'loom/v1/controller.proto'], { keepCase: false });
  root.resolveAll();
  return root;
}

/** The loaded loom.v1 schema. */
export const root = loadRoot();

const TO_OBJECT: protobuf.IConversionOptions = {
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  oneofs: true,
};

/** Encoder/decoder pair for one message type. */
export interface Codec<M> {
  readonly type: protobuf.Type;
  encode(message: M): Buffer;
  decode(bytes: Uint8Array): M;
}

/** A codec for `loom.v1.<name>`; decode fills defaults so every field is present. */
export function codec<M>(name: string): Codec<M> {
  const type = root.lookupType(`loom.v1.${name}`);
  return {
    type,
    encode: (message: M) => {
      const msg = type.fromObject(message as Record<string, unknown>);
      return Buffer.from(type.encode(msg).finish());
    },
    decode: (bytes: Uint8Array) => type.toObject(type.decode(bytes), TO_OBJECT) as M,
  };
}

function unary<Req, Res>(service: string, method: string, req: Codec<Req>, res: Codec<Res>): MethodDefinition<Req, Res> {
  return {
    path: `/loom.v1.${service}/${method}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: req.encode,
    requestDeserialize: (b: Buffer) => req.decode(b),
    responseSerialize: res.encode,
    responseDeserialize: (b: Buffer) => res.decode(b),
  };
}

export const codecs = {
  network: codec<T.Network>('Network'),
  endpoint: codec<T.Endpoint>('Endpoint'),
  watchEvent: codec<T.WatchEvent>('WatchEvent'),
  watchRequest: codec<T.WatchRequest>('WatchRequest'),
  watchResponse: codec<T.WatchResponse>('WatchResponse'),
};

const empty = codec<T.Empty>('ListNetworksRequest');
const nameReq = codec<T.NameRequest>('GetNetworkRequest');
const deleteRes = codec<T.DeleteResponse>('DeleteResponse');
const epKey = codec<T.EndpointKeyRequest>('GetEndpointRequest');

/** Method definitions per service; keys are the RPC names. */
export const methods = {
  network: {
    CreateNetwork: unary('NetworkService', 'CreateNetwork', codec<T.CreateNetworkRequest>('CreateNetworkRequest'), codecs.network),
    GetNetwork: unary('NetworkService', 'GetNetwork', nameReq, codecs.network),
    ListNetworks: unary('NetworkService', 'ListNetworks', empty, codec<T.ListNetworksResponse>('ListNetworksResponse')),
    DeleteNetwork: unary('NetworkService', 'DeleteNetwork', codec<T.NameRequest>('DeleteNetworkRequest'), deleteRes),
    UpdateNetwork: unary('NetworkService', 'UpdateNetwork', codec<T.UpdateNetworkRequest>('UpdateNetworkRequest'), codecs.network),
  },
  policy: {
    CreatePolicy: unary('PolicyService', 'CreatePolicy', codec<T.CreatePolicyRequest>('CreatePolicyRequest'), codec<T.Policy>('Policy')),
    GetPolicy: unary('PolicyService', 'GetPolicy', codec<T.PolicyRef>('PolicyRef'), codec<T.Policy>('Policy')),
    ListPolicies: unary('PolicyService', 'ListPolicies', codec<T.ListPoliciesRequest>('ListPoliciesRequest'), codec<T.ListPoliciesResponse>('ListPoliciesResponse')),
    DeletePolicy: unary('PolicyService', 'DeletePolicy', codec<T.PolicyRef>('PolicyRef'), deleteRes),
    ExplainPolicy: unary('PolicyService', 'ExplainPolicy', codec<T.ExplainPolicyRequest>('ExplainPolicyRequest'), codec<T.ExplainPolicyResponse>('ExplainPolicyResponse')),
  },
  endpoint: {
    CreateEndpoint: unary('EndpointService', 'CreateEndpoint', codec<T.CreateEndpointRequest>('CreateEndpointRequest'), codecs.endpoint),
    GetEndpoint: unary('EndpointService', 'GetEndpoint', epKey, codecs.endpoint),
    ListEndpoints: unary('EndpointService', 'ListEndpoints', codec<T.ListEndpointsRequest>('ListEndpointsRequest'), codec<T.ListEndpointsResponse>('ListEndpointsResponse')),
    DeleteEndpoint: unary('EndpointService', 'DeleteEndpoint', codec<T.EndpointKeyRequest>('DeleteEndpointRequest'), deleteRes),
    UpdateEndpoint: unary('EndpointService', 'UpdateEndpoint', codec<T.UpdateEndpointRequest>('UpdateEndpointRequest'), codecs.endpoint),
  },
  host: {
    Register: unary('HostService', 'Register', codec<T.RegisterRequest>('RegisterRequest'), codec<T.RegisterResponse>('RegisterResponse')),
    Heartbeat: unary('HostService', 'Heartbeat', codec<T.HeartbeatRequest>('HeartbeatRequest'), codec<T.HeartbeatResponse>('HeartbeatResponse')),
    ListHosts: unary('HostService', 'ListHosts', codec<T.Empty>('ListHostsRequest'), codec<T.ListHostsResponse>('ListHostsResponse')),
  },
  status: {
    GetStatus: unary('StatusService', 'GetStatus', codec<T.Empty>('GetStatusRequest'), codec<T.GetStatusResponse>('GetStatusResponse')),
    Wait: unary('StatusService', 'Wait', codec<T.WaitRequest>('WaitRequest'), codec<T.WaitResponse>('WaitResponse')),
    Trace: unary('StatusService', 'Trace', codec<T.TraceRequest>('TraceRequest'), codec<T.TraceResponse>('TraceResponse')),
  },
};

/** Watch as the client sees it: typed requests and responses. */
export const watchMethod: MethodDefinition<T.WatchRequest, T.WatchResponse> = {
  path: '/loom.v1.HostService/Watch',
  requestStream: true,
  responseStream: true,
  requestSerialize: codecs.watchRequest.encode,
  requestDeserialize: (b: Buffer) => codecs.watchRequest.decode(b),
  responseSerialize: codecs.watchResponse.encode,
  responseDeserialize: (b: Buffer) => codecs.watchResponse.decode(b),
};

/**
 * Watch as the server sends it: responses are pre-encoded WatchResponse bytes (see
 * watch-encoding.ts), so one encoded event can be shared by every agent that needs it.
 */
export const watchServerMethod: MethodDefinition<T.WatchRequest, Buffer> = {
  ...watchMethod,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};
