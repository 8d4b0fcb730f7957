import test from 'ava';
import { StatsRegistry, decodeStats, encodeStats, type DecodedStats } from '@imapproxy/shared';
import { LivenessTracker } from './liveness.js';
import { RateHistory } from './rates.js';

function read(reg: StatsRegistry, opts: { cOnly?: boolean; generation?: number; flushedAtMs?: number } = {}): DecodedStats {
  const snap = reg.snapshot();
  if (opts.generation !== undefined) snap.extension!.generation = opts.generation;
  if (opts.flushedAtMs !== undefined) snap.extension!.flushedAtMs = opts.flushedAtMs;
  return decodeStats(encodeStats(opts.cOnly ? { ...snap, extension: null } : snap));
}

test('rates: per-second increase of logins and reuses between reads', (t) => {
  const reg = new StatsRegistry(1000);
  const h = new RateHistory(60_000);
  h.add(read(reg), 0);
  t.deepEqual(h.points(), []);
  for (let i = 0; i < 6; i++) reg.loginSucceeded(i < 2 ? 'new' : 'reused');
  h.add(read(reg), 2000); // 6 logins, 4 reuses in 2 s
  reg.loginSucceeded('reused');
  h.add(read(reg), 3000);
  t.deepEqual(h.points(), [
    { atMs: 2000, loginsPerSecond: 3, reusesPerSecond: 2 },
    { atMs: 3000, loginsPerSecond: 1, reusesPerSecond: 1 },
  ]);
});

test('rates: a counter reset counts what happened since; a restart clears the history', (t) => {
  const reg = new StatsRegistry(1000);
  const h = new RateHistory(60_000);
  for (let i = 0; i < 10; i++) reg.loginSucceeded('reused');
  h.add(read(reg), 0);
  reg.resetCounters(1001);
  reg.loginSucceeded('new');
  reg.loginSucceeded('reused');
  h.add(read(reg), 1000);
  t.deepEqual(h.points(), [{ atMs: 1000, loginsPerSecond: 2, reusesPerSecond: 1 }]);
  const restarted = new StatsRegistry(5000);
  h.add(read(restarted), 2000);
  t.deepEqual(h.points(), []);
});

test('rates: C-only files use the 32-bit totals; old points leave the window', (t) => {
  const reg = new StatsRegistry(1000);
  const h = new RateHistory(2500);
  h.add(read(reg, { cOnly: true }), 0);
  for (let s = 1; s <= 4; s++) {
    reg.loginSucceeded('new');
    h.add(read(reg, { cOnly: true }), s * 1000);
  }
  t.deepEqual(
    h.points().map((p) => p.atMs),
    [2000, 3000, 4000],
  );
  t.true(h.points().every((p) => p.loginsPerSecond === 1 && p.reusesPerSecond === 0));
});

test('liveness: live while the generation moves, stale after 5 s without a change', (t) => {
  const reg = new StatsRegistry(1000);
  const l = new LivenessTracker(5000);
  t.deepEqual(l.observe(read(reg, { generation: 2, flushedAtMs: 10_000 }), 10_500), { state: 'live' });
  t.deepEqual(l.observe(read(reg, { generation: 4, flushedAtMs: 12_000 }), 12_100), { state: 'live' });
  t.deepEqual(l.observe(read(reg, { generation: 4, flushedAtMs: 12_000 }), 17_000), { state: 'live' });
  t.deepEqual(l.observe(read(reg, { generation: 4, flushedAtMs: 12_000 }), 17_200), { state: 'stale', sinceMs: 5100 });
  t.deepEqual(l.current(20_100), { state: 'stale', sinceMs: 8000 });
  t.deepEqual(l.observe(read(reg, { generation: 6, flushedAtMs: 20_000 }), 20_200), { state: 'live' });
});

test('liveness: a file left by a dead daemon is stale at the first look', (t) => {
  const reg = new StatsRegistry(1000);
  const l = new LivenessTracker(5000);
  t.deepEqual(l.observe(read(reg, { generation: 8, flushedAtMs: 1_000 }), 61_000), { state: 'stale', sinceMs: 60_000 });
});

test('liveness: unknown for a C-only file (no heartbeat)', (t) => {
  const l = new LivenessTracker(5000);
  t.deepEqual(l.observe(read(new StatsRegistry(1), { cOnly: true }), 99_000), { state: 'unknown' });
  t.deepEqual(l.current(199_000), { state: 'unknown' });
});
