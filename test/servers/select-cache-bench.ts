// The select cache behind each IMAP server with the bench's webmail page view
// (LOGIN, SELECT INBOX, UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE), LOGOUT):
// N users browsing concurrently through ours (enable_select_cache yes), P page
// views each; prints hits and misses per server from the stats file. Run by
// bench/servers-select-cache.sh; not a test.
import { readStatsFile } from '@imapproxy/shared';
import { SERVER_KINDS, serverMissing, startImapServer } from '../helpers/imap-servers.js';
import { startProxy } from '../helpers/proxy.js';
import { waitForCached } from '../helpers/proxy-log.js';
import { RawClient } from '../helpers/transcript.js';

const USERS = Number(process.env.USERS ?? 4);
const PAGES = Number(process.env.PAGES ?? 25);

console.log(`| server | page views | SELECTs | hits | misses | hit rate | reuse of logins |`);
console.log(`|---|---|---|---|---|---|---|`);
for (const kind of SERVER_KINDS) {
  const missing = serverMissing(kind);
  if (missing !== null) {
    console.log(`| ${kind} | skipped: ${missing} | | | | | |`);
    continue;
  }
  const server = await startImapServer(kind, { users: USERS });
  const proxy = await startProxy({ serverPort: server.port, extraConf: 'enable_select_cache yes' });
  try {
    await Promise.all(Array.from({ length: USERS }, async (_, u) => {
      const user = `user${u + 1}`;
      for (let p = 0; p < PAGES; p++) {
        const c = await RawClient.connect(proxy.port, { timeoutMs: 10_000 });
        await c.command(`a1 LOGIN ${user} pass${u + 1}`);
        await c.command('a2 SELECT INBOX');
        await c.command('a3 UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE)');
        await c.command('a4 LOGOUT');
        await c.close();
        // the next page view comes once the connection is back in the pool (as a webmail's next request would, later)
        await waitForCached(proxy, user, p + 1, 10_000);
      }
    }));
    let st = readStatsFile(proxy.statFile);
    for (let i = 0; i < 100 && st.totalSelectCommands < USERS * PAGES; i++) {
      await new Promise((r) => setTimeout(r, 100));
      st = readStatsFile(proxy.statFile);
    }
    const reused = st.totalServerConnectionsReused;
    const logins = st.totalClientLogins;
    console.log(`| ${kind} | ${USERS * PAGES} | ${st.totalSelectCommands} | ${st.selectCacheHits} | ${st.selectCacheMisses} | ${((100 * st.selectCacheHits) / Math.max(1, st.totalSelectCommands)).toFixed(1)} % | ${((100 * reused) / Math.max(1, logins)).toFixed(1)} % |`);
  } finally {
    await proxy.stop();
    await server.stop();
  }
}
process.exit(0);
