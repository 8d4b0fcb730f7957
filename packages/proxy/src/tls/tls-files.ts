// Reading the PEM files the TLS options name. Done at start-up, as root and
// before the privilege drop, so a key readable by root only works; a failure
// is a start-up error naming the option and the file (the original exited on
// a bad CA, certificate or key too, SPEC §3 step 4).

import fs from 'node:fs';
import path from 'node:path';
import { ImapProxyError } from '@imapproxy/shared';

const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** A PEM file's bytes; `option` names the setting in the error. */
export function readPemFile(option: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ImapProxyError('IMAPPROXY_ERR_TLS_FILE', `option '${option}': cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Every certificate in every file of a directory, like OpenSSL's CApath but
 * without needing `c_rehash` links: /etc/ssl/certs works as it is. Files
 * without a certificate (or unreadable ones) are skipped; an unreadable
 * directory is an error.
 */
export function readCaDirectory(option: string, dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    throw new ImapProxyError('IMAPPROXY_ERR_TLS_FILE', `option '${option}': cannot read directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const seen = new Set<string>();
  for (const name of names.sort()) {
    let text: string;
    try {
      const file = path.join(dir, name);
      if (!fs.statSync(file).isFile()) continue;
      text = fs.readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const m of text.matchAll(CERTIFICATE)) seen.add(m[0]);
  }
  return [...seen];
}

/** The certificates of a CA file; a file without any is an error (a typo would otherwise trust nothing). */
export function readCaFile(option: string, file: string): string[] {
  const certs = [...readPemFile(option, file).toString('latin1').matchAll(CERTIFICATE)].map((m) => m[0]);
  if (certs.length === 0) throw new ImapProxyError('IMAPPROXY_ERR_TLS_FILE', `option '${option}': no PEM certificate in ${file}`);
  return certs;
}
