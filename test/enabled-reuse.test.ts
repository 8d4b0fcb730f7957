// Reuse with ENABLE (issue 17): a server connection whose session switched
// extensions on is cached, and serves only a later session whose first command
// switches the same ones on the same way (Roundcube's ENABLE QRESYNC with its
// message cache, or its STATUS ... HIGHESTMODSEQ). That session sees exactly
// what a fresh direct login sees; a session that asks for nothing, or for
// something else, gets another connection.
import test, { type ExecutionContext } from 'ava';
import { lastSd, verdict } from './helpers/connection-verdict.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { normaliseProbeLine } from './helpers/session-scripts.js';
import { RawClient } from './helpers/transcript.js';

let dovecot: Dovecot;
let proxy: Proxy;

test.before(async () => {
  dovecot = await startDovecot({ users: 6 });
  proxy = await startProxy({ serverPort: dovecot.port });
  // The probe's keyword exists before the first comparison, so every SELECT lists it.
  for (let i = 1; i <= 6; i++) await session(dovecot.port, `user${i}`, ['SELECT INBOX', 'STORE 1 +FLAGS ($Probe)', 'STORE 1 -FLAGS ($Probe)']);
});

test.after.always(async () => {
  await proxy?.stop();
  await dovecot?.stop();
});

const pass = (user: string): string => user.replace('user', 'pass');
const tagless = (lines: string[], tag: string): string[] => lines.map((l) => normaliseProbeLine(l).replace(new RegExp(`^${tag} `), 'T '));

/** A session of `user` on `port` running `lines` (each answered before the next), then LOGOUT; its replies, tags made alike. */
async function session(port: number, user: string, lines: string[]): Promise<string[][]> {
  const c = await RawClient.connect(port);
  const login = await c.command(`x1 LOGIN ${user} ${pass(user)}`);
  if (!login.at(-1)?.startsWith('x1 OK')) throw new Error(login.join('\n'));
  const out: string[][] = [];
  for (const [i, line] of lines.entries()) out.push(tagless(await c.command(`y${i} ${line}`), `y${i}`));
  await c.send('x9 LOGOUT');
  await c.expectClosed();
  return out;
}

async function firstThrough(t: ExecutionContext, user: string, lines: string[]): Promise<void> {
  const from = proxy.log().length;
  await session(proxy.port, user, lines);
  const v = await verdict(proxy, user, lastSd(proxy, user), from);
  t.is(v.outcome, 'cached', v.line);
}

const PAGE = ['SELECT INBOX', 'UID FETCH 1:2 (FLAGS)', 'STORE 1 +FLAGS ($Probe)', 'STORE 1 -FLAGS ($Probe)', 'UNSELECT'];

for (const [what, first] of [
  ['ENABLE QRESYNC (Roundcube with its message cache)', 'ENABLE QRESYNC'],
  ['ENABLE CONDSTORE', 'ENABLE CONDSTORE'],
  ['STATUS ... HIGHESTMODSEQ, CONDSTORE implicitly (Roundcube)', 'STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)'],
] as const) {
  test(`${what}: the next session with the same first command reuses the connection and sees what a fresh login sees`, async (t) => {
    const user = `user${['ENABLE QRESYNC', 'ENABLE CONDSTORE'].indexOf(first) + 2}`;
    await firstThrough(t, user, [first, 'SELECT INBOX', 'UNSELECT']);
    const logins = await dovecot.loginCount(user);
    const through = await session(proxy.port, user, [first, ...PAGE]);
    t.is(await dovecot.loginCount(user), logins, 'no new server login');
    t.regex(proxy.log().filter((l) => l.includes(`LOGIN: '${user}'`)).at(-1) ?? '', /on existing sd/);
    const direct = await session(dovecot.port, user, [first, ...PAGE]);
    t.deepEqual(through, direct);
    t.true(through.flat().some((l) => /MODSEQ/.test(l)), 'the extension is on, as it is directly');
  });
}

test('a session whose first command asks for nothing (or for other extensions) never gets a connection with extensions on', async (t) => {
  const user = 'user5';
  await firstThrough(t, user, ['ENABLE QRESYNC']);
  const qresync = lastSd(proxy, user);
  for (const first of ['NOOP', 'ENABLE CONDSTORE', 'ENABLE QRESYNC CONDSTORE', 'STATUS INBOX (HIGHESTMODSEQ)', 'ENABLE QRESYNC']) {
    const through = await session(proxy.port, user, [first, ...PAGE]);
    const sd = lastSd(proxy, user);
    if (first === 'ENABLE QRESYNC') t.is(sd, qresync, 'the same ENABLE gets it');
    else t.not(sd, qresync, `${first}: not the QRESYNC connection`);
    t.deepEqual(through, await session(dovecot.port, user, [first, ...PAGE]), first);
  }
});
