// The select cache with the page views of a webmail like Roundcube, which
// sends STATUS INBOX before SELECT INBOX (issue 17): the STATUS of the mailbox
// a previous session left selected runs on that selection once a NOOP showed
// it current, so the SELECT after it still hits; every answer equals what a
// fresh direct login gets, also when mail arrives between page views.
import test from 'ava';
import { readStatsFile } from '@imapproxy/shared';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { eventually, waitForCached } from './helpers/proxy-log.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { normaliseProbeLine } from './helpers/session-scripts.js';
import { RawClient } from './helpers/transcript.js';

let dovecot: Dovecot;
let proxy: Proxy;

test.before(async () => {
  dovecot = await startDovecot({ users: 2 });
  proxy = await startProxy({ serverPort: dovecot.port, extraConf: 'enable_select_cache yes' });
});

test.after.always(async () => {
  await proxy?.stop();
  await dovecot?.stop();
});

const PAGE = ['a2 STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)', 'a3 STATUS Archive (MESSAGES)', 'a4 SELECT INBOX', 'a5 UID FETCH 1:3 (FLAGS)'];

async function page(port: number, user: string): Promise<string[]> {
  const c = await RawClient.connect(port);
  const login = await c.command(`a1 LOGIN ${user} ${user.replace('user', 'pass')}`);
  if (!login.at(-1)?.startsWith('a1 OK')) throw new Error(login.join('\n'));
  const out: string[] = [];
  for (const line of PAGE) out.push(...(await c.command(line)).map(normaliseProbeLine));
  await c.send('a9 LOGOUT');
  await c.expectClosed();
  return out;
}

async function deliver(user: string): Promise<void> {
  const c = await RawClient.connect(dovecot.port);
  await c.command(`d1 LOGIN ${user} ${user.replace('user', 'pass')}`);
  const message = 'Subject: new mail\r\n\r\nhello\r\n';
  await c.sendRaw(`d2 APPEND INBOX {${message.length}+}\r\n${message}\r\n`);
  await c.readUntilTagged('d2');
  await c.command('d3 LOGOUT');
  await c.close();
}

test('STATUS before SELECT (Roundcube): the SELECT still hits, and every page equals a fresh direct login', async (t) => {
  const user = 'user1';
  const hitsBefore = readStatsFile(proxy.statFile).selectCacheHits;
  for (let i = 1; i <= 10; i++) {
    if (i === 6) await deliver(user);
    const through = await page(proxy.port, user);
    await waitForCached(proxy, user, i);
    const direct = await page(dovecot.port, user);
    t.deepEqual(through, direct, `page ${i}`);
    if (i === 6) t.regex(through.find((l) => l.startsWith('* STATUS INBOX')) ?? '', /MESSAGES 22 .*UIDNEXT 23/);
  }
  // Misses: page 1 (its SELECT claims \Recent: `* 21 RECENT` is not kept), page 2
  // (fills the cache), page 6 (new mail), and 7 when page 6's SELECT was the one
  // that claimed the new message's \Recent (the check's NOOP usually is).
  const stats = await eventually('6 hits counted', () => {
    const s = readStatsFile(proxy.statFile);
    return s.selectCacheHits - hitsBefore >= 6 ? s : undefined;
  }, 10_000, () => JSON.stringify(readStatsFile(proxy.statFile)));
  t.true(stats.selectCacheHits - hitsBefore >= 6);
});
