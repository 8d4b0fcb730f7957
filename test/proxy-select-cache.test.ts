// Issue 9: the select cache (enable_select_cache yes) and the authenticated
// phase, against a real Dovecot.
//
// Webmail logs in for every page view and SELECTs INBOX each time. With the
// cache on, the proxy keeps INBOX selected on the server connection when the
// session ends (if it holds a current reply for it); the next session's SELECT
// INBOX costs the server a NOOP instead of a SELECT when nothing changed. The
// original served stale counts for 10 s, treated EXAMINE as harmless, cached
// NO and sent SELECT twice above 8 KB (SPEC §5, §11 B3). Here a second client,
// straight to Dovecot, delivers and flags mail between page views, and every
// SELECT reply must match the mailbox as it is.
//
// A tap between the proxy and Dovecot records what the server received: `P
// NOOP` where the cache answered, `a2 SELECT INBOX` where the server did.
// Every test has its own Dovecot user, so concurrent tests never share a
// server connection.
import test, { type ExecutionContext } from 'ava';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { readStatsFile } from '@imapproxy/shared';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { connectImapClient } from './helpers/imapflow.js';
import { LOOPBACK } from './helpers/ports.js';
import { eventually, logLines, waitForCached } from './helpers/proxy-log.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { startTap, type Tap } from './helpers/tap.js';
import { RawClient } from './helpers/transcript.js';

const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';
/** SELECT_CACHE_MAX_BYTES in packages/proxy/src/relay/select-cache.ts. */
const MAX_CACHED = 64 * 1024;

let dovecot: Dovecot;
let tap: Tap;
let proxy: Proxy;

test.before(async () => {
  dovecot = await startDovecot({ users: 24 });
  tap = await startTap(dovecot.port);
  proxy = await startProxy({ serverPort: tap.port, extraConf: 'enable_select_cache yes' });
});

test.after.always(async () => {
  await proxy?.stop();
  await tap?.close();
  await dovecot?.stop();
});

// --- helpers -------------------------------------------------------------------

const pass = (user: string): string => user.replace(/^user/, 'pass');

/** Dovecot appends its command timing to tagged replies: "(0.001 + 0.000 secs)". */
function norm(line: string): string {
  return line.replace(/ \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)/, '');
}

async function cmd(c: RawClient, line: string, timeoutMs?: number): Promise<string[]> {
  return (await c.command(line, timeoutMs)).map(norm);
}

/** A session through the proxy (a page view), logged in with tag a1. */
async function login(t: ExecutionContext, user: string, p: Proxy = proxy): Promise<{ c: RawClient; reused: boolean }> {
  // generous: the whole suite runs beside this file, and a 117 KB SELECT of 4500 keywords takes a while
  const c = await RawClient.connect(p.port, { timeoutMs: 15_000 });
  const lines = await c.command(`a1 LOGIN ${user} ${pass(user)}`);
  const reused = lines[0] === REUSE;
  t.deepEqual(lines, reused ? [REUSE, 'a1 OK User logged in'] : ['a1 OK User logged in'], c.describe());
  return { c, reused };
}

async function logout(t: ExecutionContext, c: RawClient, tag = 'a9'): Promise<void> {
  await c.send(`${tag} LOGOUT`);
  t.deepEqual(await c.expectClosed(), ['* BYE LOGOUT received', `${tag} OK Completed`], c.describe());
}

/** A whole page view: login, the commands (replies not normalised), LOGOUT. */
async function pageView(t: ExecutionContext, user: string, ...commands: string[]): Promise<string[][]> {
  const { c } = await login(t, user);
  const out: string[][] = [];
  for (const line of commands) out.push(await c.command(line));
  await logout(t, c);
  return out;
}

/** What the server received for `user` since `from` lines of its (single) server connection. */
function sawSince(user: string, from = 0): string[] {
  const all = tap.serverSaw(user);
  return all.flat().slice(from);
}

async function assertSaw(t: ExecutionContext, user: string, from: number, expected: string[]): Promise<void> {
  for (let i = 0; i < 100 && JSON.stringify(sawSince(user, from)) !== JSON.stringify(expected); i++) await sleep(20);
  t.deepEqual(sawSince(user, from), expected, `what the server received for ${user}`);
}

/**
 * Two page views that SELECT INBOX: the first claims the \Recent messages
 * (its reply says `* 21 RECENT`, so it is not cached), the second's reply
 * (`* 0 RECENT`) is cached and INBOX stays selected for the next one.
 */
async function warm(t: ExecutionContext, user: string): Promise<string[]> {
  const [first] = await pageView(t, user, 'a2 SELECT INBOX');
  t.true(first!.includes('* 21 RECENT'), first!.join('\n'));
  const [second] = await pageView(t, user, 'a2 SELECT INBOX');
  t.true(second!.includes('* 0 RECENT'), second!.join('\n'));
  return second!;
}

/** A client straight to Dovecot (the "other device" of the user). */
async function direct(user: string): Promise<RawClient> {
  const c = await RawClient.connect(dovecot.port, { timeoutMs: 15_000 });
  const lines = await c.command(`o1 LOGIN ${user} ${pass(user)}`);
  if (!/^o1 OK /.test(lines.at(-1)!)) throw new Error(lines.join('\n'));
  return c;
}

let mailNo = 0;
/** Delivers one message to INBOX from outside the proxy; resolves to its UID. */
async function deliver(user: string, mailbox = 'INBOX'): Promise<number> {
  const c = await direct(user);
  const msg = `From: other@example.test\r\nSubject: delivered ${++mailNo}\r\n\r\nhello\r\n`;
  await c.send(`o2 APPEND ${mailbox} {${msg.length}+}`);
  await c.sendRaw(`${msg}\r\n`);
  const done = (await c.readUntilTagged('o2')).at(-1)!;
  await c.close();
  const m = /APPENDUID \d+ (\d+)/.exec(done);
  if (!m) throw new Error(done);
  return Number(m[1]);
}

/** Runs commands on a direct connection with INBOX selected. */
async function directStore(user: string, ...lines: string[]): Promise<void> {
  const c = await direct(user);
  await c.command('o2 SELECT INBOX');
  for (const [i, line] of lines.entries()) {
    const r = await c.command(`o${i + 3} ${line}`);
    if (!/ OK /.test(r.at(-1)!)) throw new Error(r.join('\n'));
  }
  await c.close();
}

/** The lines of a SELECT/EXAMINE reply that describe the mailbox's state. */
function stateOf(lines: string[]): string[] {
  return lines.filter((l) => /^\* (FLAGS |\d+ EXISTS$|OK \[(UNSEEN|UIDVALIDITY|UIDNEXT) )/.test(l));
}

/** The mailbox as Dovecot shows it right now (EXAMINE: claims no \Recent). */
async function truth(user: string, mailbox = 'INBOX'): Promise<string[]> {
  const c = await direct(user);
  const lines = await c.command(`o2 EXAMINE ${mailbox}`);
  await c.close();
  return stateOf(lines);
}

/** `lines` with the tagged reply's tag changed from `from` to `to`. */
function retag(lines: string[], from: string, to: string): string[] {
  return lines.map((l) => (l.startsWith(`${from} `) ? `${to} ${l.slice(from.length + 1)}` : l));
}

// --- hits and misses ---------------------------------------------------------------

test('page views: the third SELECT INBOX costs the server a NOOP, and its reply is the server\'s last one exactly', async (t) => {
  const user = 'user1';
  const [first, f1] = await pageView(t, user, 'a2 SELECT INBOX', 'a3 UID FETCH 1:3 (UID FLAGS)');
  t.true(first!.includes('* 21 RECENT'));
  const [second, f2] = await pageView(t, user, 'a2 SELECT INBOX', 'a3 UID FETCH 1:3 (UID FLAGS)');
  t.true(second!.includes('* 0 RECENT'));
  t.deepEqual(stateOf(second!), stateOf(first!));
  const [third, f3] = await pageView(t, user, 'a2 SELECT INBOX', 'a3 UID FETCH 1:3 (UID FLAGS)');
  // byte for byte, Dovecot's timing text included: this is the stored reply
  t.deepEqual(third, second);
  t.deepEqual(f3!.map(norm), f2!.map(norm));
  t.deepEqual(f2!.map(norm), [
    '* 1 FETCH (UID 1 FLAGS ())',
    '* 2 FETCH (UID 2 FLAGS ())',
    '* 3 FETCH (UID 3 FLAGS (\\Seen))',
    'a3 OK Fetch completed.',
  ]);
  t.deepEqual(f1!.map(norm).slice(0, 1), ['* 1 FETCH (UID 1 FLAGS (\\Recent))']);
  await assertSaw(t, user, 0, [
    // 21 RECENT: not cached, unselected at LOGOUT
    'a2 SELECT INBOX', 'a3 UID FETCH 1:3 (UID FLAGS)', 'P UNSELECT',
    // 0 RECENT: cached, INBOX stays selected
    'a2 SELECT INBOX', 'a3 UID FETCH 1:3 (UID FLAGS)',
    // the hit
    'P NOOP', 'a3 UID FETCH 1:3 (UID FLAGS)',
  ]);
  t.is(tap.serverSaw(user).length, 1, 'one server connection for all page views');
});

test('mail delivered between page views: EXISTS and UIDNEXT are never stale; a quiet page view hits again', async (t) => {
  const user = 'user2';
  await warm(t, user);
  const from = sawSince(user).length;
  for (let round = 0; round < 3; round++) {
    const uid = await deliver(user);
    const [changed] = await pageView(t, user, 'a2 SELECT INBOX');
    t.deepEqual(stateOf(changed!), await truth(user), `round ${round}: after a delivery`);
    t.true(changed!.includes(`* ${21 + round + 1} EXISTS`) && changed!.some((l) => l.startsWith(`* OK [UIDNEXT ${uid + 1}]`)), changed!.join('\n'));
    // the NOOP saw the new message first, so it is no longer \Recent
    t.true(changed!.includes('* 0 RECENT'));
    const [quiet] = await pageView(t, user, 'a2 SELECT INBOX');
    t.deepEqual(quiet, changed, `round ${round}: nothing changed, the reply is the cached one`);
  }
  await assertSaw(t, user, from, [
    // the NOOP reports the delivery: the SELECT goes to the server (after an
    // UNSELECT: this session had nothing selected, so no [CLOSED] for it)
    'P NOOP', 'P UNSELECT', 'a2 SELECT INBOX', 'P NOOP',
    'P NOOP', 'P UNSELECT', 'a2 SELECT INBOX', 'P NOOP',
    'P NOOP', 'P UNSELECT', 'a2 SELECT INBOX', 'P NOOP',
  ]);
});

test('flags changed by another client between page views: UNSEEN, FLAGS and keywords are never stale', async (t) => {
  const user = 'user3';
  const warmReply = await warm(t, user);
  t.true(warmReply.some((l) => l.startsWith('* OK [UNSEEN 1]')));
  const cases: Array<[string, string[]]> = [
    ['message 1 read elsewhere: the first unseen is now 2', ['STORE 1 +FLAGS (\\Seen)']],
    ['another message flagged', ['STORE 5 +FLAGS (\\Flagged)']],
    ['a new keyword: the FLAGS list grows', ['STORE 2 +FLAGS ($Important)']],
    ['message 1 unread again', ['STORE 1 -FLAGS (\\Seen)']],
  ];
  for (const [what, lines] of cases) {
    await directStore(user, ...lines);
    const [reply] = await pageView(t, user, 'a2 SELECT INBOX', 'a3 NOOP');
    t.deepEqual(stateOf(reply!), await truth(user), what);
    const [again] = await pageView(t, user, 'a2 SELECT INBOX');
    t.deepEqual(again, reply, `${what}: no change since, so the cached reply`);
  }
  const last = stateOf((await pageView(t, user, 'a2 SELECT INBOX'))[0]!);
  t.true(last.some((l) => l.startsWith('* OK [UNSEEN 1]')));
  t.true(last.some((l) => /^\* FLAGS \(.*\$Important/.test(l)));
});

test('a flag change reported inside a page view (not to the NOOP) still drops the cached reply', async (t) => {
  // The NOOP before a hit only shows what the server has not reported yet.
  // Here the change reaches the session with its own FETCH; the proxy must
  // notice it there.
  const user = 'user4';
  await warm(t, user);
  await directStore(user, 'STORE 1 +FLAGS (\\Seen)');
  const from = sawSince(user).length;
  const { c } = await login(t, user);
  // INBOX is selected on the server, but Dovecot has not told this connection yet
  const sel = await cmd(c, 'a2 SELECT INBOX');
  t.true(sel.some((l) => l.startsWith('* OK [UNSEEN 2]')), sel.join('\n'));
  await directStore(user, 'STORE 1:2 -FLAGS (\\Seen)', 'STORE 3 -FLAGS (\\Seen)');
  const fetched = await cmd(c, 'a3 FETCH 1:3 (UID FLAGS)');
  t.true(fetched.includes('* 3 FETCH (UID 3 FLAGS ())'), fetched.join('\n'));
  await logout(t, c);
  const [next] = await pageView(t, user, 'a2 SELECT INBOX');
  t.deepEqual(stateOf(next!), await truth(user));
  t.true(next!.some((l) => l.startsWith('* OK [UNSEEN 1]')), next!.join('\n'));
  await assertSaw(t, user, from, [
    'P NOOP', 'P UNSELECT', 'a2 SELECT INBOX', 'a3 FETCH 1:3 (UID FLAGS)', 'P UNSELECT',
    'a2 SELECT INBOX',
  ]);
});

test('EXAMINE then SELECT: the SELECT is the server\'s, read-write; a cached reply after a real one repeats its [CLOSED]', async (t) => {
  const user = 'user5';
  await warm(t, user);
  const { c } = await login(t, user);
  const from = sawSince(user).length;
  const hit = await c.command('a2 SELECT INBOX');
  t.is(norm(hit.at(-1)!), 'a2 OK [READ-WRITE] Select completed.');
  const ex = await cmd(c, 'a3 EXAMINE INBOX');
  t.is(ex.at(-1), 'a3 OK [READ-ONLY] Examine completed.');
  t.is(ex[0], '* OK [CLOSED] Previous mailbox closed.');
  const real = await c.command('a4 SELECT INBOX');
  t.is(norm(real.at(-1)!), 'a4 OK [READ-WRITE] Select completed.');
  t.is(real[0], '* OK [CLOSED] Previous mailbox closed.');
  // INBOX is selected in this session: a cached reply starts as the server's would
  const cached = await c.command('a5 SELECT INBOX');
  t.deepEqual(cached, retag(real, 'a4', 'a5'));
  const archive = await cmd(c, 'a6 EXAMINE Archive');
  t.is(archive[0], '* OK [CLOSED] Previous mailbox closed.');
  t.deepEqual(stateOf(archive), await truth(user, 'Archive'));
  t.is(archive.at(-1), 'a6 OK [READ-ONLY] Examine completed.');
  await logout(t, c);
  // the next session: INBOX, read-write, from the server (the original served
  // its cached INBOX reply while the server was in Archive, read-only)
  const [sel, fetch] = await pageView(t, user, 'a2 SELECT INBOX', 'a3 FETCH 21 (UID)');
  t.true(sel!.includes('* 21 EXISTS'));
  t.is(norm(sel!.at(-1)!), 'a2 OK [READ-WRITE] Select completed.');
  t.deepEqual(fetch!.map(norm), ['* 21 FETCH (UID 21)', 'a3 OK Fetch completed.']);
  await assertSaw(t, user, from, [
    'P NOOP', 'a3 EXAMINE INBOX', 'a4 SELECT INBOX', 'P NOOP', 'a6 EXAMINE Archive', 'P UNSELECT',
    'a2 SELECT INBOX', 'a3 FETCH 21 (UID)',
  ]);
});

test('NO for a missing mailbox is never cached; a failed SELECT drops the cached INBOX', async (t) => {
  const user = 'user6';
  await warm(t, user);
  const from = sawSince(user).length;
  const { c } = await login(t, user);
  t.true((await cmd(c, 'a2 SELECT INBOX')).includes('* 21 EXISTS'));
  t.deepEqual(await cmd(c, 'a3 SELECT nosuch'), ['* OK [CLOSED] Previous mailbox closed.', 'a3 NO Mailbox doesn\'t exist: nosuch.']);
  t.deepEqual(await cmd(c, 'a4 SELECT nosuch'), ['a4 NO Mailbox doesn\'t exist: nosuch.']);
  t.deepEqual(await cmd(c, 'a5 FETCH 1 (UID)'), ['a5 BAD No mailbox selected.']);
  const again = await cmd(c, 'a6 SELECT INBOX');
  t.true(again.includes('* 21 EXISTS'));
  t.is(again.at(-1), 'a6 OK [READ-WRITE] Select completed.');
  await logout(t, c);
  await assertSaw(t, user, from, ['P NOOP', 'a3 SELECT nosuch', 'a4 SELECT nosuch', 'a5 FETCH 1 (UID)', 'a6 SELECT INBOX']);
});

// --- size ------------------------------------------------------------------------------

test('a mailbox of 3000 messages, and SELECT replies of 39 KB (cached whole) and 117 KB (relayed whole, not cached)', async (t) => {
  const user = 'user7';
  const o = await direct(user);
  t.regex((await o.command('o2 CREATE Big')).at(-1)!, /^o2 OK/);
  // one MULTIAPPEND with non-synchronising literals
  const parts: string[] = [];
  for (let i = 1; i <= 3000; i++) {
    const msg = `From: bulk@example.test\r\nSubject: bulk ${i}\r\n\r\nmessage ${i}\r\n`;
    parts.push(` {${msg.length}+}\r\n${msg}`);
  }
  await o.sendRaw(`o3 APPEND Big${parts.join('')}\r\n`);
  t.regex((await o.readUntilTagged('o3', 60_000)).at(-1)!, /^o3 OK \[APPENDUID \d+ 1:3000\]/);
  // a mailbox whose FLAGS and PERMANENTFLAGS lines list 1500 keywords each
  t.regex((await o.command('o4 CREATE Kw')).at(-1)!, /^o4 OK/);
  const kwMessage = 'Subject: keywords\r\n\r\nhi\r\n';
  await o.sendRaw(`o5 APPEND Kw {${kwMessage.length}+}\r\n${kwMessage}\r\n`);
  await o.readUntilTagged('o5');
  await o.command('o6 SELECT Kw');
  const keywords = (n: number, from: number): string => Array.from({ length: n }, (_, i) => `keyword${String(from + i).padStart(5, '0')}`).join(' ');
  t.regex((await o.command(`o7 STORE 1 +FLAGS.SILENT (${keywords(1500, 0)})`, 30_000)).at(-1)!, /^o7 OK/);
  await o.command('o8 UNSELECT');

  const [b1] = await pageView(t, user, 'a2 SELECT Big');
  t.true(b1!.includes('* 3000 EXISTS') && b1!.includes('* 3000 RECENT'));
  const [b2, f2] = await pageView(t, user, 'a2 SELECT Big', 'a3 FETCH 2999:* (UID)');
  t.true(b2!.includes('* 3000 EXISTS') && b2!.includes('* 0 RECENT'));
  t.deepEqual(stateOf(b2!), await truth(user, 'Big'));
  t.deepEqual(f2!.map(norm), ['* 2999 FETCH (UID 2999)', '* 3000 FETCH (UID 3000)', 'a3 OK Fetch completed.']);
  const [b3] = await pageView(t, user, 'a2 SELECT Big');
  t.deepEqual(b3, b2);

  const from = sawSince(user).length;
  const [k1] = await pageView(t, user, 'a2 SELECT Kw');
  const size = (lines: string[]): number => lines.reduce((n, l) => n + l.length + 2, 0);
  t.true(size(k1!) > 30_000 && size(k1!) < MAX_CACHED, `reply of ${size(k1!)} bytes`);
  t.is(k1!.find((l) => l.startsWith('* FLAGS '))!.split(' ').length, 2 + 5 + 1500);
  const [k2] = await pageView(t, user, 'a2 SELECT Kw');
  t.deepEqual(k2, k1, 'the cached reply is the whole reply');
  // 3000 more keywords: far over the limit
  await o.command('o9 SELECT Kw');
  t.regex((await o.command(`o10 STORE 1 +FLAGS.SILENT (${keywords(1500, 1500)})`, 30_000)).at(-1)!, /^o10 OK/);
  t.regex((await o.command(`o11 STORE 1 +FLAGS.SILENT (${keywords(1500, 3000)})`, 30_000)).at(-1)!, /^o11 OK/);
  await o.close();
  const [k3] = await pageView(t, user, 'a2 SELECT Kw');
  t.true(size(k3!) > MAX_CACHED * 1.5, `reply of ${size(k3!)} bytes`);
  const flags = k3!.find((l) => l.startsWith('* FLAGS '))!;
  t.is(flags.split(' ').length, 2 + 5 + 4500);
  t.true(flags.endsWith(' keyword04499)'));
  t.deepEqual(stateOf(k3!), await truth(user, 'Kw'));
  const [k4] = await pageView(t, user, 'a2 SELECT Kw');
  t.deepEqual(stateOf(k4!), stateOf(k3!));
  t.is(norm(k4!.at(-1)!), 'a2 OK [READ-WRITE] Select completed.');
  await assertSaw(t, user, from, [
    // Big was selected and cached: SELECT of another mailbox goes to the server
    'P UNSELECT', 'a2 SELECT Kw', 'P NOOP',
    // the NOOP reports the new keywords
    'P NOOP', 'P UNSELECT', 'a2 SELECT Kw',
    // too large to cache: unselected at LOGOUT, selected again by the server
    'P UNSELECT', 'a2 SELECT Kw', 'P UNSELECT',
  ]);
});

// --- counters ----------------------------------------------------------------------------

test.serial('TotalSelectCommands, SelectCacheHits and SelectCacheMisses in the stats file', async (t) => {
  // its own proxy: the counters are per daemon
  const p = await startProxy({ serverPort: dovecot.port, extraConf: 'enable_select_cache yes' });
  try {
    const user = 'user8';
    const page = async (...commands: string[]): Promise<string[][]> => {
      const { c } = await login(t, user, p);
      const out: string[][] = [];
      for (const line of commands) out.push(await cmd(c, line));
      await logout(t, c);
      return out;
    };
    await page('a2 SELECT INBOX'); // miss (21 RECENT: not cached)
    await page('a2 SELECT INBOX'); // miss (cached now)
    const [, no, ex] = await page('a2 SELECT INBOX', 'a3 SELECT nosuch', 'a4 EXAMINE INBOX'); // hit, miss, EXAMINE is not counted
    t.deepEqual(no, ['* OK [CLOSED] Previous mailbox closed.', 'a3 NO Mailbox doesn\'t exist: nosuch.']);
    t.is(ex!.at(-1), 'a4 OK [READ-ONLY] Examine completed.');
    await page('a2 SELECT INBOX'); // miss (EXAMINE dropped it)
    await page('a2 SELECT INBOX', 'a3 SELECT "INBOX"', 'a4 SELECT inbox'); // hit, hit, hit
    const stats = await eventually('the counters flushed', () => {
      const s = readStatsFile(p.statFile);
      return s.totalSelectCommands === 8 ? s : undefined;
    }, 5000, () => JSON.stringify(readStatsFile(p.statFile)));
    t.is(stats.totalSelectCommands, 8);
    t.is(stats.selectCacheHits, 4);
    t.is(stats.selectCacheMisses, 4);
    t.is(stats.extension?.selectCommands, 8);
    t.is(stats.extension?.selectCacheHits, 4);
  } finally {
    await p.stop();
  }
});

test('server bytes in pieces of 1-40 bytes: every reply arrives whole and once, from the server or the cache', async (t) => {
  // Lines that cross read boundaries are held back or passed on whole (the
  // proxy's own replies, news about an inherited mailbox): a bug here once
  // sent the start of such a line twice.
  const user = 'user19';
  const o = await direct(user);
  t.regex((await o.command('o2 CREATE Kw')).at(-1)!, /^o2 OK/);
  const kwMessage = 'Subject: keywords\r\n\r\nhi\r\n';
  await o.sendRaw(`o3 APPEND Kw {${kwMessage.length}+}\r\n${kwMessage}\r\n`);
  await o.readUntilTagged('o3');
  await o.command('o4 SELECT Kw');
  const keywords = Array.from({ length: 1500 }, (_, i) => `keyword${String(i).padStart(5, '0')}`).join(' ');
  t.regex((await o.command(`o5 STORE 1 +FLAGS.SILENT (${keywords})`, 30_000)).at(-1)!, /^o5 OK/);
  await o.close();
  const seed = 20_261_122;
  const splitTap = await startTap(dovecot.port, { splitServerBytes: { seed } });
  const p = await startProxy({ serverPort: splitTap.port, extraConf: 'enable_select_cache yes' });
  try {
    for (let round = 0; round < 36; round++) {
      const box = round % 3 === 2 ? 'Kw' : 'INBOX';
      if (round % 9 === 5) await deliver(user);
      const { c } = await login(t, user, p);
      if (round % 4 === 1) t.deepEqual(await cmd(c, 'a1b NOOP'), ['a1b OK NOOP completed.'], `round ${round}`);
      const sel = await cmd(c, `a2 SELECT ${box}`);
      t.deepEqual(stateOf(sel), await truth(user, box), `round ${round} (seed ${seed})`);
      t.is(sel.at(-1), 'a2 OK [READ-WRITE] Select completed.');
      t.is(new Set(sel).size, sel.length, 'no line twice');
      const fetched = await cmd(c, 'a3 FETCH 1:* (UID FLAGS)');
      const exists = Number(/^\* (\d+) EXISTS$/.exec(sel.find((l) => / EXISTS$/.test(l))!)![1]);
      t.is(fetched.length, exists + 1, `round ${round}`);
      t.is(fetched.at(-1), 'a3 OK Fetch completed.');
      if (round % 7 === 6) {
        await c.close();
        await sleep(50);
      } else {
        await logout(t, c);
      }
    }
  } finally {
    await p.stop();
    await splitTap.close();
  }
  const hits = splitTap.serverSaw(user).flat().filter((l) => l === 'P NOOP').length;
  t.true(hits >= 10, `the cache answered ${hits} times`);
});

// --- the session that inherits a selected mailbox ---------------------------------------------

test('a session on a connection with INBOX still selected sees nothing of it: untagged news is held back, STATUS is fresh', async (t) => {
  const user = 'user9';
  await warm(t, user);
  await deliver(user);
  const from = sawSince(user).length;
  const { c, reused } = await login(t, user);
  t.true(reused);
  // Dovecot would report the new message to the NOOP: not to a client that has nothing selected
  t.deepEqual(await cmd(c, 'b2 NOOP'), ['b2 OK NOOP completed.']);
  t.deepEqual(await cmd(c, 'b3 LIST "" INBOX'), ['* LIST (\\HasNoChildren) "/" INBOX', 'b3 OK List completed.']);
  // Dovecot answers STATUS of the selected mailbox from its old view ("[CLIENTBUG]"): unselected first
  t.deepEqual(await cmd(c, 'b4 STATUS INBOX (MESSAGES UIDNEXT)'), ['* STATUS INBOX (MESSAGES 22 UIDNEXT 23)', 'b4 OK Status completed.']);
  t.deepEqual(await cmd(c, 'b5 FETCH 1 (UID)'), ['b5 BAD No mailbox selected.']);
  const sel = await cmd(c, 'b6 SELECT INBOX');
  t.deepEqual(stateOf(sel), await truth(user));
  t.is(sel[0], '* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)', 'no [CLOSED]: nothing was selected');
  await logout(t, c);
  await assertSaw(t, user, from, ['b2 NOOP', 'b3 LIST "" INBOX', 'P UNSELECT', 'b4 STATUS INBOX (MESSAGES UIDNEXT)', 'b5 FETCH 1 (UID)', 'b6 SELECT INBOX']);
});

test('SELECT pipelined with another command is forwarded, never checked; the reply has no [CLOSED]', async (t) => {
  const user = 'user10';
  await warm(t, user);
  const from = sawSince(user).length;
  const { c } = await login(t, user);
  await c.sendRaw('a2 SELECT INBOX\r\na3 FETCH 21 (UID)\r\n');
  const lines = (await c.readUntilTagged('a3')).map(norm);
  t.is(lines[0], '* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)');
  t.deepEqual(lines.slice(-3), ['a2 OK [READ-WRITE] Select completed.', '* 21 FETCH (UID 21)', 'a3 OK Fetch completed.']);
  await logout(t, c);
  // its reply may mix with the FETCH's, so it is not cached: LOGOUT unselects
  await assertSaw(t, user, from, ['P UNSELECT', 'a2 SELECT INBOX', 'a3 FETCH 21 (UID)', 'P UNSELECT']);
});

test('the same session SELECTs again after a delivery: the NOOP\'s news reaches it, then the server\'s reply', async (t) => {
  const user = 'user11';
  await warm(t, user);
  const from = sawSince(user).length;
  const { c } = await login(t, user);
  t.true((await cmd(c, 'a2 SELECT INBOX')).includes('* 21 EXISTS'));
  await deliver(user);
  const lines = await cmd(c, 'a3 SELECT INBOX');
  const uidnext = (await truth(user)).find((l) => l.includes('UIDNEXT'))!;
  const uidvalidity = (await truth(user)).find((l) => l.includes('UIDVALIDITY'))!;
  // INBOX was selected in this session, so the news is true for it; \Recent
  // went to this session and it was told
  t.deepEqual(lines, [
    '* 22 EXISTS',
    '* 1 RECENT',
    '* OK [CLOSED] Previous mailbox closed.',
    '* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)',
    '* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.',
    '* 22 EXISTS',
    '* 0 RECENT',
    '* OK [UNSEEN 1] First unseen.',
    uidvalidity,
    uidnext,
    'a3 OK [READ-WRITE] Select completed.',
  ]);
  await logout(t, c);
  await assertSaw(t, user, from, ['P NOOP', 'P NOOP', 'a3 SELECT INBOX']);
});

test('client gone without LOGOUT: the resync keeps a current INBOX selected, and unselects one that changed', async (t) => {
  const user = 'user12';
  await warm(t, user);
  const from = sawSince(user).length;
  const a = await login(t, user);
  t.true((await cmd(a.c, 'a2 SELECT INBOX')).includes('* 21 EXISTS'));
  t.deepEqual(await cmd(a.c, 'a3 FETCH 21 (UID)'), ['* 21 FETCH (UID 21)', 'a3 OK Fetch completed.']);
  // The resync ends when the proxy has the server's answers, after the server got the commands.
  const cached = logLines(proxy, new RegExp(`LOGOUT: '${user}' from server sd`)).length;
  await a.c.close();
  await assertSaw(t, user, from, ['P NOOP', 'a3 FETCH 21 (UID)', 'P NOOP']);
  await waitForCached(proxy, user, cached + 1);
  const b = await login(t, user);
  t.true(b.reused);
  t.true((await cmd(b.c, 'b2 SELECT INBOX')).includes('* 21 EXISTS'));
  await deliver(user);
  await b.c.close();
  // the resync NOOP reports the delivery: the cached reply is gone, so is the selection
  await assertSaw(t, user, from, ['P NOOP', 'a3 FETCH 21 (UID)', 'P NOOP', 'P NOOP', 'P NOOP', 'P UNSELECT']);
  await waitForCached(proxy, user, cached + 2);
  const c = await login(t, user);
  t.true(c.reused);
  t.deepEqual(await cmd(c.c, 'c2 FETCH 1 (UID)'), ['c2 BAD No mailbox selected.']);
  t.deepEqual(stateOf(await cmd(c.c, 'c3 SELECT INBOX')), await truth(user));
  await logout(t, c.c);
});

// --- the authenticated phase -------------------------------------------------------------------

test('IDLE through the proxy (imapflow): new mail arrives as EXISTS; after login CAPABILITY is the server\'s', async (t) => {
  const user = 'user13';
  const client = await connectImapClient({ port: proxy.port, user, pass: pass(user), options: { disableAutoEnable: true } });
  try {
    // capabilities only the server has after login (the proxy's pre-login list lacks them)
    t.true(client.capabilities.has('SORT') && client.capabilities.has('MOVE') && client.capabilities.has('IDLE'), [...client.capabilities.keys()].join(' '));
    const box = await client.mailboxOpen('INBOX');
    t.is(box.exists, 21);
    const exists = new Promise<number>((resolve) => client.on('exists', (ev: { count: number }) => resolve(ev.count)));
    const idling = client.idle();
    await sleep(100);
    const uid = await deliver(user);
    t.is(await Promise.race([exists, sleep(5000).then(() => -1)]), 22);
    // the next command ends IDLE (DONE) and works
    const last = await client.fetchOne('*', { uid: true });
    t.is(last && last.uid, uid);
    await idling;
  } finally {
    await client.logout();
  }
  t.deepEqual(client.errors, []);
  const saw = tap.serverSaw(user)[0]!;
  // it learned them from the login reply's [CAPABILITY] code: no CAPABILITY of its own (issue 18)
  t.false(saw.some((l) => / CAPABILITY$/.test(l)), saw.join('\n'));
  t.true(saw.includes('DONE'), saw.join('\n'));
  // raw: CAPABILITY after login is answered by the server
  const { c } = await login(t, user);
  const caps = await cmd(c, 'a2 CAPABILITY');
  const d = await direct(user);
  t.deepEqual(caps, retag((await d.command('o2 CAPABILITY')).map(norm), 'o2', 'a2'));
  await d.close();
  await logout(t, c);
});

test('IDLE with a cached INBOX: the EXISTS it reports drops the cached reply', async (t) => {
  const user = 'user14';
  await warm(t, user);
  const { c } = await login(t, user);
  t.true((await cmd(c, 'a2 SELECT INBOX')).includes('* 21 EXISTS'));
  await c.send('a3 IDLE');
  t.is(await c.readLine(), '+ idling');
  await deliver(user);
  const pushed: string[] = [];
  while (pushed.at(-1) !== '* 22 EXISTS') pushed.push(await c.readLine());
  await c.send('DONE');
  t.is(norm((await c.readUntilTagged('a3')).at(-1)!), 'a3 OK Idle completed.');
  await logout(t, c);
  const [next] = await pageView(t, user, 'a2 SELECT INBOX');
  t.deepEqual(stateOf(next!), await truth(user));
  t.true(next!.includes('* 22 EXISTS'));
});

test('literals both ways: imapflow APPENDs a 5 MB message and fetches it back byte for byte; the server\'s "+" reaches a raw client', async (t) => {
  const user = 'user15';
  // text with 8-bit characters, a literal look-alike and a LOGOUT look-alike on every line
  const lines: string[] = [];
  for (let i = 0, size = 0; size < 5 * 1024 * 1024; i++) {
    lines.push(`line ${i} ${'0123456789abcdef'.repeat(4)} \u00e9\u00e8 {5} a LOGOUT`);
    size += lines.at(-1)!.length + 2;
  }
  const message = Buffer.from(`From: big@example.test\r\nSubject: five megabytes\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${lines.join('\r\n')}\r\n`, 'utf8');
  const client = await connectImapClient({ port: proxy.port, user, pass: pass(user), timeoutMs: 20_000 });
  try {
    const res = await client.append('INBOX', message);
    t.truthy(res && res.uid);
    await client.mailboxOpen('INBOX');
    const back = await client.fetchOne(String(res && res.uid), { source: true, size: true }, { uid: true });
    t.is(back && back.size, message.length);
    t.true(back && back.source?.equals(message), 'the same bytes');
  } finally {
    await client.logout();
  }
  t.deepEqual(client.errors, []);
  // a synchronising literal: the server's continuation is relayed, the proxy adds none
  const { c } = await login(t, user);
  const small = 'Subject: sync\r\n\r\nx\r\n';
  await c.send(`a2 APPEND INBOX {${small.length}}`);
  t.is(await c.readLine(), '+ OK');
  await c.send(small);
  t.regex(norm(await c.readLine()), /^a2 OK \[APPENDUID \d+ 23\] Append completed\.$/);
  await logout(t, c);
});

test('AUTHENTICATE inside a session: Dovecot refuses it, the session goes on; the connection is not reused', async (t) => {
  const user = 'user16';
  const { c } = await login(t, user);
  await c.send('a2 AUTHENTICATE PLAIN');
  t.is(norm(await c.readLine()), 'a2 BAD Error in IMAP command AUTHENTICATE: Unknown command.');
  t.deepEqual(await cmd(c, 'a3 NOOP'), ['a3 OK NOOP completed.']);
  await logout(t, c);
  await proxy.waitForLog(new RegExp(`Invalidating server sd \\[\\d+\\]: AUTHENTICATE inside the session`));
  const again = await login(t, user);
  t.false(again.reused);
  await logout(t, again.c);
});

test('COMPRESS=DEFLATE with the select cache: passes through (imapflow), the inherited INBOX is unselected first, never reused', async (t) => {
  const user = 'user17';
  await warm(t, user);
  const from = sawSince(user).length;
  const client = await connectImapClient({ port: proxy.port, user, pass: pass(user), options: { disableCompression: false, disableAutoEnable: true } });
  try {
    t.true((client as unknown as { _deflate?: unknown })._deflate !== undefined, 'COMPRESS is active');
    t.is((await client.mailboxOpen('INBOX')).exists, 21);
    t.is((await client.mailboxOpen('Archive')).exists, 3);
    t.is((await client.mailboxOpen('INBOX')).exists, 21);
  } finally {
    await client.logout();
  }
  t.deepEqual(client.errors, []);
  // INBOX, kept selected by the last page view, is unselected before COMPRESS:
  // after it the proxy cannot read what the server says about it
  const saw = sawSince(user, from);
  const at = saw.findIndex((l) => / COMPRESS DEFLATE$/.test(l));
  t.true(at > 0, saw.slice(0, 5).join('\n'));
  t.is(saw[at - 1], 'P UNSELECT', saw.slice(0, 5).join('\n'));
  const next = await login(t, user);
  t.false(next.reused, 'a compressed connection is never cached');
  await logout(t, next.c);
});

test('ENABLE CONDSTORE: a reply cached before it is never served after it; one cached under CONDSTORE is, and equals the server\'s', async (t) => {
  const user = 'user18';
  await warm(t, user);
  const from = sawSince(user).length;
  const { c } = await login(t, user);
  t.false((await cmd(c, 'a2 SELECT INBOX')).some((l) => l.includes('HIGHESTMODSEQ')));
  const en = await cmd(c, 'a3 ENABLE CONDSTORE');
  t.is(en.at(-1), 'a3 OK Enabled.');
  t.true(en.includes('* ENABLED CONDSTORE'));
  const replies: string[][] = [];
  for (const tag of ['a4', 'a5']) {
    const sel = await cmd(c, `${tag} SELECT INBOX`);
    t.true(sel.some((l) => /^\* OK \[HIGHESTMODSEQ \d+\]/.test(l)), sel.join('\n'));
    replies.push(sel.map((l) => l.replace(/^a\d /, 'tag ')));
  }
  // a5 from the cache: the server's a4 reply, [CLOSED] included
  t.deepEqual(replies[1], replies[0]);
  await logout(t, c);
  // not cached: the proxy logs out of it
  await assertSaw(t, user, from, ['P NOOP', 'a3 ENABLE CONDSTORE', 'a4 SELECT INBOX', 'P NOOP', 'P LOGOUT']);
  const next = await login(t, user);
  t.false(next.reused, 'ENABLE cannot be undone: the connection is not cached');
  await logout(t, next.c);
});

test.serial('AUTHENTICATE continuations inside a session reach the client and the server; SASL lines are never commands', async (t) => {
  // Dovecot refuses AUTHENTICATE after login, so a small scripted server
  // plays one that accepts it (as a server with re-authentication would).
  const fake = await startFakeServer();
  const p = await startProxy({ serverPort: fake.port, extraConf: 'enable_select_cache yes' });
  try {
    const c = await RawClient.connect(p.port);
    t.deepEqual(await c.command('a1 LOGIN fake secret'), ['a1 OK User logged in']);
    await c.send('a2 AUTHENTICATE PLAIN');
    t.is(await c.readLine(), '+ ');
    // a SASL response that reads like a LOGOUT command: data, not a command
    await c.send('x LOGOUT');
    t.deepEqual(await c.readUntilTagged('a2'), ['a2 OK [fake] authenticated again']);
    await c.send('a3 AUTHENTICATE PLAIN');
    t.is(await c.readLine(), '+ ');
    await c.send('*');
    t.deepEqual(await c.readUntilTagged('a3'), ['a3 BAD [fake] cancelled']);
    t.deepEqual(await c.command('a4 NOOP'), ['a4 OK [fake] NOOP']);
    await c.send('a5 LOGOUT');
    t.deepEqual(await c.expectClosed(), ['* BYE LOGOUT received', 'a5 OK Completed']);
    await eventually('the server lines', () => (fake.received.includes('a4 NOOP') ? true : undefined));
    const session = fake.received.slice(fake.received.findIndex((l) => /^\S+ LOGIN /.test(l)) + 1);
    t.deepEqual(session.filter((l) => !/ LOGOUT$/.test(l) || l === 'x LOGOUT'), ['a2 AUTHENTICATE PLAIN', 'x LOGOUT', 'a3 AUTHENTICATE PLAIN', '*', 'a4 NOOP']);
  } finally {
    await p.stop();
    await fake.close();
  }
});

interface FakeServer {
  port: number;
  received: string[];
  close(): Promise<void>;
}

/** IMAP enough for a login and AUTHENTICATE PLAIN with a continuation; every line received is recorded. */
async function startFakeServer(): Promise<FakeServer> {
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.write('* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN UNSELECT IDLE] fake ready\r\n');
    let buf = '';
    let authTag: string | null = null;
    s.on('data', (b: Buffer) => {
      buf += b.toString('latin1');
      let nl;
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        received.push(line);
        if (authTag !== null) {
          s.write(line === '*' ? `${authTag} BAD [fake] cancelled\r\n` : `${authTag} OK [fake] authenticated again\r\n`);
          authTag = null;
          continue;
        }
        const [tag, name = ''] = line.split(' ');
        const upper = name.toUpperCase();
        if (upper === 'LOGIN') s.write(`${tag} OK [CAPABILITY IMAP4rev1 UNSELECT IDLE] [fake] logged in\r\n`);
        else if (upper === 'AUTHENTICATE') {
          authTag = tag!;
          s.write('+ \r\n');
        } else if (upper === 'LOGOUT') s.end(`* BYE [fake]\r\n${tag} OK [fake] LOGOUT\r\n`);
        else s.write(`${tag} OK [fake] ${upper}\r\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen({ host: LOOPBACK, port: 0 }, () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
