// Turns the metrics endpoint on when metrics_listen_port is set: the registry,
// the hooks in the context and connector, the HTTP listener. A port that
// cannot be bound costs the metrics, not the service (like the control
// socket and the stats file): logged, and the daemon runs on.

import type { ProxyContext } from '../context.js';
import type { Logger } from '../log/logger.js';
import { MetricsListener } from './metrics-listener.js';
import { PrometheusMetrics } from './prometheus-metrics.js';

export async function startMetrics(ctx: ProxyContext, version: string, log: Logger): Promise<MetricsListener | null> {
  const { config } = ctx;
  if (config.metrics_listen_port === 0) return null;
  const metrics = new PrometheusMetrics(ctx, version);
  try {
    const listener = await MetricsListener.listen(config.metrics_listen_address, config.metrics_listen_port, metrics, log);
    ctx.metrics = metrics;
    ctx.connector.metrics = metrics;
    log.info(`metrics on ${listener.url}`);
    return listener;
  } catch (err) {
    log.err(`metrics listener on ${config.metrics_listen_address}:${config.metrics_listen_port}: ${(err as Error).message}; running without metrics`);
    return null;
  }
}
