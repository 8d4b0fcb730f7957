// What every client session shares: built once by the server at start-up.

import type { ProxyConfig, StatsRegistry } from '@imapproxy/shared';
import type { Connector } from './backend/connector.js';
import type { GreetingCache } from './backend/greeting-cache.js';
import type { BackendPool } from './backend/pool.js';
import type { Logger } from './log/logger.js';

export interface ProxyContext {
  readonly config: ProxyConfig;
  readonly stats: StatsRegistry;
  readonly log: Logger;
  readonly greeting: GreetingCache;
  readonly pool: BackendPool;
  readonly connector: Connector;
}
