// The HTTP side of the metrics endpoint (docs/metrics.md): GET /metrics and
// nothing else. Bound with the IMAP listener, before the privilege drop, so a
// port below 1024 works; no authentication, hence 127.0.0.1 by default.

import http from 'node:http';
import type net from 'node:net';
import type { Logger } from '../log/logger.js';

export interface MetricsSource {
  readonly contentType: string;
  render(): Promise<string>;
}

export const METRICS_PATH = '/metrics';

export class MetricsListener {
  private constructor(
    private readonly server: http.Server,
    readonly address: net.AddressInfo,
  ) {}

  /** Listens on host:port; rejects when the port cannot be bound. */
  static async listen(host: string, port: number, source: MetricsSource, log: Logger): Promise<MetricsListener> {
    // A scraper that opens a connection and says nothing must not hold it for
    // long (the timeouts are checked every connectionsCheckingInterval), and
    // connections to this port must not eat the descriptors IMAP clients need.
    const server = http.createServer({ connectionsCheckingInterval: 2_000 }, (req, res) => handle(req, res, source, log));
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    server.keepAliveTimeout = 5_000;
    server.maxConnections = 64;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        server.on('error', (err) => log.err(`metrics listener: ${err.message}`));
        resolve();
      });
    });
    return new MetricsListener(server, server.address() as net.AddressInfo);
  }

  /** http://host:port/metrics, for the log. */
  get url(): string {
    const { address, port, family } = this.address;
    return `http://${family === 'IPv6' ? `[${address}]` : address}:${port}${METRICS_PATH}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function handle(req: http.IncomingMessage, res: http.ServerResponse, source: MetricsSource, log: Logger): void {
  const path = (req.url ?? '').split('?', 1)[0];
  if (path !== METRICS_PATH) return reply(res, 404, 'Not Found\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return reply(res, 405, 'Method Not Allowed\n');
  }
  source.render().then(
    (body) => {
      res.writeHead(200, { 'Content-Type': source.contentType, 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    },
    (err: unknown) => {
      log.err(`metrics: ${(err as Error).message}`);
      reply(res, 500, 'Internal Server Error\n');
    },
  );
}

function reply(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
