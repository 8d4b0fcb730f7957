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

/** CN=localhost, SAN IP:127.0.0.1 + DNS:localhost; P-256 key (RSA-2048 keygen is ~10x slower). */
export async function makeSelfSignedCert(dir: string): Promise<CertFiles> {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '3650', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', keyFile, '-out', certFile,
  ]);
  await chmod(keyFile, 0o600);
  await chmod(certFile, 0o644);
  return { certFile, keyFile };
}
