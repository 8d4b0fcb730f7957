// The listening side: accepts clients and wires the shared parts together.
// Backlog 511 (the original's 5 refused clients under load), TCP_NODELAY on
// every socket (the original stalled ~40 ms per login on Nagle + delayed ACK).

import net from 'node:net';
import { inNetworks, networkBlockList, StatsRegistry, unmapIpv4, type ProxyConfig } from '@imapproxy/shared';
import { Connector } from './backend/connector.js';
import { GreetingCache } from './backend/greeting-cache.js';
import { HealthChecker } from './backend/health-check.js';
import { BackendPool } from './backend/pool.js';
import { ServerSet } from './backend/server-set.js';
import { ProtocolTrace } from './admin/trace.js';
import { ProxyProtocolError } from './client/proxy-protocol.js';
import { readProxyHeader } from './client/proxy-protocol-socket.js';
import { ClientSession, type ClientPeer } from './client/session.js';
import type { ProxyContext } from './context.js';
import type { Logger } from './log/logger.js';
import { ClientTls } from './tls/client-tls.js';
import { ServerTls } from './tls/server-tls.js';
import { tlsConfigWarnings } from './tls/tls-config-check.js';

/** One client connection, for imapproxyctl dump. */
export interface ClientSessionInfo {
  address: string;
  /** Encrypted: implicit-TLS listener or STARTTLS done. */
  tls: boolean;
  loggedIn: boolean;
}

export class ProxyServer {
  readonly ctx: ProxyContext;
  private readonly listener: net.Server;
  /** The implicit-TLS (IMAPS) listener, when client_tls_listen_port is set. */
  private readonly tlsListener: net.Server | null = null;
  private readonly perIp = new Map<string, number>();
  private clients = new Map<net.Socket, ClientSession>();
  /** Connections on a PROXY protocol listener whose header has not arrived yet. */
  private readonly awaitingHeader = new Set<net.Socket>();
  /** proxy_protocol_trusted_networks, parsed at first use (fixed while the daemon runs). */
  private proxyProtocolPeers: net.BlockList | null = null;
  private readonly health: HealthChecker;

  constructor(config: ProxyConfig, log: Logger, stats = new StatsRegistry(), trace = ProtocolTrace.disabled(log)) {
    const servers = ServerSet.fromConfig(config, log);
    for (const w of tlsConfigWarnings(config)) log.warning(w);
    // Certificates and keys are read here, before the privilege drop.
    const connector = new Connector(config, servers, log, new ServerTls(config, log));
    const clientTls = ClientTls.fromConfig(config, log);
    const pool = new BackendPool(config, stats, log);
    if (!servers.single) {
      // Users come back to their server when it is up again; the cached
      // connections of a server that went down would fail their next user.
      pool.routeOf = (user) => servers.route(user)?.name ?? null;
      servers.onDown((s) => pool.flushServer(s.name));
    }
    this.health = new HealthChecker(servers, (s, timeoutMs) => connector.probe(s, timeoutMs), config);
    this.ctx = {
      config,
      log,
      stats,
      connector,
      servers,
      greeting: new GreetingCache(connector, log, config.server_timeout * 1000),
      pool,
      trace,
      clientTls,
    };
    const options = { noDelay: true, keepAlive: config.send_tcp_keepalives, pauseOnConnect: true };
    this.listener = net.createServer(options, (socket) => this.accept(socket));
    // A plain TCP listener: each session does its own handshake (the same code as STARTTLS), with the certificate of the moment.
    if (clientTls && config.client_tls_listen_port !== 0) this.tlsListener = net.createServer(options, (socket) => this.accept(socket, true));
  }

  /** Reads the client certificate and key again (SIGHUP); false when they could not be read and the old ones stay. */
  reloadTls(pem?: { cert: Buffer; key: Buffer }): boolean {
    return this.ctx.clientTls?.reload(pem) ?? true;
  }

  /** Every client connection, for imapproxyctl dump. */
  sessions(): ClientSessionInfo[] {
    return [...this.clients.values()].map((s) => ({ address: s.address, tls: s.tls, loggedIn: s.loggedIn }));
  }

  /** Binds the listener. The server is not contacted: clients are accepted while it is down. */
  async listen(): Promise<net.AddressInfo> {
    const { config, log } = this.ctx;
    if (this.tlsListener) {
      const tlsListener = this.tlsListener;
      const host = config.client_tls_listen_address ?? config.listen_address;
      await new Promise<void>((resolve, reject) => {
        tlsListener.once('error', reject);
        tlsListener.listen({ host, port: config.client_tls_listen_port, backlog: config.listen_backlog }, () => {
          tlsListener.off('error', reject);
          tlsListener.on('error', (err) => log.err(`TLS listener: ${err.message}`));
          const a = tlsListener.address() as net.AddressInfo;
          log.info(`listening for IMAP over implicit TLS on ${a.address}:${a.port}`);
          resolve();
        });
      });
    }
    return new Promise((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen({ host: config.listen_address, port: config.listen_port, backlog: config.listen_backlog }, () => {
        this.listener.off('error', reject);
        this.listener.on('error', (err) => this.ctx.log.err(`listener: ${err.message}`));
        // Warm the greeting so the first client does not wait for it.
        void this.ctx.greeting.clientGreeting();
        this.health.start();
        resolve(this.listener.address() as net.AddressInfo);
      });
    });
  }

  private accept(socket: net.Socket, implicitTls = false): void {
    const { config, log } = this.ctx;
    if (!(implicitTls ? config.client_tls_listen_proxy_protocol : config.listen_proxy_protocol)) {
      this.admit(socket, implicitTls);
      return;
    }
    // The peer is a load balancer, not a client: it never gets a greeting or
    // a BYE, and the header comes before anything else (TLS included).
    const from = socket.remoteAddress ?? '?';
    this.proxyProtocolPeers ??= networkBlockList(config.proxy_protocol_trusted_networks);
    if (!inNetworks(this.proxyProtocolPeers, from)) {
      log.notice(`refused connection from ${from}: PROXY protocol header not allowed from this address`);
      refuse(socket, '');
      return;
    }
    this.awaitingHeader.add(socket);
    readProxyHeader(socket, config.proxy_protocol_timeout * 1000).then(
      (header) => {
        if (!this.awaitingHeader.delete(socket)) return; // shut down meanwhile
        // LOCAL, UNKNOWN and non-TCP headers carry no client: the connection's own addresses stand.
        const peer = header.source && header.destination ? { remote: header.source, local: header.destination } : undefined;
        this.admit(socket, implicitTls, peer);
      },
      (err: unknown) => {
        if (!this.awaitingHeader.delete(socket)) return;
        const text = `refused connection from ${from}: ${(err as Error).message}`;
        if (err instanceof ProxyProtocolError && err.peerClosed) log.info(text);
        else log.notice(text);
        refuse(socket, '');
      },
    );
  }

  /** A client connection, its real address known: limits, then the session. */
  private admit(socket: net.Socket, implicitTls: boolean, peer?: ClientPeer): void {
    const { config, log } = this.ctx;
    const ip = peer?.remote.address ?? unmapIpv4(socket.remoteAddress ?? '?');
    if (config.max_clients > 0 && this.clients.size >= config.max_clients) {
      log.notice(`refused connection from ${ip}: max_clients (${config.max_clients}) reached`);
      refuse(socket, implicitTls ? '' : '* BYE Too many connections, try again later\r\n');
      return;
    }
    const fromIp = this.perIp.get(ip) ?? 0;
    if (config.max_clients_per_ip > 0 && fromIp >= config.max_clients_per_ip) {
      log.notice(`refused connection from ${ip}: max_clients_per_ip (${config.max_clients_per_ip}) reached`);
      refuse(socket, implicitTls ? '' : '* BYE Too many connections from your address\r\n');
      return;
    }
    this.perIp.set(ip, fromIp + 1);
    const session = new ClientSession(this.ctx, socket, implicitTls, peer);
    this.clients.set(socket, session);
    socket.once('close', () => {
      this.clients.delete(socket);
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, n);
    });
    session.start().catch((err: unknown) => {
      log.err(`client ${ip}: ${(err as Error).message}`);
      socket.destroy();
    });
  }

  /**
   * Shutdown (SIGTERM/SIGINT). Stops accepting and logs out of every cached
   * server connection at once; clients that have not logged in get a BYE;
   * logged-in sessions get up to `graceMs` to end by themselves (their server
   * connections are then logged out, not cached), after which they get a BYE
   * too. Resolves when every server connection is closed, or `settleMs` later.
   * The original died at once on SIGTERM and its server connections only saw
   * EOF (SPEC §9.3).
   */
  async close(graceMs = SHUTDOWN_GRACE_MS, settleMs = 2000): Promise<void> {
    const { pool, log } = this.ctx;
    this.listener.close();
    this.tlsListener?.close();
    const awaiting = [...this.awaitingHeader];
    this.awaitingHeader.clear();
    for (const socket of awaiting) socket.destroy();
    this.health.stop();
    const cached = pool.close();
    if (cached > 0) log.info(`shutdown: logged out of ${cached} cached server connection(s)`);
    const bye = (socket: net.Socket) => {
      if (!socket.destroyed) socket.end('* BYE Server shutting down\r\n');
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    // session.socket: after a TLS handshake the BYE must go through TLS, not onto the TCP socket.
    for (const session of this.clients.values()) if (!session.loggedIn) bye(session.socket);
    const deadline = Date.now() + graceMs;
    while ([...this.clients.values()].some((s) => s.loggedIn) && Date.now() < deadline) await sleep(50);
    const left = [...this.clients.values()].filter((s) => s.loggedIn).length;
    if (left > 0) log.info(`shutdown: ending ${left} session(s) still logged in after ${graceMs} ms`);
    for (const session of this.clients.values()) bye(session.socket);
    // The relays bring their server connections to a clean state and release
    // them; the pool logs them out. Whatever is still open after settleMs is
    // logged out as it is.
    const settle = Date.now() + settleMs;
    while (pool.size > 0 && Date.now() < settle) await sleep(25);
    if (pool.closeActive() > 0) log.info('shutdown: logged out of server connections still in use');
  }
}

/**
 * A client over max_clients or max_clients_per_ip: BYE, then closed within
 * 2 s whatever it does. The refused socket used to have no 'error' listener,
 * so a client that reset the connection crashed the whole daemon (ECONNRESET
 * on the BYE write, before login); and, paused since accept, it never read
 * the client's FIN, so its descriptor stayed open for ever (both found by
 * test/limits.test.ts).
 */
function refuse(socket: net.Socket, bye: string): void {
  socket.on('error', () => {});
  socket.end(bye);
  socket.resume(); // read and discard up to the client's FIN, which completes the close
  setTimeout(() => socket.destroy(), 2000).unref();
}

/** How long logged-in sessions may go on after SIGTERM/SIGINT. */
export const SHUTDOWN_GRACE_MS = 3000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
