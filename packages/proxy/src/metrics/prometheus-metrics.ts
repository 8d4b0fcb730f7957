// The metrics registry of the daemon: our own prom-client Registry (not the
// global one, so nothing else in the process can add to it), with the
// StatsRegistry counters, the pool gauges computed at scrape time, the login
// and connect histograms the hot path feeds, and prom-client's default
// process_* / nodejs_* metrics.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ProxyConfig, StatsRegistry } from '@imapproxy/shared';
import type { BackendPool } from '../backend/pool.js';
import { TAINT_KINDS, type TaintKind } from '../relay/reuse-proof.js';
import type { LoginResult, ProxyMetrics } from './proxy-metrics.js';
import { registerStatsMetrics, type ScrapeSnapshot } from './stats-metrics.js';

/** Seconds: a reused login takes well under a millisecond, a new one tens of ms; login_timeout is the top. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const LOGIN_RESULTS: readonly LoginResult[] = ['reused', 'new', 'failed'];

type Observer = { observe(value: number): void };

export interface PrometheusMetricsSources {
  readonly config: Pick<ProxyConfig, 'cache_size' | 'server_hostname'>;
  readonly stats: StatsRegistry;
  readonly pool: Pick<BackendPool, 'entries'>;
}

export class PrometheusMetrics implements ProxyMetrics {
  readonly registry = new Registry();
  /** One child per label value, made once: an observation allocates nothing of ours. */
  readonly #login: Record<LoginResult, Observer>;
  readonly #connectHistogram: Histogram<'server'>;
  readonly #connect = new Map<string, Observer>();
  /** Label of the server for pool entries and connections that do not name one (none, or ''). */
  readonly #defaultServer: string;
  /** Every server seen so far: its pool series drop to 0 instead of vanishing. */
  readonly #servers = new Set<string>();
  readonly #snapshot: ScrapeSnapshot;
  readonly #notUnderstood: Record<TaintKind, { inc(): void }>;

  constructor(sources: PrometheusMetricsSources, version: string) {
    const { config, stats, pool } = sources;
    const registers = [this.registry];
    this.#defaultServer = config.server_hostname;
    collectDefaultMetrics({ register: this.registry });
    this.#snapshot = registerStatsMetrics(this.registry, stats);

    const login = new Histogram({
      name: 'imapproxy_login_duration_seconds',
      help: 'Client LOGIN/AUTHENTICATE to the tagged reply, by result: reused (cached server connection), new, failed.',
      labelNames: ['result'] as const,
      buckets: DURATION_BUCKETS,
      registers,
    });
    for (const result of LOGIN_RESULTS) login.zero({ result });
    this.#login = { reused: login.labels({ result: 'reused' }), new: login.labels({ result: 'new' }), failed: login.labels({ result: 'failed' }) };
    const notUnderstood = new Counter({
      name: 'imapproxy_sessions_not_understood_total',
      help: 'Sessions whose server connection was not cached because the proxy did not understand all of it (reuse by proof), by the first thing not understood.',
      labelNames: ['why'] as const,
      registers,
    });
    this.#notUnderstood = Object.fromEntries(TAINT_KINDS.map((why) => [why, notUnderstood.labels({ why })])) as Record<TaintKind, { inc(): void }>;
    this.#connectHistogram = new Histogram({
      name: 'imapproxy_server_connect_duration_seconds',
      help: 'Opening a new server connection: TCP connect, TLS, greeting and STARTTLS when needed, retries included (successful opens only).',
      labelNames: ['server'] as const,
      buckets: DURATION_BUCKETS,
      registers,
    });

    const servers = this.#servers;
    const defaultServer = this.#defaultServer;
    new Gauge({
      name: 'imapproxy_pool_connections',
      help: 'Server connections in the pool now, by server and state (active: attached to a client; cached: idle, logged in).',
      labelNames: ['server', 'state'] as const,
      registers,
      collect() {
        const counts = new Map<string, { active: number; cached: number }>();
        for (const server of servers) counts.set(server, { active: 0, cached: 0 });
        for (const e of pool.entries()) {
          // The server_hostname entry it is on; '' or absent (older pools) is the one configured.
          const server = (e as { server?: string }).server || defaultServer;
          let c = counts.get(server);
          if (!c) {
            servers.add(server);
            counts.set(server, (c = { active: 0, cached: 0 }));
          }
          c[e.state]++;
        }
        this.reset();
        for (const [server, c] of counts) {
          this.set({ server, state: 'active' }, c.active);
          this.set({ server, state: 'cached' }, c.cached);
        }
      },
    });
    new Gauge({
      name: 'imapproxy_pool_capacity',
      help: 'Most server connections at once, in use, cached and opening together (cache_size).',
      registers,
      collect() {
        this.set(config.cache_size);
      },
    });
    new Gauge({ name: 'imapproxy_up', help: 'The daemon answers: always 1.', registers }).set(1);
    new Gauge({ name: 'imapproxy_build_info', help: 'Version of the daemon, in the label: always 1.', labelNames: ['version'] as const, registers }).set({ version }, 1);
  }

  observeLogin(result: LoginResult, seconds: number): void {
    this.#login[result].observe(seconds);
  }

  observeNotUnderstood(kind: TaintKind): void {
    this.#notUnderstood[kind].inc();
  }

  observeConnect(server: string | undefined, seconds: number): void {
    const name = server || this.#defaultServer;
    let observer = this.#connect.get(name);
    if (!observer) {
      this.#servers.add(name);
      this.#connect.set(name, (observer = this.#connectHistogram.labels({ server: name })));
    }
    observer.observe(seconds);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text of one scrape. */
  render(): Promise<string> {
    this.#snapshot.clear();
    return this.registry.metrics();
  }
}
