// Issue 10, parts 2 and 3: the PROXY protocol (v1 and v2) in front of the
// proxy, and the client address passed on to the server.
//
// A load balancer (here: the test, with headers built by proxy-protocol-js)
// connects from a trusted address and sends the header first; the proxy then
// logs, limits and dumps the real client (203.0.113.7), sends it to Dovecot in
// an ID (send_originating_ip: Dovecot logs rip=203.0.113.7), and with
// cache_key_client_ip reuses a cached connection only for the same client IP.
// A peer outside proxy_protocol_trusted_networks, a missing, late or broken
// header: the connection is closed without a greeting.
//
// Every test uses its own Dovecot user, so concurrent tests never share a
// cached connection.
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import * as pp from 'proxy-protocol-js';
import { ctlJson } from './helpers/ctl.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { getFreePort, LOOPBACK } from './helpers/ports.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { eventually, loginEvents, waitForCached, waitForLoginEvents, waitForLogLines } from './helpers/proxy-log.js';
import { makeSelfSignedCert } from './helpers/tls-cert.js';
import { RawClient } from './helpers/transcript.js';
import { scaled } from './helpers/wait.js';

const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';
const LOGGED_IN = 'a1 OK User logged in';
const CLIENT = '203.0.113.7';
const OTHER_CLIENT = '198.51.100.9';
const FRONT_END = '10.0.0.5';

const v1 = (src: string, sport: number, dst = FRONT_END, dport = 143): Buffer =>
  Buffer.from(new pp.V1ProxyProtocol(pp.INETProtocol.TCP4, new pp.Peer(src, sport), new pp.Peer(dst, dport)).build(), 'latin1');

const v2 = (src: string, sport: number, dst = FRONT_END, dport = 143): Buffer =>
  Buffer.from(new pp.V2ProxyProtocol(
    pp.Command.PROXY,
    pp.TransportProtocol.STREAM,
    new pp.IPv4ProxyAddress(pp.IPv4Address.createFrom(src.split('.').map(Number)), sport, pp.IPv4Address.createFrom(dst.split('.').map(Number)), dport),
  ).build());

const v2Local = (): Buffer =>
  Buffer.from(new pp.V2ProxyProtocol(pp.Command.LOCAL, pp.TransportProtocol.UNSPEC, new pp.UnspecProxyAddress()).build());

let dir: string;
let dovecot: Dovecot;
const proxies: Proxy[] = [];
/** Both listeners with the PROXY protocol, send_originating_ip. */
let pMain: Proxy;
let pMainTlsPort: number;
/** Trusts 10.0.0.0/8 only: the test's 127.0.0.1 is refused. */
let pUntrusted: Proxy;
/** proxy_protocol_timeout 1. */
let pTimeout: Proxy;
/** cache_key_client_ip, no send_originating_ip. */
let pCacheKey: Proxy;

async function proxy(extraConf: string[]): Promise<Proxy> {
  const p = await startProxy({ serverPort: dovecot.port, extraConf: extraConf.join('\n') });
  proxies.push(p);
  return p;
}

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-pp-test-'));
  const cert = await makeSelfSignedCert(dir, { name: 'proxy' });
  // login_trusted_networks = 127.0.0.0/8 is in the harness config: Dovecot takes x-originating-ip from the proxy
  dovecot = await startDovecot({ users: 12 });
  pMainTlsPort = await getFreePort();
  [pMain, pUntrusted, pTimeout, pCacheKey] = await Promise.all([
    proxy([
      'listen_proxy_protocol yes',
      'client_tls_listen_proxy_protocol yes',
      'send_originating_ip yes',
      `client_tls_cert_file ${cert.certFile}`,
      `client_tls_key_file ${cert.keyFile}`,
      `client_tls_listen_address ${LOOPBACK}`,
      `client_tls_listen_port ${pMainTlsPort}`,
    ]),
    proxy(['listen_proxy_protocol yes', 'proxy_protocol_trusted_networks 10.0.0.0/8']),
    proxy(['listen_proxy_protocol yes', 'proxy_protocol_timeout 1']),
    proxy(['listen_proxy_protocol yes', 'cache_key_client_ip yes']),
  ]);
});

test.after.always(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await dovecot?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Connects as a balancer would: the header (and whatever follows it in the same write) before reading anything. */
async function viaBalancer(port: number, first: Buffer): Promise<RawClient> {
  const c = await RawClient.connect(port, { readGreeting: false, timeoutMs: 10_000 });
  await c.sendRaw(first);
  return c;
}

/** Header, greeting, LOGIN, LOGOUT; the LOGIN reply lines. */
async function loginLogout(p: Proxy, header: Buffer, user: string, cachedCount = 1): Promise<string[]> {
  const c = await viaBalancer(p.port, header);
  c.greeting = await c.readLine();
  const lines = await c.command(`a1 LOGIN ${user} pass${user.slice(4)}`);
  await c.command('a2 LOGOUT');
  await c.close();
  await waitForCached(p, user, cachedCount, 10_000);
  return lines;
}

/** Dovecot's "Login: user=<user>, ..." lines. */
async function dovecotLogins(user: string, count = 1): Promise<string[]> {
  return eventually(`${count} Dovecot login line(s) of ${user}`, async () => {
    const lines = (await readFile(dovecot.logFile, 'utf8')).split('\n').filter((l) => l.includes(`Login: user=<${user}>`));
    return lines.length >= count ? lines : undefined;
  }, 10_000);
}

test('v1 header: the session, its log lines and imapproxyctl dump have the real client address', async (t) => {
  const c = await viaBalancer(pMain.port, v1(CLIENT, 5678));
  c.greeting = await c.readLine();
  t.regex(c.greeting, /^\* OK /);
  t.deepEqual(await c.command('a1 LOGIN user1 pass1'), [LOGGED_IN]);
  const [ev] = await waitForLoginEvents(pMain, 'user1', 1, 10_000);
  t.like(ev, { client: `${CLIENT}:5678`, kind: 'new' });
  const dump = await ctlJson<{ clients: Array<{ address: string }>; connections: Array<{ user: string; client: string }> }>(pMain.confFile, 'dump');
  t.true(dump.clients.some((s) => s.address === `${CLIENT}:5678`), JSON.stringify(dump.clients));
  t.is(dump.connections.find((s) => s.user === 'user1')?.client, `${CLIENT}:5678`);
  await c.command('a2 LOGOUT');
  await c.close();
});

test('v2 header with the first command in the same packet; send_originating_ip: Dovecot logs rip and lip of the real client', async (t) => {
  const c = await viaBalancer(pMain.port, Buffer.concat([v2(CLIENT, 40001), Buffer.from('a0 CAPABILITY\r\n')]));
  c.greeting = await c.readLine();
  t.regex(c.greeting, /^\* OK /);
  const caps = await c.readUntilTagged('a0');
  t.regex(caps[0]!, /^\* CAPABILITY IMAP4rev1/);
  t.deepEqual(await c.command('a1 LOGIN user2 pass2'), [LOGGED_IN]);
  await c.command('a2 LOGOUT');
  await c.close();
  t.like(loginEvents(pMain, 'user2')[0], { client: `${CLIENT}:40001`, kind: 'new' });
  const [line] = await dovecotLogins('user2');
  t.regex(line!, new RegExp(`rip=${CLIENT.replaceAll('.', '\\.')}, lip=${FRONT_END.replaceAll('.', '\\.')}\\b`));
});

test('a client ID cannot override the address sent with send_originating_ip', async (t) => {
  const c = await viaBalancer(pMain.port, v1(CLIENT, 5000));
  c.greeting = await c.readLine();
  t.deepEqual((await c.command('a0 ID ("name" "evil" "x-originating-ip" "192.0.2.66")')).at(-1), 'a0 OK Completed');
  t.deepEqual(await c.command('a1 LOGIN user3 pass3'), [LOGGED_IN]);
  await c.command('a2 LOGOUT');
  await c.close();
  const [line] = await dovecotLogins('user3');
  t.regex(line!, /rip=203\.0\.113\.7,/);
});

test('header split across packets: no greeting before it is complete, then the session works', async (t) => {
  const header = v1(CLIENT, 6001);
  const c = await viaBalancer(pMain.port, header.subarray(0, 3));
  for (const [from, to] of [[3, 12], [12, 30], [30, header.length - 1]] as const) {
    await sleep(50); // kept: pieces a moment apart reach the proxy as separate reads (what is under test)
    await c.sendRaw(header.subarray(from, to));
  }
  await t.throwsAsync(c.readLine(300), undefined, 'nothing may be sent before the header is complete');
  await c.sendRaw(Buffer.concat([header.subarray(header.length - 1), Buffer.from('a1 LOGIN user4 pass4\r\n')]));
  c.greeting = await c.readLine();
  t.regex(c.greeting, /^\* OK /);
  t.deepEqual(await c.readUntilTagged('a1'), [LOGGED_IN]);
  await c.command('a2 LOGOUT');
  await c.close();
  t.like(loginEvents(pMain, 'user4')[0], { client: `${CLIENT}:6001` });
});

test('v2 LOCAL (a balancer health check): the connection\'s own address stands', async (t) => {
  const c = await viaBalancer(pMain.port, v2Local());
  c.greeting = await c.readLine();
  t.deepEqual(await c.command('a1 LOGIN user5 pass5'), [LOGGED_IN]);
  await c.command('a2 LOGOUT');
  await c.close();
  t.regex(loginEvents(pMain, 'user5')[0]!.client, /^127\.0\.0\.1:\d+$/);
});

/** TLS after the header on the implicit-TLS listener; `coalesce`: the header and the ClientHello in one write. */
async function tlsViaBalancer(port: number, header: Buffer, coalesce: boolean): Promise<tls.TLSSocket> {
  const raw = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: LOOPBACK, port }, () => resolve(s));
    s.once('error', reject);
  });
  if (coalesce) raw.cork();
  raw.write(header);
  if (!coalesce) await sleep(50); // kept: the header and the ClientHello in separate reads (what is under test)
  const secure = tls.connect({ socket: raw, servername: 'localhost', rejectUnauthorized: false });
  if (coalesce) process.nextTick(() => raw.uncork());
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  return secure;
}

/** Lines from a TLS socket until `done` matches one. */
function readLines(socket: tls.TLSSocket, done: RegExp): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const lines: string[] = [];
    const timer = setTimeout(() => reject(new Error(`no line matching ${done}; got ${JSON.stringify(lines)}`)), scaled(10_000));
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      let nl;
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        lines.push(line);
        if (done.test(line)) {
          clearTimeout(timer);
          socket.off('data', onData);
          resolve(lines);
          return;
        }
      }
    };
    socket.on('data', onData);
  });
}

for (const coalesce of [true, false]) {
  const user = coalesce ? 'user6' : 'user7';
  test(`implicit TLS: the header comes before the handshake (${coalesce ? 'ClientHello in the same packet' : 'ClientHello later'})`, async (t) => {
    const port = coalesce ? 50006 : 50007;
    const s = await tlsViaBalancer(pMainTlsPort, v2(CLIENT, port, FRONT_END, 993), coalesce);
    const greetingLines = readLines(s, /^\* OK /);
    t.regex((await greetingLines).at(-1)!, /^\* OK /);
    const reply = readLines(s, /^a1 /);
    s.write(`a1 LOGIN ${user} pass${user.slice(4)}\r\n`);
    // the server's capabilities after login ride on the OK (issue 18)
    t.deepEqual((await reply).map((l) => l.replace(/^(a1 OK )\[CAPABILITY [^\]]*\] /, '$1')), [LOGGED_IN]);
    s.end('a2 LOGOUT\r\n');
    t.like((await waitForLoginEvents(pMain, user, 1, 10_000))[0], { client: `${CLIENT}:${port}` });
    const [line] = await dovecotLogins(user);
    t.regex(line!, /rip=203\.0\.113\.7, lip=10\.0\.0\.5\b/);
  });
}

test('a peer outside proxy_protocol_trusted_networks is closed without a greeting', async (t) => {
  const c = await viaBalancer(pUntrusted.port, v1(CLIENT, 7001));
  t.deepEqual(await c.expectClosed(10_000), []);
  await waitForLogLines(pUntrusted, /refused connection from 127\.0\.0\.1: PROXY protocol header not allowed from this address$/, 1, 10_000);
  t.is(loginEvents(pUntrusted).length, 0);
});

test('no header, or a truncated one that stops, within proxy_protocol_timeout: closed without a greeting', async (t) => {
  const silent = await RawClient.connect(pTimeout.port, { readGreeting: false, timeoutMs: 15_000 });
  const truncated = await viaBalancer(pTimeout.port, v2(CLIENT, 7002).subarray(0, 20));
  t.deepEqual(await silent.expectClosed(15_000), []);
  t.deepEqual(await truncated.expectClosed(15_000), []);
  await waitForLogLines(pTimeout, /refused connection from 127\.0\.0\.1: no complete PROXY protocol header within 1 s$/, 2, 10_000);
});

test('a client that speaks IMAP straight away, or a broken header: closed without a greeting, the reason logged', async (t) => {
  const cases: Array<[Buffer, RegExp]> = [
    [Buffer.from('a1 LOGIN user8 pass8\r\n'), /no PROXY protocol header \(the connection does not start with "PROXY " or the v2 signature\)$/],
    [Buffer.from('PROXY TCP4 203.0.113.300 10.0.0.5 5678 143\r\na1 LOGIN user8 pass8\r\n'), /PROXY protocol v1 header: '203\.0\.113\.300' is not an IPv4 address$/],
    [Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`), /PROXY protocol v1 header longer than 107 bytes$/],
    [Buffer.concat([v2(CLIENT, 1).subarray(0, 14), Buffer.from([0xff, 0xff])]), /PROXY protocol v2 header of 65551 bytes, more than the 4096 accepted$/],
  ];
  for (const [bytes, reason] of cases) {
    const c = await viaBalancer(pMain.port, bytes);
    t.deepEqual(await c.expectClosed(10_000), [], bytes.toString('latin1'));
    await waitForLogLines(pMain, new RegExp(`refused connection from 127\\.0\\.0\\.1: ${reason.source}`), 1, 10_000);
  }
  t.is(loginEvents(pMain, 'user8').length, 0);
});

test('a balancer\'s TCP health check (connect, close) is logged at info level only', async (t) => {
  const c = await viaBalancer(pTimeout.port, Buffer.from('PRO'));
  await c.close();
  const [line] = await waitForLogLines(pTimeout, /refused connection from 127\.0\.0\.1: connection closed before the PROXY protocol header was complete$/, 1, 10_000);
  t.regex(line!, /\binfo: /);
});

test('cache_key_client_ip: another client IP gets a new server connection, the same IP (another port) reuses', async (t) => {
  t.deepEqual(await loginLogout(pCacheKey, v1(CLIENT, 8001), 'user9', 1), [LOGGED_IN]);
  t.deepEqual(await loginLogout(pCacheKey, v1(OTHER_CLIENT, 8002), 'user9', 2), [LOGGED_IN]);
  t.deepEqual(await loginLogout(pCacheKey, v2(CLIENT, 8003), 'user9', 3), [REUSE, LOGGED_IN]);
  t.deepEqual(await loginLogout(pCacheKey, v2(OTHER_CLIENT, 8004), 'user9', 4), [REUSE, LOGGED_IN]);
  const ev = loginEvents(pCacheKey, 'user9');
  t.deepEqual(ev.map((e) => [e.client, e.kind]), [
    [`${CLIENT}:8001`, 'new'],
    [`${OTHER_CLIENT}:8002`, 'new'],
    [`${CLIENT}:8003`, 'existing'],
    [`${OTHER_CLIENT}:8004`, 'existing'],
  ]);
  t.not(ev[0]!.sd, ev[1]!.sd);
  t.is(ev[2]!.sd, ev[0]!.sd);
  t.is(ev[3]!.sd, ev[1]!.sd);
  // a different IP is not a wrong password
  t.is(pCacheKey.log().filter((l) => l.includes("because password doesn't match")).length, 0);
  // without send_originating_ip the server sees the proxy
  for (const line of await dovecotLogins('user9', 2)) t.regex(line, /rip=127\.0\.0\.1,/);
});

test('without cache_key_client_ip a cached connection goes to any client IP (it keeps the first client\'s address at the server)', async (t) => {
  t.deepEqual(await loginLogout(pMain, v1(CLIENT, 9001), 'user10', 1), [LOGGED_IN]);
  t.deepEqual(await loginLogout(pMain, v1(OTHER_CLIENT, 9002), 'user10', 2), [REUSE, LOGGED_IN]);
  const lines = await dovecotLogins('user10', 1);
  t.is(lines.length, 1);
  t.regex(lines[0]!, /rip=203\.0\.113\.7,/);
});
