// Issue 3, the LOGIN half: what a client sees before and during login through
// our proxy, against a real Dovecot and real clients. One Dovecot and one proxy
// for the whole file; every test uses its own user(s), so the tests run
// concurrently without seeing each other's cached connections.
//
// Reuse is proven two ways: the client sees `* OK [XPROXYREUSE] ...`, and
// Dovecot's own log (loginCount) shows exactly one server LOGIN per user.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { startFakeServer, type FakeServer } from './helpers/fake-server.js';
import { createImapClient } from './helpers/imapflow.js';
import { seedMailboxes } from './helpers/maildir-seed.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { loginEvents, waitForCached, waitForLoginEvents, waitForLogLines } from './helpers/proxy-log.js';
import { RawClient, runTranscript } from './helpers/transcript.js';

let dovecot: Dovecot;
let proxy: Proxy;

const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';
/** The greeting: Dovecot's text, its capability code rewritten (SPEC §4.1-§4.2). */
const GREETING = String.raw`S~ ^\* OK \[CAPABILITY IMAP4rev1 .*XIMAPPROXY\] Dovecot .*ready\.$`;
const INBOX = seedMailboxes()[0]!;

test.before(async () => {
  // imap_id_log: Dovecot logs the first ID of each connection ("ID sent: name=..."),
  // so the replay of a client's pre-login ID can be seen on the server side.
  dovecot = await startDovecot({ users: 20, extraConf: 'imap_id_log = *' });
  proxy = await startProxy({ serverPort: dovecot.port });
});

test.after.always(async () => {
  await proxy?.stop();
  await dovecot?.stop();
});

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

/** The script lines of a SELECT INBOX reply from Dovecot 2.3 (no CONDSTORE enabled). */
function selectInboxReply(tag: string, recent: string = String.raw`\d+`): string {
  return String.raw`
    S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
    S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted.
    S: * 21 EXISTS
    S~ ^\* ${recent} RECENT$
    S: * OK [UNSEEN 1] First unseen.
    S~ ^\* OK \[UIDVALIDITY \d+\] UIDs valid$
    S: * OK [UIDNEXT 22] Predicted next UID
    S~ ^${tag} OK \[READ-WRITE\] Select completed
  `;
}

/** The script lines of `UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE)`: one FETCH per message, exact sizes. */
function uidFetchReply(tag: string): string {
  const lines = INBOX.messages.slice(0, 10).map(
    (m) => String.raw`S~ ^\* ${m.uid} FETCH \(UID ${m.uid} FLAGS \([^)]*\) RFC822\.SIZE ${m.size} ENVELOPE \([\s\S]*\)\)$`,
  );
  return `${lines.join('\n')}\nS~ ^${tag} OK Fetch completed`;
}

/** One client: `l1 <login>`, then LOGOUT, through the proxy; returns the reply to the login. */
async function loginLogout(login: string): Promise<string[]> {
  const c = await RawClient.connect(proxy.port);
  try {
    const reply = await c.command(`l1 ${login}`);
    const bye = await c.command('l9 LOGOUT');
    if (bye.join('\n') !== '* BYE LOGOUT received\nl9 OK Completed') throw new Error(`unexpected LOGOUT reply\n${c.describe()}`);
    if ((await c.expectClosed()).length > 0) throw new Error(`lines after LOGOUT\n${c.describe()}`);
    return reply;
  } finally {
    await c.close();
  }
}

// --- the webmail cycle -------------------------------------------------------------

test('raw webmail cycle: LOGIN, SELECT, UID FETCH, LOGOUT; the second session reuses the server connection', async (t) => {
  t.is(await dovecot.loginCount('user1'), 0);
  await runTranscript(proxy.port, `
    ${GREETING}
    C: a1 LOGIN user1 pass1
    S: a1 OK User logged in
    C: a2 SELECT INBOX
    ${selectInboxReply('a2')}
    C: a3 UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE)
    ${uidFetchReply('a3')}
    C: a4 LOGOUT
    S: * BYE LOGOUT received
    S: a4 OK Completed
    S: <closed>
  `);
  t.is(await dovecot.loginCount('user1'), 1);
  await waitForCached(proxy, 'user1');

  const second = await runTranscript(proxy.port, String.raw`
    ${GREETING}
    C: b1 LOGIN user1 pass1
    S: ${REUSE}
    S: b1 OK User logged in
    # the proxy unselected INBOX before caching the connection
    C: b2 UID FETCH 1 (FLAGS)
    S~ ^b2 BAD No mailbox selected
    C: b3 SELECT INBOX
    ${selectInboxReply('b3', '0')}
    C: b4 UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE)
    ${uidFetchReply('b4')}
    C: b5 LOGOUT
    S: * BYE LOGOUT received
    S: b5 OK Completed
    S: <closed>
  `);
  // Dovecot saw one LOGIN for both sessions
  t.is(await dovecot.loginCount('user1'), 1);

  const events = await waitForLoginEvents(proxy, 'user1', 2);
  t.deepEqual(events.map((e) => e.kind), ['new', 'existing']);
  t.is(events[1]!.sd, events[0]!.sd);
  await waitForLogLines(proxy, new RegExp(`LOGOUT: 'user1' from server sd \\[${events[0]!.sd}\\]$`), 2);

  // After login the proxy is transparent: the same FETCH straight to Dovecot gives the same bytes.
  const direct = await RawClient.connect(dovecot.port);
  try {
    await direct.command('d1 LOGIN user1 pass1');
    await direct.command('d2 EXAMINE INBOX');
    const lines = await direct.command('d3 UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE)');
    const viaProxy = second.serverLines.filter((l) => /^\* \d+ FETCH /.test(l));
    t.is(viaProxy.length, 10);
    t.deepEqual(viaProxy, lines.slice(0, -1));
  } finally {
    await direct.close();
  }
});

test('imapflow webmail cycle twice: one server LOGIN (no ENABLE, no COMPRESS, like Roundcube)', async (t) => {
  // Roundcube-like webmail clients send neither ENABLE nor COMPRESS; imapflow does both by
  // default. A session that ENABLEd extensions is never cached (RFC 5161 has no way to switch
  // them off, so the next client would inherit CONDSTORE / UTF8=ACCEPT without asking), and a
  // COMPRESSed one cannot be read by the proxy any more: both are switched off here so the
  // second session can reuse the first one's server connection. The next test shows the ENABLE case.
  for (let round = 0; round < 2; round++) {
    const client = createImapClient({
      port: proxy.port, user: 'user2', pass: 'pass2',
      options: { disableAutoEnable: true, disableCompression: true },
    });
    await client.connect();
    const mailbox = await client.mailboxOpen('INBOX');
    t.is(mailbox.exists, 21);
    const sizes: number[] = [];
    const subjects: Array<string | undefined> = [];
    for await (const msg of client.fetch('1:10', { uid: true, flags: true, size: true, envelope: true }, { uid: true })) {
      sizes.push(msg.size!);
      subjects.push(msg.envelope?.subject);
    }
    t.deepEqual(sizes, INBOX.messages.slice(0, 10).map((m) => m.size));
    t.is(subjects[1], 'Quote "test" message');
    t.is(subjects[2], 'Grüße aus München — Nachricht 3');
    await client.logout();
    t.deepEqual(client.errors, []);
    await waitForCached(proxy, 'user2', round + 1);
  }
  t.is(await dovecot.loginCount('user2'), 1);
  const events = await waitForLoginEvents(proxy, 'user2', 2);
  t.deepEqual(events.map((e) => e.kind), ['new', 'existing']);
  t.is(events[1]!.sd, events[0]!.sd);
});

test('imapflow with its default ENABLE: cached with CONDSTORE on, and reused by the next imapflow session, whose first command is the same ENABLE', async (t) => {
  for (let round = 0; round < 2; round++) {
    const client = createImapClient({ port: proxy.port, user: 'user3', pass: 'pass3', options: { disableAutoEnable: false } });
    await client.connect();
    t.truthy(client.enabled.has('CONDSTORE'));
    await client.mailboxOpen('INBOX');
    await client.logout();
    t.deepEqual(client.errors, []);
  }
  const events = await waitForLoginEvents(proxy, 'user3', 2);
  t.deepEqual(events.map((e) => e.kind), ['new', 'existing']);
  t.is(await dovecot.loginCount('user3'), 1);
});

test('commands pipelined behind LOGIN are relayed once the login is done, on a new and on a reused connection', async (t) => {
  for (const [round, first] of [['p1 OK User logged in'], [REUSE, 'p1 OK User logged in']].entries()) {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.sendRaw('p1 LOGIN user15 pass15\r\np2 SELECT INBOX\r\np3 UID FETCH 21 (RFC822.SIZE)\r\np4 LOGOUT\r\n');
      const lines = await c.readUntilTagged('p4');
      t.deepEqual(lines.slice(0, first.length), first);
      t.regex(lines.find((l) => l.startsWith('p2 '))!, /^p2 OK \[READ-WRITE\] Select completed/);
      t.true(lines.includes(`* 21 FETCH (UID 21 RFC822.SIZE ${INBOX.messages[20]!.size})`), lines.join('\n'));
      t.deepEqual(lines.slice(-2), ['* BYE LOGOUT received', 'p4 OK Completed']);
      t.deepEqual(await c.expectClosed(), []);
    } finally {
      await c.close();
    }
    await waitForCached(proxy, 'user15', round + 1);
  }
  t.is(await dovecot.loginCount('user15'), 1);
});

// --- wrong passwords -----------------------------------------------------------------

test('a wrong password never reuses a cached connection and gets the server\'s own NO', async (t) => {
  t.deepEqual(await loginLogout('LOGIN user4 pass4'), ['l1 OK User logged in']);
  t.is(await dovecot.loginCount('user4'), 1);
  // user4 now has a cached connection; the wrong password is checked by the server
  await runTranscript(proxy.port, `
    ${GREETING}
    C: a1 LOGIN user4 wrong
    S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.
    C: a2 LOGIN user4 "pass4 "
    S: a2 NO [AUTHENTICATIONFAILED] Authentication failed.
    # still before login: the client may try again, and the cached connection is still there
    C: a3 NOOP
    S: a3 OK Completed
    C: a4 LOGIN user4 pass4
    S: ${REUSE}
    S: a4 OK User logged in
    C: a5 LOGOUT
    S: * BYE LOGOUT received
    S: a5 OK Completed
    S: <closed>
  `);
  t.is(await dovecot.loginCount('user4'), 1);
  const events = await waitForLoginEvents(proxy, 'user4', 2);
  t.deepEqual(events.map((e) => e.kind), ['new', 'existing']);
  t.is(events[1]!.sd, events[0]!.sd);
  const refused = await waitForLogLines(proxy, /Unable to reuse server sd \[\d+\] for user 'user4' .* because password doesn't match\.$/, 2);
  t.true(refused.every((l) => l.includes(`sd [${events[0]!.sd}]`)));
  await waitForLogLines(proxy, /LOGIN: 'user4' \(127\.0\.0\.1:\d+\) failed: non-OK server response to LOGIN command: NO \[AUTHENTICATIONFAILED\] Authentication failed\.$/, 2);
});

test('a wrong password without any cached connection: NO from the server, then the right one works', async (t) => {
  await runTranscript(proxy.port, `
    ${GREETING}
    C: a1 LOGIN user5 pass4
    S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.
    C: a2 LOGIN nosuchuser pass5
    S: a2 NO [AUTHENTICATIONFAILED] Authentication failed.
    C: a3 LOGIN user5 pass5
    S: a3 OK User logged in
    C: a4 LOGOUT
    S: * BYE LOGOUT received
    S: a4 OK Completed
  `);
  t.is(await dovecot.loginCount('user5'), 1);
  t.is(await dovecot.loginCount('nosuchuser'), 0);
  t.deepEqual(loginEvents(proxy, 'nosuchuser'), []);
});

// --- how the credentials are written -----------------------------------------------

test('quoted credentials with escapes are decoded: spacey / p a"s\\s, then reused by a literal password', async (t) => {
  const pass = Buffer.from('p a"s\\s');
  await runTranscript(proxy.port, String.raw`
    ${GREETING}
    C: a1 LOGIN "spacey" "p a\"s\\s"
    S: a1 OK User logged in
    C: a2 LOGOUT
    S: * BYE LOGOUT received
    S: a2 OK Completed
  `);
  const c = await RawClient.connect(proxy.port);
  try {
    await c.send(`b1 LOGIN spacey {${pass.length}}`);
    t.is(await c.readLine(), '+ go ahead');
    await c.sendRaw(Buffer.concat([pass, Buffer.from('\r\n')]));
    t.deepEqual(await c.readUntilTagged('b1'), [REUSE, 'b1 OK User logged in']);
    t.deepEqual(await c.command('b2 LOGOUT'), ['* BYE LOGOUT received', 'b2 OK Completed']);
  } finally {
    await c.close();
  }
  t.is(await dovecot.loginCount('spacey'), 1);
});

test('synchronising literals {n} for user and password get "+ go ahead"; the atom form reuses', async (t) => {
  const c = await RawClient.connect(proxy.port);
  try {
    await c.send('a1 LOGIN {5}');
    t.is(await c.readLine(), '+ go ahead');
    await c.send('user6 {5}');
    t.is(await c.readLine(), '+ go ahead');
    await c.send('pass6');
    t.deepEqual(await c.readUntilTagged('a1'), ['a1 OK User logged in']);
    t.deepEqual(await c.command('a2 LOGOUT'), ['* BYE LOGOUT received', 'a2 OK Completed']);
    await c.expectClosed();
  } finally {
    await c.close();
  }
  t.deepEqual(await loginLogout('LOGIN user6 pass6'), [REUSE, 'l1 OK User logged in']);
  t.is(await dovecot.loginCount('user6'), 1);
});

test('non-synchronising literals {n+}: no continuation, one write', async (t) => {
  const c = await RawClient.connect(proxy.port);
  try {
    await c.sendRaw('a1 LOGIN {5+}\r\nuser7 {5+}\r\npass7\r\n');
    // the first line after the literals is the tagged OK: no "+ go ahead" in between
    t.deepEqual(await c.readUntilTagged('a1'), ['a1 OK User logged in']);
    t.deepEqual(await c.command('a2 LOGOUT'), ['* BYE LOGOUT received', 'a2 OK Completed']);
  } finally {
    await c.close();
  }
  t.deepEqual(await loginLogout('LOGIN "user7" {5+}\r\npass7'), [REUSE, 'l1 OK User logged in']);
  t.is(await dovecot.loginCount('user7'), 1);
});

test('UTF-8 password as a literal (utf8user / pässwörd), reused with a literal username', async (t) => {
  const pass = Buffer.from('pässwörd', 'utf8');
  t.is(pass.length, 10);
  const c = await RawClient.connect(proxy.port);
  try {
    await c.send(`a1 LOGIN utf8user {${pass.length}}`);
    t.is(await c.readLine(), '+ go ahead');
    await c.sendRaw(Buffer.concat([pass, Buffer.from('\r\n')]));
    t.deepEqual(await c.readUntilTagged('a1'), ['a1 OK User logged in']);
    t.deepEqual(await c.command('a2 LOGOUT'), ['* BYE LOGOUT received', 'a2 OK Completed']);
  } finally {
    await c.close();
  }
  const again = await RawClient.connect(proxy.port);
  try {
    await again.sendRaw(Buffer.concat([Buffer.from('b1 LOGIN {8+}\r\nutf8user {10+}\r\n'), pass, Buffer.from('\r\n')]));
    t.deepEqual(await again.readUntilTagged('b1'), [REUSE, 'b1 OK User logged in']);
  } finally {
    await again.close();
  }
  t.is(await dovecot.loginCount('utf8user'), 1);
  await waitForLogLines(proxy, /LOGIN: 'utf8user' \(127\.0\.0\.1:\d+\) on existing sd/);
});

test('alice and "alice" are the same user: the quoted form reuses (SPEC §11 B11 fixed)', async (t) => {
  t.deepEqual(await loginLogout('LOGIN user8 pass8'), ['l1 OK User logged in']);
  t.deepEqual(await loginLogout('LOGIN "user8" "pass8"'), [REUSE, 'l1 OK User logged in']);
  t.deepEqual(await loginLogout('LOGIN {5+}\r\nuser8 pass8'), [REUSE, 'l1 OK User logged in']);
  t.is(await dovecot.loginCount('user8'), 1);
  // the log and the cache key use the decoded name, never the quotes
  const events = await waitForLoginEvents(proxy, 'user8', 3);
  t.deepEqual(events.map((e) => e.kind), ['new', 'existing', 'existing']);
  t.deepEqual(loginEvents(proxy, '"user8"'), []);
});

// --- AUTHENTICATE --------------------------------------------------------------------

test('AUTHENTICATE PLAIN with SASL-IR, then without (empty "+ " challenge): second one reuses', async (t) => {
  await runTranscript(proxy.port, `
    ${GREETING}
    C: a1 AUTHENTICATE PLAIN ${b64('\0user9\0pass9')}
    S: a1 OK User authenticated
    C: a2 LOGOUT
    S: * BYE LOGOUT received
    S: a2 OK Completed
    S: <closed>
  `);
  await runTranscript(proxy.port, `
    ${GREETING}
    C: b1 AUTHENTICATE PLAIN
    S: +${' '}
    C: ${b64('user9\0user9\0pass9')}
    S: ${REUSE}
    S: b1 OK User authenticated
    C: b2 LOGOUT
    S: * BYE LOGOUT received
    S: b2 OK Completed
  `);
  t.is(await dovecot.loginCount('user9'), 1);
});

test('AUTHENTICATE LOGIN prompts Username: and Password: in base64', async (t) => {
  await runTranscript(proxy.port, `
    ${GREETING}
    C: a1 AUTHENTICATE LOGIN
    S: + VXNlcm5hbWU6
    C: ${b64('user10')}
    S: + UGFzc3dvcmQ6
    C: ${b64('pass10')}
    S: a1 OK User authenticated
    C: a2 LOGOUT
    S: * BYE LOGOUT received
    S: a2 OK Completed
  `);
  t.is(await dovecot.loginCount('user10'), 1);
});

test('one cached connection serves LOGIN, AUTHENTICATE LOGIN and AUTHENTICATE PLAIN of the same user/password', async (t) => {
  t.deepEqual(await loginLogout('LOGIN user11 pass11'), ['l1 OK User logged in']);
  await runTranscript(proxy.port, `
    ${GREETING}
    C: a1 AUTHENTICATE LOGIN
    S: + VXNlcm5hbWU6
    C: ${b64('user11')}
    S: + UGFzc3dvcmQ6
    C: ${b64('pass11')}
    S: ${REUSE}
    S: a1 OK User authenticated
    C: a2 LOGOUT
    S: * BYE LOGOUT received
    S: a2 OK Completed
  `);
  t.deepEqual(await loginLogout(`AUTHENTICATE PLAIN ${b64('\0user11\0pass11')}`), [REUSE, 'l1 OK User authenticated']);
  t.deepEqual(await loginLogout('LOGIN "user11" pass11'), [REUSE, 'l1 OK User logged in']);
  // a different password is not the same key, whatever the method
  t.deepEqual(await loginLogout(`AUTHENTICATE PLAIN ${b64('\0user11\0pass12')}`), ['l1 NO [AUTHENTICATIONFAILED] Authentication failed.']);
  t.is(await dovecot.loginCount('user11'), 1);
  const events = await waitForLoginEvents(proxy, 'user11', 4);
  t.deepEqual(events.map((e) => e.kind), ['new', 'existing', 'existing', 'existing']);
  t.is(new Set(events.map((e) => e.sd)).size, 1);
});

test('AUTHENTICATE: "*" cancels with a tagged BAD; bad input and unknown mechanisms are refused', async (t) => {
  await runTranscript(proxy.port, `
    ${GREETING}
    C: a1 AUTHENTICATE PLAIN
    S: +${' '}
    C: *
    S: a1 BAD AUTHENTICATE cancelled
    C: a2 AUTHENTICATE LOGIN
    S: + VXNlcm5hbWU6
    C: ${b64('user12')}
    S: + UGFzc3dvcmQ6
    C: *
    S: a2 BAD AUTHENTICATE cancelled
    C: a3 AUTHENTICATE PLAIN
    S: +${' '}
    C: not base64!
    S: a3 BAD Invalid base64 data
    C: a4 AUTHENTICATE CRAM-MD5
    S: a4 NO no mechanism available
    C: a5 AUTHENTICATE
    S: a5 BAD Missing required argument to Authenticate
    C: a6 AUTHENTICATE PLAIN ${b64('\0user12\0wrong')}
    S: a6 NO [AUTHENTICATIONFAILED] Authentication failed.
    # after all that the session is still usable
    C: a7 NOOP
    S: a7 OK Completed
    C: a8 AUTHENTICATE PLAIN ${b64('\0user12\0pass12')}
    S: a8 OK User authenticated
    C: a9 LOGOUT
    S: * BYE LOGOUT received
    S: a9 OK Completed
    S: <closed>
  `);
  t.is(await dovecot.loginCount('user12'), 1);
});

// --- before login ------------------------------------------------------------------

test('pre-auth replies: greeting, CAPABILITY, NOOP, ID, bad tags, other commands, LOGOUT', async (t) => {
  const { serverLines } = await runTranscript(proxy.port, String.raw`
    ${GREETING}
    C: a1 CAPABILITY
    S~ ^\* CAPABILITY IMAP4rev1 .*XIMAPPROXY$
    S: a1 OK Completed
    C: a2 NOOP
    S: a2 OK Completed
    C: a3 ID ("name" "proxy-login-test")
    S: a3 OK Completed
    C: a4 ID NIL
    S: a4 OK Completed
    C: a5 ID
    S: a5 BAD Invalid ID arguments
    C: a6 SELECT INBOX
    S: a6 BAD Please login first
    C: a7 STARTTLS
    S: a7 BAD Please login first
    C: a8 ENABLE UTF8=ACCEPT
    S: a8 BAD Please login first
    C: a9 XPROXY_VERSION
    S: a9 BAD Unrecognized command
    C: * NOOP
    S: * BAD Invalid tag
    C: a(1 NOOP
    S: * BAD Invalid tag
    C: b1
    S: b1 BAD Null command
    C: b2 LOGIN
    S: b2 BAD Missing required argument to Login
    C: b3 LOGIN user13
    S: b3 BAD Missing required argument to Login
    C: b4 noop
    S: b4 OK Completed
    C: b5 LOGOUT
    S: * BYE LOGOUT received
    S: b5 OK Completed
    S: <closed>
  `);
  const greetingCaps = /\[CAPABILITY ([^\]]*)\]/.exec(serverLines[0]!)![1]!.split(' ');
  const capCaps = serverLines[1]!.split(' ').slice(2);
  t.deepEqual(capCaps, greetingCaps);
  for (const cap of ['IMAP4rev1', 'XIMAPPROXY', 'AUTH=PLAIN', 'AUTH=LOGIN', 'SASL-IR', 'LITERAL+', 'ID']) {
    t.true(capCaps.includes(cap), `${cap} in ${serverLines[1]}`);
  }
  for (const cap of ['IDLE', 'STARTTLS', 'LOGINDISABLED']) t.false(capCaps.includes(cap), `${cap} in ${serverLines[1]}`);
  t.is(capCaps.filter((c) => c === 'SASL-IR').length, 1);
  t.is(await dovecot.loginCount('user13'), 0);
});

test('pre-login IDs are replayed before LOGIN on the new server connection (Dovecot logs the first)', async (t) => {
  await runTranscript(proxy.port, `
    ${GREETING}
    C: i1 ID ("name" "webmail-one" "version" "1.0")
    S: i1 OK Completed
    C: i2 ID
    S: i2 BAD Invalid ID arguments
    C: i3 ID ("name" "webmail-two")
    S: i3 OK Completed
    C: a1 LOGIN user14 pass14
    S: a1 OK User logged in
    C: a2 LOGOUT
    S: * BYE LOGOUT received
    S: a2 OK Completed
  `);
  t.is(await dovecot.loginCount('user14'), 1);
  // Dovecot logs only the first ID of a connection; the fake server test below sees all of them.
  const log = readFileSync(dovecot.logFile, 'utf8').split('\n');
  const login = log.find((l) => /imap-login: Info: Login: user=<user14>,/.test(l));
  t.truthy(login);
  const session = /session=<([^>]+)>/.exec(login!)![1]!;
  const ids = log.filter((l) => l.includes(`session=<${session}>`) && l.includes('ID sent:'));
  t.is(ids.length, 1, log.join('\n'));
  t.regex(ids[0]!, /imap-login: Info: ID sent: name=webmail-one, version=1\.0: user=<>/);
  t.true(log.indexOf(ids[0]!) < log.indexOf(login!));
});

// --- what the server receives (a scripted server, to see the exact bytes) -------------

/**
 * A minimal scripted IMAP server (fake-server.ts): a greeting with the given
 * capabilities, `+ OK` for synchronising literals, OK to every command (LOGIN
 * included), BYE to LOGOUT. `sessions` has the commands of each connection, tags
 * replaced by "T", literals inline ({n}\r\n<bytes>).
 */
async function startRecordingServer(caps: string): Promise<FakeServer & { sessions: string[][] }> {
  const sessions: string[][] = [];
  const fake = await startFakeServer(async (c) => {
    const commands: string[] = [];
    sessions.push(commands);
    c.send(`* OK [CAPABILITY IMAP4rev1 ${caps}] fake ready\r\n`);
    for (;;) {
      const text = await c.readCommand(60_000);
      const [, tag = '*', name = ''] = /^(\S+) ?(\S*)/.exec(text) ?? [];
      commands.push(text.replace(/^\S+/, 'T'));
      switch (name.toUpperCase()) {
        case 'LOGOUT':
          c.socket.end(`* BYE bye\r\n${tag} OK done\r\n`);
          return;
        case 'CAPABILITY':
          c.send(`* CAPABILITY IMAP4rev1 ${caps}\r\n${tag} OK done\r\n`);
          break;
        case 'ID':
          c.send(`* ID NIL\r\n${tag} OK done\r\n`);
          break;
        default:
          c.send(`${tag} OK done\r\n`);
      }
    }
  });
  return Object.assign(fake, { sessions });
}

test('the server gets every pre-login ID in order, then LOGIN with the credentials re-encoded', async (t) => {
  for (const caps of ['ID LITERAL+', 'ID']) {
    const fake = await startRecordingServer(caps);
    const own = await startProxy({ serverPort: fake.port });
    try {
      const pass = Buffer.from('pässwörd');
      const c = await RawClient.connect(own.port);
      t.regex(c.greeting, /^\* OK \[CAPABILITY IMAP4rev1 ID (LITERAL\+ )?SASL-IR AUTH=PLAIN AUTH=LOGIN XIMAPPROXY\] fake ready$/);
      t.deepEqual(await c.command('i1 ID ("name" "webmail-one" "version" "1.0")'), ['i1 OK Completed']);
      t.deepEqual(await c.command('i2 ID NIL'), ['i2 OK Completed']);
      t.deepEqual(await c.command('i3 ID ("name" "webmail-two")'), ['i3 OK Completed']);
      // user "a b" (quoted, with a space), password with quote and backslash
      t.deepEqual(await c.command('a1 LOGIN "a b" "p a\\"s\\\\s"'), ['a1 OK User logged in']);
      t.deepEqual(await c.command('a2 LOGOUT'), ['* BYE LOGOUT received', 'a2 OK Completed']);
      await c.close();
      const d = await RawClient.connect(own.port);
      await d.sendRaw(Buffer.concat([Buffer.from('b1 LOGIN {8+}\r\nutf8user {10+}\r\n'), pass, Buffer.from('\r\n')]));
      t.deepEqual(await d.readUntilTagged('b1'), ['b1 OK User logged in']);
      t.deepEqual(await d.command('b2 LOGOUT'), ['* BYE LOGOUT received', 'b2 OK Completed']);
      await d.close();
      await waitForLoginEvents(own, 'utf8user', 1);
      const logins = fake.sessions.filter((cmds) => cmds.some((c) => c.startsWith('T LOGIN')));
      t.is(logins.length, 2);
      t.deepEqual(logins[0], [
        'T ID ("name" "webmail-one" "version" "1.0")',
        'T ID NIL',
        'T ID ("name" "webmail-two")',
        'T LOGIN "a b" "p a\\"s\\\\s"',
        // its LOGIN reply named no capabilities: asked once, for the client's OK (issue 18)
        'T CAPABILITY',
      ]);
      // 8-bit bytes cannot be quoted: a literal, non-synchronising when the server has LITERAL+
      const plus = caps.includes('LITERAL+') ? '+' : '';
      t.deepEqual(logins[1], [`T LOGIN "utf8user" {10${plus}}\r\npässwörd`, 'T CAPABILITY']);
    } finally {
      await own.stop();
      await fake.close();
    }
  }
});
