// What the hot path reports to the metrics endpoint (docs/metrics.md): two
// calls, each one method call on an object that is absent when
// metrics_listen_port is 0. Everything else is read from the StatsRegistry
// and the pool at scrape time.

import type { TaintKind } from '../relay/reuse-proof.js';

/** How a client login ended: on a cached server connection, on a new one, or refused. */
export type LoginResult = 'reused' | 'new' | 'failed';

export interface ProxyMetrics {
  /** From the LOGIN (or the completed AUTHENTICATE exchange) to the tagged reply sent. */
  observeLogin(result: LoginResult, seconds: number): void;
  /**
   * A new server connection opened: TCP connect, TLS, greeting (and STARTTLS
   * when needed), retries included. `server`: the server_hostname entry
   * ("host:port"); undefined or '' stands for the configured server_hostname.
   */
  observeConnect(server: string | undefined, seconds: number): void;
  /** A session did something the proxy did not understand: its server connection will not be cached. */
  observeNotUnderstood(kind: TaintKind): void;
}

/** Seconds since `startedMs`, a performance.now() reading. */
export function secondsSince(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}
