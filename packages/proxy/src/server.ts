// The listening side: accepts clients and wires the shared parts together.
// Backlog 511 (the original's 5 refused clients under load), TCP_NODELAY on
// every socket (the original stalled ~40 ms per login on Nagle + delayed ACK).

import net from 'node:net';
import { StatsRegistry, type ProxyConfig } from '@imapproxy/shared';
import { Connector } from './backend/connector.js';
import { GreetingCache } from './backend/greeting-cache.js';
import { BackendPool } from './backend/pool.js';
import { ServerAddresses } from './backend/server-address.js';
import { ClientSession } from './client/session.js';
import type { ProxyContext } from './context.js';
import type { Logger } from './log/logger.js';

export class ProxyServer {
  readonly ctx: ProxyContext;
  private readonly listener: net.Server;
  private readonly perIp = new Map<string, number>();
  private clients = new Set<net.Socket>();

  constructor(config: ProxyConfig, log: Logger, stats = new StatsRegistry()) {
    const addresses = new ServerAddresses(config.server_hostname, config.ipversion_only, config.dns_rr);
    const connector = new Connector(config, addresses, log);
    this.ctx = {
      config,
      log,
      stats,
      connector,
      greeting: new GreetingCache(connector, log, config.server_timeout * 1000),
      pool: new BackendPool(config, stats, log),
    };
    this.listener = net.createServer({ noDelay: true, keepAlive: config.send_tcp_keepalives, pauseOnConnect: true }, (socket) => this.accept(socket));
  }

  /** Binds the listener. The server is not contacted: clients are accepted while it is down. */
  listen(): Promise<net.AddressInfo> {
    const { config } = this.ctx;
    return new Promise((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen({ host: config.listen_address, port: config.listen_port, backlog: config.listen_backlog }, () => {
        this.listener.off('error', reject);
        this.listener.on('error', (err) => this.ctx.log.err(`listener: ${err.message}`));
        // Warm the greeting so the first client does not wait for it.
        void this.ctx.greeting.clientGreeting();
        resolve(this.listener.address() as net.AddressInfo);
      });
    });
  }

  private accept(socket: net.Socket): void {
    const { config, log } = this.ctx;
    const ip = socket.remoteAddress ?? '?';
    if (config.max_clients > 0 && this.clients.size >= config.max_clients) {
      log.notice(`refused connection from ${ip}: max_clients (${config.max_clients}) reached`);
      socket.end('* BYE Too many connections, try again later\r\n');
      return;
    }
    const fromIp = this.perIp.get(ip) ?? 0;
    if (config.max_clients_per_ip > 0 && fromIp >= config.max_clients_per_ip) {
      log.notice(`refused connection from ${ip}: max_clients_per_ip (${config.max_clients_per_ip}) reached`);
      socket.end('* BYE Too many connections from your address\r\n');
      return;
    }
    this.perIp.set(ip, fromIp + 1);
    this.clients.add(socket);
    socket.once('close', () => {
      this.clients.delete(socket);
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, n);
    });
    const session = new ClientSession(this.ctx, socket);
    session.start().catch((err: unknown) => {
      log.err(`client ${ip}: ${(err as Error).message}`);
      socket.destroy();
    });
  }

  /** Stops accepting, says goodbye to clients and logs out of every cached connection. */
  async close(graceMs = 1000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    for (const socket of this.clients) {
      if (!socket.destroyed) socket.end('* BYE Server shutting down\r\n');
    }
    const timer = setTimeout(() => {
      for (const socket of this.clients) socket.destroy();
    }, graceMs);
    await closed;
    clearTimeout(timer);
    this.ctx.pool.flush();
  }
}
