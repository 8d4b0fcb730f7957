// Reuse by proof (issue 16), against a real Dovecot: what an attacker's session
// (or an unusual client) leaves on its server connection must never reach the
// next session of the same user. Each test is one finding: session A does it
// and logs out; the proxy's log says whether A's connection was cached; session
// B then sees exactly what a fresh login sees.
import test, { type ExecutionContext } from 'ava';
import { lastSd, verdict, type Verdict } from './helpers/connection-verdict.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { RawClient } from './helpers/transcript.js';

let dovecot: Dovecot;
/** Without the select cache: a session's mailbox is unselected before the next session's first command. */
let plain: Proxy;
/** With the select cache: a mailbox may stay selected into the next session. */
let cached: Proxy;

test.before(async () => {
  dovecot = await startDovecot({ users: 24 });
  [plain, cached] = await Promise.all([
    startProxy({ serverPort: dovecot.port, extraConf: 'resync_timeout 3' }),
    startProxy({ serverPort: dovecot.port, extraConf: 'enable_select_cache yes\nresync_timeout 3' }),
  ]);
});

test.after.always(async () => {
  await plain?.stop();
  await cached?.stop();
  await dovecot?.stop();
});

const pass = (user: string): string => user.replace(/^user/, 'pass');
const norm = (line: string): string => line.replace(/ \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)/, '');

interface Session {
  c: RawClient;
  reused: boolean;
}

async function login(t: ExecutionContext, proxy: Proxy, user: string, tag: string): Promise<Session> {
  const c = await RawClient.connect(proxy.port);
  const lines = await c.command(`${tag} LOGIN ${user} ${pass(user)}`);
  t.regex(lines.at(-1) ?? '', new RegExp(`^${tag} OK`), c.describe());
  return { c, reused: lines.some((l) => l.includes('[XPROXYREUSE]')) };
}

async function cmd(c: RawClient, line: string): Promise<string[]> {
  return (await c.command(line)).map(norm);
}

async function logout(t: ExecutionContext, c: RawClient, tag: string): Promise<void> {
  await c.send(`${tag} LOGOUT`);
  t.deepEqual(await c.expectClosed(), ['* BYE LOGOUT received', `${tag} OK Completed`], c.describe());
}

/**
 * Session A of `user` on a new server connection: `act`, LOGOUT, and the
 * proxy's verdict on its connection. `framingLost`: A made the server read
 * bytes the proxy took for literal data as commands, so the two disagree on
 * where A's later commands start; the proxy may not see A's LOGOUT as one
 * (the server may answer it): A's own session is what it broke.
 */
async function sessionA(t: ExecutionContext, proxy: Proxy, user: string, act: (c: RawClient) => Promise<void>, framingLost = false): Promise<Verdict> {
  const a = await login(t, proxy, user, 'a1');
  t.false(a.reused, 'session A must start on a new server connection');
  const sd = lastSd(proxy, user);
  const from = proxy.log().length;
  await act(a.c);
  if (framingLost) {
    await a.c.send('a9 LOGOUT');
    await a.c.expectClosed().catch(() => a.c.close());
  } else {
    await logout(t, a.c, 'a9');
  }
  return verdict(proxy, user, sd, from);
}

// --- finding 1: framing disagreement ---------------------------------------------

/**
 * The server refuses these commands before it reads their arguments and takes
 * the literal's bytes for a command of their own; the proxy counted them as data.
 */
const SMUGGLERS: Array<[string, (inner: string) => string]> = [
  // the empty line ends x for the proxy too: both agree on the framing again, so LOGOUT is the proxy's
  ['an unknown command, framing brought back in step', (inner) => `x FOO {${inner.length}+}\r\n${inner}\r\n`],
  ['an unknown command with a non-synchronising literal', (inner) => `x FOO {${inner.length}+}\r\n${inner}`],
  ['an unknown command with a synchronising literal sent without waiting', (inner) => `x FOO {${inner.length}}\r\n${inner}`],
  ['an XPROXY_ word (admin commands are not for the server)', (inner) => `x XPROXY_TRACE {${inner.length}+}\r\n${inner}`],
  ['LOGIN after login', (inner) => `x LOGIN {${inner.length}+}\r\n${inner}`],
  ['a known command with a literal where an atom belongs', (inner) => `x NOOP {${inner.length}+}\r\n${inner}`],
];

for (const [i, [what, wrap]] of SMUGGLERS.entries()) {
  test(`finding 1: a SELECT smuggled in the literal of ${what} never reaches the next session`, async (t) => {
    const user = `user${i + 15}`;
    const v = await sessionA(t, plain, user, async (c) => {
      await c.sendRaw(wrap('h SELECT INBOX\r\n'));
      const replies = [...(await c.readUntilTagged('x')), ...(await c.readUntilTagged('h'))].map(norm);
      // what Dovecot does: it answers x without reading the literal, then runs h
      t.true(replies.includes('h OK [READ-WRITE] Select completed.'), replies.join('\n'));
    }, true);
    t.is(v.outcome, 'closed', v.line);
    t.true(plain.log().some((l) => /server sd \[\d+\] will be logged out, not cached: /.test(l)), plain.log().join('\n'));
    const b = await login(t, plain, user, 'b1');
    t.false(b.reused);
    t.deepEqual(await cmd(b.c, 'b2 FETCH 1 FLAGS'), ['b2 BAD No mailbox selected.']);
    await logout(t, b.c, 'b9');
  });
}

test('finding 1: ENABLE smuggled in a literal does not reach the next session', async (t) => {
  const user = 'user6';
  const inner = 'h ENABLE CONDSTORE\r\n';
  const v = await sessionA(t, plain, user, async (c) => {
    await c.sendRaw(`x FOO {${inner.length}+}\r\n${inner}\r\n`);
    await c.readUntilTagged('x');
    t.true((await c.readUntilTagged('h')).includes('* ENABLED CONDSTORE'));
  }, true);
  t.is(v.outcome, 'closed', v.line);
  const b = await login(t, plain, user, 'b1');
  t.false(b.reused);
  t.true((await cmd(b.c, 'b2 SELECT INBOX')).at(-1)?.startsWith('b2 OK'));
  t.deepEqual(await cmd(b.c, 'b3 STORE 1 +FLAGS (\\Flagged)'), ['* 1 FETCH (FLAGS (\\Flagged \\Recent))', 'b3 OK Store completed.']);
  await logout(t, b.c, 'b9');
});

// --- finding 2: CONDSTORE switched on implicitly -----------------------------------

const IMPLICIT_CONDSTORE: Array<[string, string[]]> = [
  ['STATUS HIGHESTMODSEQ (what Roundcube sends)', ['a2 STATUS INBOX (MESSAGES HIGHESTMODSEQ)']],
  ['STATUS with the mailbox as a literal', ['a2 STATUS {5+}\r\nINBOX (HIGHESTMODSEQ)']],
  ['LIST-STATUS', ['a2 LIST "" "INBOX" RETURN (STATUS (MESSAGES HIGHESTMODSEQ))']],
  ['FETCH CHANGEDSINCE beyond the first 8 KiB of the line', ['a2 EXAMINE INBOX', `a3 UID FETCH ${Array.from({ length: 2500 }, (_, i) => 1000 + i).join(',')} (FLAGS) (CHANGEDSINCE 1)`]],
  ['SEARCH MODSEQ after a literal', ['a2 EXAMINE INBOX', 'a3 SEARCH SUBJECT {1+}\r\nx MODSEQ 1']],
];

for (const [i, [what, lines]] of IMPLICIT_CONDSTORE.entries()) {
  test(`finding 2: CONDSTORE switched on by ${what}: the next session's STORE replies carry no MODSEQ`, async (t) => {
    const user = `user${i + 7}`;
    const v = await sessionA(t, plain, user, async (c) => {
      for (const line of lines) {
        const tag = line.slice(0, line.indexOf(' '));
        await c.sendRaw(`${line}\r\n`);
        const replies = await c.readUntilTagged(tag);
        t.regex(replies.at(-1) ?? '', new RegExp(`^${tag} OK`), replies.join('\n'));
      }
    });
    t.is(v.outcome, 'closed', v.line);
    t.regex(v.line, /CONDSTORE/);
    const b = await login(t, plain, user, 'b1');
    t.false(b.reused);
    t.true((await cmd(b.c, 'b2 SELECT INBOX')).at(-1)?.startsWith('b2 OK'));
    const store = await cmd(b.c, 'b3 STORE 1 +FLAGS (\\Flagged)');
    t.false(store.some((l) => l.includes('MODSEQ')), store.join('\n'));
    await cmd(b.c, 'b4 STORE 1 -FLAGS (\\Flagged)');
    await logout(t, b.c, 'b9');
  });
}

// --- finding 3: per-selection state with the select cache -----------------------------

test('finding 3: SEARCH RETURN (SAVE) with the select cache: the next session has no saved result', async (t) => {
  const user = 'user13';
  const v = await sessionA(t, cached, user, async (c) => {
    // the second SELECT's reply (`* 0 RECENT`) is one the select cache keeps
    t.true((await cmd(c, 'a2 SELECT INBOX')).at(-1)?.startsWith('a2 OK'));
    t.true((await cmd(c, 'a3 SELECT INBOX')).includes('* 0 RECENT'));
    t.deepEqual(await cmd(c, 'a4 UID SEARCH RETURN (SAVE) 1:3'), ['a4 OK Search completed.']);
    t.is((await cmd(c, 'a5 FETCH $ (UID)')).length, 4, 'the saved result works in A');
  });
  // understood, so cached; but the selection holding `$` is not kept
  t.is(v.outcome, 'cached', v.line);
  const b = await login(t, cached, user, 'b1');
  t.true(b.reused);
  t.true((await cmd(b.c, 'b2 SELECT INBOX')).at(-1)?.startsWith('b2 OK'));
  // a fresh session's `$` is empty (RFC 5182)
  t.deepEqual(await cmd(b.c, 'b3 FETCH $ (UID)'), ['b3 OK Fetch completed.']);
  await logout(t, b.c, 'b9');
});

test('finding 3: SEARCH RETURN (UPDATE) with the select cache: no search update reaches the next session', async (t) => {
  const user = 'user14';
  const v = await sessionA(t, cached, user, async (c) => {
    t.true((await cmd(c, 'a2 SELECT INBOX')).at(-1)?.startsWith('a2 OK'));
    t.true((await cmd(c, 'a3 SELECT INBOX')).includes('* 0 RECENT'));
    const search = await cmd(c, 'a4 SEARCH RETURN (UPDATE) UNSEEN');
    t.is(search.at(-1), 'a4 OK Search completed.', search.join('\n'));
  });
  t.is(v.outcome, 'cached', v.line);
  // new mail while the connection waits in the pool
  const other = await RawClient.connect(dovecot.port);
  await other.command(`o1 LOGIN ${user} ${pass(user)}`);
  const message = 'Subject: update\r\n\r\nnew\r\n';
  await other.sendRaw(`o2 APPEND INBOX {${message.length}+}\r\n${message}\r\n`);
  t.regex((await other.readUntilTagged('o2')).at(-1) ?? '', /^o2 OK/);
  await other.close();
  const b = await login(t, cached, user, 'b1');
  t.true(b.reused);
  // two NOOPs: whatever the server still had to say would come with one of them
  for (const tag of ['b2', 'b3']) t.deepEqual(await cmd(b.c, `${tag} NOOP`), [`${tag} OK NOOP completed.`]);
  await logout(t, b.c, 'b9');
});
