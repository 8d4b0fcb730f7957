// The servers of server_hostname and the choice among them. A login of user U
// goes to U's server by rendezvous hashing over the whole list, so a user
// stays on one server while it is up and only the users of a server that
// goes down move (each to its next server in the same order). Health is a
// preference, never a refusal: when every server is down, logins still try
// them all, in the user's order.

import { parseHostList, type ProxyConfig } from '@imapproxy/shared';
import { BackendServer } from './backend-server.js';
import { rendezvousOrder, type UserKey } from './rendezvous.js';
import type { Logger } from '../log/logger.js';

type ServerSetConfig = Pick<ProxyConfig, 'server_hostname' | 'server_port' | 'ipversion_only' | 'dns_rr'>;

type ServerListener = (server: BackendServer) => void;

export class ServerSet {
  private readonly names: string[];
  private readonly downListeners: ServerListener[] = [];
  private readonly upListeners: ServerListener[] = [];

  constructor(readonly servers: readonly BackendServer[]) {
    if (servers.length === 0) throw new Error('no server');
    this.names = servers.map((s) => s.name);
  }

  /** One BackendServer per server_hostname entry; an entry without a port gets server_port. */
  static fromConfig(config: ServerSetConfig, log: Logger): ServerSet {
    const entries = parseHostList(config.server_hostname);
    const logTo = entries.length > 1 ? log : null;
    return new ServerSet(entries.map((e) => new BackendServer(e.host, e.port ?? config.server_port, config.ipversion_only, config.dns_rr, logTo)));
  }

  /** One server: nothing to choose, and no health checks. */
  get single(): boolean {
    return this.servers.length === 1;
  }

  /**
   * The servers to try for a new connection, in order: those up, then those
   * down, each group in the user's rendezvous order (list order without a
   * user, for the greeting).
   */
  order(user?: UserKey): BackendServer[] {
    const all = user === undefined ? [...this.servers] : rendezvousOrder(this.names, user).map((i) => this.servers[i]!);
    if (this.single) return all;
    return [...all.filter((s) => s.up), ...all.filter((s) => !s.up)];
  }

  /**
   * The server a login of `user` goes to now, or null when there is no choice
   * to keep to (a single server, or none up). A cached connection of the user
   * on another server is not reused (pool.routeOf).
   */
  route(user: UserKey): BackendServer | null {
    if (this.single) return null;
    return this.order(user).find((s) => s.up) ?? null;
  }

  byName(name: string): BackendServer | undefined {
    return this.servers.find((s) => s.name === name);
  }

  /** A login's connect, greeting or TLS handshake failed on `server`. */
  connectFailed(server: BackendServer, reason: string): void {
    server.connectFailures++;
    this.setDown(server, reason);
  }

  setDown(server: BackendServer, reason: string): void {
    if (server.markDown(reason)) for (const l of this.downListeners) l(server);
  }

  setUp(server: BackendServer): void {
    if (server.markUp()) for (const l of this.upListeners) l(server);
  }

  /** Called once each time a server goes from up to down. */
  onDown(listener: ServerListener): void {
    this.downListeners.push(listener);
  }

  /** Called once each time a server comes back up. */
  onUp(listener: ServerListener): void {
    this.upListeners.push(listener);
  }
}
