// Tests of the test helpers themselves: a real Dovecot, the C imapproxy in front of
// it, the raw transcript client and ImapFlow.
import test from 'ava';
import { existsSync } from 'node:fs';
import { startCImapproxy } from './helpers/c-imapproxy.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { connectImapClient } from './helpers/imapflow.js';
import { seedMailboxes } from './helpers/maildir-seed.js';
import { descendants, isAlive } from './helpers/process-tree.js';
import { RawClient, runTranscript, TranscriptMismatchError } from './helpers/transcript.js';

let dovecot: Dovecot;

test.before(async () => {
  dovecot = await startDovecot({ users: 5 });
});

test.after.always(async () => {
  await dovecot?.stop();
});

test.serial('loginCount(user) goes up by one per LOGIN', async (t) => {
  const before = await dovecot.loginCount('user1');
  for (let i = 1; i <= 2; i++) {
    await runTranscript(dovecot.port, `
      S~ ^\\* OK \\[CAPABILITY IMAP4rev1 .*\\] Dovecot .*ready\\.$
      C: a1 LOGIN user1 pass1
      S~ ^a1 OK \\[CAPABILITY .*\\] Logged in$
      C: a2 LOGOUT
      S: * BYE Logging out
      S~ ^a2 OK Logout completed
      S: <closed>
    `);
    t.is(await dovecot.loginCount('user1'), before + i);
  }
  // a failed login is not counted
  await runTranscript(dovecot.port, `
    S~ ^\\* OK
    C: a1 LOGIN user1 wrong
    S~ ^a1 NO \\[AUTHENTICATIONFAILED\\]
  `);
  t.is(await dovecot.loginCount('user1'), before + 2);
});

test('ImapFlow logs in directly, sees 21 messages in INBOX and the ~3 MiB one', async (t) => {
  const client = await connectImapClient({ port: dovecot.port, user: 'user1', pass: 'pass1' });
  try {
    const mailbox = await client.mailboxOpen('INBOX');
    t.is(mailbox.exists, 21);
    const big = await client.fetchOne('21', { size: true, envelope: true });
    t.truthy(big);
    t.true(big && big.size! > 2_000_000, `size ${big && big.size}`);
    t.is(big && big.size, seedMailboxes()[0]!.messages[20]!.size);
    const archive = await client.status('Archive', { messages: true });
    t.is(archive && archive.messages, 3);
  } finally {
    await client.logout();
  }
  t.deepEqual(client.errors, []);
});

test('raw LOGIN of the user whose password has a space, a quote and a backslash', async (t) => {
  const spacey = dovecot.users.find((u) => u.user === 'spacey')!;
  t.is(spacey.pass, 'p a"s\\s');
  const { serverLines } = await runTranscript(dovecot.port, `
    S~ ^\\* OK
    C: a1 LOGIN spacey "p a\\"s\\\\s"
    S~ ^a1 OK
    C: a2 LOGOUT
    S: * BYE Logging out
    S~ ^a2 OK
  `);
  t.is(serverLines.length, 4);
});

test('raw LOGIN of the UTF-8 password as a literal', async (t) => {
  const pass = Buffer.from('pässwörd', 'utf8');
  const c = await RawClient.connect(dovecot.port);
  try {
    await c.send(`a1 LOGIN utf8user {${pass.length}}`);
    t.regex(await c.readLine(), /^\+ /);
    await c.sendRaw(Buffer.concat([pass, Buffer.from('\r\n')]));
    const lines = await c.readUntilTagged('a1');
    t.regex(lines.at(-1)!, /^a1 OK /);
  } finally {
    await c.close();
  }
});

test('readLine() joins {n} literals into one logical line', async (t) => {
  const c = await RawClient.connect(dovecot.port);
  try {
    await c.command('a1 LOGIN user2 pass2');
    await c.command('a2 EXAMINE INBOX');
    // UID 2's subject contains quotes: Dovecot sends it as a literal inside ENVELOPE
    const lines = await c.command('a3 FETCH 2 (ENVELOPE)');
    t.is(lines.length, 2);
    t.regex(lines[0]!, /^\* 2 FETCH \(ENVELOPE \(".*" \{20\}\r\nQuote "test" message \(\(/);
    t.true(lines[0]!.endsWith('"<inbox-2@imapproxy-test.example.test>"))'));
    const body = await c.command('a4 FETCH 21 (BODY.PEEK[])');
    const size = seedMailboxes()[0]!.messages[20]!.size;
    t.true(body[0]!.startsWith(`* 21 FETCH (BODY[] {${size}}\r\n`));
    t.is(body[0]!.length, `* 21 FETCH (BODY[] {${size}}\r\n`.length + size + 1);
    t.regex(body[1]!, /^a4 OK /);
    await c.command('a5 LOGOUT');
    t.deepEqual(await c.expectClosed(), []);
  } finally {
    await c.close();
  }
});

test('a read that times out names what it waited for and the transcript', async (t) => {
  const c = await RawClient.connect(dovecot.port);
  try {
    await c.send('a1 NOOP');
    const err = await t.throwsAsync(c.readUntilTagged('zz9', 300));
    t.regex(err!.message, /timed out after 300 ms waiting for the tagged response "zz9"/);
    t.regex(err!.message, /C: a1 NOOP\n {2}S: a1 OK NOOP completed/);
  } finally {
    await c.close();
  }
});

test('runTranscript reports the step that did not match', async (t) => {
  const err = await t.throwsAsync(runTranscript(dovecot.port, `
    S~ ^\\* OK
    C: a1 NOOP
    S: a1 OK something else
  `), { instanceOf: TranscriptMismatchError });
  t.regex(err!.message, /step 3 "S: a1 OK something else": got "a1 OK NOOP completed/);
});

test('implicit TLS port greets over TLS, STARTTLS works on the plain port', async (t) => {
  const tls = await RawClient.connect(dovecot.tlsPort, { tls: true });
  t.regex(tls.greeting, /^\* OK \[CAPABILITY IMAP4rev1 .*\] Dovecot/);
  t.notRegex(tls.greeting, /STARTTLS/);
  await tls.close();

  const plain = await RawClient.connect(dovecot.port);
  t.regex(plain.greeting, /STARTTLS/);
  t.regex((await plain.command('s1 STARTTLS')).at(-1)!, /^s1 OK/);
  await plain.startTls();
  const caps = await plain.command('s2 CAPABILITY');
  t.regex(caps[0]!, /^\* CAPABILITY .*AUTH=PLAIN/);
  await plain.close();
  t.true(existsSync(dovecot.certFile));
});

test('the C imapproxy reuses its server connection: second LOGIN gets XPROXYREUSE, Dovecot sees one LOGIN', async (t) => {
  const proxy = await startCImapproxy({ serverPort: dovecot.port });
  try {
    const before = await dovecot.loginCount('user3');
    await runTranscript(proxy.port, `
      S~ ^\\* OK \\[CAPABILITY .*XIMAPPROXY\\]
      C: a1 LOGIN user3 pass3
      S: a1 OK User logged in
      C: a2 SELECT INBOX
      S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
      S~ ^\\* OK \\[PERMANENTFLAGS
      S: * 21 EXISTS
      S~ ^\\* \\d+ RECENT$
      S~ ^\\* OK \\[UNSEEN 1\\]
      S~ ^\\* OK \\[UIDVALIDITY \\d+\\]
      S: * OK [UIDNEXT 22] Predicted next UID
      S~ ^a2 OK \\[READ-WRITE\\]
      C: a3 LOGOUT
      S~ ^\\* OK \\[CLOSED\\]
      S: * BYE LOGOUT received
      S: a3 OK Completed
      S: <closed>
    `);
    await runTranscript(proxy.port, `
      S~ ^\\* OK
      C: b1 LOGIN user3 pass3
      S: * OK [XPROXYREUSE] IMAP connection reused by imapproxy
      S: b1 OK User logged in
      C: b2 LOGOUT
      S: * BYE LOGOUT received
      S: b2 OK Completed
    `);
    t.is(await dovecot.loginCount('user3'), before + 1);
    if (proxy.logging) {
      const log = await proxy.logLines();
      t.true(log.some((l) => /in\.imapproxyd\[\d+\]: LOGIN: 'user3' \(127\.0\.0\.1:\d+\) on new sd/.test(l)), log.join('\n'));
      t.true(log.some((l) => /in\.imapproxyd\[\d+\]: LOGIN: 'user3' \(127\.0\.0\.1:\d+\) on existing sd/.test(l)), log.join('\n'));
    } else {
      t.log('no private /dev/log here: C imapproxy runs without a log');
    }
    t.true(existsSync(proxy.statFile));
  } finally {
    await proxy.stop();
  }
  t.false(isAlive(proxy.pid));
  t.false(existsSync(proxy.dir));
});

test('stop() leaves no process of that Dovecot; restart() keeps the ports; kill() drops sessions', async (t) => {
  const own = await startDovecot({ users: 1 });
  const ports = [own.port, own.tlsPort];
  const session = await RawClient.connect(own.port);
  await session.command('a1 LOGIN user1 pass1');
  const firstPid = own.pid;
  t.true(isAlive(firstPid));
  t.true(descendants(firstPid).length >= 3); // log, config, auth, imap-login, imap, ...

  await own.kill();
  t.false(isAlive(firstPid));
  await session.expectClosed();

  await own.restart();
  t.not(own.pid, firstPid);
  t.deepEqual([own.port, own.tlsPort], ports);
  const again = await RawClient.connect(own.port);
  await again.command('b1 LOGIN user1 pass1');
  const tree = [own.pid, ...descendants(own.pid)];
  t.true(tree.length >= 4);

  await own.stop();
  t.deepEqual(tree.filter(isAlive), []);
  t.false(existsSync(own.dir));
  await again.expectClosed();
  await own.stop(); // idempotent
});
