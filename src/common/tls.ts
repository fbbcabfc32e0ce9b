// TLS for Loom's gRPC: PEM files checked when a daemon or loomctl starts (readable errors, not a
// handshake failure later), turned into grpc-js credentials.
import * as grpc from '@grpc/grpc-js';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from './config.js';

/** The controller's side: its certificate and key, and the CA that signs client certificates. */
export interface ServerTls {
  cert: string;
  key: string;
  /** When set, clients (agents, loomctl) must present a certificate signed by this CA. */
  clientCa: string;
}

/** A client's side: the CA that signs the controller's certificate, and its own certificate. */
export interface ClientTls {
  ca: string;
  cert: string;
  key: string;
  /** Name to check the controller's certificate against, when the address is not in it. */
  serverName: string;
}

function readPem(path: string, setting: string): Buffer {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${setting}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!text.includes('-----BEGIN ')) throw new ConfigError(`${setting}: ${path} is not a PEM file`);
  return text;
}

/** Reads a certificate and its key and checks that they belong together and are in date. */
function certAndKey(certPath: string, keyPath: string, names: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  const cert = readPem(certPath, names.cert);
  const key = readPem(keyPath, names.key);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError(`${names.cert}: ${certPath} holds no readable certificate: ${(err as Error).message}`);
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not match the certificate');
  } catch (err) {
    throw new ConfigError(`${names.key}: ${keyPath} is not the key of ${certPath}: ${(err as Error).message}`);
  }
  if (Date.parse(x509.validTo) < Date.now()) throw new ConfigError(`${names.cert}: ${certPath} expired on ${x509.validTo}`);
  return { cert, key };
}

/**
 * The controller's TLS settings, read and checked, as node:tls server options (also what the
 * grpc-js credentials below are made of), or null for plaintext. With a client CA, clients
 * without a certificate from it are refused at the handshake.
 */
export function serverTlsOptions(
  tls: ServerTls,
  names = { cert: 'tlsCert', key: 'tlsKey', clientCa: 'tlsClientCa' },
): { cert: Buffer; key: Buffer; ca?: Buffer; requestCert: boolean; rejectUnauthorized: boolean } | null {
  if (!tls.cert && !tls.key && !tls.clientCa) return null;
  if (!tls.cert || !tls.key) throw new ConfigError(`${names.cert} and ${names.key} go together: set both or neither`);
  const { cert, key } = certAndKey(tls.cert, tls.key, names);
  if (!tls.clientCa) return { cert, key, requestCert: false, rejectUnauthorized: false };
  return { cert, key, ca: readPem(tls.clientCa, names.clientCa), requestCert: true, rejectUnauthorized: true };
}

/** Server credentials for grpc-js, or insecure ones when no certificate is configured. */
export function serverCredentials(tls: ServerTls, names?: { cert: string; key: string; clientCa: string }): grpc.ServerCredentials {
  const o = serverTlsOptions(tls, names);
  if (!o) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(o.ca ?? null, [{ cert_chain: o.cert, private_key: o.key }], o.requestCert);
}

/** Client credentials and channel options, or insecure ones when no CA is configured. */
export function clientCredentials(
  tls: ClientTls,
  names = { ca: 'tlsCa', cert: 'tlsCert', key: 'tlsKey' },
): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if (!tls.ca) {
    if (tls.cert || tls.key) throw new ConfigError(`${names.cert}/${names.key} need ${names.ca} (the CA of the controller's certificate)`);
    return { credentials: grpc.credentials.createInsecure(), options: {} };
  }
  const ca = readPem(tls.ca, names.ca);
  if (!tls.cert !== !tls.key) throw new ConfigError(`${names.cert} and ${names.key} go together: set both or neither`);
  const own = tls.cert ? certAndKey(tls.cert, tls.key, names) : null;
  return {
    credentials: grpc.credentials.createSsl(ca, own?.key ?? null, own?.cert ?? null),
    options: tls.serverName ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : {},
  };
}
