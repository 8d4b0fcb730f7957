import test from 'ava';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, type ProxyConfig } from '@imapproxy/shared';
import { capabilitiesForClient } from './client-tls.js';
import { serverMinVersion } from './server-tls.js';
import { tlsConfigProblems, tlsConfigWarnings } from './tls-config-check.js';
import { readCaDirectory, readCaFile } from './tls-files.js';

const PEM = (n: number) => `-----BEGIN CERTIFICATE-----\nMIIB${n}\n-----END CERTIFICATE-----`;
const config = (over: Partial<ProxyConfig>): ProxyConfig => ({ ...defaultConfig(), ...over });

test('tls_ca_path: every certificate of every file, once; other files and subdirectories are skipped', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'imapproxy-ca-'));
  try {
    writeFileSync(join(dir, 'bundle.crt'), `${PEM(1)}\n# comment\n${PEM(2)}\n`);
    writeFileSync(join(dir, 'a1b2c3d4.0'), `${PEM(2)}\n`);
    writeFileSync(join(dir, 'README'), 'nothing here\n');
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'x.pem'), `${PEM(3)}\n`);
    t.deepEqual(readCaDirectory('tls_ca_path', dir), [PEM(2), PEM(1)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tls_ca_file without a certificate, or missing, is an error naming the option', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'imapproxy-ca-'));
  try {
    writeFileSync(join(dir, 'empty.pem'), 'no certificate\n');
    t.throws(() => readCaFile('tls_ca_file', join(dir, 'empty.pem')), { message: `option 'tls_ca_file': no PEM certificate in ${join(dir, 'empty.pem')}` });
    t.throws(() => readCaFile('tls_ca_file', join(dir, 'none.pem')), { message: /^option 'tls_ca_file': cannot read .*none\.pem: ENOENT/ });
    t.throws(() => readCaDirectory('tls_ca_path', join(dir, 'none')), { message: /^option 'tls_ca_path': cannot read directory / });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tls_no_tlsv1* map to a minimum version: TLS 1.2 unless tls_no_tlsv1.2', (t) => {
  t.is(serverMinVersion(config({})), 'TLSv1.2');
  t.is(serverMinVersion(config({ tls_no_tlsv1: true, 'tls_no_tlsv1.1': true })), 'TLSv1.2');
  t.is(serverMinVersion(config({ 'tls_no_tlsv1.2': true })), 'TLSv1.3');
});

test('client capabilities: STARTTLS and LOGINDISABLED before XIMAPPROXY; no AUTH= while login is disabled', (t) => {
  const caps = ['IMAP4rev1', 'ID', 'SASL-IR', 'AUTH=PLAIN', 'AUTH=LOGIN', 'XIMAPPROXY'];
  t.deepEqual(capabilitiesForClient(caps, { startTls: false, loginDisabled: false }), caps);
  t.deepEqual(capabilitiesForClient(caps, { startTls: true, loginDisabled: false }), [...caps.slice(0, -1), 'STARTTLS', 'XIMAPPROXY']);
  t.deepEqual(capabilitiesForClient(caps, { startTls: true, loginDisabled: true }), ['IMAP4rev1', 'ID', 'STARTTLS', 'LOGINDISABLED', 'XIMAPPROXY']);
});

test('TLS option combinations that cannot work, and doubtful ones', (t) => {
  t.deepEqual(tlsConfigProblems(config({})), []);
  t.deepEqual(tlsConfigProblems(config({ client_require_tls: true })), [
    "option 'client_require_tls': no client could log in without client_tls_cert_file; set it or set this option to no",
  ]);
  t.deepEqual(tlsConfigProblems(config({ client_tls_cert_file: '/c', client_require_tls: true, client_starttls: false })), [
    "option 'client_require_tls': no client could log in with client_starttls no and no client_tls_listen_port; enable one of them",
  ]);
  t.deepEqual(tlsConfigProblems(config({ client_tls_cert_file: '/c', client_require_tls: true, client_starttls: false, client_tls_listen_port: 993 })), []);
  t.deepEqual(tlsConfigProblems(config({ client_tls_key_file: '/k', client_tls_listen_port: 143 })), [
    "option 'client_tls_key_file': set without client_tls_cert_file; set both or neither",
    "option 'client_tls_listen_port': a TLS listener needs client_tls_cert_file; set it or remove this option",
    "option 'client_tls_listen_port': the same port as listen_port; use another port (e.g. 993)",
  ]);
  t.deepEqual(tlsConfigWarnings(config({})), []);
  t.deepEqual(tlsConfigWarnings(config({ server_port: 993 })), [
    'server_port is 993 (IMAPS) but server_tls is no: plain IMAP is sent to it and logins will fail; set server_tls yes',
  ]);
  t.deepEqual(tlsConfigWarnings(config({ server_port: 993, server_tls: true })), []);
  // several servers: each entry's own port counts
  t.deepEqual(tlsConfigWarnings(config({ server_hostname: 'imap1.example.org:993 imap2.example.org' })), [
    'a server_hostname entry has port 993 (IMAPS) but server_tls is no: plain IMAP is sent to it and logins will fail; set server_tls yes',
  ]);
  t.deepEqual(tlsConfigWarnings(config({ server_hostname: 'imap1.example.org:993, imap2.example.org', server_tls: true })), [
    'server_tls is yes but server_port is 143: implicit TLS is usually on port 993',
  ]);
  t.deepEqual(tlsConfigWarnings(config({ server_hostname: 'a:993 b:993', server_tls: true })), []);
});
