import { describe, expect, it } from 'vitest';
import { parseCommandLine, UsageError } from '../../src/cli/args.js';
import { fromWord, linkPolicy, parseLabels, parsePorts, parsePortSpec, peer } from '../../src/cli/policy-args.js';

describe('loomctl policy syntax', () => {
  it('reads ports, ranges and protocols', () => {
    expect(parsePortSpec('22')).toEqual({ range: { first: 22, last: 0 }, protocol: undefined });
    expect(parsePortSpec('8000-8080/tcp')).toEqual({ range: { first: 8000, last: 8080 }, protocol: 'PROTOCOL_TCP' });
    expect(parsePortSpec('53/udp')).toEqual({ range: { first: 53, last: 0 }, protocol: 'PROTOCOL_UDP' });
    expect(parsePorts(['22', '80'])).toEqual({ protocol: 'PROTOCOL_TCP', ports: [{ first: 22, last: 0 }, { first: 80, last: 0 }] });
    expect(parsePorts([], 'icmp')).toEqual({ protocol: 'PROTOCOL_ICMP', ports: [] });
    expect(parsePorts([])).toEqual({ protocol: 'PROTOCOL_UNSPECIFIED', ports: [] });
    expect(parseLabels(['app=web', 'tier='])).toEqual({ app: 'web', tier: '' });
  });

  it.each([
    [() => parsePortSpec('0'), 'port "0": 0 is not a port number 1..65535'],
    [() => parsePortSpec('70000'), 'not a port number'],
    [() => parsePortSpec('90-80'), 'port range "90-80" ends before it starts'],
    [() => parsePortSpec('22/icmp'), 'only tcp and udp have ports'],
    [() => parsePortSpec('22/sctp'), 'protocol "sctp" is not tcp, udp, icmp or any'],
    [() => parsePorts(['22/tcp', '53/udp']), 'mix protocols'],
    [() => parsePorts(['53/udp'], 'tcp'), 'contradicts --protocol tcp'],
    [() => parseLabels(['app']), 'label "app" is not like app=web'],
    [() => linkPolicy('blue', 'a', 'b', []), 'link needs --port'],
  ])('refuses bad input %#', (fn, message) => {
    expect(fn).toThrow(UsageError);
    expect(fn).toThrow(message);
  });

  it('takes --from outside as the one source word, and says what else to use', () => {
    expect(fromWord(undefined)).toBe(false);
    expect(fromWord('outside')).toBe(true);
    expect(() => fromWord('internet')).toThrow(UsageError);
    expect(() => fromWord('internet')).toThrow(/the only source word is "outside"/);
    expect(peer([], [], [], true)).toEqual({ endpoints: [], labels: {}, cidrs: [], outside: true });
    expect(parseCommandLine(['policy', 'create', 'web', '--network', 'blue', '--from', 'outside', '--to-endpoint', 'web', '--port', '80']).flags.from).toBe('outside');
  });

  it('turns a link into a rule: the client may open exactly the server ports', () => {
    expect(linkPolicy('blue', 'web', 'db', ['5432'])).toEqual({
      network: 'blue',
      name: 'link.web.db.tcp5432',
      from: { endpoints: ['web'], labels: {}, cidrs: [] },
      to: { endpoints: ['db'], labels: {}, cidrs: [] },
      protocol: 'PROTOCOL_TCP',
      ports: [{ first: 5432, last: 0 }],
    });
    expect(linkPolicy('blue', 'a', 'dns', ['53/udp'], 'mine')).toMatchObject({ name: 'mine', protocol: 'PROTOCOL_UDP' });
  });

  it('parses the policy commands with their own flags', () => {
    expect(parseCommandLine(['policy', 'create', 'ssh', '--network', 'blue', '--from-endpoint', 'a', '--from-cidr', '10.0.0.0/8', '--to-label', 'app=web', '--port', '22'])).toEqual({
      command: 'policy create',
      args: ['ssh'],
      flags: { network: 'blue', 'from-endpoint': ['a'], 'from-cidr': ['10.0.0.0/8'], 'to-label': ['app=web'], port: ['22'] },
    });
    expect(parseCommandLine(['link', 'web', 'db', '--port', '5432'])).toMatchObject({ command: 'link', args: ['web', 'db'] });
    expect(parseCommandLine(['policy', 'explain', 'a', 'b', '22'])).toMatchObject({ command: 'policy explain', args: ['a', 'b', '22'] });
    expect(parseCommandLine(['network', 'update', 'blue', '--isolation', 'isolated'])).toMatchObject({ flags: { isolation: 'isolated' } });
    expect(() => parseCommandLine(['policy', 'list', '--port', '22'])).toThrow("unknown flag --port for 'policy list'");
  });
});
