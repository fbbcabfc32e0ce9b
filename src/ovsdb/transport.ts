/**
 * Byte-stream transports for OVSDB, addressed like OVS remotes: `unix:/path/db.sock`,
 * `tcp:127.0.0.1:6640`, `tcp:[::1]:6640`, and `ssl:host:port` through {@link tlsConnector}
 * (TLS needs key material, so it is opt-in). A client takes any {@link Connector}.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';

/** Opens a connected byte stream to a remote. */
export type Connector = (remote: string, timeoutMs: number) => Promise<Duplex>;

export type Remote =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp' | 'ssl'; host: string; port: number };

/** Thrown when a remote string is malformed or a connection attempt fails. */
export class TransportError extends Error {
  override name = 'TransportError';
}

/** Parses an OVS-style remote string. */
export function parseRemote(remote: string): Remote {
  if (remote.startsWith('unix:')) {
    const path = remote.slice(5);
    if (!path) throw new TransportError(`remote "${remote}": empty socket path`);
    return { kind: 'unix', path };
  }
  for (const kind of ['tcp', 'ssl'] as const) {
    if (!remote.startsWith(`${kind}:`)) continue;
    const rest = remote.slice(kind.length + 1);
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(rest) ?? /^([^:]+):(\d+)$/.exec(rest);
    const port = m ? Number(m[2]) : NaN;
    if (!m || !(port > 0 && port < 65536)) {
      throw new TransportError(`remote "${remote}": expected ${kind}:HOST:PORT or ${kind}:[IPv6]:PORT`);
    }
    return { kind, host: m[1], port };
  }
  throw new TransportError(`remote "${remote}": expected unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT`);
}

/** The default connector: unix sockets and TCP (with TCP_NODELAY). `ssl:` needs {@link tlsConnector}. */
export const connectRemote: Connector = (remote, timeoutMs) => {
  const r = parseRemote(remote);
  if (r.kind === 'ssl') {
    return Promise.reject(new TransportError(`remote "${remote}": ssl needs a key, certificate and CA; use tlsConnector()`));
  }
  const socket =
    r.kind === 'unix' ? net.createConnection({ path: r.path }) : net.createConnection({ host: r.host, port: r.port });
  return whenConnected(socket, 'connect', remote, timeoutMs, r.kind === 'tcp');
};

/** PEM material for `ssl:` remotes, as ovsdb-server's --private-key/--certificate/--ca-cert take it. */
export interface TlsOptions {
  key: string | Buffer;
  cert: string | Buffer;
  ca: string | Buffer;
  /**
   * Check that the server certificate names the host (default true). OVS itself only checks the
   * CA signature, so certificates made with ovs-pki may need false here.
   */
  verifyHostname?: boolean;
}

/** A connector that also speaks `ssl:HOST:PORT` (mutual TLS, like OVS); other remotes as {@link connectRemote}. */
export function tlsConnector(options: TlsOptions): Connector {
  return (remote, timeoutMs) => {
    const r = parseRemote(remote);
    if (r.kind !== 'ssl') return connectRemote(remote, timeoutMs);
    const socket = tls.connect({
      host: r.host,
      port: r.port,
      key: options.key,
      cert: options.cert,
      ca: options.ca,
      ...(net.isIP(r.host) ? {} : { servername: r.host }),
      ...(options.verifyHostname === false ? { checkServerIdentity: () => undefined } : {}),
    });
    return whenConnected(socket, 'secureConnect', remote, timeoutMs, true);
  };
}

function whenConnected(
  socket: net.Socket,
  event: 'connect' | 'secureConnect',
  remote: string,
  timeoutMs: number,
  noDelay: boolean,
): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TransportError(`connect to ${remote} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new TransportError(`connect to ${remote} failed: ${err.message}`));
    };
    socket.once('error', onError);
    socket.once(event, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      if (noDelay) socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
