// What the dashboard shows, as plain strings and numbers: a pure function of one read of the
// stats file plus pimpstat's own history, so tests can check it without a terminal.
import type { DecodedStats } from '@imapproxy/shared';
import { cCtime, cInt9, cRatio } from './c-format.js';
import type { Liveness } from './liveness.js';
import type { RatePoint } from './rates.js';
import type { PimpstatSettings } from './settings.js';

export interface DashboardInput {
  settings: Pick<PimpstatSettings, 'statFile' | 'configFile' | 'selectCacheEnabled' | 'cacheSize'>;
  /** The last successful read. */
  stats: DecodedStats;
  nowMs: number;
  liveness: Liveness;
  /** The last read failed with this message (the figures are then from an earlier read). */
  readError: string | null;
  rates: readonly RatePoint[];
  /** History length the chart covers, for its title. */
  rateWindowMs: number;
  /** A short-lived message for the footer (the answer to the `r` key). */
  notice?: string | null;
}

export interface ChartData {
  /** Current rates, e.g. `logins/s 3.0  reuses/s 2.0`. */
  title: string;
  /** What the x axis covers, e.g. `last 5 min`. */
  window: string;
  /** One label per point, seconds before now ("-4:59" ... "now"). */
  labels: string[];
  logins: number[];
  reuses: number[];
  /** Top of the y axis: a round number above the largest value, at least 1. */
  maxY: number;
}

export interface DashboardView {
  header: string;
  /** A warning line under the header (the figures are then old); null when all is well. */
  banner: string | null;
  /** The original pimpstat's figures, one string per line; '' lines may be dropped if short. */
  counters: string[];
  /** Counters only the extension block has. */
  events: string[];
  /** Pool use (active + cached) against cache_size of the config pimpstat read. */
  gauge: { fraction: number; label: string; detail: string };
  chart: ChartData;
  footer: string;
}

/** Width of the counters panel's text; the panel is this plus its border and padding. */
export const COUNTERS_WIDTH = 42;
/** Width of the events panel's lines (fits the right column of an 80-column terminal). */
export const EVENTS_WIDTH = 31;

export function buildView(input: DashboardInput): DashboardView {
  const { stats: s, settings } = input;
  const ext = s.extension;
  const nowSeconds = Math.floor(input.nowMs / 1000);
  const state =
    input.readError !== null
      ? 'READ ERROR'
      : input.liveness.state === 'stale'
        ? 'STALE'
        : input.liveness.state === 'live'
          ? 'live'
          : 'C layout';
  const pid = ext !== null && ext.writerPid > 0 ? `  pid ${ext.writerPid}` : '';
  const header =
    ` pimpstat  ${settings.statFile}  up ${duration(nowSeconds - s.startTime)}${pid}  [${state}]`;

  let banner: string | null = null;
  if (input.readError !== null) {
    banner = `READ ERROR: ${input.readError}`;
  } else if (input.liveness.state === 'stale') {
    const since = duration(Math.round(input.liveness.sinceMs / 1000));
    banner = `STALE: stats file not rewritten for ${since}; imapproxyd stopped or hung?`;
  }

  const totalLabel = (label: string): string => ` ${label}`.padEnd(COUNTERS_WIDTH - 9);
  const gaugeLine = (label: string, current: number, peak: number): string =>
    `${label.padEnd(COUNTERS_WIDTH - 19)}${cInt9(current)} ${cInt9(peak)}`;
  const created = s.totalServerConnectionsCreated;
  const reused = s.totalServerConnectionsReused;
  const counters = [
    `Server start  ${cCtime(s.startTime)}`,
    `Last reset    ${cCtime(s.countTime)}`,
    '',
    `${''.padEnd(COUNTERS_WIDTH - 19)}${'current'.padStart(9)} ${'peak'.padStart(9)}`,
    gaugeLine('CLIENT CONNECTIONS', s.currentClientConnections, s.peakClientConnections),
    gaugeLine('ACTIVE SERVER CONNS', s.inUseServerConnections, s.peakInUseServerConnections),
    gaugeLine('CACHED SERVER CONNS', s.retainedServerConnections, s.peakRetainedServerConnections),
    '',
    'CONNECTION TOTALS',
    `${totalLabel('client connections accepted')}${cInt9(s.totalClientConnectionsAccepted)}`,
    `${totalLabel('client logins')}${cInt9(s.totalClientLogins)}`,
    `${totalLabel('server connections created')}${cInt9(created)}`,
    `${totalLabel('server connection reuses')}${cInt9(reused)}`,
    `${' client:server login ratio'.padEnd(COUNTERS_WIDTH - 13)}${cRatio(s.totalClientLogins, created)}`,
    `${totalLabel('reuse hit rate')}${reuseRate(created, reused).padStart(9)}`,
    '',
    ...(settings.selectCacheEnabled
      ? ['SELECT CACHE TOTALS', ` hit: ${cInt9(s.selectCacheHits)}    miss: ${cInt9(s.selectCacheMisses)}`]
      : ['SELECT CACHE NOT ENABLED']),
  ];

  const eventLine = (label: string, value: string): string =>
    `${label.padEnd(EVENTS_WIDTH - 11)}${value.padStart(11)}`;
  const events =
    ext === null
      ? ['72-byte file of the C daemon:', 'no extension counters']
      : [
          eventLine('login failures', String(ext.loginFailures)),
          eventLine('connect failures', String(ext.serverConnectFailures)),
          eventLine('evicted / expired', `${ext.evictions} / ${ext.expirations}`),
          eventLine('invalidated', String(ext.invalidations)),
          eventLine('resyncs ok / failed', `${ext.resyncsOk} / ${ext.resyncsFailed}`),
          ...(ext.gaugeUnderflows > 0 ? [eventLine('counter underflows', String(ext.gaugeUnderflows))] : []),
        ];

  const used = s.inUseServerConnections + s.retainedServerConnections;
  const size = settings.cacheSize;
  const percent = size > 0 ? Math.round((100 * used) / size) : 0;
  const gauge = {
    fraction: size > 0 ? Math.min(1, used / size) : 0,
    label: `pool ${used} of ${size} (${percent}%)`,
    detail: `${s.inUseServerConnections} active + ${s.retainedServerConnections} cached`,
  };

  const rates = input.rates;
  const last = rates.length > 0 ? rates[rates.length - 1]! : null;
  const chart: ChartData = {
    title: `logins/s ${rate(last?.loginsPerSecond ?? 0)}  reuses/s ${rate(last?.reusesPerSecond ?? 0)}`,
    window: chartWindow(rates.length > 0 ? input.nowMs - rates[0]!.atMs : 0, input.rateWindowMs),
    labels: rates.map((p) => timeAgo(Math.round((input.nowMs - p.atMs) / 1000))),
    logins: rates.map((p) => p.loginsPerSecond),
    reuses: rates.map((p) => p.reusesPerSecond),
    maxY: niceCeiling(Math.max(0, ...rates.map((p) => Math.max(p.loginsPerSecond, p.reusesPerSecond)))),
  };

  const footer = input.notice
    ? ` ${input.notice}   ${clock(input.nowMs)}`
    : ` q quit  r reset  ? help   config ${settings.configFile}   ${clock(input.nowMs)}`;
  return { header, banner, counters, events, gauge, chart, footer };
}

/** reused / (created + reused) since the last reset, e.g. `73.7 %`; `N/A` before any login. */
export function reuseRate(created: number, reused: number): string {
  const logins = created + reused;
  return logins === 0 ? 'N/A' : `${((100 * reused) / logins).toFixed(1)} %`;
}

/** `59 s`, `4:05` (min:s), `3:04:05`, `2d 03:04:05`. */
export function duration(totalSeconds: number): string {
  const t = Math.max(0, Math.floor(totalSeconds));
  const days = Math.floor(t / 86400);
  const h = Math.floor((t % 86400) / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  const two = (n: number): string => String(n).padStart(2, '0');
  if (days > 0) return `${days}d ${two(h)}:${two(m)}:${two(sec)}`;
  if (h > 0) return `${h}:${two(m)}:${two(sec)}`;
  if (m > 0) return `${m}:${two(sec)}`;
  return `${sec} s`;
}

function timeAgo(seconds: number): string {
  if (seconds <= 0) return 'now';
  return `-${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

function rate(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function clock(ms: number): string {
  const d = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** 1, 2, 5, 10, 20, 50, ... the smallest at or above value * 1.1 (and at least 1). */
export function niceCeiling(value: number): number {
  const target = Math.max(1, value * 1.1);
  let step = 1;
  for (;;) {
    for (const m of [1, 2, 5]) if (m * step >= target) return m * step;
    step *= 10;
  }
}

/**
 * What the chart's x axis really covers: the full window once pimpstat has
 * watched that long, the time since its first point before (it said "last
 * 5 min" over a few seconds).
 */
export function chartWindow(coveredMs: number, windowMs: number): string {
  if (coveredMs >= windowMs - 1000) return `last ${Math.round(windowMs / 60000)} min`;
  const seconds = Math.max(0, Math.round(coveredMs / 1000));
  if (seconds < 60) return `last ${seconds} s`;
  return `last ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')} min`;
}
