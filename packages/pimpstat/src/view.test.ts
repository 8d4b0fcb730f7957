import test from 'ava';
import { StatsRegistry, decodeStats, encodeStats } from '@imapproxy/shared';
import { buildView, chartWindow, duration, niceCeiling, reuseRate, type DashboardInput } from './view.js';

process.env.TZ = 'UTC';

function input(overrides: Partial<DashboardInput> = {}): DashboardInput {
  const reg = new StatsRegistry(1700000000);
  for (let i = 0; i < 23; i++) reg.clientOpened();
  for (let i = 0; i < 6; i++) reg.clientClosed();
  for (let i = 0; i < 12; i++) reg.activeChanged(1);
  for (let i = 0; i < 3; i++) reg.activeChanged(-1);
  for (let i = 0; i < 15; i++) reg.cachedChanged(1);
  for (let i = 0; i < 11; i++) reg.cachedChanged(-1);
  for (let i = 0; i < 5; i++) reg.loginSucceeded('new');
  for (let i = 0; i < 14; i++) reg.loginSucceeded('reused');
  for (let i = 0; i < 31; i++) reg.selectCommand(true);
  for (let i = 0; i < 8; i++) reg.selectCommand(false);
  reg.loginFailed();
  reg.evicted();
  reg.expired();
  reg.expired();
  reg.resync(true);
  const snap = reg.snapshot();
  snap.extension!.writerPid = 4242;
  return {
    settings: { statFile: '/run/imapproxy/pimpstats', configFile: '/etc/imapproxy.conf', selectCacheEnabled: true, cacheSize: 26 },
    stats: decodeStats(encodeStats(snap)),
    nowMs: (1700000000 + 3 * 3600 + 62) * 1000,
    liveness: { state: 'live' },
    readError: null,
    rates: [
      { atMs: (1700000000 + 3 * 3600 + 61) * 1000, loginsPerSecond: 3, reusesPerSecond: 2 },
      { atMs: (1700000000 + 3 * 3600 + 62) * 1000, loginsPerSecond: 4.5, reusesPerSecond: 1 },
    ],
    rateWindowMs: 300_000,
    ...overrides,
  };
}

test('every figure of the original, in the original order and meaning', (t) => {
  const v = buildView(input());
  t.deepEqual(v.counters, [
    'Server start  Tue Nov 14 22:13:20 2023',
    'Last reset    Tue Nov 14 22:13:20 2023',
    '',
    '                         current      peak',
    'CLIENT CONNECTIONS            17        23',
    'ACTIVE SERVER CONNS            9        12',
    'CACHED SERVER CONNS            4        15',
    '',
    'CONNECTION TOTALS',
    ' client connections accepted            23',
    ' client logins                          19',
    ' server connections created              5',
    ' server connection reuses               14',
    ' client:server login ratio        3.80 : 1',
    ' reuse hit rate                     73.7 %',
    '',
    'SELECT CACHE TOTALS',
    ' hit:        31    miss:         8',
  ]);
  t.true(v.counters.every((l) => l.length <= 42));
  t.is(v.header, ' pimpstat  /run/imapproxy/pimpstats  up 3:01:02  pid 4242  [live]');
  t.is(v.banner, null);
  t.is(v.footer, ' q quit  r reset  ? help   config /etc/imapproxy.conf   01:14:22');
});

test('select cache disabled in the config pimpstat read', (t) => {
  const base = input();
  const v = buildView({ ...base, settings: { ...base.settings, selectCacheEnabled: false } });
  t.deepEqual(v.counters.slice(-2), ['', 'SELECT CACHE NOT ENABLED']);
});

test('extension counters, pool gauge and chart data', (t) => {
  const v = buildView(input());
  t.deepEqual(v.events, [
    'login failures                1',
    'connect failures              0',
    'evicted / expired         1 / 2',
    'invalidated                   0',
    'resyncs ok / failed       1 / 0',
  ]);
  t.deepEqual(v.gauge, { fraction: 0.5, label: 'pool 13 of 26 (50%)', detail: '9 active + 4 cached' });
  t.deepEqual(v.chart, {
    title: 'logins/s 4.5  reuses/s 1.0',
    window: 'last 1 s',
    labels: ['-0:01', 'now'],
    logins: [3, 4.5],
    reuses: [2, 1],
    maxY: 5,
  });
});

test('a C-only file, N/A ratio, no logins', (t) => {
  const reg = new StatsRegistry(1700000000);
  reg.clientOpened();
  const stats = decodeStats(encodeStats({ ...reg.snapshot(), extension: null }));
  const v = buildView(input({ stats, liveness: { state: 'unknown' }, rates: [] }));
  // The C's N/A field is ten spaces and N/A, where the number of "%9.2f : 1" would be.
  t.is(v.counters[13], ' client:server login ratio             N/A');
  t.is(v.counters[13]!.length, 42);
  t.is(v.counters[14], ' reuse hit rate                        N/A');
  t.deepEqual(v.events, ['72-byte file of the C daemon:', 'no extension counters']);
  t.is(v.header, ' pimpstat  /run/imapproxy/pimpstats  up 3:01:02  [C layout]');
  t.is(v.chart.maxY, 1);
});

test('banners: stale file, read error', (t) => {
  const stale = buildView(input({ liveness: { state: 'stale', sinceMs: 12_400 } }));
  t.is(stale.banner, 'STALE: stats file not rewritten for 12 s; imapproxyd stopped or hung?');
  t.regex(stale.header, /\[STALE\]$/);
  const error = buildView(input({ readError: 'cannot open stats file /x: no such file' }));
  t.is(error.banner, 'READ ERROR: cannot open stats file /x: no such file');
  t.regex(error.header, /\[READ ERROR\]$/);
});

test('helpers: duration, reuse rate, nice ceiling', (t) => {
  t.is(duration(59), '59 s');
  t.is(duration(245), '4:05');
  t.is(duration(3 * 3600 + 62), '3:01:02');
  t.is(duration(2 * 86400 + 3 * 3600 + 4 * 60 + 5), '2d 03:04:05');
  t.is(reuseRate(0, 0), 'N/A');
  t.is(reuseRate(1, 3), '75.0 %');
  t.deepEqual([0, 0.5, 0.95, 1, 4.5, 9.2, 45, 120].map(niceCeiling), [1, 1, 2, 2, 5, 20, 50, 200]);
});

test('the chart says the span it covers: seconds, then m:ss, then the full window', (t) => {
  t.is(chartWindow(0, 300_000), 'last 0 s');
  t.is(chartWindow(12_400, 300_000), 'last 12 s');
  t.is(chartWindow(125_000, 300_000), 'last 2:05 min');
  t.is(chartWindow(299_500, 300_000), 'last 5 min');
  t.is(chartWindow(400_000, 300_000), 'last 5 min');
});
