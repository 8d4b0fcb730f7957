// The fuzz driver (test/fuzz/driver.ts) in short form for CI: 20,000 mutated
// client inputs, before and after login, through our daemon in front of a real
// Dovecot. The daemon must not crash or log an internal error, its RSS must
// stay bounded and a normal login must work afterwards. The long form
// (>= 1,000,000 inputs) is bench/fuzz.sh.
import test from 'ava';
import { fuzzSummary, runFuzz } from './fuzz/driver.js';
import { scaled } from './helpers/wait.js';

test('fuzz: 20,000 mutated inputs before and after login: no crash, bounded RSS, a normal login works afterwards', async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
  // 80 s at most on a quiet machine (it needs ~20); a loaded one gets longer for the
  // same 20,000 inputs, and ava's timeout follows
  const maxSeconds = Math.round(scaled(80_000) / 1000);
  t.timeout((maxSeconds + 60) * 1000);
  const r = await runFuzz({ inputs: Number(process.env.FUZZ_INPUTS ?? 20_000), maxSeconds, connections: 6, batch: 24, seed, rssLimitMb: 200 });
  t.log(fuzzSummary(r));
  t.is(r.crashes, 0, fuzzSummary(r));
  t.is(r.internalErrors, 0);
  t.true(r.loginWorksAfter);
  t.true(r.peakRssKb < 200 * 1024, `peak RSS ${r.peakRssKb} KiB`);
  t.true(r.inputs >= Math.min(20_000, Number(process.env.FUZZ_INPUTS ?? 20_000)), `only ${r.inputs} inputs within the time limit`);
  t.true(r.preauthInputs > 1000 && r.postauthInputs > 1000);
});
