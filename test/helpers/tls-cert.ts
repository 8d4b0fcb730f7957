// Self-signed certificate for the test servers (openssl CLI: Node cannot make X.509).
import { execFile } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertFiles {
  certFile: string;
  keyFile: string;
}

export interface CertOptions {
  /** Files are `<name>-cert.pem` / `<name>-key.pem` (default: cert.pem / key.pem). */
  name?: string;
  /** Default localhost. */
  commonName?: string;
  /** openssl syntax; default `IP:127.0.0.1,DNS:localhost`. */
  subjectAltName?: string;
}

/** CN=localhost, SAN IP:127.0.0.1 + DNS:localhost unless told otherwise; P-256 key (RSA-2048 keygen is ~10x slower). */
export async function makeSelfSignedCert(dir: string, opts: CertOptions = {}): Promise<CertFiles> {
  const prefix = opts.name === undefined ? '' : `${opts.name}-`;
  const certFile = path.join(dir, `${prefix}cert.pem`);
  const keyFile = path.join(dir, `${prefix}key.pem`);
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '3650', '-subj', `/CN=${opts.commonName ?? 'localhost'}`,
    '-addext', `subjectAltName=${opts.subjectAltName ?? 'IP:127.0.0.1,DNS:localhost'}`,
    '-keyout', keyFile, '-out', certFile,
  ]);
  await chmod(keyFile, 0o600);
  await chmod(certFile, 0o644);
  return { certFile, keyFile };
}
