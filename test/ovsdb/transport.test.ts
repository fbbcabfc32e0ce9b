import { describe, expect, it } from 'vitest';
import { connectRemote, parseRemote, TransportError } from '../../src/ovsdb/transport.js';

describe('parseRemote', () => {
  it('parses OVS-style unix, tcp (IPv4, IPv6, names) and ssl remotes', () => {
    expect(parseRemote('unix:/run/openvswitch/db.sock')).toEqual({ kind: 'unix', path: '/run/openvswitch/db.sock' });
    expect(parseRemote('tcp:127.0.0.1:6640')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 6640 });
    expect(parseRemote('tcp:[::1]:6641')).toEqual({ kind: 'tcp', host: '::1', port: 6641 });
    expect(parseRemote('tcp:ovsdb.example:6640')).toEqual({ kind: 'tcp', host: 'ovsdb.example', port: 6640 });
    expect(parseRemote('ssl:10.0.0.1:6640')).toEqual({ kind: 'ssl', host: '10.0.0.1', port: 6640 });
  });

  it('rejects malformed remotes with a message naming the input', () => {
    expect(() => parseRemote('unix:')).toThrow(/remote "unix:": empty socket path/);
    expect(() => parseRemote('tcp:127.0.0.1')).toThrow(/remote "tcp:127.0.0.1": expected tcp:HOST:PORT/);
    expect(() => parseRemote('tcp:host:70000')).toThrow(TransportError);
    expect(() => parseRemote('http://x')).toThrow(/expected unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT/);
  });

  it('the default connector refuses ssl without key material and explains what to use', async () => {
    await expect(connectRemote('ssl:127.0.0.1:6640', 1000)).rejects.toThrow(/use tlsConnector\(\)/);
  });
});
