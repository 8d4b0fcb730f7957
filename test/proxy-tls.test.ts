// Issue 6: TLS on both sides, against real Dovecots and their self-signed
// certificates (SPEC §10, §11 B2).
//
// To the server: STARTTLS and implicit TLS, with verification on (CA file =
// Dovecot's certificate) and off; a certificate for another name or from an
// unknown CA is refused with NO [UNAVAILABLE] and a log line with the reason;
// a server that says LOGINDISABLED never gets a byte in clear beyond STARTTLS
// (a TCP tap between proxy and Dovecot records every byte); TLS sessions are
// resumed.
//
// For clients: implicit TLS and STARTTLS with imapflow, `openssl s_client`
// and the raw client; the STARTTLS injection (CVE-2011-0411); reuse for TLS
// clients; client_require_tls; the certificate re-read on SIGHUP.
//
// Every test uses its own Dovecot user, so concurrent tests never share a
// cached connection.
import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { connectImapClient } from './helpers/imapflow.js';
import { getFreePort, LOOPBACK } from './helpers/ports.js';
import { IMAPPROXYD, startProxy, type Proxy } from './helpers/proxy.js';
import { eventually, waitForCached, waitForLogLines } from './helpers/proxy-log.js';
import { makeSelfSignedCert, type CertFiles } from './helpers/tls-cert.js';
import { RawClient } from './helpers/transcript.js';
import { startTap, type Tap } from './helpers/tap.js';

const run = promisify(execFile);

const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';
const UNAVAILABLE = 'NO [UNAVAILABLE] LOGIN failed: IMAP server unavailable';
const PRIVACY = 'NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.';
/** The address the tap connects to Dovecot from: not Dovecot's own, so Dovecot does not count it as secure. */
const TAP_SOURCE = '127.0.0.2';

let dir: string;
/** Plain + STARTTLS and IMAPS; one long-lived login process, so TLS sessions can be resumed. */
let dv: Dovecot;
/** disable_plaintext_auth: LOGINDISABLED to clients not on its own address. */
let dvLoginDisabled: Dovecot;
/** Its certificate names wrong.example only. */
let dvWrongName: Dovecot;
let wrongCert: CertFiles;
/** The proxy's certificate for clients. */
let proxyCert: CertFiles;
let tap: Tap;

const proxies: Proxy[] = [];
let pStarttlsVerify: Proxy;
let pStarttlsNoVerify: Proxy;
let pImplicitVerify: Proxy;
let pImplicitNoVerify: Proxy;
let pUnknownCa: Proxy;
let pWrongName: Proxy;
let pLoginDisabled: Proxy;
let pClients: Proxy;
let pClientsTlsPort: number;
let pRequireTls: Proxy;

async function proxy(serverPort: number, extraConf: string[]): Promise<Proxy> {
  const p = await startProxy({ serverPort, extraConf: extraConf.join('\n') });
  proxies.push(p);
  return p;
}

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-tls-test-'));
  [wrongCert, proxyCert] = await Promise.all([
    makeSelfSignedCert(dir, { name: 'wrong', commonName: 'wrong.example', subjectAltName: 'DNS:wrong.example' }),
    makeSelfSignedCert(dir, { name: 'proxy' }),
  ]);
  [dv, dvLoginDisabled, dvWrongName] = await Promise.all([
    startDovecot({
      users: 30,
      loginServiceCount: 0,
      extraConf: 'imap_id_log = *\nservice imap-login {\n  process_min_avail = 1\n  process_limit = 1\n}',
    }),
    startDovecot({ users: 5, extraConf: 'disable_plaintext_auth = yes\nlogin_trusted_networks =' }),
    startDovecot({ users: 5, extraConf: `ssl_cert = <${wrongCert.certFile}\nssl_key = <${wrongCert.keyFile}` }),
  ]);
  // Right after start Dovecot may greet with "* OK Waiting for authentication process to respond.."
  // (no capabilities); the proxies' first greeting fetch must see the real one.
  await Promise.all([dv, dvLoginDisabled, dvWrongName].map(authReady));
  // From 127.0.0.2, which Dovecot does not treat as a secure (local) address.
  tap = await startTap(dvLoginDisabled.port, { localAddress: TAP_SOURCE });
  // tls_ca_path: a directory with Dovecot's certificate among other files
  const caDir = path.join(dir, 'ca');
  await mkdir(caDir);
  await copyFile(dv.certFile, path.join(caDir, 'dovecot.crt'));
  await copyFile(wrongCert.certFile, path.join(caDir, 'other.pem'));
  await writeFile(path.join(caDir, 'README'), 'not a certificate\n');
  pClientsTlsPort = await getFreePort();
  const clientTls = [`client_tls_cert_file ${proxyCert.certFile}`, `client_tls_key_file ${proxyCert.keyFile}`];
  [
    pStarttlsVerify, pStarttlsNoVerify, pImplicitVerify, pImplicitNoVerify, pUnknownCa, pWrongName, pLoginDisabled,
    pClients, pRequireTls,
  ] = await Promise.all([
    proxy(dv.port, ['server_hostname localhost', 'force_tls yes', 'tls_verify_server yes', `tls_ca_file ${dv.certFile}`]),
    proxy(dv.port, ['force_tls yes']),
    proxy(dv.tlsPort, ['server_hostname 127.0.0.1', 'server_tls yes', 'tls_verify_server yes', `tls_ca_path ${caDir}`]),
    proxy(dv.tlsPort, ['server_tls yes']),
    proxy(dv.tlsPort, ['server_tls yes', 'tls_verify_server yes']),
    proxy(dvWrongName.tlsPort, ['server_hostname localhost', 'server_tls yes', 'tls_verify_server yes', `tls_ca_file ${wrongCert.certFile}`]),
    proxy(tap.port, []),
    proxy(dv.port, [...clientTls, `client_tls_listen_address ${LOOPBACK}`, `client_tls_listen_port ${pClientsTlsPort}`]),
    proxy(dv.port, [...clientTls, 'client_require_tls yes']),
  ]);
});

test.after.always(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await tap?.close();
  await Promise.all([dv?.stop(), dvLoginDisabled?.stop(), dvWrongName?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

// --- helpers -----------------------------------------------------------------

const pass = (user: string): string => user.replace(/^user/, 'pass');

async function authReady(d: Dovecot): Promise<void> {
  for (let i = 0; ; i++) {
    const c = await RawClient.connect(d.port);
    await c.close();
    if (c.greeting.startsWith('* OK [CAPABILITY ')) return;
    if (i > 100) throw new Error(`dovecot not ready: ${c.greeting}`);
    await sleep(50);
  }
}

/** Tokens of the capability code of a greeting, or of a `* CAPABILITY` line. */
function caps(line: string): string[] {
  const m = /\[CAPABILITY ([^\]]*)\]/.exec(line) ?? /^\* CAPABILITY (.*)$/.exec(line);
  if (!m) throw new Error(`no capabilities in ${JSON.stringify(line)}`);
  return m[1]!.split(' ');
}

/** LOGIN, one command, LOGOUT through a raw client; the lines of the LOGIN reply. */
async function loginAndOut(c: RawClient, user: string): Promise<string[]> {
  const login = await c.command(`a1 LOGIN ${user} ${pass(user)}`);
  const st = await c.command('a2 STATUS INBOX (MESSAGES)');
  if (st.at(-1)!.startsWith('a2 OK') === false || st[0] !== '* STATUS INBOX (MESSAGES 21)') throw new Error(`STATUS failed:\n${c.describe()}`);
  await c.command('a3 LOGOUT');
  await c.close();
  return login;
}

/** The proxy's log lines at level `debug` about TLS to the server. */
function tlsDebugLines(p: Proxy): string[] {
  return p.log().filter((l) => / debug: TLS to the IMAP server /.test(l));
}

async function assertLoginThrough(t: ExecutionContext, p: Proxy, user: string): Promise<void> {
  const c = await RawClient.connect(p.port);
  t.regex(c.greeting, /^\* OK \[CAPABILITY IMAP4rev1 .*XIMAPPROXY\] Dovecot \(Debian\) ready\.$/);
  t.deepEqual(await loginAndOut(c, user), ['a1 OK User logged in'], c.describe());
  t.is(await dv.loginCount(user), 1);
}

/**
 * `openssl s_client` as an IMAP client: sends each line once the previous
 * command's tagged reply arrived; resolves with everything the server sent
 * (after TLS) once it closes.
 */
async function sClient(args: string[], lines: string[]): Promise<string> {
  const child = spawn('openssl', ['s_client', '-quiet', '-crlf', '-verify_return_error', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    // The greeting (implicit TLS) or, after -starttls, nothing more: the first command goes once TLS is up.
    await eventually('openssl s_client to connect', () => (/verify return:1/.test(err) ? true : undefined), 5000, () => `${err}\n${out}`);
    for (const line of lines) {
      const tag = line.split(' ', 1)[0]!;
      child.stdin.write(`${line}\n`);
      await eventually(`the reply to ${line}`, () => (new RegExp(`^${tag} `, 'm').test(out) ? true : undefined), 5000, () => `${err}\n${out}`);
    }
    await Promise.race([exited, sleep(5000)]);
    return out;
  } finally {
    child.kill();
  }
}

function fingerprint(socket: tls.TLSSocket): string {
  return socket.getPeerX509Certificate()!.fingerprint256;
}

// --- TLS to the server -------------------------------------------------------

test('STARTTLS to the server with verification (CA file, server_hostname localhost): login works over TLS', async (t) => {
  await assertLoginThrough(t, pStarttlsVerify, 'user1');
  const line = await waitForLogLines(pStarttlsVerify, /debug: TLS to the IMAP server 127\.0\.0\.1:\d+: TLSv1\.3 /);
  t.truthy(line);
  t.false(pStarttlsVerify.log().some((l) => /certificate not verified/.test(l)), pStarttlsVerify.log().join('\n'));
});

test('STARTTLS to the server without verification: login works, one notice says the certificate would fail', async (t) => {
  await assertLoginThrough(t, pStarttlsNoVerify, 'user2');
  const [notice] = await waitForLogLines(pStarttlsNoVerify, /certificate not verified/);
  t.regex(notice!, /notice: TLS to the IMAP server 127\.0\.0\.1:\d+: certificate not verified \(tls_verify_server no\); it would fail: self-signed certificate \(DEPTH_ZERO_SELF_SIGNED_CERT\)$/);
});

test('implicit TLS to the server (server_tls) with verification (tls_ca_path), server_hostname 127.0.0.1', async (t) => {
  await assertLoginThrough(t, pImplicitVerify, 'user3');
  t.true(tlsDebugLines(pImplicitVerify).length > 0, pImplicitVerify.log().join('\n'));
});

test('implicit TLS to the server without verification', async (t) => {
  await assertLoginThrough(t, pImplicitNoVerify, 'user4');
});

test('verification on, certificate from an unknown CA: NO [UNAVAILABLE] and the reason in the log', async (t) => {
  const c = await RawClient.connect(pUnknownCa.port);
  t.deepEqual(await c.command('a1 LOGIN user5 pass5'), [`a1 ${UNAVAILABLE}`]);
  await c.close();
  const [line] = await waitForLogLines(pUnknownCa, /LOGIN: 'user5' .* failed: /);
  t.regex(line!, /err: LOGIN: 'user5' \(127\.0\.0\.1:\d+\) failed: TLS to the IMAP server 127\.0\.0\.1:\d+ failed: certificate verification failed: self-signed certificate \(DEPTH_ZERO_SELF_SIGNED_CERT\)$/);
  t.is(await dv.loginCount('user5'), 0);
});

test('verification on, certificate for another host name: NO [UNAVAILABLE] and the reason in the log', async (t) => {
  const c = await RawClient.connect(pWrongName.port);
  t.deepEqual(await c.command('a1 LOGIN user1 pass1'), [`a1 ${UNAVAILABLE}`]);
  await c.close();
  const [line] = await waitForLogLines(pWrongName, /LOGIN: 'user1' .* failed: /);
  t.true(
    line!.endsWith(
      "failed: certificate verification failed: Hostname/IP does not match certificate's altnames: " +
        "Host: localhost. is not in the cert's altnames: DNS:wrong.example (configured server_hostname: localhost)",
    ),
    line,
  );
  t.is(await dvWrongName.loginCount('user1'), 0);
  // The same certificate is accepted for the name it carries: only the name was wrong.
  const ok = await tlsConnect(dvWrongName.tlsPort, { ca: await readFile(wrongCert.certFile), servername: 'wrong.example' });
  t.true(ok.authorized);
  ok.destroy();
});

test('SNI: server_hostname is sent when it is a name, nothing when it is an address', async (t) => {
  // Dovecot does not say which name it was asked for; a TLS server in this process does.
  const seen: Array<string | false> = [];
  const server = tls.createServer({ cert: await readFile(proxyCert.certFile), key: await readFile(proxyCert.keyFile) }, (s) => {
    seen.push((s as tls.TLSSocket & { servername: string | false }).servername);
    s.on('error', () => {});
    s.end('* BYE fake server\r\n');
  });
  await new Promise<void>((resolve) => server.listen({ host: LOOPBACK, port: 0 }, () => resolve()));
  try {
    const port = (server.address() as net.AddressInfo).port;
    for (const [host, expected] of [['localhost', 'localhost'], ['127.0.0.1', false]] as const) {
      const p = await proxy(port, [`server_hostname ${host}`, 'server_tls yes', 'tls_verify_server yes', `tls_ca_file ${proxyCert.certFile}`]);
      // The greeting fetch at start is the first connection.
      await eventually('a TLS connection', () => (seen.length > 0 ? true : undefined));
      t.deepEqual(seen.splice(0), [expected], `server_hostname ${host}`);
      await p.stop();
    }
  } finally {
    server.close();
  }
});

test('the greeting fetch goes through TLS too, and a refused certificate says so in the log', async (t) => {
  // Every proxy fetched the server greeting at start; for these two it failed verification.
  for (const p of [pUnknownCa, pWrongName]) {
    const [line] = await waitForLogLines(p, /Unable to read the IMAP server's greeting and capabilities: /);
    t.regex(line!, /TLS to the IMAP server 127\.0\.0\.1:\d+ failed: certificate verification failed: /);
  }
});

test('TLS sessions to the server are resumed on later connections', async (t) => {
  // Several new server connections (the greeting fetch, then one per user)
  for (const user of ['user6', 'user7', 'user8']) {
    const c = await RawClient.connect(pImplicitVerify.port);
    t.deepEqual(await loginAndOut(c, user), ['a1 OK User logged in']);
  }
  for (const user of ['user9', 'user10']) {
    const c = await RawClient.connect(pStarttlsVerify.port);
    t.deepEqual(await loginAndOut(c, user), ['a1 OK User logged in']);
  }
  for (const p of [pImplicitVerify, pStarttlsVerify]) {
    const resumed = await eventually('a resumed TLS session', () => (tlsDebugLines(p).some((l) => l.endsWith(', session resumed')) ? true : undefined), 3000, () => tlsDebugLines(p).join('\n'));
    t.true(resumed);
  }
});

test('LOGINDISABLED server (B2): every connection does STARTTLS first; the password never crosses in clear', async (t) => {
  const before = tap.sent.length;
  // Two new server connections for two users, and the greeting fetch at start
  for (const user of ['user1', 'user2']) {
    const c = await RawClient.connect(pLoginDisabled.port);
    t.false(caps(c.greeting).includes('LOGINDISABLED'), c.greeting);
    const capa = await c.command('c1 CAPABILITY');
    t.true(caps(capa[0]!).includes('AUTH=PLAIN'), capa[0]);
    t.deepEqual(await loginAndOut(c, user), ['a1 OK User logged in']);
  }
  t.is(await dvLoginDisabled.loginCount('user1'), 1);
  t.is(await dvLoginDisabled.loginCount('user2'), 1);
  t.true(tap.sent.length >= before + 2);
  t.true(tap.sent.length >= 3, 'the greeting fetch went through the tap too');
  for (const [i, toServer] of tap.sent.entries()) {
    const toProxy = tap.received[i]!;
    const fromServer = Buffer.concat(toProxy);
    const sent = Buffer.concat(toServer);
    // What Dovecot said in clear: a greeting with LOGINDISABLED, then OK to STARTTLS.
    const greeting = fromServer.subarray(0, fromServer.indexOf('\r\n')).toString('latin1');
    t.regex(greeting, /^\* OK \[CAPABILITY [^\]]* STARTTLS LOGINDISABLED\] Dovecot \(Debian\) ready\.$/, `connection ${i}`);
    // What the proxy sent in clear: STARTTLS (after a CAPABILITY when a greeting had none), then only TLS records.
    const clearEnd = sent.indexOf(' STARTTLS\r\n') + ' STARTTLS\r\n'.length;
    const clear = sent.subarray(0, clearEnd).toString('latin1');
    t.regex(clear, /^(X[0-9A-F]{6}\.\d+ CAPABILITY\r\n)?X[0-9A-F]{6}\.\d+ STARTTLS\r\n$/, `connection ${i}`);
    t.is(sent[clearEnd], 0x16, `connection ${i}: a TLS handshake record follows STARTTLS`);
    for (const secret of ['pass1', 'pass2', 'LOGIN', 'CAPABILITY']) {
      t.is(sent.indexOf(secret), -1, `connection ${i}: "${secret}" in clear`);
    }
  }
  const dovecotLog = await readFile(dvLoginDisabled.logFile, 'utf8');
  t.notRegex(dovecotLog, /Plaintext authentication not allowed/);
});

test('LOGINDISABLED without a usable STARTTLS: no LOGIN is ever sent, the client gets NO [UNAVAILABLE]', async (t) => {
  // A scripted server: LOGINDISABLED, and STARTTLS either not offered or answered
  // with bytes after the OK (a man in the middle adding a response in clear).
  const variants = [
    { caps: 'IMAP4rev1 LOGINDISABLED', starttlsReply: '', log: 'IMAP server has LOGINDISABLED and the server does not offer STARTTLS' },
    { caps: 'IMAP4rev1 STARTTLS LOGINDISABLED', starttlsReply: 'OK Begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected', log: 'the IMAP server sent data after its STARTTLS reply' },
  ];
  for (const v of variants) {
    const received: string[] = [];
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.write(`* OK [CAPABILITY ${v.caps}] fake ready\r\n`);
      let buf = '';
      s.on('data', (b: Buffer) => {
        buf += b.toString('latin1');
        for (let nl; (nl = buf.indexOf('\r\n')) >= 0; buf = buf.slice(nl + 2)) {
          const line = buf.slice(0, nl);
          received.push(line);
          const [tag, cmd] = line.split(' ');
          if (cmd === 'STARTTLS') s.write(`${tag} ${v.starttlsReply}\r\n`);
          else if (cmd === 'CAPABILITY') s.write(`* CAPABILITY ${v.caps}\r\n${tag} OK done\r\n`);
          else if (cmd === 'LOGOUT') s.end(`* BYE bye\r\n${tag} OK done\r\n`);
          else s.write(`${tag} BAD what\r\n`);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen({ host: LOOPBACK, port: 0 }, () => resolve()));
    try {
      const p = await proxy((server.address() as net.AddressInfo).port, []);
      const c = await RawClient.connect(p.port);
      t.deepEqual(await c.command('a1 LOGIN user1 secret-password'), [`a1 ${UNAVAILABLE}`]);
      await c.close();
      const [line] = await waitForLogLines(p, /LOGIN: 'user1' .* failed: /);
      t.true(line!.endsWith(`failed: cannot connect to the IMAP server: ${v.log}`), line);
      t.false(received.some((l) => / LOGIN /i.test(l) || l.includes('secret-password')), received.join('\n'));
      await p.stop();
    } finally {
      server.close();
    }
  }
});

// --- TLS for clients ---------------------------------------------------------

function tlsConnect(port: number, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: LOOPBACK, port, servername: 'localhost', rejectUnauthorized: false, ...opts }, () => resolve(s));
    s.once('error', reject);
  });
}

test('clients over implicit TLS: the proxy certificate, a greeting without STARTTLS, login and reuse', async (t) => {
  const proxyPem = await readFile(proxyCert.certFile);
  const s = await tlsConnect(pClientsTlsPort, { ca: proxyPem, rejectUnauthorized: true });
  t.is(fingerprint(s), new X509Certificate(proxyPem).fingerprint256);
  s.destroy();

  const c1 = await RawClient.connect(pClientsTlsPort, { tls: true });
  t.regex(c1.greeting, /^\* OK \[CAPABILITY IMAP4rev1 .*XIMAPPROXY\] Dovecot \(Debian\) ready\.$/);
  t.false(caps(c1.greeting).includes('STARTTLS'), c1.greeting);
  t.deepEqual(await loginAndOut(c1, 'user11'), ['a1 OK User logged in']);
  await waitForCached(pClients, 'user11');
  const c2 = await RawClient.connect(pClientsTlsPort, { tls: true });
  t.deepEqual(await loginAndOut(c2, 'user11'), [REUSE, 'a1 OK User logged in']);
  t.is(await dv.loginCount('user11'), 1);
});

test('clients with STARTTLS on the plain port: advertised, upgraded, capabilities without STARTTLS after; reuse works', async (t) => {
  for (const expected of [['a1 OK User logged in'], [REUSE, 'a1 OK User logged in']]) {
    const c = await RawClient.connect(pClients.port);
    const greetingCaps = caps(c.greeting);
    t.deepEqual(greetingCaps.slice(-2), ['STARTTLS', 'XIMAPPROXY'], c.greeting);
    t.deepEqual(await c.command('s1 STARTTLS'), ['s1 OK Begin TLS negotiation now']);
    await c.startTls();
    const after = await c.command('s2 CAPABILITY');
    t.is(after[1], 's2 OK Completed');
    t.deepEqual(caps(after[0]!), greetingCaps.filter((x) => x !== 'STARTTLS'));
    t.deepEqual(await c.command('s3 STARTTLS'), ['s3 BAD TLS is already active']);
    t.deepEqual(await loginAndOut(c, 'user12'), expected);
    await waitForCached(pClients, 'user12', expected.length);
  }
  t.is(await dv.loginCount('user12'), 1);
});

test('STARTTLS injection (CVE-2011-0411): commands pipelined after STARTTLS are discarded, never answered', async (t) => {
  const c = await RawClient.connect(pClients.port);
  await c.sendRaw('a STARTTLS\r\nb CAPABILITY\r\nb2 LOGIN user13 pass13\r\n');
  t.is(await c.readLine(), 'a OK Begin TLS negotiation now');
  // startTls() itself fails if anything followed the OK in clear.
  await sleep(100);
  await c.startTls();
  t.deepEqual(await c.command('c NOOP'), ['c OK Completed'], 'no reply to b or b2 before the reply to c');
  await c.command('d LOGOUT');
  await c.close();
  await waitForLogLines(pClients, /notice: client 127\.0\.0\.1:\d+: 38 byte\(s\) sent after STARTTLS discarded$/);
  t.is(await dv.loginCount('user13'), 0);
});

test('the ID a client sent before STARTTLS is forgotten', async (t) => {
  const c = await RawClient.connect(pClients.port);
  t.deepEqual(await c.command('i1 ID ("name" "sent-in-clear")'), ['i1 OK Completed']);
  t.deepEqual(await c.command('s1 STARTTLS'), ['s1 OK Begin TLS negotiation now']);
  await c.startTls();
  t.deepEqual(await c.command('i2 ID ("name" "sent-over-tls")'), ['i2 OK Completed']);
  t.deepEqual(await loginAndOut(c, 'user14'), ['a1 OK User logged in']);
  // imap_id_log: Dovecot logs the first ID of each connection.
  const log = await readFile(dv.logFile, 'utf8');
  t.regex(log, /ID sent: name=sent-over-tls/);
  t.false(log.includes('sent-in-clear'));
});

test('imapflow over implicit TLS (certificate verified) and with STARTTLS', async (t) => {
  const ca = await readFile(proxyCert.certFile);
  const implicit = await connectImapClient({
    port: pClientsTlsPort, user: 'user15', pass: 'pass15',
    options: { secure: true, tls: { ca, rejectUnauthorized: true, servername: 'localhost' } },
  });
  t.true(implicit.secureConnection);
  t.deepEqual(await implicit.status('INBOX', { messages: true }), { path: 'INBOX', messages: 21 });
  await implicit.logout();

  const upgraded = await connectImapClient({
    port: pClients.port, user: 'user16', pass: 'pass16',
    options: { doSTARTTLS: true, tls: { ca, rejectUnauthorized: true, servername: 'localhost' } },
  });
  t.true(upgraded.secureConnection);
  t.deepEqual(await upgraded.status('INBOX', { messages: true }), { path: 'INBOX', messages: 21 });
  await upgraded.logout();
  t.deepEqual([...implicit.errors, ...upgraded.errors], []);
});

test('openssl s_client over implicit TLS and with -starttls imap', async (t) => {
  const common = ['-CAfile', proxyCert.certFile, '-servername', 'localhost', '-verify_hostname', 'localhost'];
  const implicit = await sClient(['-connect', `${LOOPBACK}:${pClientsTlsPort}`, ...common], [
    'a1 LOGIN user17 pass17', 'a2 STATUS INBOX (MESSAGES)', 'a3 LOGOUT',
  ]);
  t.regex(implicit, /^\* OK \[CAPABILITY IMAP4rev1 .*XIMAPPROXY\] Dovecot \(Debian\) ready\.\r\na1 OK \[CAPABILITY [^\]]*\] User logged in\r\n\* STATUS INBOX \(MESSAGES 21\)\r\na2 OK /);
  t.regex(implicit, /\* BYE .*\r\na3 OK /);

  const starttls = await sClient(['-connect', `${LOOPBACK}:${pClients.port}`, '-starttls', 'imap', ...common], [
    'a1 LOGIN user18 pass18', 'a2 STATUS INBOX (MESSAGES)', 'a3 LOGOUT',
  ]);
  t.regex(starttls, /^a1 OK \[CAPABILITY [^\]]*\] User logged in\r\n\* STATUS INBOX \(MESSAGES 21\)\r\na2 OK /);
  t.is(await dv.loginCount('user17'), 1);
  t.is(await dv.loginCount('user18'), 1);
});

test('client_require_tls: LOGINDISABLED and no AUTH= before TLS, LOGIN and AUTHENTICATE refused; after STARTTLS login works', async (t) => {
  const c = await RawClient.connect(pRequireTls.port);
  const before = caps(c.greeting);
  t.deepEqual(before.slice(-3), ['STARTTLS', 'LOGINDISABLED', 'XIMAPPROXY'], c.greeting);
  t.false(before.some((x) => /^AUTH=|^SASL-IR$/.test(x)), c.greeting);
  t.deepEqual(caps((await c.command('c1 CAPABILITY'))[0]!), before);
  t.deepEqual(await c.command('a1 LOGIN user19 pass19'), [`a1 ${PRIVACY}`]);
  t.deepEqual(await c.command(`a2 AUTHENTICATE PLAIN ${Buffer.from('\0user19\0pass19').toString('base64')}`), [`a2 ${PRIVACY}`]);
  t.deepEqual(await c.command('a3 AUTHENTICATE LOGIN'), [`a3 ${PRIVACY}`]);
  t.deepEqual(await c.command('s1 STARTTLS'), ['s1 OK Begin TLS negotiation now']);
  await c.startTls();
  const after = caps((await c.command('c2 CAPABILITY'))[0]!);
  t.false(after.includes('LOGINDISABLED'));
  t.false(after.includes('STARTTLS'));
  t.true(after.includes('AUTH=PLAIN'));
  t.deepEqual(await loginAndOut(c, 'user19'), ['a1 OK User logged in']);
  t.is(await dv.loginCount('user19'), 1);
});

test('the client certificate and key are read again on SIGHUP', async (t) => {
  // The daemon runs as nobody by then: the files must be readable by proc_username.
  await chmod(dir, 0o755);
  const certDir = await mkdtemp(path.join(dir, 'reload-'));
  await chmod(certDir, 0o755);
  const certFile = path.join(certDir, 'cert.pem');
  const keyFile = path.join(certDir, 'key.pem');
  const first = await makeSelfSignedCert(certDir, { name: 'first' });
  const second = await makeSelfSignedCert(certDir, { name: 'second' });
  // copyFile gives the copy the source's mode (0600 for keys)
  const install = async (from: CertFiles): Promise<void> => {
    await copyFile(from.certFile, certFile);
    await copyFile(from.keyFile, keyFile);
    await chmod(keyFile, 0o644);
  };
  await install(first);
  const tlsPort = await getFreePort();
  const p = await proxy(dv.port, [`client_tls_cert_file ${certFile}`, `client_tls_key_file ${keyFile}`, `client_tls_listen_address ${LOOPBACK}`, `client_tls_listen_port ${tlsPort}`]);
  const seen = async (): Promise<string> => {
    const s = await tlsConnect(tlsPort);
    const f = fingerprint(s);
    s.destroy();
    return f;
  };
  const fp = async (file: string) => new X509Certificate(await readFile(file)).fingerprint256;
  t.is(await seen(), await fp(first.certFile));

  await install(second);
  process.kill(p.pid, 'SIGHUP');
  await waitForLogLines(p, /info: client TLS certificate reloaded from /);
  t.is(await seen(), await fp(second.certFile));

  // A key that does not belong to the certificate: the running pair stays.
  await copyFile(first.keyFile, keyFile);
  await chmod(keyFile, 0o644);
  process.kill(p.pid, 'SIGHUP');
  const [line] = await waitForLogLines(p, /err: client TLS certificate not reloaded, keeping the running one: /);
  t.regex(line!, /key values mismatch/);
  t.is(await seen(), await fp(second.certFile));
});

test('TLS options that cannot work stop the daemon at start (exit 78)', async (t) => {
  const confDir = await mkdtemp(path.join(dir, 'conf-'));
  const cases: Array<[string[], string]> = [
    [['client_require_tls yes'], "option 'client_require_tls': no client could log in without client_tls_cert_file; set it or set this option to no"],
    [[`client_tls_listen_port ${await getFreePort()}`], "option 'client_tls_listen_port': a TLS listener needs client_tls_cert_file; set it or remove this option"],
  ];
  for (const [i, [lines, message]] of cases.entries()) {
    const conf = path.join(confDir, `c${i}.conf`);
    await writeFile(conf, [`server_hostname ${LOOPBACK}`, `server_port ${dv.port}`, `listen_address ${LOOPBACK}`, `listen_port ${await getFreePort()}`,
      'foreground_mode yes', `stat_filename ${path.join(confDir, 'stats')}`, `control_socket ${path.join(confDir, 'ctl.sock')}`, ...lines, ''].join('\n'));
    const err = await run(process.execPath, [IMAPPROXYD, '-f', conf]).then(() => null, (e: { code: number; stderr: string }) => e);
    t.truthy(err, `${lines.join(' ')} was accepted`);
    t.is(err!.code, 78);
    t.is(err!.stderr, `imapproxyd: ${conf}: ${message}\n`);
  }
});

test('server_port 993 without server_tls: a warning at start', async (t) => {
  // Nothing listens on 993 here; the warning comes before any connection.
  const p = await proxy(993, ['server_hostname 127.0.0.1']);
  const [line] = await waitForLogLines(p, /server_port is 993/);
  t.regex(line!, /warning: server_port is 993 \(IMAPS\) but server_tls is no: plain IMAP is sent to it and logins will fail; set server_tls yes$/);
});
