// Issue 18: the select cache (enable_select_cache yes) behind Dovecot, Cyrus
// and Courier with the webmail pattern (log in, SELECT INBOX, FETCH, log out,
// once per page view): it hits once the mailbox is quiet, and it is never
// stale: mail delivered between page views shows in the next SELECT. Behind
// Courier it never hit before, for its `* OK [MYRIGHTS "..."]` line.
import test from 'ava';
import { readStatsFile } from '@imapproxy/shared';
import { eventually, waitForCached } from './helpers/proxy-log.js';
import { serverMatrix, type MatrixSetup } from './helpers/server-matrix.js';
import { RawClient } from './helpers/transcript.js';

const matrix = serverMatrix({ proxyConf: 'enable_select_cache yes' });

const existsOf = (lines: string[]): number | undefined => {
  for (const l of lines) {
    const m = /^\* (\d+) EXISTS$/.exec(l);
    if (m) return Number(m[1]);
  }
  return undefined;
};

/** One page view through the proxy; returns the SELECT reply. */
async function pageView(s: MatrixSetup, user: string): Promise<string[]> {
  const c = await RawClient.connect(s.proxy.port, { timeoutMs: 10_000 });
  try {
    const r = await c.command(`a1 LOGIN ${user} ${user.replace('user', 'pass')}`);
    if (!/^a1 OK/.test(r.at(-1)!)) throw new Error(c.describe());
    const sel = await c.command('a2 SELECT INBOX');
    if (!/^a2 OK/.test(sel.at(-1)!)) throw new Error(c.describe());
    const fetch = await c.command('a3 UID FETCH 1:5 (UID FLAGS RFC822.SIZE)');
    if (!/^a3 OK/.test(fetch.at(-1)!)) throw new Error(c.describe());
    await c.command('a4 LOGOUT');
    return sel;
  } finally {
    await c.close();
    await waitForCached(s.proxy, user, pagesOf.get(`${s.kind}/${user}`)! + 1, 10_000);
    pagesOf.set(`${s.kind}/${user}`, pagesOf.get(`${s.kind}/${user}`)! + 1);
  }
}
const pagesOf = new Map<string, number>();

async function deliverDirect(s: MatrixSetup, user: string): Promise<void> {
  const d = await RawClient.connect(s.server.port);
  try {
    await d.command(`d1 LOGIN ${user} ${user.replace('user', 'pass')}`);
    const msg = 'Subject: new mail\r\n\r\nbetween page views\r\n';
    await d.sendRaw(`d2 APPEND INBOX {${msg.length}}\r\n`);
    await d.readLine();
    await d.sendRaw(`${msg}\r\n`);
    const r = await d.readUntilTagged('d2');
    if (!/^d2 OK/.test(r.at(-1)!)) throw new Error(d.describe());
    await d.command('d9 LOGOUT');
  } finally {
    await d.close();
  }
}

/** The counters once they count every SELECT so far (the stats file is written now and then). */
function stats(s: MatrixSetup, selects: number): Promise<{ hits: number; misses: number }> {
  return eventually('the select counters', () => {
    const st = readStatsFile(s.proxy.statFile);
    return st.totalSelectCommands >= selects ? { hits: st.selectCacheHits, misses: st.selectCacheMisses } : undefined;
  }, 10_000, () => JSON.stringify(readStatsFile(s.proxy.statFile)));
}

matrix.test('webmail page views: the select cache hits once the mailbox is quiet, and a delivery is never hidden', async (t, s) => {
  const user = 'user1';
  pagesOf.set(`${s.kind}/${user}`, 0);
  const first = await pageView(s, user);
  const count = existsOf(first)!;
  // the first SELECTs clear RECENT; after that the reply can be kept
  for (let i = 0; i < 4; i++) await pageView(s, user);
  const warm = await stats(s, 5);
  t.true(warm.hits >= 2, `${s.kind}: hits after 5 quiet page views: ${JSON.stringify(warm)}`);
  await deliverDirect(s, user);
  const after = await pageView(s, user);
  t.is(existsOf(after), count + 1, `the new message shows at once: ${after.join(' | ')}`);
  // and then it hits again
  for (let i = 0; i < 3; i++) await pageView(s, user);
  const end = await stats(s, 9);
  t.true(end.hits > warm.hits, JSON.stringify(end));
  t.log(`${s.kind}: ${end.hits} select cache hits in 9 page views (${Math.round((100 * end.hits) / 9)} %)`);
});
