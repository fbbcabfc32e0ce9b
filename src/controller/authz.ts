/**
 * Who may do what, as Kubernetes' Node authorizer and OVN's southbound RBAC do it: under mutual
 * TLS the client certificate's Common Name is the caller. A certificate whose Organization is the
 * operator organization is an operator (anything); one whose CN follows the agent naming rule is
 * the agent of that host and acts only for it (Register without moving a registered host's VTEP,
 * Heartbeat, Watch, its own endpoints). Reads are open to both. Without mutual TLS there is no
 * identity: every caller may do anything (the controller then listens on loopback only, or says
 * loudly that it does not; see config.ts).
 */
import type { PeerCertificate } from 'node:tls';
import { canonicalIp } from '../common/ip.js';
import type { CreateEndpointRequest, Host, RegisterRequest } from '../api/types.js';
import { permissionDenied } from './errors.js';

/** 'unauthenticated': no mutual TLS, so no identity to check; 'none': a certificate with no role. */
export type Role = 'operator' | 'agent' | 'none' | 'unauthenticated';

export interface Caller {
  /** The certificate's CN ('' without one). */
  identity: string;
  role: Role;
  /** For an agent, its host. */
  host: string;
  /** Remote address:port. */
  peer: string;
}

export interface AuthzSettings {
  /** Mutual TLS is on: callers have certificates, and roles apply. */
  mutualTls: boolean;
  /** Organization (O) of operator certificates. */
  operatorOrganization: string;
  /** How an agent's CN is made from its host name: contains '{host}' once (e.g. 'loom-agent:{host}'). */
  agentIdentity: string;
}

/** What the checks need to know of the controller's state. */
export interface AuthzLookup {
  /** The host of an endpoint, or undefined when there is none. */
  endpointHost(network: string, containerId: string): string | undefined;
  /** A registered host, or undefined. */
  host(name: string): Pick<Host, 'vtep'> | undefined;
}

/** Unary methods anyone with a role may call: they change nothing. */
const READS = new Set(['GetNetwork', 'ListNetworks', 'GetEndpoint', 'ListEndpoints', 'ListHosts', 'GetStatus', 'Wait', 'GetPolicy', 'ListPolicies', 'ExplainPolicy']);
/** Methods that change state; each is logged with its caller. Policy and network changes are operator-only. */
export const MUTATIONS = new Set([
  'CreateNetwork',
  'DeleteNetwork',
  'UpdateNetwork',
  'CreateEndpoint',
  'DeleteEndpoint',
  'UpdateEndpoint',
  'Register',
  'Heartbeat',
  'CreatePolicy',
  'DeletePolicy',
]);

/** One subject attribute: node:tls gives a string, or an array when the certificate repeats it. */
function attribute(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : [value].flat();
}

export class Authorizer {
  private readonly prefix: string;
  private readonly suffix: string;

  constructor(
    readonly settings: AuthzSettings,
    private readonly lookup: AuthzLookup,
  ) {
    [this.prefix, this.suffix] = settings.agentIdentity.split('{host}') as [string, string];
  }

  /** The caller of a call that came with `cert` (null: plaintext or none) from `peer`. */
  caller(cert: PeerCertificate | null | undefined, peer: string): Caller {
    if (!this.settings.mutualTls) return { identity: '', role: 'unauthenticated', host: '', peer };
    const names = attribute(cert?.subject?.CN);
    const identity = names.length === 1 ? names[0]! : '';
    if (!identity) return { identity: names.join(','), role: 'none', host: '', peer };
    if (attribute(cert?.subject?.O).includes(this.settings.operatorOrganization)) return { identity, role: 'operator', host: '', peer };
    const { prefix, suffix } = this;
    if (identity.length > prefix.length + suffix.length && identity.startsWith(prefix) && identity.endsWith(suffix)) {
      return { identity, role: 'agent', host: identity.slice(prefix.length, identity.length - suffix.length), peer };
    }
    return { identity, role: 'none', host: '', peer };
  }

  /** Throws PERMISSION_DENIED, naming the caller and the action, unless `caller` may call `method` with `req`. */
  check(caller: Caller, method: string, req: unknown): void {
    if (caller.role === 'operator' || caller.role === 'unauthenticated') return;
    if (caller.role === 'none') throw this.denied(caller, `call ${method}`, `it is neither an operator (O=${this.settings.operatorOrganization}) nor an agent (CN=${this.settings.agentIdentity})`);
    if (READS.has(method)) return;
    const r = req as Record<string, unknown>;
    switch (method) {
      case 'Register': {
        const { name, vtep } = r as unknown as RegisterRequest;
        this.ownHost(caller, 'register host', name);
        const known = this.lookup.host(name);
        const wanted = canonicalIp(vtep ?? '') ?? vtep;
        if (known && known.vtep !== wanted) {
          throw this.denied(caller, `move host ${name}'s VTEP from ${known.vtep} to ${vtep}`, 'only an operator may (loomctl host register NAME --vtep ADDR), then the agent re-registers');
        }
        return;
      }
      case 'Heartbeat':
        return this.ownHost(caller, 'heartbeat for host', String(r.name ?? ''));
      case 'CreateEndpoint': {
        const { host, network, containerId } = r as unknown as CreateEndpointRequest;
        return this.ownHost(caller, `create endpoint ${network}/${containerId} on host`, host);
      }
      case 'DeleteEndpoint':
      case 'UpdateEndpoint': {
        const network = String(r.network ?? '');
        const containerId = String(r.containerId ?? '');
        const host = this.lookup.endpointHost(network, containerId);
        if (host === undefined) return; // nothing to change: the call answers NOT_FOUND
        return this.ownHost(caller, `${method === 'DeleteEndpoint' ? 'delete' : 'update'} endpoint ${network}/${containerId} on host`, host);
      }
      default:
        throw this.denied(caller, `call ${method}`, 'it needs the operator role');
    }
  }

  /** Throws PERMISSION_DENIED unless `caller` may watch as `host`. */
  checkWatch(caller: Caller, host: string): void {
    if (caller.role === 'operator' || caller.role === 'unauthenticated') return;
    if (caller.role === 'none') throw this.denied(caller, `watch as host ${host}`, 'it is not an agent');
    this.ownHost(caller, 'watch as host', host);
  }

  private ownHost(caller: Caller, action: string, host: string): void {
    if (caller.host !== host) throw this.denied(caller, `${action} ${host || '""'}`, `an agent acts only for its own host (${caller.host})`);
  }

  private denied(caller: Caller, action: string, why: string) {
    return permissionDenied(`${caller.identity || '(no CN)'} (role ${caller.role}) may not ${action}: ${why}`);
  }
}

/** The caller as a log field. */
export function logCaller(c: Caller): { identity: string; role: Role; peer: string } {
  return { identity: c.identity, role: c.role, peer: c.peer };
}
