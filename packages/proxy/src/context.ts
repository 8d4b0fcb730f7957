// What every client session shares: built once by the server at start-up.

import type { ProxyConfig, StatsRegistry } from '@imapproxy/shared';
import type { Connector } from './backend/connector.js';
import type { GreetingCache } from './backend/greeting-cache.js';
import type { BackendPool } from './backend/pool.js';
import type { ServerSet } from './backend/server-set.js';
import type { ProtocolTrace } from './admin/trace.js';
import type { Logger } from './log/logger.js';
import type { ProxyMetrics } from './metrics/proxy-metrics.js';
import type { ClientTls } from './tls/client-tls.js';

export interface ProxyContext {
  readonly config: ProxyConfig;
  readonly stats: StatsRegistry;
  readonly log: Logger;
  readonly greeting: GreetingCache;
  readonly pool: BackendPool;
  readonly connector: Connector;
  /** The servers of server_hostname, their health and the users' routing. */
  readonly servers: ServerSet;
  /** Protocol trace (XPROXY_TRACE, imapproxyctl trace); a disabled one when there is no file. */
  readonly trace: ProtocolTrace;
  /** Certificate for clients (STARTTLS, implicit-TLS listener); null when client_tls_cert_file is not set. */
  readonly clientTls: ClientTls | null;
  /** Prometheus metrics (metrics_listen_port); absent when they are off, so the login path pays one `?.`. Set by the daemon. */
  metrics?: ProxyMetrics;
}
