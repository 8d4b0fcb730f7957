// The soak in short form (issue 8, part 5): 40 clients of 20 users through the
// proxy in front of a real Dovecot, random commands, pipelining, IDLE and
// drops; every client checks that every reply belongs to it (test/soak/soak.ts).
// ~15 s in all: half with the select cache off, half with it on (a cached
// connection may then keep a mailbox selected, which the next session must
// never notice). The long form is bench/soak.sh.
import test from 'ava';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { isAlive } from './helpers/process-tree.js';
import { startProxy } from './helpers/proxy.js';
import { rssSampler, statsWhen } from './helpers/reliability.js';
import { RawClient } from './helpers/transcript.js';
import { scaled } from './helpers/wait.js';
import { runSoak, soakSummary } from './soak/soak.js';

let dovecot: Dovecot;

test.before(async () => {
  dovecot = await startDovecot({ users: 20 });
});

test.after.always(async () => {
  await dovecot?.stop();
});

for (const selectCache of [false, true]) {
  test.serial(`soak: 40 clients, 20 users, random commands, pipelining and drops, select cache ${selectCache ? 'on' : 'off'}: no reply reaches the wrong session`, async (t) => {
    const proxy = await startProxy({ serverPort: dovecot.port, extraConf: `enable_select_cache ${selectCache ? 'yes' : 'no'}` });
    try {
      const seed = Number(process.env.SOAK_SEED ?? Date.now() % 100_000);
      // 7.5 s on a quiet machine; a loaded one gets longer to do the same amount of work,
      // which the checks below ask for (in counts, not rates)
      const quietMs = Number(process.env.SOAK_MS ?? 7500);
      const durationMs = process.env.SOAK_MS ? quietMs : scaled(quietMs);
      const rss = rssSampler(proxy.pid, 250);
      const r = await runSoak({
        port: proxy.port,
        users: Array.from({ length: 20 }, (_, i) => ({ user: `user${i + 1}`, pass: `pass${i + 1}` })),
        clients: 40,
        durationMs,
        seed,
      });
      const peak = rss.stop();
      t.log(`seed ${seed}: ${soakSummary(r)}; peak RSS ${(peak / 1024).toFixed(0)} MiB`);
      t.is(r.foreign, 0, r.foreignSamples.join('\n'));
      t.is(r.hangs, 0, r.errors.join('\n'));
      t.is(r.errorCount, 0, r.errors.join('\n'));
      t.true(r.logins > 10 * (quietMs / 1000), `only ${r.logins} logins in ${durationMs} ms`);
      t.true(r.drops > 5, `only ${r.drops} drops`);
      t.true(r.reused / r.logins > 0.5, `reuse ${r.reused}/${r.logins}`);
      t.true(peak < 256 * 1024, `peak RSS ${peak} KiB`);
      t.true(isAlive(proxy.pid));
      // every session over: nothing in use, no gauge went below zero
      const s = await statsWhen(proxy.statFile, (x) => x.currentClientConnections === 0 && x.inUseServerConnections === 0, 20_000);
      t.is(s.extension!.gaugeUnderflows, 0);
      const c = await RawClient.connect(proxy.port);
      t.is((await c.command('z1 LOGIN user1 pass1')).at(-1), 'z1 OK User logged in');
      await c.close();
    } finally {
      await proxy.stop();
    }
  });
}
