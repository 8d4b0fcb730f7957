// The relay half of issue 3 against a real Dovecot: after login the proxy
// forwards both ways, and a server connection handed to a later session must
// behave exactly like a fresh login. No byte, selected mailbox, IDLE or other
// state of an earlier session may reach a later one (SPEC §4.11, §11 B4, S3).
//
// Most tests are written as "session A (a fresh login of one user) does X and
// ends somehow; session B logs in as the same user and sees only replies to its
// own commands". Every test uses its own Dovecot user, so the pool entries of
// concurrent tests never mix, and the proxy's log says what became of A's
// server connection: cached (`LOGOUT: 'user' from server sd [N]`) or closed
// (`Invalidating server sd [N]...`). B must then be reused exactly when A's
// connection was cached.
import test, { type ExecutionContext } from 'ava';
import net from 'node:net';
import zlib from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { connectImapClient } from './helpers/imapflow.js';
import { seedMailboxes } from './helpers/maildir-seed.js';
import { LOOPBACK } from './helpers/ports.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { RawClient } from './helpers/transcript.js';
import { startTap, type Tap } from './helpers/tap.js';

const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';
const MAX_LINE = 2048;
const BIG_UID = 21;
const BIG_SIZE = seedMailboxes()[0]!.messages[BIG_UID - 1]!.size;

let dovecot: Dovecot;
let tap: Tap;
let proxy: Proxy;

test.before(async () => {
  dovecot = await startDovecot({ users: 24 }); // one or two per test
  tap = await startTap(dovecot.port);
  proxy = await startProxy({ serverPort: tap.port, extraConf: `max_line_length ${MAX_LINE}` });
});

test.after.always(async () => {
  await proxy?.stop();
  await tap?.close();
  await dovecot?.stop();
});

/** serverSaw(user) once it equals `expected` (bytes may still be on their way), for up to 3 s. */
async function assertServerSaw(t: ExecutionContext, user: string, expected: string[][]): Promise<void> {
  for (let i = 0; i < 150 && JSON.stringify(tap.serverSaw(user)) !== JSON.stringify(expected); i++) await sleep(20);
  t.deepEqual(tap.serverSaw(user), expected, `what the server received for ${user}`);
}

// --- helpers -----------------------------------------------------------------

const pass = (user: string): string => user.replace(/^user/, 'pass');

/** Dovecot appends its command timing to tagged replies: "(0.001 + 0.000 secs)". */
function norm(line: string): string {
  return line.replace(/ \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)/, '');
}

/** Everything up to the tagged reply of `line`'s tag, normalised. */
async function cmd(c: RawClient, line: string): Promise<string[]> {
  return (await c.command(line)).map(norm);
}

/** The server sd of the last LOGIN of `user` in the proxy's log. */
function lastSd(user: string): number {
  const re = new RegExp(`LOGIN: '${user}' \\(.*\\) on (?:new|existing) sd \\[(\\d+)\\]`);
  for (const line of proxy.log().reverse()) {
    const m = re.exec(line);
    if (m) return Number(m[1]);
  }
  throw new Error(`no LOGIN of ${user} in the proxy log:\n${proxy.log().join('\n')}`);
}

/**
 * Waits for the proxy's verdict on server sd `sd` in log lines after index
 * `from`: cached after the session, or closed.
 */
async function verdict(user: string, sd: number, from: number, timeoutMs = 15_000): Promise<'cached' | 'closed'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const line of proxy.log().slice(from)) {
      if (line.includes(`LOGOUT: '${user}' from server sd [${sd}]`)) return 'cached';
      if (line.includes(`Invalidating server sd [${sd}]`) || line.includes(`Expiring server sd [${sd}]`)) return 'closed';
    }
    if (Date.now() > deadline) throw new Error(`no verdict on server sd [${sd}] within ${timeoutMs} ms:\n${proxy.log().join('\n')}`);
    await sleep(20);
  }
}

interface Login {
  c: RawClient;
  reused: boolean;
  sd: number;
}

/** A client logged in as `user` through the proxy; asserts the exact login reply. */
async function login(t: ExecutionContext, user: string, tag = 'a1'): Promise<Login> {
  const c = await RawClient.connect(proxy.port);
  const lines = await c.command(`${tag} LOGIN ${user} ${pass(user)}`);
  const reused = lines[0] === REUSE;
  t.deepEqual(lines, reused ? [REUSE, `${tag} OK User logged in`] : [`${tag} OK User logged in`], c.describe());
  return { c, reused, sd: lastSd(user) };
}

interface HandOver {
  /** Session B, logged in with tag b1. */
  b: RawClient;
  /** What the proxy did with A's server connection. */
  outcome: 'cached' | 'closed';
  /** Server logins of the user before A logged in. */
  loginsBefore: number;
}

/**
 * Session A logs in as `user` (a new server connection), `act` runs it and ends
 * it (LOGOUT, or the socket destroyed); once the proxy decided about A's server
 * connection, session B logs in as the same user. B is reused exactly when A's
 * connection was cached, and then gets that same connection.
 */
async function handOver(t: ExecutionContext, user: string, act: (a: Login, logFrom: () => void) => Promise<void>): Promise<HandOver> {
  const loginsBefore = await dovecot.loginCount(user);
  const a = await login(t, user);
  t.false(a.reused, 'session A must start on a new server connection');
  let from = proxy.log().length;
  await act(a, () => {
    from = proxy.log().length;
  });
  const outcome = await verdict(user, a.sd, from);
  const b = await login(t, user, 'b1');
  t.is(b.reused, outcome === 'cached', `B reused=${b.reused} but A's connection was ${outcome}`);
  if (b.reused) t.is(b.sd, a.sd);
  t.is(await dovecot.loginCount(user), loginsBefore + (b.reused ? 1 : 2));
  return { b: b.c, outcome, loginsBefore };
}

/**
 * B sees only replies to its own commands: two NOOPs a moment apart (anything
 * still in flight for A would show up before or with the second), each answered
 * by exactly its tagged OK; an unselected session gets no untagged data here.
 * Then B is still unselected, and LOGOUT ends it cleanly.
 */
async function assertOnlyOwnReplies(t: ExecutionContext, b: RawClient): Promise<void> {
  const first = await cmd(b, 'b2 NOOP');
  await sleep(100);
  const second = await cmd(b, 'b3 NOOP');
  const all = [...first, ...second];
  for (const line of all) {
    t.false(/^a\d/.test(line), `a line of session A reached B: ${line}`);
    t.false(/FETCH|BODY\[|\* SEARCH|EXISTS|idling|Idle/i.test(line), `server data of session A reached B: ${line.slice(0, 200)}`);
  }
  t.deepEqual(first, ['b2 OK NOOP completed.'], b.describe());
  t.deepEqual(second, ['b3 OK NOOP completed.'], b.describe());
  t.deepEqual(await cmd(b, 'b4 FETCH 1 FLAGS'), ['b4 BAD No mailbox selected.'], 'B must start with no mailbox selected');
  await logout(t, b, 'b9');
}

/** What the server receives from assertOnlyOwnReplies (its LOGOUT is the proxy's to answer). */
const B_LINES = ['b2 NOOP', 'b3 NOOP', 'b4 FETCH 1 FLAGS'];

async function logout(t: ExecutionContext, c: RawClient, tag: string): Promise<void> {
  await c.send(`${tag} LOGOUT`);
  t.deepEqual(await c.expectClosed(), ['* BYE LOGOUT received', `${tag} OK Completed`], c.describe());
}

/**
 * A bare socket for session A where RawClient would get in the way: it can stop
 * reading (so the proxy meets backpressure) and be destroyed mid-response.
 */
class Bare {
  data = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (b: Buffer) => {
      this.data = Buffer.concat([this.data, b]);
      this.wake?.();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<Bare> {
    const socket = net.connect({ host: LOOPBACK, port });
    const bare = new Bare(socket);
    await bare.waitFor('\r\n');
    return bare;
  }

  text(): string {
    return this.data.toString('latin1');
  }

  async waitFor(s: string | RegExp, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (typeof s === 'string' ? !this.text().includes(s) : !s.test(this.text())) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Bare: no ${String(s)} within ${timeoutMs} ms; got ${JSON.stringify(this.text().slice(-300))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Resolves once the bytes are handed to the kernel. */
  write(s: string): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(s, (err) => (err ? reject(err) : resolve())));
  }

  /** Gone without LOGOUT. */
  destroy(): void {
    this.socket.destroy();
  }
}

async function bareLogin(t: ExecutionContext, user: string): Promise<{ a: Bare; sd: number }> {
  const a = await Bare.connect(proxy.port);
  await a.write(`a1 LOGIN ${user} ${pass(user)}\r\n`);
  await a.waitFor(/\na1 [^\r]*\r\n/);
  t.regex(a.text(), /\r\na1 OK \[CAPABILITY [^\]]*\] User logged in\r\n$/);
  t.notRegex(a.text(), /XPROXYREUSE/, 'session A must start on a new server connection');
  return { a, sd: lastSd(user) };
}

// --- LOGOUT -------------------------------------------------------------------

test('LOGOUT with a mailbox selected: the next session of the user is unselected', async (t) => {
  const { b, outcome } = await handOver(t, 'user1', async ({ c }) => {
    const sel = await cmd(c, 'a2 SELECT INBOX');
    t.true(sel.includes('* 21 EXISTS'), c.describe());
    t.is(sel.at(-1), 'a2 OK [READ-WRITE] Select completed.');
    t.deepEqual(await cmd(c, 'a3 FETCH 1 FLAGS'), ['* 1 FETCH (FLAGS (\\Recent))', 'a3 OK Fetch completed.']);
    await logout(t, c, 'a4');
  });
  t.is(outcome, 'cached');
  // Dovecot's answers to commands that need a selected mailbox: B is in the
  // authenticated state, as after a fresh LOGIN.
  t.deepEqual(await cmd(b, 'b2 FETCH 1 FLAGS'), ['b2 BAD No mailbox selected.']);
  t.deepEqual(await cmd(b, 'b3 CLOSE'), ['b3 BAD No mailbox selected.']);
  t.deepEqual(await cmd(b, 'b4 UNSELECT'), ['b4 BAD No mailbox selected.']);
  t.deepEqual(await cmd(b, 'b5 SEARCH ALL'), ['b5 BAD No mailbox selected.']);
  // and it can select a mailbox of its own
  const ex = await cmd(b, 'b6 EXAMINE Archive');
  t.true(ex.includes('* 3 EXISTS'), b.describe());
  t.is(ex.at(-1), 'b6 OK [READ-ONLY] Examine completed.');
  await logout(t, b, 'b7');
  // One server connection; the clients' LOGOUTs never reach it. A's INBOX
  // stays selected in the pool and the proxy's UNSELECT goes out in front of
  // B's first command, in the same write; B's Archive stays selected the same
  // way for the next session.
  await assertServerSaw(t, 'user1', [[
    'a2 SELECT INBOX', 'a3 FETCH 1 FLAGS', 'P UNSELECT',
    'b2 FETCH 1 FLAGS', 'b3 CLOSE', 'b4 UNSELECT', 'b5 SEARCH ALL', 'b6 EXAMINE Archive',
  ]]);
});

test('INBOX left selected in the pool and mail delivered meanwhile: the next session hears nothing of it and sees the new state', async (t) => {
  const user = 'user23';
  const a = await login(t, user);
  t.false(a.reused);
  const from = proxy.log().length;
  t.is((await cmd(a.c, 'a2 SELECT INBOX')).at(-1), 'a2 OK [READ-WRITE] Select completed.');
  await logout(t, a.c, 'a3');
  t.is(await verdict(user, a.sd, from), 'cached');
  // Another device of the user delivers a message straight to Dovecot while
  // the connection sits in the pool with INBOX still selected.
  const other = await RawClient.connect(dovecot.port);
  t.regex((await other.command(`o1 LOGIN ${user} ${pass(user)}`)).at(-1)!, /^o1 OK /);
  const msg = 'From: other@example.test\r\nSubject: while cached\r\n\r\nhello\r\n';
  await other.send(`o2 APPEND INBOX {${msg.length}+}`);
  await other.sendRaw(`${msg}\r\n`);
  t.regex((await other.readUntilTagged('o2')).at(-1)!, /^o2 OK /);
  await other.close();

  const b = await login(t, user, 'b1');
  t.true(b.reused);
  t.is(b.sd, a.sd);
  // Dovecot would report the new message (EXISTS, RECENT) to a session that
  // has INBOX selected: B has nothing selected, as after a fresh login.
  t.deepEqual(await cmd(b.c, 'b2 NOOP'), ['b2 OK NOOP completed.']);
  t.deepEqual(await cmd(b.c, 'b3 LIST "" INBOX'), ['* LIST (\\HasNoChildren) "/" INBOX', 'b3 OK List completed.']);
  t.deepEqual(await cmd(b.c, 'b4 STATUS INBOX (MESSAGES UIDNEXT)'), ['* STATUS INBOX (MESSAGES 22 UIDNEXT 23)', 'b4 OK Status completed.']);
  t.deepEqual(await cmd(b.c, 'b5 FETCH 1 (UID)'), ['b5 BAD No mailbox selected.']);
  const sel = await cmd(b.c, 'b6 SELECT INBOX');
  t.is(sel[0], '* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)', 'no [CLOSED]: nothing was selected');
  t.true(sel.includes('* 22 EXISTS'), b.c.describe());
  t.is(sel.at(-1), 'b6 OK [READ-WRITE] Select completed.');
  await logout(t, b.c, 'b7');
  // The UNSELECT of A's INBOX went out in front of B's first command.
  await assertServerSaw(t, user, [[
    'a2 SELECT INBOX', 'P UNSELECT', 'b2 NOOP', 'b3 LIST "" INBOX', 'b4 STATUS INBOX (MESSAGES UIDNEXT)', 'b5 FETCH 1 (UID)', 'b6 SELECT INBOX',
  ]]);
});

test('a session that only logs in and out on a connection with a mailbox left selected: the one after it still starts unselected', async (t) => {
  const user = 'user24';
  const { b, outcome } = await handOver(t, user, async ({ c }) => {
    t.is((await cmd(c, 'a2 EXAMINE Archive')).at(-1), 'a2 OK [READ-ONLY] Examine completed.');
    await logout(t, c, 'a3');
  });
  t.is(outcome, 'cached');
  await logout(t, b, 'b2');
  const c3 = await login(t, user, 'c1');
  t.true(c3.reused);
  t.deepEqual(await cmd(c3.c, 'c2 FETCH 1 (UID)'), ['c2 BAD No mailbox selected.']);
  await logout(t, c3.c, 'c3');
  await assertServerSaw(t, user, [['a2 EXAMINE Archive', 'P UNSELECT', 'c2 FETCH 1 (UID)']]);
});

test('pipelined LOGOUT: the reply to the command before it, then BYE, then OK, in that order', async (t) => {
  const { b, outcome } = await handOver(t, 'user6', async ({ c }) => {
    await c.sendRaw('a2 NOOP\r\na3 LOGOUT\r\n');
    t.deepEqual((await c.expectClosed()).map(norm), ['a2 OK NOOP completed.', '* BYE LOGOUT received', 'a3 OK Completed']);
  });
  t.is(outcome, 'cached');
  await assertOnlyOwnReplies(t, b);
  await assertServerSaw(t, 'user6', [['a2 NOOP', ...B_LINES]]);
});

test('pipelined SELECT + SEARCH + LOGOUT: every reply reaches A before BYE, B starts unselected', async (t) => {
  const { b, outcome } = await handOver(t, 'user12', async ({ c }) => {
    await c.sendRaw('a2 SELECT INBOX\r\na3 SEARCH ALL\r\na4 LOGOUT\r\n');
    const lines = (await c.expectClosed()).map(norm);
    t.is(lines.indexOf('a2 OK [READ-WRITE] Select completed.'), lines.length - 5, c.describe());
    t.deepEqual(lines.slice(-4), [
      `* SEARCH ${Array.from({ length: 21 }, (_, i) => i + 1).join(' ')}`,
      'a3 OK Search completed.',
      '* BYE LOGOUT received',
      'a4 OK Completed',
    ]);
  });
  t.is(outcome, 'cached');
  await assertOnlyOwnReplies(t, b);
  await assertServerSaw(t, 'user12', [['a2 SELECT INBOX', 'a3 SEARCH ALL', 'P UNSELECT', ...B_LINES]]);
});

// --- client gone without LOGOUT ---------------------------------------------------

test('client dropped in the middle of a multi-MB FETCH: the next session sees only its own replies', async (t) => {
  const user = 'user2';
  const loginsBefore = await dovecot.loginCount(user);
  const { a, sd } = await bareLogin(t, user);
  await a.write('a2 SELECT INBOX\r\n');
  await a.waitFor('\r\na2 OK');
  await a.write(`a3 UID FETCH ${BIG_UID} BODY[]\r\n`);
  await a.waitFor('BODY[]');
  t.true(a.text().includes(`\r\n* ${BIG_UID} FETCH (UID ${BIG_UID} FLAGS (\\Seen \\Recent) BODY[] {${BIG_SIZE}}\r\n`), a.text().slice(0, 1000));
  const from = proxy.log().length;
  const received = a.data.length;
  a.destroy();
  t.true(received < BIG_SIZE, 'A is dropped before the whole message arrived');
  // Cached after a successful resync, or closed: both are safe. If the
  // connection is reused, B must not see a byte of the FETCH.
  const outcome = await verdict(user, sd, from);
  const b = await login(t, user, 'b1');
  t.is(b.reused, outcome === 'cached');
  t.is(await dovecot.loginCount(user), loginsBefore + (b.reused ? 1 : 2));
  t.log(`A's server connection was ${outcome}`);
  await assertOnlyOwnReplies(t, b.c);
});

test('client that stopped reading drops during several multi-MB FETCHes: resync succeeds, the next session sees only its own replies', async (t) => {
  // ~21 MB of FETCH data: far more than the socket buffers between Dovecot, the
  // proxy and the client hold, so the proxy is held up by backpressure toward
  // the client when the client vanishes. It must go on reading the server to
  // resynchronise; the server answers, so the connection is clean and cached.
  const user = 'user13';
  const loginsBefore = await dovecot.loginCount(user);
  const { a, sd } = await bareLogin(t, user);
  await a.write('a2 SELECT INBOX\r\n');
  await a.waitFor('\r\na2 OK');
  const tags = [3, 4, 5, 6, 7, 8, 9];
  await a.write(tags.map((n) => `a${n} UID FETCH ${BIG_UID} BODY[]\r\n`).join(''));
  await a.waitFor('BODY[]');
  a.socket.pause();
  await sleep(200);
  t.true(a.data.length < BIG_SIZE * 2, `the paused client received ${a.data.length} bytes`);
  const from = proxy.log().length;
  a.destroy();
  t.is(await verdict(user, sd, from), 'cached', 'the proxy must finish reading the FETCHes and cache the connection');
  const b = await login(t, user, 'b1');
  t.true(b.reused);
  t.is(b.sd, sd);
  t.is(await dovecot.loginCount(user), loginsBefore + 1);
  await assertOnlyOwnReplies(t, b.c);
  await assertServerSaw(t, 'user13', [['a2 SELECT INBOX', ...tags.map((n) => `a${n} UID FETCH ${BIG_UID} BODY[]`), 'P UNSELECT', ...B_LINES]]);
});

test('client dropped in IDLE: the proxy ends IDLE, the next session sees no stray "a2 OK"', async (t) => {
  const { b, outcome } = await handOver(t, 'user3', async ({ c }, logFrom) => {
    t.true((await cmd(c, 'a2 SELECT INBOX')).includes('a2 OK [READ-WRITE] Select completed.'));
    await c.send('a3 IDLE');
    t.is(await c.readLine(), '+ idling');
    logFrom();
    await c.close();
  });
  // DONE, then UNSELECT: a clean connection, cached
  t.is(outcome, 'cached');
  await assertOnlyOwnReplies(t, b);
  await assertServerSaw(t, 'user3', [['a2 SELECT INBOX', 'a3 IDLE', 'DONE', 'P UNSELECT', ...B_LINES]]);
});

test('IDLE through the proxy: another client APPENDs, the IDLE client gets EXISTS; DONE ends it', async (t) => {
  const user = 'user4';
  const { c } = await login(t, user);
  const sel = await cmd(c, 'a2 SELECT INBOX');
  t.true(sel.includes('* 21 EXISTS'), c.describe());
  await c.send('a3 IDLE');
  t.is(await c.readLine(), '+ idling');
  // a second session of the same user, through the proxy as well (its own
  // server connection: the first one is in use)
  const other = await connectImapClient({ port: proxy.port, user, pass: pass(user) });
  try {
    const res = await other.append('INBOX', 'From: a@example.test\r\nSubject: idle test\r\n\r\nhello\r\n');
    t.truthy(res);
  } finally {
    await other.logout();
  }
  t.deepEqual(other.errors, []);
  const pushed: string[] = [];
  for (;;) {
    const line = await c.readLine();
    pushed.push(line);
    if (line === '* 22 EXISTS') break;
    t.regex(line, /^\* \d+ RECENT$/, c.describe());
  }
  await c.send('DONE');
  const done = (await c.readUntilTagged('a3')).map(norm);
  t.is(done.at(-1), 'a3 OK Idle completed.', c.describe());
  for (const line of done.slice(0, -1)) t.regex(line, /^\* \d+ (RECENT|EXISTS)$/);
  // the session goes on normally after IDLE
  t.deepEqual(await cmd(c, 'a4 UID SEARCH SUBJECT "idle test"'), ['* SEARCH 22', 'a4 OK Search completed.']);
  await logout(t, c, 'a5');
});

test('pipelined commands, then the client drops: the next session sees none of their replies', async (t) => {
  const { b, outcome } = await handOver(t, 'user5', async ({ c }, logFrom) => {
    await c.sendRaw('a2 SELECT INBOX\r\na3 SEARCH ALL\r\na4 FETCH 1:* FLAGS\r\n');
    logFrom();
    await c.close();
  });
  // the proxy saw the three commands: it waits for their replies and undoes the SELECT
  t.is(outcome, 'cached');
  await assertOnlyOwnReplies(t, b);
  await assertServerSaw(t, 'user5', [['a2 SELECT INBOX', 'a3 SEARCH ALL', 'a4 FETCH 1:* FLAGS', 'P UNSELECT', ...B_LINES]]);
});

test('client dropped in the middle of a command line: the connection is not cached', async (t) => {
  const { b, outcome } = await handOver(t, 'user14', async ({ c }, logFrom) => {
    await c.sendRaw('a2 SEARCH SUBJECT "half a line');
    await sleep(50);
    logFrom();
    await c.close();
  });
  // the server holds a partial command: only closing is safe
  t.is(outcome, 'closed');
  await assertOnlyOwnReplies(t, b);
});

// --- client literals after login ----------------------------------------------------

test('APPEND with a synchronising and a non-synchronising literal; a refused literal is not sent', async (t) => {
  const user = 'user7';
  const { c } = await login(t, user);
  // The message contains lines that look like commands, LOGOUT among them: they
  // are literal data, never commands (SPEC §11 B11).
  const msg1 = 'From: a@example.test\r\nSubject: sync literal\r\n\r\nx LOGOUT\r\na9 NOOP\r\n';
  await c.send(`a2 APPEND INBOX {${msg1.length}}`);
  t.is(await c.readLine(), '+ OK', 'the server\'s continuation is relayed');
  await c.send(msg1);
  t.regex(norm(await c.readLine()), /^a2 OK \[APPENDUID \d+ 22\] Append completed\.$/);

  const msg2 = 'From: b@example.test\r\nSubject: nonsync literal\r\n\r\nbody {5}\r\n';
  await c.sendRaw(`a3 APPEND INBOX (\\Seen) {${msg2.length}+}\r\n${msg2}\r\n`);
  t.regex(norm(await c.readLine()), /^a3 OK \[APPENDUID \d+ 23\] Append completed\.$/);

  // The server refuses before its "+": the client must not send the data, and
  // the proxy must expect a new command next, not literal bytes.
  await c.send('a4 APPEND nonexistent {10}');
  t.is(norm(await c.readLine()), 'a4 NO [TRYCREATE] Mailbox doesn\'t exist: nonexistent.');
  t.deepEqual(await cmd(c, 'a5 NOOP'), ['a5 OK NOOP completed.']);

  // A refused non-synchronising literal: its bytes were sent anyway and are
  // consumed by the server as the literal.
  await c.sendRaw('a6 APPEND nonexistent {10+}\r\n0123456789\r\na7 NOOP\r\n');
  t.deepEqual((await c.readUntilTagged('a7')).map(norm), [
    'a6 NO [TRYCREATE] Mailbox doesn\'t exist: nonexistent.',
    'a7 OK NOOP completed.',
  ]);

  // both messages arrived byte for byte
  t.true((await cmd(c, 'a8 SELECT INBOX')).includes('* 23 EXISTS'));
  const fetched = await c.command('a9 UID FETCH 22:23 BODY.PEEK[]');
  t.deepEqual(fetched.map(norm), [
    `* 22 FETCH (UID 22 BODY[] {${msg1.length}}\r\n${msg1})`,
    `* 23 FETCH (UID 23 BODY[] {${msg2.length}}\r\n${msg2})`,
    'a9 OK Fetch completed.',
  ]);
  // A literal far longer than max_line_length, sent in pieces: literal data
  // is not a line.
  const body = Array.from({ length: 4000 }, (_, i) => `line ${i} ${'z'.repeat(40)}`).join('\r\n');
  const msg3 = `From: c@example.test\r\nSubject: big literal\r\n\r\n${body}\r\n`;
  t.true(msg3.length > 100 * MAX_LINE);
  await c.send(`a11 APPEND INBOX {${msg3.length}}`);
  t.is(await c.readLine(), '+ OK');
  for (let i = 0; i < msg3.length; i += 65536) await c.sendRaw(msg3.slice(i, i + 65536));
  await c.sendRaw('\r\n');
  t.deepEqual((await c.readUntilTagged('a11')).map(norm).map((l) => l.replace(/APPENDUID \d+/, 'APPENDUID v')), [
    '* 24 EXISTS',
    '* 24 RECENT',
    'a11 OK [APPENDUID v 24] Append completed.',
  ]);
  t.deepEqual(await cmd(c, 'a12 UID FETCH 24 RFC822.SIZE'), ['* 24 FETCH (UID 24 RFC822.SIZE ' + msg3.length + ')', 'a12 OK Fetch completed.']);
  await logout(t, c, 'a10');
});

test('a failed SELECT, then LOGOUT: the next session starts unselected', async (t) => {
  const { b, outcome } = await handOver(t, 'user21', async ({ c }) => {
    t.true((await cmd(c, 'a2 SELECT INBOX')).includes('a2 OK [READ-WRITE] Select completed.'));
    // RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected
    t.deepEqual(await cmd(c, 'a3 SELECT nonexistent'), ['* OK [CLOSED] Previous mailbox closed.', 'a3 NO Mailbox doesn\'t exist: nonexistent.']);
    await logout(t, c, 'a4');
  });
  t.log(`A's server connection was ${outcome}`);
  await assertOnlyOwnReplies(t, b);
});

test('client dropped after a literal announcement without its data: the connection is not cached', async (t) => {
  const { b, outcome } = await handOver(t, 'user15', async ({ c }, logFrom) => {
    await c.send('a2 APPEND INBOX {100}');
    t.is(await c.readLine(), '+ OK');
    await c.sendRaw('only part of the literal');
    await sleep(50);
    logFrom();
    await c.close();
  });
  t.is(outcome, 'closed');
  await assertOnlyOwnReplies(t, b);
  // and nothing was appended
  const c = (await login(t, 'user15', 'c1')).c;
  const st = await cmd(c, 'c2 STATUS INBOX (MESSAGES)');
  t.deepEqual(st, ['* STATUS INBOX (MESSAGES 21)', 'c2 OK Status completed.']);
  await logout(t, c, 'c3');
});

// --- COMPRESS and ENABLE -----------------------------------------------------------

/**
 * An imapflow session through the proxy: lists mailboxes, fetches messages,
 * then logs out or just closes the socket. Resolves to whether COMPRESS was on.
 */
async function imapflowSession(t: ExecutionContext, user: string, options: Record<string, unknown>, end: 'logout' | 'close'): Promise<boolean> {
  const client = await connectImapClient({ port: proxy.port, user, pass: pass(user), options });
  // imapflow keeps its deflate stream here once COMPRESS succeeded
  const compressed = (client as unknown as { _deflate?: unknown })._deflate !== undefined;
  try {
    const names = (await client.list()).map((m) => m.path).sort();
    t.deepEqual(names, ['Archive', 'INBOX']);
    const box = await client.mailboxOpen('INBOX');
    t.is(box.exists, 21);
    const seed = seedMailboxes()[0]!.messages;
    const msg = await client.fetchOne('2', { uid: true, size: true, envelope: true, source: true });
    t.truthy(msg);
    if (msg) {
      t.is(msg.uid, 2);
      t.is(msg.size, seed[1]!.size);
      t.is(msg.envelope?.subject, seed[1]!.subject);
      t.is(msg.source?.length, seed[1]!.size);
    }
    const big = await client.fetchOne(String(BIG_UID), { size: true, source: true });
    t.is(big && big.source?.length, BIG_SIZE);
  } finally {
    if (end === 'logout') await client.logout();
    else client.close();
  }
  t.deepEqual(client.errors, []);
  return compressed;
}

/** Runs an imapflow session as `user`; the next raw login must get a new server connection. */
async function notReusedAfter(t: ExecutionContext, user: string, options: Record<string, unknown>, end: 'logout' | 'close', reason: RegExp): Promise<boolean> {
  const before = await dovecot.loginCount(user);
  const from = proxy.log().length;
  const compressed = await imapflowSession(t, user, options, end);
  const sd = lastSd(user);
  t.is(await verdict(user, sd, from), 'closed', `${end}: the connection must not be cached`);
  const line = proxy.log().slice(from).find((l) => l.includes(`Invalidating server sd [${sd}]`));
  t.regex(line ?? '', reason);
  const b = await login(t, user, 'b1');
  t.false(b.reused, 'the connection must not be handed out');
  t.is(await dovecot.loginCount(user), before + 2);
  await assertOnlyOwnReplies(t, b.c);
  return compressed;
}

test('a session that used COMPRESS=DEFLATE is never reused (imapflow works through it)', async (t) => {
  // imapflow's LOGOUT is compressed: the proxy cannot see it, the server
  // answers and closes, imapflow closes too (whichever the proxy notices
  // first). A client that just leaves leaves a compressed connection.
  // (a user each: B of the first round leaves a clean cached connection)
  t.true(await notReusedAfter(t, 'user8', { disableCompression: false, disableAutoEnable: true }, 'logout', /: (server closed the connection|COMPRESS is active)$/));
  t.true(await notReusedAfter(t, 'user19', { disableCompression: false, disableAutoEnable: true }, 'close', /: COMPRESS is active$/));
});

test('a session that used ENABLE is never reused (imapflow enables CONDSTORE by default and works through it)', async (t) => {
  // BackendConnection.cannotReset: ENABLE cannot be undone (RFC 5161)
  for (const [user, end] of [['user9', 'logout'], ['user20', 'close']] as const) {
    t.false(await notReusedAfter(t, user, {}, end, /: extensions enabled \(CONDSTORE\b.*\)$/));
  }
});

test('COMPRESS active: when the server ends the session, the proxy writes nothing uncompressed to the client', async (t) => {
  const user = 'user18';
  const { a } = await bareLogin(t, user);
  await a.write('a2 COMPRESS DEFLATE\r\n');
  await a.waitFor(/\r\na2 OK [^\r]*\r\n/);
  const okEnd = a.text().indexOf('\r\n', a.text().indexOf('\r\na2 OK') + 2) + 2;
  // from here on both directions are raw DEFLATE (RFC 4978)
  const inflate = zlib.createInflateRaw();
  let plain = '';
  let inflateError: Error | undefined;
  inflate.on('data', (b: Buffer) => (plain += b.toString('latin1')));
  inflate.on('error', (err) => (inflateError = err));
  let fed = okEnd;
  const feed = (): void => {
    if (a.data.length > fed) inflate.write(a.data.subarray(fed));
    fed = a.data.length;
  };
  a.socket.on('data', feed);
  feed();
  const deflate = zlib.createDeflateRaw();
  deflate.on('data', (b: Buffer) => a.socket.write(b));
  const send = (line: string): Promise<void> =>
    new Promise((resolve) => {
      deflate.write(line);
      deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve());
    });
  const until = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 250 && !re.test(plain) && !inflateError; i++) await sleep(20);
  };
  await send('a3 NOOP\r\n');
  await until(/a3 OK/);
  t.regex(plain, /^a3 OK NOOP completed/);
  const ended = new Promise<boolean>((resolve) => {
    a.socket.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 10_000).unref();
  });
  await dovecot.doveadm('kick', user);
  t.true(await ended, 'the proxy closes the client once the server is gone');
  feed();
  await new Promise<void>((resolve) => inflate.end(() => resolve()));
  t.is(inflateError, undefined, `bytes after COMPRESS must all be DEFLATE data: ${String(inflateError)}`);
  t.regex(plain, /\r\n\* BYE .*\r\n$/, JSON.stringify(plain));
  deflate.destroy();
});

test('raw ENABLE, or CONDSTORE switched on by SELECT (CONDSTORE): not reused', async (t) => {
  for (const [user, command] of [['user10', 'a2 ENABLE CONDSTORE'], ['user11', 'a2 SELECT INBOX (CONDSTORE)']] as const) {
    const { b, outcome } = await handOver(t, user, async ({ c }) => {
      const lines = await cmd(c, command);
      t.regex(lines.at(-1)!, /^a2 OK /, c.describe());
      await logout(t, c, 'a3');
    });
    t.is(outcome, 'closed', `${user}: ${command}`);
    await assertOnlyOwnReplies(t, b);
  }
});

// --- malformed client input -----------------------------------------------------------

test('a command line over max_line_length gets BYE and is closed; other sessions go on', async (t) => {
  const user = 'user16';
  const bystander = await login(t, 'user17', 'c1');
  const { b, outcome } = await handOver(t, user, async ({ c }, logFrom) => {
    // exactly max_line_length bytes (CRLF excluded) is still fine
    const fits = 'a2 SEARCH SUBJECT "' + 'x'.repeat(MAX_LINE - 'a2 SEARCH SUBJECT "'.length - 1) + '"';
    t.is(fits.length, MAX_LINE);
    t.deepEqual(await cmd(c, fits), ['a2 BAD No mailbox selected.']);
    logFrom();
    // one byte more, sent in two pieces
    const long = 'a3 SEARCH SUBJECT "' + 'y'.repeat(MAX_LINE - 'a3 SEARCH SUBJECT "'.length) + '"';
    t.is(long.length, MAX_LINE + 1);
    await c.sendRaw(long.slice(0, 1000));
    await sleep(20);
    await c.sendRaw(`${long.slice(1000)}\r\n`);
    t.deepEqual(await c.expectClosed(), [`* BYE line longer than ${MAX_LINE} bytes`]);
  });
  // the server connection is in an unknown state (part of a command may be
  // there): closed, not cached
  t.is(outcome, 'closed');
  await assertOnlyOwnReplies(t, b);
  t.deepEqual(await cmd(bystander.c, 'c2 NOOP'), ['c2 OK NOOP completed.']);
  await logout(t, bystander.c, 'c3');
});

// --- the server goes away ---------------------------------------------------------------

test.serial('server killed during a session: client gets BYE and EOF, the proxy stays up, logins work after the restart', async (t) => {
  // its own Dovecot and proxy: the other tests keep theirs
  const d = await startDovecot({ users: 2 });
  const p = await startProxy({ serverPort: d.port });
  try {
    const c = await RawClient.connect(p.port);
    t.deepEqual(await c.command('a1 LOGIN user1 pass1'), ['a1 OK User logged in']);
    t.true((await c.command('a2 SELECT INBOX')).some((l) => l === '* 21 EXISTS'));
    await c.send('a3 IDLE');
    t.is(await c.readLine(), '+ idling');
    await d.kill();
    t.deepEqual(await c.expectClosed(), ['* BYE IMAP server closed the connection']);
    await p.waitForLog(/Invalidating server sd \[\d+\]: server closed the connection/);

    // the proxy is up and says clearly that the server is not
    const down = await RawClient.connect(p.port);
    t.regex(down.greeting, /^\* OK \[CAPABILITY IMAP4rev1 .*XIMAPPROXY\] /);
    t.deepEqual(await down.command('b1 LOGIN user1 pass1'), ['b1 NO [UNAVAILABLE] LOGIN failed: IMAP server unavailable']);
    await d.restart();
    // the failed login left the client in the pre-auth state
    t.deepEqual(await down.command('b2 LOGIN user1 pass1'), ['b2 OK User logged in']);
    t.true((await down.command('b3 SELECT INBOX')).includes('* 21 EXISTS'));
    await logout(t, down, 'b4');
    t.is(await d.loginCount('user1'), 2);
  } finally {
    await p.stop();
    await d.stop();
  }
});

test.serial('server kicks a session (doveadm kick): its BYE, then the proxy\'s, then EOF; the user logs in again', async (t) => {
  const d = await startDovecot({ users: 2 });
  const p = await startProxy({ serverPort: d.port });
  try {
    const c = await RawClient.connect(p.port);
    t.deepEqual(await c.command('a1 LOGIN user2 pass2'), ['a1 OK User logged in']);
    t.true((await c.command('a2 SELECT INBOX')).some((l) => l === '* 21 EXISTS'));
    await d.doveadm('kick', 'user2');
    const last = await c.expectClosed();
    t.is(last.at(-1), '* BYE IMAP server closed the connection', c.describe());
    for (const line of last.slice(0, -1)) t.regex(line, /^\* BYE /);
    const again = await RawClient.connect(p.port);
    t.deepEqual(await again.command('b1 LOGIN user2 pass2'), ['b1 OK User logged in']);
    t.deepEqual((await again.command('b2 NOOP')).map(norm), ['b2 OK NOOP completed.']);
    await logout(t, again, 'b3');
    t.is(await d.loginCount('user2'), 2);
  } finally {
    await p.stop();
    await d.stop();
  }
});

test('commands pipelined behind LOGOUT never reach the server and leave the cached connection as it was', async (t) => {
  // Found in review: the rest of the chunk after LOGOUT was still parsed after
  // the connection went back to the pool, so this SELECT marked the cached
  // connection "selected" and the next session got an UNSELECT the server
  // refused, then "* BYE Internal error".
  const user = 'user22';
  const a = await login(t, user);
  const from = proxy.log().length;
  await a.c.sendRaw('a2 LOGOUT\r\na3 SELECT INBOX\r\na4 ENABLE CONDSTORE\r\n');
  t.deepEqual((await a.c.readUntilTagged('a2')).map(norm), ['* BYE LOGOUT received', 'a2 OK Completed']);
  await a.c.close();
  t.is(await verdict(user, a.sd, from), 'cached');
  const b = await login(t, user, 'b1');
  t.true(b.reused, 'the cached connection is reused');
  const fetch = await cmd(b.c, 'b2 FETCH 1 FLAGS');
  t.regex(fetch.at(-1)!, /^b2 BAD No mailbox selected/, b.c.describe());
  t.regex((await cmd(b.c, 'b3 NOOP')).at(-1)!, /^b3 OK/);
  await b.c.close();
  const saw = tap.serverSaw(user).flat();
  t.false(saw.some((l) => /^a[34] /.test(l)), `the server never saw a3/a4: ${JSON.stringify(saw)}`);
});
