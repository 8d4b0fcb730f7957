// The StatsRegistry (the counters file's fields) as Prometheus metrics, read
// at scrape time through collect() callbacks: the hot path keeps updating the
// one SharedArrayBuffer it always did and pays nothing for the endpoint.
//
// RESETCOUNTERS (XPROXY_RESETCOUNTERS, imapproxyctl reset-counters) zeroes
// four totals in the file, but a Prometheus counter must never go down except
// when the process restarts. Those four are exposed from
// StatsRegistry.sinceStart(), which adds back what every reset took: counters
// here count since daemon start, like every other *_total. The peaks, which
// the reset zeroes too, are gauges ("peak since the last reset").

import { Counter, Gauge, type Registry } from 'prom-client';
import type { ResettableTotal, StatsRegistry, StatsSnapshot } from '@imapproxy/shared';

type Read = (s: StatsSnapshot, stats: StatsRegistry) => number;

const sinceStart = (name: ResettableTotal): Read => (_s, stats) => stats.sinceStart(name);
const ext = (name: keyof NonNullable<StatsSnapshot['extension']>): Read => (s) => s.extension?.[name] ?? 0;

/** Counters: monotonic since daemon start. */
const COUNTERS: ReadonlyArray<readonly [name: string, help: string, read: Read]> = [
  ['imapproxy_client_connections_accepted_total', 'Client connections accepted.', sinceStart('clientConnectionsAccepted')],
  ['imapproxy_client_logins_total', 'Successful client logins (LOGIN and AUTHENTICATE), new and reused server connections.', sinceStart('clientLogins')],
  ['imapproxy_server_connections_created_total', 'Logins that opened a new server connection.', sinceStart('serverConnectionsCreated')],
  ['imapproxy_server_connections_reused_total', 'Logins that got a cached server connection.', sinceStart('serverConnectionsReused')],
  ['imapproxy_login_failures_total', 'Client logins refused (by the server, pool full or server unavailable).', ext('loginFailures')],
  ['imapproxy_server_connect_failures_total', 'New server connections that could not be opened or logged in for another reason than the credentials.', ext('serverConnectFailures')],
  ['imapproxy_server_connections_evicted_total', 'Cached server connections closed to make room (cache_size reached).', ext('evictions')],
  ['imapproxy_server_connections_expired_total', 'Cached server connections closed after cache_expiration_time.', ext('expirations')],
  ['imapproxy_server_connections_invalidated_total', 'Server connections closed instead of cached, or closed (by the server) while cached.', ext('invalidations')],
  ['imapproxy_select_commands_total', 'SELECT commands seen by the select cache.', ext('selectCommands')],
  ['imapproxy_select_cache_hits_total', 'SELECT commands answered from the select cache.', ext('selectCacheHits')],
  ['imapproxy_select_cache_misses_total', 'SELECT commands sent to the server.', ext('selectCacheMisses')],
  ['imapproxy_gauge_underflows_total', 'Gauge decrements refused because the gauge was 0: a bookkeeping bug, should stay 0.', ext('gaugeUnderflows')],
];

/** Gauges: the current values and the peaks since the last reset. */
const GAUGES: ReadonlyArray<readonly [name: string, help: string, read: Read]> = [
  ['imapproxy_client_connections', 'Client connections now, logged in or not.', (s) => s.currentClientConnections],
  ['imapproxy_client_connections_peak', 'Most client connections at once since the last counter reset.', (s) => s.peakClientConnections],
  ['imapproxy_server_connections_in_use', 'Server connections attached to a client now.', (s) => s.inUseServerConnections],
  ['imapproxy_server_connections_in_use_peak', 'Most server connections in use at once since the last counter reset.', (s) => s.peakInUseServerConnections],
  ['imapproxy_server_connections_cached', 'Cached (idle, logged-in) server connections now.', (s) => s.retainedServerConnections],
  ['imapproxy_server_connections_cached_peak', 'Most cached server connections at once since the last counter reset.', (s) => s.peakRetainedServerConnections],
  ['imapproxy_start_time_seconds', 'Daemon start, seconds since the epoch.', (s) => s.startTime],
  ['imapproxy_counters_reset_time_seconds', 'Last counter reset (or daemon start), seconds since the epoch.', (s) => s.countTime],
];

/**
 * One snapshot per scrape, so the metrics of one scrape agree with each
 * other. prom-client calls every collect() of a scrape synchronously before
 * it awaits anything: clear() before Registry.metrics() is enough; the
 * setImmediate covers a caller of Registry.metrics() that does not clear().
 */
export class ScrapeSnapshot {
  #snapshot: StatsSnapshot | null = null;
  constructor(private readonly stats: StatsRegistry) {}

  clear(): void {
    this.#snapshot = null;
  }

  get(): StatsSnapshot {
    if (this.#snapshot === null) {
      this.#snapshot = this.stats.snapshot();
      setImmediate(() => {
        this.#snapshot = null;
      });
    }
    return this.#snapshot;
  }
}

/** Registers every StatsRegistry metric in `registry`; clear() the snapshot it returns before each scrape. */
export function registerStatsMetrics(registry: Registry, stats: StatsRegistry): ScrapeSnapshot {
  const snap = new ScrapeSnapshot(stats);
  for (const [name, help, read] of COUNTERS) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        // A Counter only goes up through inc(); the value is the registry's, so set it as reset + inc.
        this.reset();
        this.inc(read(snap.get(), stats));
      },
    });
  }
  new Counter({
    name: 'imapproxy_resyncs_total',
    help: 'Server connections brought back to a clean state after their client vanished, by result.',
    labelNames: ['result'] as const,
    registers: [registry],
    collect() {
      const e = snap.get().extension;
      this.reset();
      this.inc({ result: 'ok' }, e?.resyncsOk ?? 0);
      this.inc({ result: 'failed' }, e?.resyncsFailed ?? 0);
    },
  });
  for (const [name, help, read] of GAUGES) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(snap.get(), stats));
      },
    });
  }
  return snap;
}
