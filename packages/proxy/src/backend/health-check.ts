// Health checks of the servers of server_hostname (when there are several):
// every server_health_interval seconds each server gets a new connection, the
// same one a login would get (TCP, the TLS handshake with server_tls,
// the greeting, STARTTLS with force_tls or LOGINDISABLED) within
// server_health_timeout, and then a LOGOUT. A failure marks it down, a
// success up again. A server that a login found down is checked again a
// second later, so it is back as soon as it answers.

import type { ProxyConfig } from '@imapproxy/shared';
import type { BackendServer } from './backend-server.js';
import type { ServerSet } from './server-set.js';

type HealthConfig = Pick<ProxyConfig, 'server_health_interval' | 'server_health_timeout'>;

/** Opens a connection to the server as a login would and closes it politely; rejects when it cannot. */
export type ServerProbe = (server: BackendServer, timeoutMs: number) => Promise<void>;

/** The first check after a server went down. */
const SOON_MS = 1000;
/**
 * With server_health_interval 0 a server that went down is still checked at
 * this period until it answers: otherwise nothing would ever bring it back
 * (logins go to it again only when every other server is down too).
 */
const DOWN_RECHECK_MS = 10_000;

export class HealthChecker {
  private readonly timers = new Map<BackendServer, NodeJS.Timeout>();
  private readonly running = new Set<BackendServer>();
  private started = false;
  private listening = false;

  constructor(
    private readonly servers: ServerSet,
    private readonly probe: ServerProbe,
    private readonly config: HealthConfig,
  ) {}

  /** Checks every server now and then periodically. Nothing with a single server: there is no choice to make. */
  start(): void {
    if (this.started || this.servers.single) return;
    this.started = true;
    if (!this.listening) {
      this.listening = true;
      this.servers.onDown((s) => this.checkSoon(s));
    }
    if (this.config.server_health_interval > 0) for (const s of this.servers.servers) this.schedule(s, 0);
  }

  /** Shutdown: no more checks (one under way ends within server_health_timeout). */
  stop(): void {
    this.started = false;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /** A check of `server` a second from now (it was just found down). */
  checkSoon(server: BackendServer): void {
    if (!this.started || this.running.has(server)) return;
    this.schedule(server, SOON_MS);
  }

  private schedule(server: BackendServer, ms: number): void {
    clearTimeout(this.timers.get(server));
    const timer = setTimeout(() => void this.run(server), ms);
    timer.unref();
    this.timers.set(server, timer);
  }

  private async run(server: BackendServer): Promise<void> {
    this.timers.delete(server);
    if (this.running.has(server)) return;
    this.running.add(server);
    const startedAt = Date.now();
    // A login that found the server down (or up) while this check ran saw it
    // later than the check did: the check's outcome is stale then, and the
    // server is checked again soon instead (found in review: a check begun
    // before an outage marked the server up again after a login had seen it fail).
    let stale = false;
    try {
      await this.probe(server, this.config.server_health_timeout * 1000);
      server.checks++;
      server.lastCheckAt = Date.now();
      stale = server.since > startedAt;
      if (!stale) this.servers.setUp(server);
    } catch (err) {
      server.checks++;
      server.checkFailures++;
      server.lastCheckAt = Date.now();
      stale = server.since > startedAt;
      if (!stale) this.servers.setDown(server, `health check: ${(err as Error).message}`);
    } finally {
      this.running.delete(server);
      if (this.started) {
        const interval = this.config.server_health_interval * 1000;
        if (stale) this.schedule(server, SOON_MS);
        else if (interval > 0) this.schedule(server, interval);
        else if (!server.up) this.schedule(server, DOWN_RECHECK_MS);
      }
    }
  }
}
