// Certificates for TLS tests, made with openssl in a directory of the test's: a CA is
// self-signed (no `ca`), anything else is signed by the named CA, valid for 127.0.0.1 and
// loom-controller unless another subjectAltName is given. The subject is CN=<name> unless given
// (an operator: `/CN=alice/O=loom:operators`).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';

/** Writes <dir>/<name>.pem and <dir>/<name>.key; returns their paths. */
export async function makeCert(
  dir: string,
  name: string,
  ca?: string,
  subject = `/CN=${name}`,
  subjectAltName = 'IP:127.0.0.1,DNS:loom-controller',
): Promise<{ cert: string; key: string }> {
  const file = (n: string) => join(dir, n);
  const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', file(`${name}.key`)];
  if (!ca) {
    await run('openssl', ['req', '-x509', ...keyArgs, '-out', file(`${name}.pem`), '-days', '1', '-subj', subject]);
  } else {
    await run('openssl', ['req', ...keyArgs, '-out', file(`${name}.csr`), '-subj', subject]);
    writeFileSync(file(`${name}.ext`), `subjectAltName=${subjectAltName}\n`);
    await run('openssl', [
      'x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${ca}.pem`), '-CAkey', file(`${ca}.key`),
      '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '1', '-extfile', file(`${name}.ext`),
    ]);
  }
  return { cert: file(`${name}.pem`), key: file(`${name}.key`) };
}
