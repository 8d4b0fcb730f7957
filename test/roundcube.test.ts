// Issue 17: a real webmail in front of the proxy. Roundcube 1.6 (Debian packages,
// PHP's built-in server, test/helpers/roundcube.ts) is clicked through over HTTP
// (test/helpers/roundcube-client.ts) once straight to Dovecot and once through our
// proxy; the mailboxes must end up the same, and page views must reuse server
// connections.
//
// Each run has its own Dovecot user with identical seeded mail, so the runs can be
// compared message by message (UID, subject, flags) and concurrent tests never
// share a server connection.
import test, { type ExecutionContext } from 'ava';
import { readStatsFile } from '@imapproxy/shared';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { eventually, loginEvents } from './helpers/proxy-log.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { roundcubeMissing, startRoundcube, type Roundcube } from './helpers/roundcube.js';
import { RoundcubeClient } from './helpers/roundcube-client.js';
import {
  DELETED_BY_OTHER_CLIENT, flagDeletedElsewhere, mailboxState, MOVED, pageView, roundcubeLogins, roundcubeWalk,
} from './helpers/roundcube-walk.js';

const missing = roundcubeMissing();
if (missing.length > 0) console.warn(`roundcube.test: Roundcube cannot run here (missing ${missing.join(', ')}); skipped. Install: bash scripts/install-system-deps.sh`);
const rcTest = missing.length > 0 ? test.skip : test;
const rcSerial = missing.length > 0 ? test.serial.skip : test.serial;

const PAGE_VIEWS = 8;

let dovecot: Dovecot;
let proxy: Proxy;
let rcDirect: Roundcube;
let rcProxied: Roundcube;

test.before(async () => {
  if (missing.length > 0) return;
  dovecot = await startDovecot({ users: 8 });
  proxy = await startProxy({ serverPort: dovecot.port });
  [rcDirect, rcProxied] = await Promise.all([
    startRoundcube({ imapPort: dovecot.port }),
    startRoundcube({ imapPort: proxy.port }),
  ]);
});

test.after.always(async () => {
  await Promise.all([rcDirect?.stop(), rcProxied?.stop()]);
  await proxy?.stop();
  await dovecot?.stop();
});

const pass = (user: string): string => dovecot.users.find((u) => u.user === user)!.pass;

/** The walk for `user` through `rc`, after another client flagged a message \Deleted; the state afterwards. */
async function walkAndState(rc: Roundcube, user: string) {
  await flagDeletedElsewhere(dovecot.port, user, pass(user));
  const outcome = await roundcubeWalk(rc.url, user, pass(user));
  return { outcome, state: await mailboxState(dovecot.port, user, pass(user)) };
}

/** The IMAP commands in Roundcube's log, without tags (ID's arguments name the HTTP request). */
function commands(imapLog: string[]): string[] {
  return imapLog.flatMap((l) => {
    const m = /\] C: \S+ (.*)$/.exec(l);
    return m ? [m[1]!.replace(/^ID \(.*$/, 'ID (...)')] : [];
  });
}

/** How Roundcube moved MOVED out of INBOX, from its IMAP log. */
function moveCommands(imapLog: string[]): string[] {
  return imapLog.filter((l) => /\] C: \S+ (UID MOVE|UID COPY|MOVE|COPY|EXPUNGE|UID EXPUNGE)\b/.test(l)).map((l) => l.replace(/^.*\] C: \S+ /, ''));
}

// Roundcube takes the server's capabilities from the tagged OK of its LOGIN (or
// AUTHENTICATE); when that had no [CAPABILITY ...], it went by our greeting, saw no
// MOVE or UIDPLUS and "moved" with UID COPY + STORE \Deleted + a plain EXPUNGE,
// which also expunged what another client had only flagged \Deleted (issue 17).
rcTest('the walk through the proxy leaves the mailboxes as the same walk straight to Dovecot: a move never expunges another message', async (t) => {
  // Roundcubes of their own, so their IMAP logs hold this walk only
  const [rcD, rcP] = await Promise.all([startRoundcube({ imapPort: dovecot.port }), startRoundcube({ imapPort: proxy.port })]);
  try {
    const [direct, proxied] = await Promise.all([walkAndState(rcD, 'user1'), walkAndState(rcP, 'user2')]);
    const [logD, logP] = [await rcD.imapLog(), await rcP.imapLog()];
    t.log('Roundcube moved, direct:', moveCommands(logD).join(' | '));
    t.log('Roundcube moved, through the proxy:', moveCommands(logP).join(' | '));
    // what the direct run shows is what a user expects to see: nothing lost
    t.is(direct.outcome.countBefore, 21);
    t.is(direct.outcome.countAfterMove, 20);
    t.is(direct.outcome.countAfter, 21);
    t.truthy(direct.state.INBOX!.find((m) => m.uid === DELETED_BY_OTHER_CLIENT && m.flags.includes('\\Deleted')));
    t.falsy(direct.state.INBOX!.find((m) => m.uid === MOVED), 'the moved message came back with a new UID');
    // through the proxy: the \Deleted message another client kept is still there ...
    t.truthy(proxied.state.INBOX!.find((m) => m.uid === DELETED_BY_OTHER_CLIENT),
      `UID ${DELETED_BY_OTHER_CLIENT} (\\Deleted by another client) was expunged by Roundcube's move through the proxy`);
    // ... and everything else is as after the direct run, as Roundcube showed it
    t.deepEqual(proxied.outcome, direct.outcome);
    t.deepEqual(proxied.state, direct.state);
    // Roundcube decided the same way: the same commands, no extra round trip
    t.deepEqual(commands(logP), commands(logD));
  } finally {
    await Promise.all([rcD.stop(), rcP.stop()]);
  }
});

rcTest('the walk through the proxy shows the same folders and counts as straight to Dovecot, and its marks land', async (t) => {
  // The part of the walk that does not depend on how Roundcube moves: every click
  // works through the proxy, and flags set by Roundcube are on the server.
  const user = 'user3';
  const outcome = await roundcubeWalk(rcProxied.url, user, pass(user));
  t.is(outcome.countBefore, 21);
  t.is(outcome.countAfterMove, 20);
  t.deepEqual([...outcome.folders].sort(), ['Archive', 'Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);
  const state = await mailboxState(dovecot.port, user, pass(user));
  const flagsOf = (uid: number): string[] => state.INBOX!.find((m) => m.uid === uid)?.flags ?? ['(missing)'];
  t.true(flagsOf(1).includes('\\Seen'), 'the preview marked UID 1 read');
  t.true(flagsOf(2).includes('\\Seen'));
  t.true(flagsOf(6).includes('\\Flagged'));
  t.false(flagsOf(8).includes('\\Seen'));
  t.is(state.Trash!.length, 0);
  t.is(state.INBOX!.length, 21);
});

/** PAGE_VIEWS page views of `user` through `rc`, between one login and one logout. */
async function pageViews(rc: Roundcube, user: string): Promise<void> {
  const c = new RoundcubeClient(rc.url);
  await c.login(user, pass(user));
  for (let i = 0; i < PAGE_VIEWS; i++) await pageView(c, 1 + (i % 20));
  await c.logout();
}

/** Roundcube's IMAP logins (from its log) and Dovecot's logins of `user` while `run` runs. */
async function logins(rc: Roundcube, user: string, run: () => Promise<void>): Promise<{ roundcube: number; dovecot: number }> {
  const rcBefore = roundcubeLogins(await rc.imapLog());
  const dovecotBefore = await dovecot.loginCount(user);
  await run();
  return { roundcube: roundcubeLogins(await rc.imapLog()) - rcBefore, dovecot: (await dovecot.loginCount(user)) - dovecotBefore };
}

rcSerial('page views through the proxy reuse one server connection; straight to Dovecot every request logs in', async (t) => {
  const direct = await logins(rcDirect, 'user4', () => pageViews(rcDirect, 'user4'));
  const proxied = await logins(rcProxied, 'user5', () => pageViews(rcProxied, 'user5'));
  t.log(`${PAGE_VIEWS} page views: direct ${direct.roundcube} Roundcube logins = ${direct.dovecot} Dovecot logins; ` +
    `through the proxy ${proxied.roundcube} Roundcube logins, ${proxied.dovecot} Dovecot logins`);
  // Roundcube logs in once per HTTP request (3 per page view here, plus login and logout)
  t.true(direct.roundcube >= 3 * PAGE_VIEWS);
  t.is(direct.dovecot, direct.roundcube);
  t.is(proxied.roundcube, direct.roundcube);
  // one request at a time: one server connection serves them all, or two: Roundcube's
  // STATUS INBOX (... HIGHESTMODSEQ) switches CONDSTORE on, and the proxy does not
  // hand such a connection to a later login (a fresh login has CONDSTORE off)
  t.true(proxied.dovecot >= 1 && proxied.dovecot <= 2, `${proxied.dovecot} Dovecot logins`);
  const events = await eventually('the proxy logged every login', () => {
    const ev = loginEvents(proxy, 'user5');
    return ev.length >= proxied.roundcube ? ev : undefined;
  });
  t.is(events.filter((e) => e.kind === 'existing').length, proxied.roundcube - proxied.dovecot);
  t.true((await rcProxied.imapLog()).some((l) => l.includes('[XPROXYREUSE]')), 'Roundcube saw the reuse notice');
});

// --- Roundcube's own cache (imap_cache + messages_cache: ENABLE QRESYNC per request)
//     and our select cache

interface CacheRun {
  roundcubeLogins: number;
  dovecotLogins: number;
  reusePct: number;
  selects: number;
  selectHits: number;
  hitPct: number;
}

/** Logins, reuses, SELECTs and select cache hits in our daemon's stats file. */
function counters(p: Proxy): { logins: number; reused: number; selects: number; hits: number } {
  const e = readStatsFile(p.statFile).extension!;
  return { logins: Number(e.clientLogins), reused: Number(e.serverConnectionsReused), selects: Number(e.selectCommands), hits: Number(e.selectCacheHits) };
}

/**
 * PAGE_VIEWS page views of a user who has read all their mail (so the page views
 * change nothing in the mailbox and every SELECT may be answered from the cache;
 * a flag change must make it miss), through ours with the select cache, counted
 * after one page view of warm-up.
 */
async function cachedRun(t: ExecutionContext, user: string, cache: boolean): Promise<CacheRun> {
  const p = await startProxy({ serverPort: dovecot.port, extraConf: 'enable_select_cache yes' });
  const rc = await startRoundcube({ imapPort: p.port, cache });
  try {
    const c = new RoundcubeClient(rc.url);
    await c.login(user, pass(user));
    await c.mark(Array.from({ length: 21 }, (_, i) => i + 1), 'read');
    // warm-up: two page views, so that connections of both kinds (Roundcube's
    // list requests ENABLE QRESYNC, its previews do not) hold a current SELECT
    await pageView(c, 1);
    await pageView(c, 1);
    const rcLogins = async (): Promise<number> => roundcubeLogins(await rc.imapLog());
    const flushed = (logins: number) => eventually('the stats flushed', () => {
      const x = counters(p);
      return x.logins >= logins ? x : undefined;
    }, 5000, () => JSON.stringify(counters(p)));
    const before = { rc: await rcLogins(), dovecot: await dovecot.loginCount(user) };
    const statsBefore = await flushed(before.rc);
    for (let i = 0; i < PAGE_VIEWS; i++) await pageView(c, 1 + (i % 20));
    const after = { rc: await rcLogins(), dovecot: await dovecot.loginCount(user) };
    const statsAfter = await flushed(after.rc);
    await c.logout();
    const d = {
      logins: statsAfter.logins - statsBefore.logins, reused: statsAfter.reused - statsBefore.reused,
      selects: statsAfter.selects - statsBefore.selects, hits: statsAfter.hits - statsBefore.hits,
    };
    const run = {
      roundcubeLogins: after.rc - before.rc, dovecotLogins: after.dovecot - before.dovecot,
      reusePct: Math.round((100 * d.reused) / d.logins), selects: d.selects, selectHits: d.hits,
      hitPct: d.selects === 0 ? 0 : Math.round((100 * d.hits) / d.selects),
    };
    t.log(`Roundcube with messages_cache ${cache ? 'on' : 'off'}, through ours with enable_select_cache: ${JSON.stringify(run)}`);
    const enables = (await rc.imapLog()).filter((l) => /\] C: \S+ ENABLE QRESYNC/.test(l)).length;
    t.is(enables > 0, cache, 'Roundcube sends ENABLE QRESYNC when (and only when) its messages_cache is on');
    return run;
  } finally {
    await rc.stop();
    await p.stop();
  }
}

rcSerial('with Roundcube\'s messages_cache and our select cache, every page view works and the walk marks land', async (t) => {
  const p = await startProxy({ serverPort: dovecot.port, extraConf: 'enable_select_cache yes' });
  const rc = await startRoundcube({ imapPort: p.port, cache: true });
  try {
    const user = 'user6';
    const outcome = await roundcubeWalk(rc.url, user, pass(user));
    t.is(outcome.countBefore, 21);
    t.is(outcome.countAfterMove, 20);
    const state = await mailboxState(dovecot.port, user, pass(user));
    t.true(state.INBOX!.find((m) => m.uid === 6)?.flags.includes('\\Flagged'));
    t.is(state.INBOX!.length, 21);
  } finally {
    await rc.stop();
    await p.stop();
  }
});

rcSerial('with messages_cache on: >= 95 % of logins reuse a server connection, >= 90 % of SELECTs hit the select cache', async (t) => {
  const run = await cachedRun(t, 'user7', true);
  t.true(run.reusePct >= 95, `reuse ${run.reusePct} %`);
  t.true(run.hitPct >= 90, `select cache hits ${run.hitPct} %`);
});

rcSerial('with Roundcube\'s cache off: >= 90 % of its SELECTs hit our select cache, and logins reuse', async (t) => {
  // Roundcube sends STATUS INBOX (... HIGHESTMODSEQ) before SELECT INBOX: the STATUS
  // must not cost the cached selection
  const run = await cachedRun(t, 'user8', false);
  t.true(run.selects >= PAGE_VIEWS, `${run.selects} SELECTs`);
  t.true(run.hitPct >= 90, `select cache hits ${run.hitPct} %`);
  t.true(run.reusePct >= 90, `reuse ${run.reusePct} %`);
});
