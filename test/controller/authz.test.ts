import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { Authorizer, type AuthzSettings } from '../../src/controller/authz.js';
import { ApiError } from '../../src/controller/errors.js';

const SETTINGS: AuthzSettings = { mutualTls: true, operatorOrganization: 'loom:operators', agentIdentity: '{host}' };
const cert = (subject: Record<string, string | string[]>) => ({ subject }) as unknown as PeerCertificate;
const lookup = {
  endpointHost: (network: string, id: string) => (network === 'blue' && id === 'c1' ? 'node1' : undefined),
  host: (name: string) => (name === 'node1' ? { vtep: '192.0.2.1' } : undefined),
};

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return `${err.code} ${err.message}`;
    throw err;
  }
  return 'allowed';
}

describe('authorizer', () => {
  it('takes the caller from the certificate: O names operators, CN the agent by the naming rule', () => {
    const a = new Authorizer({ ...SETTINGS, agentIdentity: 'loom-agent:{host}.example' }, lookup);
    expect(a.caller(cert({ CN: 'alice', O: ['dev', 'loom:operators'] }), 'p')).toEqual({ identity: 'alice', role: 'operator', host: '', peer: 'p' });
    expect(a.caller(cert({ CN: 'loom-agent:node1.example' }), 'p')).toMatchObject({ role: 'agent', host: 'node1' });
    expect(a.caller(cert({ CN: 'loom-agent:.example' }), 'p')).toMatchObject({ role: 'none' }); // an empty host name
    expect(a.caller(cert({ CN: 'node1' }), 'p')).toMatchObject({ role: 'none' });
    expect(a.caller(cert({ CN: ['a', 'b'] }), 'p')).toMatchObject({ identity: 'a,b', role: 'none' }); // two CNs: ambiguous
    expect(a.caller(null, 'p')).toMatchObject({ role: 'none' });
    expect(new Authorizer({ ...SETTINGS, mutualTls: false }, lookup).caller(null, 'p')).toMatchObject({ role: 'unauthenticated' });
  });

  it('lets an agent act for its own host only, and never move its VTEP', () => {
    const a = new Authorizer(SETTINGS, lookup);
    const node1 = a.caller(cert({ CN: 'node1' }), 'p');
    const node2 = a.caller(cert({ CN: 'node2' }), 'p');
    expect(refusal(() => a.check(node1, 'Register', { name: 'node1', vtep: '192.0.2.1' }))).toBe('allowed');
    expect(refusal(() => a.check(node1, 'Register', { name: 'node1', vtep: '192.0.2.9' }))).toBe(
      "PERMISSION_DENIED node1 (role agent) may not move host node1's VTEP from 192.0.2.1 to 192.0.2.9: only an operator may (loomctl host register NAME --vtep ADDR), then the agent re-registers",
    );
    expect(refusal(() => a.check(node2, 'Register', { name: 'node2', vtep: '192.0.2.2' }))).toBe('allowed');
    expect(refusal(() => a.check(node2, 'Heartbeat', { name: 'node1' }))).toBe('PERMISSION_DENIED node2 (role agent) may not heartbeat for host node1: an agent acts only for its own host (node2)');
    expect(refusal(() => a.check(node2, 'CreateEndpoint', { network: 'blue', host: 'node1', containerId: 'x' }))).toMatch(/may not create endpoint blue\/x on host node1/);
    expect(refusal(() => a.check(node2, 'DeleteEndpoint', { network: 'blue', containerId: 'c1' }))).toMatch(/may not delete endpoint blue\/c1 on host node1/);
    expect(refusal(() => a.check(node1, 'DeleteEndpoint', { network: 'blue', containerId: 'c1' }))).toBe('allowed');
    expect(refusal(() => a.check(node2, 'DeleteEndpoint', { network: 'blue', containerId: 'gone' }))).toBe('allowed'); // answers NOT_FOUND
    expect(refusal(() => a.check(node2, 'UpdateEndpoint', { network: 'blue', containerId: 'c1', updateMask: ['aliases'] }))).toMatch(/may not update endpoint blue\/c1 on host node1/);
    expect(refusal(() => a.check(node1, 'UpdateEndpoint', { network: 'blue', containerId: 'c1', updateMask: ['aliases'] }))).toBe('allowed');
    expect(refusal(() => a.checkWatch(node2, 'node1'))).toMatch(/node2 \(role agent\) may not watch as host node1/);
    expect(refusal(() => a.check(node1, 'CreateNetwork', {}))).toBe('PERMISSION_DENIED node1 (role agent) may not call CreateNetwork: it needs the operator role');
    expect(refusal(() => a.check(node1, 'ListNetworks', {}))).toBe('allowed');
  });

  it('lets operators do anything, and a certificate without a role nothing', () => {
    const a = new Authorizer(SETTINGS, lookup);
    const op = a.caller(cert({ CN: 'alice', O: 'loom:operators' }), 'p');
    for (const [m, r] of [['CreateNetwork', {}], ['Register', { name: 'node1', vtep: '192.0.2.9' }], ['DeleteEndpoint', { network: 'blue', containerId: 'c1' }]] as const) {
      expect(refusal(() => a.check(op, m, r))).toBe('allowed');
    }
    const b = new Authorizer({ ...SETTINGS, agentIdentity: 'agent-{host}' }, lookup);
    const nobody = b.caller(cert({ CN: 'bob' }), 'p');
    expect(refusal(() => b.check(nobody, 'ListHosts', {}))).toBe('PERMISSION_DENIED bob (role none) may not call ListHosts: it is neither an operator (O=loom:operators) nor an agent (CN=agent-{host})');
    expect(refusal(() => b.checkWatch(nobody, 'bob'))).toMatch(/bob \(role none\) may not watch as host bob/);
  });
});
