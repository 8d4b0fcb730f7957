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

/** Most connections to the metrics port at once (descriptors are for IMAP clients). */
export const MAX_METRICS_CONNECTIONS = 64;

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
    limitConnections(server, MAX_METRICS_CONNECTIONS);
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

/**
 * At most `max` connections, and a new one always gets in: the oldest idle
 * one (no request in progress: an idle keep-alive, or one that has not sent
 * a whole request yet) is closed to make room. server.maxConnections refused
 * the new connection instead, so 64 idle keep-alive connections of a
 * misbehaving scraper blocked every scrape for up to keepAliveTimeout, and
 * connections that said nothing for up to headersTimeout (issue 16,
 * finding 7). Only when `max` requests are being answered at once is the
 * newcomer closed.
 */
function limitConnections(server: http.Server, max: number): void {
  /** Open connections in arrival order, and whether a request is being answered on each. */
  const open = new Map<net.Socket, { busy: boolean }>();
  server.on('connection', (socket: net.Socket) => {
    if (open.size >= max) {
      let victim: net.Socket | undefined;
      for (const [s, state] of open) {
        if (!state.busy) {
          victim = s;
          break;
        }
      }
      if (!victim) {
        socket.destroy();
        return;
      }
      open.delete(victim);
      victim.destroy();
    }
    open.set(socket, { busy: false });
    socket.once('close', () => open.delete(socket));
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const state = open.get(req.socket);
    if (!state) return;
    state.busy = true;
    res.once('close', () => {
      state.busy = false;
    });
  });
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
