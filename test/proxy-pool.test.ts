// Issue 3, the POOL half: how our proxy keeps, hands out, expires, evicts and
// drops server connections, against a real Dovecot. One Dovecot for the file and
// one default proxy; tests that need another pool configuration start their own
// proxy in front of the same Dovecot. Every test has its own users, so the tests
// run concurrently.
//
// What the server did is read from Dovecot itself: loginCount(user) counts its
// successful logins, `doveadm who` its open sessions, its log the LOGOUTs.
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { readStatsFile, type DecodedStats } from '@imapproxy/shared';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { startProxy, IMAPPROXYD, type Proxy } from './helpers/proxy.js';
import { eventually, loginEvents, waitForCached, waitForLoginEvents, waitForLogLines } from './helpers/proxy-log.js';
import { RawClient, runTranscript } from './helpers/transcript.js';

const run = promisify(execFile);
const PIMPSTAT = IMAPPROXYD.replace(/imapproxyd$/, 'pimpstat');

let dovecot: Dovecot;
let proxy: Proxy;

const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';
const OK_NEW = ['a1 OK User logged in'];
const OK_REUSED = [REUSE, 'a1 OK User logged in'];

test.before(async () => {
  dovecot = await startDovecot({ users: 20 });
  proxy = await startProxy({ serverPort: dovecot.port });
});

test.after.always(async () => {
  await proxy?.stop();
  await dovecot?.stop();
});

/** A logged-in client of `p` (`a1 LOGIN userN passN`); returns it with the LOGIN reply. */
async function login(p: Proxy, user: string, pass = user.replace('user', 'pass')): Promise<{ c: RawClient; reply: string[] }> {
  const c = await RawClient.connect(p.port);
  const reply = await c.command(`a1 LOGIN ${user} ${pass}`);
  return { c, reply };
}

/** LOGOUT through the proxy: answered by the proxy, then the connection closes. */
async function logout(c: RawClient): Promise<void> {
  const lines = await c.command('z9 LOGOUT');
  if (lines.join('\n') !== '* BYE LOGOUT received\nz9 OK Completed') throw new Error(`unexpected LOGOUT reply\n${c.describe()}`);
  await c.expectClosed();
}

/** LOGIN, SELECT INBOX, LOGOUT; returns the LOGIN reply. */
async function cycle(p: Proxy, user: string): Promise<string[]> {
  const { c, reply } = await login(p, user);
  try {
    if (reply.at(-1) === 'a1 OK User logged in') {
      const sel = await c.command('a2 SELECT INBOX');
      if (!/^a2 OK \[READ-WRITE\]/.test(sel.at(-1)!)) throw new Error(`SELECT failed\n${c.describe()}`);
      await logout(c);
    }
  } finally {
    await c.close();
  }
  return reply;
}

/** Dovecot's open IMAP sessions per user (`doveadm who`). */
async function whoCounts(): Promise<Map<string, number>> {
  const out = await dovecot.doveadm('who');
  const counts = new Map<string, number>();
  for (const line of out.split('\n').slice(1)) {
    const m = /^(\S+)\s+(\d+)\s+imap\b/.exec(line);
    if (m) counts.set(m[1]!, Number(m[2]));
  }
  return counts;
}

/** The stats file once `ready(stats)` holds (the daemon flushes it about once a second). */
function statsWhen(p: Proxy, ready: (s: DecodedStats) => boolean, timeoutMs = 5000): Promise<DecodedStats> {
  let last: DecodedStats | undefined;
  return eventually(
    'the stats file to show the expected counters',
    () => {
      last = readStatsFile(p.statFile);
      return ready(last) ? last : undefined;
    },
    timeoutMs,
    () => JSON.stringify(last, null, 1),
  );
}

/** Dovecot's log lines of the imap session that `user` logged in with as its `nth` login (0-based). */
function dovecotSessionLines(user: string, nth = 0): string[] {
  const log = readFileSync(dovecot.logFile, 'utf8').split('\n');
  const logins = log.filter((l) => l.includes(`imap-login: Info: Login: user=<${user}>,`));
  const session = /session=<([^>]+)>/.exec(logins[nth] ?? '')?.[1];
  if (!session) return [];
  return log.filter((l) => l.includes(`<${session}>`));
}

// --- several connections per user ------------------------------------------------------

test('two concurrent sessions of one user get two server connections; both are cached and reused', async (t) => {
  const a = await login(proxy, 'user1');
  const b = await login(proxy, 'user1');
  t.deepEqual(a.reply, OK_NEW);
  t.deepEqual(b.reply, OK_NEW);
  t.is(await dovecot.loginCount('user1'), 2);
  t.is((await whoCounts()).get('user1'), 2);
  const [ea, eb] = await waitForLoginEvents(proxy, 'user1', 2);
  t.not(ea!.sd, eb!.sd);
  t.regex((await a.c.command('a2 SELECT INBOX')).at(-1)!, /^a2 OK \[READ-WRITE\] Select completed/);
  await logout(a.c);
  await logout(b.c);
  await waitForCached(proxy, 'user1', 2);

  // a third and a fourth login at the same time take one cached connection each
  const c = await login(proxy, 'user1');
  const d = await login(proxy, 'user1');
  t.deepEqual(c.reply, OK_REUSED);
  t.deepEqual(d.reply, OK_REUSED);
  const reused = (await waitForLoginEvents(proxy, 'user1', 4)).slice(2);
  t.deepEqual(reused.map((e) => e.kind), ['existing', 'existing']);
  t.deepEqual(reused.map((e) => e.sd).sort(), [ea!.sd, eb!.sd].sort());
  t.is(await dovecot.loginCount('user1'), 2);

  // a fifth while both are in use needs a third server connection
  const e = await login(proxy, 'user1');
  t.deepEqual(e.reply, OK_NEW);
  t.is(await dovecot.loginCount('user1'), 3);
  for (const x of [c, d, e]) await logout(x.c);
});

test('a client gone while its server login runs: the fresh connection is cached, not leaked', async (t) => {
  const c = await RawClient.connect(proxy.port);
  await c.send('a1 LOGIN user12 pass12');
  await c.close();
  const [ev] = await waitForLoginEvents(proxy, 'user12', 1);
  t.is(ev!.kind, 'new');
  await waitForCached(proxy, 'user12');
  t.deepEqual(await cycle(proxy, 'user12'), OK_REUSED);
  t.is(await dovecot.loginCount('user12'), 1);
});

test('a reused connection belongs to the user who logs in: each user sees only their own mailboxes', async (t) => {
  // a mailbox only that user has, made straight on Dovecot
  for (const user of ['user13', 'user14']) {
    const direct = await RawClient.connect(dovecot.port);
    await direct.command(`d1 LOGIN ${user} ${user.replace('user', 'pass')}`);
    t.regex((await direct.command(`d2 CREATE mine-${user}`)).at(-1)!, /^d2 OK/);
    await direct.command('d3 LOGOUT');
    await direct.close();
  }
  const list = async (user: string, expected: string[]): Promise<void> => {
    const { c, reply } = await login(proxy, user);
    try {
      t.deepEqual(reply, expected);
      const lines = await c.command('a2 LIST "" "mine-*"');
      t.deepEqual(lines.slice(0, -1), [`* LIST (\\HasNoChildren) "/" mine-${user}`]);
      await logout(c);
    } finally {
      await c.close();
    }
  };
  await list('user13', OK_NEW);
  await list('user14', OK_NEW);
  await waitForCached(proxy, 'user14');
  await list('user13', OK_REUSED);
  await list('user14', OK_REUSED);
  await list('user13', OK_REUSED);
  t.is(await dovecot.loginCount('user13'), 2); // one of them was the direct CREATE
  t.is(await dovecot.loginCount('user14'), 2);
});

// --- the server closes a cached connection ---------------------------------------------

test('the server closing a cached connection (doveadm kick): dropped at once, the next login makes a new one', async (t) => {
  t.deepEqual(await cycle(proxy, 'user2'), OK_NEW);
  await waitForCached(proxy, 'user2');
  const [first] = await waitForLoginEvents(proxy, 'user2', 1);
  t.is((await whoCounts()).get('user2'), 1);

  await dovecot.doveadm('kick', 'user2');
  // Dovecot says "* BYE Server shutting down." and closes: the proxy drops the connection
  await waitForLogLines(proxy, new RegExp(`Invalidating server sd \\[${first!.sd}\\]`));

  await runTranscript(proxy.port, String.raw`
    S~ ^\* OK \[CAPABILITY .*XIMAPPROXY\]
    C: a1 LOGIN user2 pass2
    S: a1 OK User logged in
    C: a2 SELECT INBOX
    S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
    S~ ^\* OK \[PERMANENTFLAGS
    S: * 21 EXISTS
    S~ ^\* 0 RECENT$
    S~ ^\* OK \[UNSEEN 1\]
    S~ ^\* OK \[UIDVALIDITY \d+\]
    S: * OK [UIDNEXT 22] Predicted next UID
    S~ ^a2 OK \[READ-WRITE\]
    C: a3 LOGOUT
    S: * BYE LOGOUT received
    S: a3 OK Completed
  `);
  t.is(await dovecot.loginCount('user2'), 2);
  const events = await waitForLoginEvents(proxy, 'user2', 2);
  t.deepEqual(events.map((e) => e.kind), ['new', 'new']);
  t.not(events[1]!.sd, first!.sd);
  // One line per connection: the BYE invalidates it, the close that follows finds it gone
  // (both used to log, the second without a reason).
  const invalidated = proxy.log().filter((l) => l.includes(`Invalidating server sd [${first!.sd}]`));
  t.deepEqual(invalidated.map((l) => l.replace(/^.*Invalidating/, 'Invalidating')), [
    `Invalidating server sd [${first!.sd}]: unsolicited data from the server while cached`,
  ]);
});

// --- expiry ------------------------------------------------------------------------

test('exact expiry: cache_expiration_time 2 closes the cached connection with LOGOUT after 2 s, not 60', async (t) => {
  const own = await startProxy({ serverPort: dovecot.port, extraConf: 'cache_expiration_time 2' });
  try {
    t.deepEqual(await cycle(own, 'user3'), OK_NEW);
    await waitForCached(own, 'user3');
    const cachedAt = Date.now();
    const [ev] = await waitForLoginEvents(own, 'user3', 1);
    const line = await own.waitForLog(/Expiring server sd \[\d+\]$/, 6000);
    const after = Date.now() - cachedAt;
    t.true(line.endsWith(`Expiring server sd [${ev!.sd}]`), line);
    t.true(after >= 1500 && after <= 4500, `expired after ${after} ms`);
    // closed with LOGOUT: Dovecot logs "Logged out", not "Connection closed"
    await eventually('Dovecot to log the LOGOUT', () => (dovecotSessionLines('user3').some((l) => /Disconnected: Logged out/.test(l)) ? true : undefined), 3000, () => dovecotSessionLines('user3').join('\n'));
    const stats = await statsWhen(own, (s) => s.retainedServerConnections === 0);
    t.is(stats.inUseServerConnections, 0);
    t.is(stats.extension!.expirations, 1);

    // the next login is a new server login
    t.deepEqual(await cycle(own, 'user3'), OK_NEW);
    t.is(await dovecot.loginCount('user3'), 2);
  } finally {
    await own.stop();
  }
});

test('expiry counts from the last logout: a reuse restarts the 2 s timer', async (t) => {
  const own = await startProxy({ serverPort: dovecot.port, extraConf: 'cache_expiration_time 2' });
  try {
    t.deepEqual(await cycle(own, 'user4'), OK_NEW);
    await waitForCached(own, 'user4', 1);
    await sleep(1200); // kept: time passing toward the expiry is what is under test
    t.deepEqual(await cycle(own, 'user4'), OK_REUSED);
    await waitForCached(own, 'user4', 2);
    await sleep(1200); // kept, as above: 2.4 s after the first logout, 1.2 s after the second
    t.deepEqual(await cycle(own, 'user4'), OK_REUSED);
    t.is(await dovecot.loginCount('user4'), 1);
    t.deepEqual(own.log().filter((l) => /Expiring server sd/.test(l)), []);
  } finally {
    await own.stop();
  }
});

// --- cache_size ---------------------------------------------------------------------

test('cache_size 2 is the true maximum: the least recently used cached connection makes room; all in use → NO', async (t) => {
  const own = await startProxy({ serverPort: dovecot.port, extraConf: 'cache_size 2' });
  try {
    t.deepEqual(await cycle(own, 'user5'), OK_NEW);
    await waitForCached(own, 'user5');
    t.deepEqual(await cycle(own, 'user6'), OK_NEW);
    await waitForCached(own, 'user6');
    const [sd5] = (await waitForLoginEvents(own, 'user5', 1)).map((e) => e.sd);

    // a third user: user5's connection (least recently used) is closed to make room
    const u7 = await login(own, 'user7');
    t.deepEqual(u7.reply, OK_NEW);
    await waitForLogLines(own, new RegExp(`Expiring server sd \\[${sd5}\\] to make room \\(cache_size 2 reached\\)$`));
    t.regex((await u7.c.command('a2 NOOP')).at(-1)!, /^a2 OK NOOP completed/);
    await logout(u7.c);
    await waitForCached(own, 'user7');

    // user6 is still cached, user5 is not
    t.deepEqual(await cycle(own, 'user6'), OK_REUSED);
    await waitForCached(own, 'user6', 2);
    t.deepEqual(await cycle(own, 'user5'), OK_NEW); // evicts user7 now
    await waitForCached(own, 'user5', 2);
    t.is(await dovecot.loginCount('user5'), 2);
    t.is(await dovecot.loginCount('user6'), 1);

    // both connections in use: no room, the client gets NO and may try again later
    const a = await login(own, 'user6');
    const b = await login(own, 'user5');
    t.deepEqual(a.reply, OK_REUSED);
    t.deepEqual(b.reply, OK_REUSED);
    const c = await RawClient.connect(own.port);
    t.deepEqual(await c.command('a1 LOGIN user7 pass7'), ['a1 NO [UNAVAILABLE] LOGIN failed: too many connections']);
    await waitForLogLines(own, /LOGIN: 'user7' \(127\.0\.0\.1:\d+\) failed: Out of free ICC structs\.$/);
    t.is(await dovecot.loginCount('user7'), 1);
    // never more than cache_size server sessions (an evicted one's process may take a moment to exit)
    let sessions = -1;
    await eventually('Dovecot to show 2 sessions of user5..7', async () => {
      const who = await whoCounts();
      sessions = (who.get('user5') ?? 0) + (who.get('user6') ?? 0) + (who.get('user7') ?? 0);
      return sessions === 2 ? true : undefined;
    }, 3000, () => `sessions: ${sessions}`);

    // one logs out: its connection is cached, and evicted for the waiting client's retry
    await logout(a.c);
    await waitForCached(own, 'user6', 3);
    t.deepEqual(await c.command('a2 LOGIN user7 pass7'), ['a2 OK User logged in']);
    t.is(await dovecot.loginCount('user7'), 2);
    await logout(c);
    await logout(b.c);
  } finally {
    await own.stop();
  }
});

// --- limits on reuse (B5) ----------------------------------------------------------

test('max_reuse_count 1: one reuse, then the connection is closed and the next login is new', async (t) => {
  const own = await startProxy({ serverPort: dovecot.port, extraConf: 'max_reuse_count 1' });
  try {
    t.deepEqual(await cycle(own, 'user8'), OK_NEW);
    await waitForCached(own, 'user8');
    t.deepEqual(await cycle(own, 'user8'), OK_REUSED);
    const [ev] = await waitForLoginEvents(own, 'user8', 2);
    await waitForLogLines(own, new RegExp(`Expiring server sd \\[${ev!.sd}\\] \\(reuse limit reached\\)$`));
    t.deepEqual(await cycle(own, 'user8'), OK_NEW);
    t.is(await dovecot.loginCount('user8'), 2);
    const events = await waitForLoginEvents(own, 'user8', 3);
    t.deepEqual(events.map((e) => e.kind), ['new', 'existing', 'new']);
  } finally {
    await own.stop();
  }
});

test('max_reuse_age 4: a connection older than that is never handed out again', async (t) => {
  const own = await startProxy({ serverPort: dovecot.port, extraConf: 'max_reuse_age 4' });
  try {
    const start = Date.now();
    t.deepEqual(await cycle(own, 'user9'), OK_NEW);
    await waitForCached(own, 'user9');
    t.deepEqual(await cycle(own, 'user9'), OK_REUSED); // young enough
    await waitForCached(own, 'user9', 2);
    await sleep(Math.max(0, start + 4500 - Date.now())); // kept: waiting out max_reuse_age is under test
    // the cached connection is now older than 4 s: the server checks the password again
    t.deepEqual(await cycle(own, 'user9'), OK_NEW);
    t.is(await dovecot.loginCount('user9'), 2);
    const [first] = await waitForLoginEvents(own, 'user9', 3);
    await waitForLogLines(own, new RegExp(`Expiring server sd \\[${first!.sd}\\] \\(reuse limit reached\\)$`));
  } finally {
    await own.stop();
  }
});

// --- counters ----------------------------------------------------------------------

test('counters: the stats file and pimpstat -c show the logins, creations and reuses of a known sequence', async (t) => {
  const own = await startProxy({ serverPort: dovecot.port });
  try {
    t.deepEqual(await cycle(own, 'user10'), OK_NEW);
    await waitForCached(own, 'user10');
    t.deepEqual(await cycle(own, 'user10'), OK_REUSED);
    await runTranscript(own.port, `
      S~ ^\\* OK
      C: a1 LOGIN user11 wrong
      S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.
      C: a2 LOGIN user11 pass11
      S: a2 OK User logged in
      C: a3 LOGOUT
      S: * BYE LOGOUT received
      S: a3 OK Completed
      S: <closed>
    `);
    await runTranscript(own.port, `
      S~ ^\\* OK
      C: a1 CAPABILITY
      S~ ^\\* CAPABILITY
      S: a1 OK Completed
      C: a2 LOGOUT
      S: * BYE LOGOUT received
      S: a2 OK Completed
      S: <closed>
    `);
    await waitForCached(own, 'user10', 2);
    await waitForCached(own, 'user11');

    const s = await statsWhen(own, (x) => x.totalClientConnectionsAccepted === 4 && x.currentClientConnections === 0 && x.retainedServerConnections === 2);
    t.like(s, {
      currentClientConnections: 0,
      inUseServerConnections: 0,
      peakInUseServerConnections: 1,
      retainedServerConnections: 2,
      peakRetainedServerConnections: 2,
      totalClientConnectionsAccepted: 4,
      totalClientLogins: 3,
      totalServerConnectionsCreated: 2,
      totalServerConnectionsReused: 1,
      totalSelectCommands: 0,
    });
    t.like(s.extension, {
      clientConnectionsAccepted: 4,
      clientLogins: 3,
      serverConnectionsCreated: 2,
      serverConnectionsReused: 1,
      loginFailures: 1,
      serverConnectFailures: 0,
      evictions: 0,
      expirations: 0,
      invalidations: 0,
      gaugeUnderflows: 0,
    });

    const { stdout } = await run(process.execPath, [PIMPSTAT, '-c', '-f', own.confFile]);
    const lines = stdout.split('\n').filter(Boolean);
    t.is(lines.length, 12, stdout);
    t.deepEqual(lines.filter((_, i) => i !== 1), [
      ' 0 Current Client Connections',
      ' 0 In Use Connections',
      ' 1 Peak In Use Connections',
      ' 2 Retained Server Connections',
      ' 2 Peak Retained Server Connections',
      ' 4 Total Client Connections',
      ' 3 Total Client Logins',
      ' 1 Total Reused Connections',
      ' 2 Total Created Connections',
      ' 0 Cache Hits',
      ' 0 Cache Misses',
    ]);
    // clients came one after the other, but a close may be seen after the next accept
    t.regex(lines[1]!, /^ [12] Peak Client Connections$/);
  } finally {
    await own.stop();
  }
});

// --- the server is down at start-up ------------------------------------------------

test('server down at start-up: the daemon greets, LOGIN gets NO [UNAVAILABLE]; once the server is up logins work', async (t) => {
  // A Dovecot of its own, killed before the proxy starts: its port is closed.
  const down = await startDovecot({ users: 2 });
  let own: Proxy | undefined;
  try {
    await down.kill();
    own = await startProxy({ serverPort: down.port });
    const fallback = 'IMAP4rev1 LITERAL+ ID ENABLE SASL-IR AUTH=PLAIN AUTH=LOGIN XIMAPPROXY';
    const { client } = await runTranscript(own.port, `
      S: * OK [CAPABILITY ${fallback}] IMAP proxy ready, server not reachable yet.
      C: a1 CAPABILITY
      S: * CAPABILITY ${fallback}
      S: a1 OK Completed
      C: a2 LOGIN user1 pass1
      S: a2 NO [UNAVAILABLE] LOGIN failed: IMAP server unavailable
      C: a3 AUTHENTICATE PLAIN ${Buffer.from('\0user1\0pass1').toString('base64')}
      S: a3 NO [UNAVAILABLE] AUTHENTICATE failed: IMAP server unavailable
    `, { keepOpen: true });
    await waitForLogLines(own, new RegExp(`LOGIN: 'user1' \\(127\\.0\\.0\\.1:\\d+\\) failed: cannot connect to the IMAP server: connect ECONNREFUSED 127\\.0\\.0\\.1:${down.port}$`), 2);

    const failed = await statsWhen(own, (x) => x.extension!.serverConnectFailures === 2);
    t.like(failed, { totalClientLogins: 0, totalServerConnectionsCreated: 0, inUseServerConnections: 0, retainedServerConnections: 0 });
    t.is(failed.extension!.loginFailures, 2);

    await down.restart();
    // the same client, still before login, tries again
    try {
      t.deepEqual(await client.command('a4 LOGIN user1 pass1'), ['a4 OK User logged in']);
      t.regex((await client.command('a5 SELECT INBOX')).at(-1)!, /^a5 OK \[READ-WRITE\]/);
      await logout(client);
    } finally {
      await client.close();
    }
    await waitForCached(own, 'user1');
    const again = await login(own, 'user1');
    t.deepEqual(again.reply, OK_REUSED);
    await logout(again.c);
    t.is(await down.loginCount('user1'), 1);

    // new clients get the server's own greeting again once the proxy has refetched it
    const greeting = await eventually('the Dovecot greeting', async () => {
      const c = await RawClient.connect(own!.port);
      await c.close();
      return /Dovecot/.test(c.greeting) ? c.greeting : undefined;
    }, 10_000);
    t.regex(greeting, /^\* OK \[CAPABILITY IMAP4rev1 .*XIMAPPROXY\] Dovecot .*ready\.$/);

    // a server restart drops the cached connection; the next login transparently makes a new one
    await waitForCached(own, 'user1', 2);
    const [cachedSd] = loginEvents(own, 'user1').map((e) => e.sd);
    await down.restart();
    await waitForLogLines(own, new RegExp(`Invalidating server sd \\[${cachedSd}\\]`));
    const third = await login(own, 'user1');
    t.deepEqual(third.reply, OK_NEW);
    await logout(third.c);
    t.is(await down.loginCount('user1'), 2);
  } finally {
    await own?.stop();
    await down.stop();
  }
});

test('a server that accepts but never answers: clients still get a greeting, LOGIN gets NO within login_timeout', async (t) => {
  // server_timeout 30 is far above both bounds asserted here: before the fix the first
  // clients waited server_timeout for a greeting, and login_timeout did not bound the reads.
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const own = await startProxy({
    serverPort: (silent.address() as net.AddressInfo).port,
    extraConf: 'server_timeout 30\nlogin_timeout 3',
  });
  try {
    const fallback = 'IMAP4rev1 LITERAL+ ID ENABLE SASL-IR AUTH=PLAIN AUTH=LOGIN XIMAPPROXY';
    const c = await RawClient.connect(own.port, { timeoutMs: 10_000 });
    t.is(c.greeting, `* OK [CAPABILITY ${fallback}] IMAP proxy ready, server not reachable yet.`);
    t.deepEqual(await c.command('a1 LOGIN user1 pass1', 10_000), ['a1 NO [UNAVAILABLE] LOGIN failed: IMAP server unavailable']);
    await waitForLogLines(own, /LOGIN: 'user1' \(127\.0\.0\.1:\d+\) failed: .*no answer from the server within/);
    await c.close();
  } finally {
    await own.stop();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});
