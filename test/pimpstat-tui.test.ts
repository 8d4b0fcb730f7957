// The dashboard rendered headless: a blessed screen over PassThrough streams with a fixed size,
// checked for what a person would read on it.
import test from 'ava';
import { PassThrough } from 'node:stream';
import { StatsRegistry, decodeStats, encodeStats, type DecodedStats } from '@imapproxy/shared';
import { Dashboard, createScreen, screenText } from '@imapproxy/pimpstat/tui';
import { buildView, type DashboardInput } from '@imapproxy/pimpstat/view';
import { waitUntil } from './helpers/wait.js';

process.env.TZ = 'UTC';

type Output = PassThrough & { columns: number; rows: number; isTTY: boolean };

function headless(columns: number, rows: number, ascii: boolean) {
  const output = new PassThrough() as Output;
  output.columns = columns;
  output.rows = rows;
  output.isTTY = true;
  const written: Buffer[] = [];
  output.on('data', (chunk: Buffer) => written.push(chunk));
  const input = new PassThrough();
  const screen = createScreen({ input, output, ascii, terminal: 'xterm-256color' });
  const dashboard = new Dashboard(screen, { ascii });
  return {
    screen,
    dashboard,
    text: () => screenText(screen),
    written: () => Buffer.concat(written),
    resize(c: number, r: number) {
      output.columns = c;
      output.rows = r;
      output.emit('resize');
    },
    destroy() {
      dashboard.destroy();
      screen.destroy();
    },
  };
}

function knownStats(): DecodedStats {
  const reg = new StatsRegistry(1700000000);
  const times = (n: number, f: () => void): void => {
    for (let i = 0; i < n; i++) f();
  };
  times(23, () => reg.clientOpened());
  times(6, () => reg.clientClosed());
  times(12, () => reg.activeChanged(1));
  times(3, () => reg.activeChanged(-1));
  times(15, () => reg.cachedChanged(1));
  times(11, () => reg.cachedChanged(-1));
  times(5, () => reg.loginSucceeded('new'));
  times(14, () => reg.loginSucceeded('reused'));
  times(31, () => reg.selectCommand(true));
  times(8, () => reg.selectCommand(false));
  times(2, () => reg.loginFailed());
  times(4, () => reg.evicted());
  const snap = reg.snapshot();
  snap.extension!.writerPid = 4242;
  return decodeStats(encodeStats(snap));
}

function input(overrides: Partial<DashboardInput> = {}): DashboardInput {
  const now = (1700000000 + 3600) * 1000;
  return {
    settings: {
      statFile: '/run/imapproxy/pimpstats',
      configFile: '/etc/imapproxy.conf',
      selectCacheEnabled: false,
      cacheSize: 26,
    },
    stats: knownStats(),
    nowMs: now,
    liveness: { state: 'live' },
    readError: null,
    rates: Array.from({ length: 30 }, (_, i) => ({
      atMs: now - (29 - i) * 1000,
      loginsPerSecond: i % 5,
      reusesPerSecond: (i % 5) / 2,
    })),
    rateWindowMs: 300_000,
    ...overrides,
  };
}

function row(lines: string[], fragment: string): string {
  const found = lines.find((l) => l.includes(fragment));
  if (found === undefined) throw new Error(`no row contains ${JSON.stringify(fragment)}:\n${lines.join('\n')}`);
  return found;
}

/** Every figure of the original is on screen with its exact value. */
function assertFigures(t: import('ava').ExecutionContext, lines: string[], state = 'live'): void {
  t.regex(row(lines, 'Server start'), /Server start  Tue Nov 14 22:13:20 2023/);
  t.regex(row(lines, 'Last reset'), /Last reset    Tue Nov 14 22:13:20 2023/);
  t.regex(row(lines, 'CLIENT CONNECTIONS'), /CLIENT CONNECTIONS +17 +23/);
  t.regex(row(lines, 'ACTIVE SERVER CONNS'), /ACTIVE SERVER CONNS +9 +12/);
  t.regex(row(lines, 'CACHED SERVER CONNS'), /CACHED SERVER CONNS +4 +15/);
  t.regex(row(lines, 'client connections accepted'), /client connections accepted +23\b/);
  t.regex(row(lines, 'client logins'), /client logins +19\b/);
  t.regex(row(lines, 'server connections created'), /server connections created +5\b/);
  t.regex(row(lines, 'server connection reuses'), /server connection reuses +14\b/);
  t.true(row(lines, 'login ratio').includes(' client:server login ratio        3.80 : 1'));
  t.regex(row(lines, 'reuse hit rate'), /reuse hit rate +73\.7 %/);
  t.truthy(row(lines, 'SELECT CACHE NOT ENABLED'));
  t.regex(row(lines, 'pimpstat  /run/imapproxy/pimpstats'), new RegExp(`up 1:00:00  pid 4242  \\[${state}\\]`));
  t.regex(row(lines, 'pool 13 of 26'), /pool 13 of 26 \(50%\)/);
  t.regex(row(lines, 'active + '), /9 active \+ 4 cached/);
  t.regex(row(lines, 'login failures'), /login failures +2\b/);
  t.regex(row(lines, 'evicted / expired'), /evicted \/ expired +4 \/ 0\b/);
  t.regex(row(lines, 'logins/s'), /logins\/s 4\.0  reuses\/s 2\.0/);
  t.regex(row(lines, 'q quit'), /q quit  r reset  \? help/);
}

test('80x24, UTF-8: every figure visible, inside the screen, with box drawing', (t) => {
  const h = headless(80, 24, false);
  h.dashboard.show(buildView(input()));
  const lines = h.text();
  t.is(lines.length, 24);
  t.true(lines.every((l) => l.length === 80));
  assertFigures(t, lines);
  t.true(lines[1]!.startsWith('┌─ imapproxy counters '));
  t.true(lines[22]!.startsWith('└'));
  h.destroy();
});

test('after a resize to 120x40 the layout follows and nothing is lost', (t) => {
  const h = headless(80, 24, false);
  h.dashboard.show(buildView(input()));
  const before = h.text();
  h.resize(120, 40);
  const lines = h.text();
  t.is(lines.length, 40);
  t.true(lines.every((l) => l.length === 120));
  assertFigures(t, lines);
  // The right column now spans to column 120 and the chart got the extra rows.
  t.true(row(lines, 'logins/s').trimEnd().endsWith('┐'));
  t.is(row(lines, 'logins/s').trimEnd().length, 120);
  t.true(row(before, 'logins/s').trimEnd().length <= 80);
  t.regex(row(lines, 'logins/s'), /\(last 29 s\)/, 'the span the points cover, not the 5 min window');
  t.true(lines[38]!.startsWith('└'));
  // And back: still readable at 80x24.
  h.resize(80, 24);
  assertFigures(t, h.text());
  h.destroy();
});

test('select cache enabled in the config: hit and miss instead of NOT ENABLED', (t) => {
  const h = headless(80, 24, false);
  const base = input();
  h.dashboard.show(buildView({ ...base, settings: { ...base.settings, selectCacheEnabled: true } }));
  const lines = h.text();
  t.truthy(row(lines, 'SELECT CACHE TOTALS'));
  t.regex(row(lines, 'hit:'), /hit: +31 +miss: +8\b/);
  t.false(lines.some((l) => l.includes('NOT ENABLED')));
  h.destroy();
});

test('stale file: a warning banner under the header, figures still shown', (t) => {
  const h = headless(80, 24, false);
  h.dashboard.show(buildView(input({ liveness: { state: 'stale', sinceMs: 9000 } })));
  const lines = h.text();
  t.is(lines[1]!.trimEnd(), 'STALE: stats file not rewritten for 9 s; imapproxyd stopped or hung?');
  t.regex(lines[0]!, /\[STALE\]/);
  assertFigures(t, lines, 'STALE');
  // The banner goes away once the file moves again.
  h.dashboard.show(buildView(input()));
  t.true(h.text()[1]!.startsWith('┌─ imapproxy counters '));
  h.destroy();
});

test('ASCII terminal: only 7-bit characters are written, borders are + - |', async (t) => {
  const h = headless(80, 24, true);
  h.dashboard.show(buildView(input()));
  // blessed flushes its output buffer on the next tick.
  await waitUntil('blessed to flush the screen', () => h.written().length > 1000);
  const out = h.written();
  const high = [...out].filter((b) => b > 0x7e);
  t.deepEqual(high, []);
  // What the terminal shows (the screen buffer holds blessed's characters before mapping).
  const text = out
    .toString('latin1')
    .replace(/\x1b\[(\d*)C/g, (_, n: string) => ' '.repeat(Number(n || '1')))
    .replace(/\x1b\][^\x07]*\x07|\x1b\[[0-9;?]*[A-Za-z]|\x1b[78=>]/g, '');
  t.regex(text, /\+- imapproxy counters -+\+\+- logins\/s 4\.0  reuses\/s 2\.0 -+\+/);
  t.regex(text, /\| CLIENT CONNECTIONS +17 +23\|/);
  t.regex(text, /\* logins\/s  o reuses\/s/);
  t.regex(text, /\+-{43}\+\+-{33}\+/);
  assertFigures(t, h.text());
  h.destroy();
});

test('help overlay on ? and its removal', (t) => {
  const h = headless(80, 24, false);
  h.dashboard.show(buildView(input()));
  h.dashboard.toggleHelp();
  t.true(h.dashboard.helpVisible);
  t.truthy(row(h.text(), 'q, Ctrl-C   quit'));
  h.dashboard.toggleHelp(false);
  t.false(h.text().some((l) => l.includes('q, Ctrl-C   quit')));
  h.destroy();
});

