// The cache of authenticated server connections (SPEC §4.12, improved).
// - cache_size is the true maximum of server connections, in use, cached and
//   being opened together (the original managed cache_size - 1, B7);
// - a full pool closes the least recently used cached connection;
// - each cached connection has its own expiry timer of exactly
//   cache_expiration_time (the original swept every 60 s);
// - a cached connection that receives anything, or closes, leaves the pool at
//   once, so the next login never sees a byte of an earlier session;
// - max_reuse_age / max_reuse_count bound how long one server login is
//   trusted (B5: reuse never asks the server to check the password again);
// - max_server_connections_per_user bounds one user's share (active, cached
//   and being opened): one user could fill cache_size (issue 16, finding 7).

import type { ProxyConfig, StatsRegistry } from '@imapproxy/shared';
import type { BackendConnection } from './backend-connection.js';
import type { CredentialKey } from './credential-key.js';
import { PoolFullError, UserLimitError } from './errors.js';
import { nextTag } from './tags.js';
import { userMatchKey } from '../admin/user-match.js';
import type { Logger } from '../log/logger.js';

type PoolConfig = Pick<ProxyConfig, 'cache_size' | 'cache_expiration_time' | 'max_reuse_age' | 'max_reuse_count' | 'max_server_connections_per_user' | 'user_match_exact'>;

interface CachedEntry {
  conn: BackendConnection;
  user: string;
  key: CredentialKey;
  timer: NodeJS.Timeout;
  onClose: () => void;
  /** When it was cached, and for whom it last worked (imapproxyctl dump). */
  cachedAt: number;
  client: string;
  /** The account it counts against (shareOf). */
  share: string;
}

interface ActiveInfo {
  user: string;
  client: string;
  share: string;
}

export interface PoolEntryInfo {
  id: number;
  user: string;
  state: 'active' | 'cached';
  reuseCount: number;
  ageMs: number;
  /** Client address ("ip:port") using it, or that used it last when cached. */
  client: string;
  /** Since the server last sent data (active) or since it was cached. */
  idleMs: number;
  /** The server connection is encrypted (STARTTLS or server_tls). */
  tls: boolean;
  /** The server_hostname entry it is connected to ("host:port"). */
  server: string;
}

export class BackendPool {
  /** Cached connections per user, oldest release first. */
  private readonly byUser = new Map<string, CachedEntry[]>();
  /** Every cached entry in release order: the first is the least recently used. */
  private readonly lru = new Set<CachedEntry>();
  /** Connections in use by a client, for dumps. */
  private readonly active = new Map<BackendConnection, ActiveInfo>();
  /** Per account (shareOf): connections in use, cached, and being opened (reserve(user) until attach/unreserve). */
  private readonly activeOf = new Map<string, number>();
  private readonly cachedOf = new Map<string, number>();
  private readonly openingOf = new Map<string, number>();
  /** Server connections counted against cache_size: active, cached and opening. */
  private held = 0;
  /** Shutting down: released connections are logged out instead of cached. */
  private closing = false;
  /**
   * The server a user's logins go to now ("host:port"), or null for no
   * preference (ServerSet.route). A cached connection on another server is
   * closed instead of reused, so users come back to their server once it is up.
   */
  routeOf: ((user: string) => string | null) | null = null;

  constructor(
    private readonly config: PoolConfig,
    private readonly stats: StatsRegistry,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.held;
  }

  get cachedCount(): number {
    return this.lru.size;
  }

  /**
   * A cached connection of `user` logged in with the same password (and from
   * the same client IP under cache_key_client_ip: the key's scope), alive and
   * quiet, or null. It leaves the pool and counts as active. `accept` picks
   * among the user's connections (those with extensions on or not).
   */
  take(user: string, key: CredentialKey, client: string, accept: (conn: BackendConnection) => boolean = () => true): BackendConnection | null {
    const list = this.byUser.get(user);
    if (!list) return null;
    const route = this.routeOf?.(user) ?? null;
    // Most recently released first: its server process is the warmest.
    for (let i = list.length - 1; i >= 0; i--) {
      const entry = list[i]!;
      if (route !== null && entry.conn.server !== route) {
        this.unlink(entry);
        this.log.info(`Expiring server sd [${entry.conn.id}] (user '${user}' goes to server ${route} now)`);
        entry.conn.logoutAndClose(nextTag());
        this.dropHeld();
        continue;
      }
      // cache_key_client_ip: another client address's connection, not a wrong password
      if (!entry.key.sameScope(key)) continue;
      if (!accept(entry.conn)) continue;
      if (!entry.key.matches(key)) {
        this.log.notice(`Get_Server_conn(): Unable to reuse server sd [${entry.conn.id}] for user '${user}' (${client}) because password doesn't match.`);
        continue;
      }
      this.unlink(entry);
      if (!entry.conn.alive) {
        this.log.notice(`Get_Server_conn(): Unable to reuse server sd [${entry.conn.id}] for user '${user}' (${client}).  Connection closed by server.`);
        this.dropHeld();
        continue;
      }
      // max_reuse_age is also checked here, not only in release(): a connection
      // cached while young must not be handed out once it is past the limit
      // (found by test/proxy-pool.test.ts; B5: reuse never re-checks the password).
      if (this.tooOld(entry.conn)) {
        this.log.info(`Expiring server sd [${entry.conn.id}] (reuse limit reached)`);
        entry.conn.logoutAndClose(nextTag());
        this.dropHeld();
        continue;
      }
      entry.conn.reuseCount++;
      entry.conn.state = 'active';
      this.markActive(entry.conn, user, client);
      return entry.conn;
    }
    return null;
  }

  /** A connection take() with the same arguments could hand out now, left where it is; or null. */
  heldFor(user: string, key: CredentialKey, accept: (conn: BackendConnection) => boolean): BackendConnection | null {
    // (max_reuse_age too: an old connection does not prove a password the server may have changed, B5)
    const entry = (this.byUser.get(user) ?? []).find((e) => e.key.sameScope(key) && e.key.matches(key) && e.conn.alive && !this.tooOld(e.conn) && accept(e.conn));
    return entry?.conn ?? null;
  }

  /**
   * Makes room for one new server connection; throws PoolFullError when every
   * one is in use, UserLimitError when `user` holds its share in use. A cached
   * connection of `user` that could not serve this login (another password)
   * is closed to make room within the user's share.
   */
  reserve(user?: string): void {
    if (user !== undefined) this.makeRoomFor(user);
    if (this.held >= this.config.cache_size) {
      const victim = this.lru.values().next().value as CachedEntry | undefined;
      if (!victim) throw new PoolFullError();
      this.log.info(`Expiring server sd [${victim.conn.id}] to make room (cache_size ${this.config.cache_size} reached)`);
      this.unlink(victim);
      this.stats.evicted();
      victim.conn.logoutAndClose(nextTag());
      this.held--;
    }
    this.held++;
    if (user !== undefined) bump(this.openingOf, this.shareOf(user), 1);
  }

  /** The reserved slot was not used (the server login failed). */
  unreserve(user?: string): void {
    if (user !== undefined) bump(this.openingOf, this.shareOf(user), -1);
    this.dropHeld();
  }

  /** A newly logged-in connection goes to a client. */
  attach(conn: BackendConnection, user: string, client = ''): void {
    bump(this.openingOf, this.shareOf(user), -1);
    conn.state = 'active';
    this.markActive(conn, user, client);
  }

  /**
   * The account a login name counts against for max_server_connections_per_user:
   * the name as the server matches it (admin/user-match.ts), so that `Alice`,
   * `ALICE` and `alice` share one limit instead of each having its own.
   */
  private shareOf(user: string): string {
    return userMatchKey(Buffer.from(user, 'latin1').toString('utf8'), this.config.user_match_exact);
  }

  /** Server connections of `user`'s account: in use, cached and being opened. */
  heldBy(user: string): number {
    const share = this.shareOf(user);
    return (this.activeOf.get(share) ?? 0) + (this.cachedOf.get(share) ?? 0) + (this.openingOf.get(share) ?? 0);
  }

  private makeRoomFor(user: string): void {
    const limit = this.config.max_server_connections_per_user;
    if (limit === 0) return;
    const share = this.shareOf(user);
    while (this.heldBy(user) >= limit) {
      let oldest: CachedEntry | undefined;
      for (const e of this.lru) {
        if (e.share === share) {
          oldest = e;
          break;
        }
      }
      if (!oldest) throw new UserLimitError(limit);
      this.log.info(`Expiring server sd [${oldest.conn.id}] to make room (max_server_connections_per_user ${limit} reached for user '${user}')`);
      this.unlink(oldest);
      this.stats.evicted();
      oldest.conn.logoutAndClose(nextTag());
      this.dropHeld();
    }
  }

  /**
   * The client is done with a clean connection: cache it, or close it when it
   * has lived or served long enough.
   */
  release(conn: BackendConnection, user: string, key: CredentialKey): void {
    const client = this.active.get(conn)?.client ?? '';
    this.unmarkActive(conn);
    const tooOld = this.tooOld(conn);
    const tooUsed = this.config.max_reuse_count > 0 && conn.reuseCount >= this.config.max_reuse_count;
    if (!conn.alive || tooOld || tooUsed || this.config.cache_expiration_time === 0 || this.closing) {
      if (tooOld || tooUsed) this.log.info(`Expiring server sd [${conn.id}] (reuse limit reached)`);
      conn.logoutAndClose(nextTag());
      this.dropHeld();
      return;
    }
    conn.state = 'cached';
    const entry: CachedEntry = {
      conn,
      user,
      key,
      timer: setTimeout(() => this.expire(entry), this.config.cache_expiration_time * 1000),
      onClose: () => this.invalidate(entry, 'info', 'closed by the server while cached'),
      cachedAt: Date.now(),
      client,
      share: this.shareOf(user),
    };
    entry.timer.unref();
    // Anything the server says to an idle connection (an alert, a BYE) would
    // reach the next session: such a connection is closed instead.
    // One log line per connection: the close that follows finds it gone already.
    conn.setHandler(() => {
      this.invalidate(entry, 'notice', 'unsolicited data from the server while cached');
      conn.destroy();
    });
    conn.onClose(entry.onClose);
    let list = this.byUser.get(user);
    if (!list) this.byUser.set(user, (list = []));
    list.push(entry);
    this.lru.add(entry);
    bump(this.cachedOf, entry.share, 1);
    this.stats.cachedChanged(1);
    this.log.info(`LOGOUT: '${user}' from server sd [${conn.id}]`);
  }

  /** A cached connection the server spoke on or closed leaves the pool (once). */
  private invalidate(entry: CachedEntry, level: 'info' | 'notice', why: string): void {
    if (!this.unlink(entry)) return;
    this.log[level](`Invalidating server sd [${entry.conn.id}]: ${why}`);
    this.stats.invalidated();
    this.dropHeld();
  }

  /** An active connection is closed instead of cached. */
  discard(conn: BackendConnection, reason: string): void {
    if (!this.unmarkActive(conn)) return;
    this.log.info(`Invalidating server sd [${conn.id}]${reason ? `: ${reason}` : ''}`);
    this.stats.invalidated();
    if (conn.alive) conn.logoutAndClose(nextTag());
    else conn.destroy();
    this.dropHeld();
  }

  /** Closes every cached connection, of one user (a pool key, or a test of pool keys) or of all (ctl flush, shutdown). */
  flush(user?: string | ((user: string) => boolean)): number {
    let n = 0;
    const wanted = typeof user === 'string' ? (u: string) => u === user : user;
    for (const entry of [...this.lru]) {
      if (wanted !== undefined && !wanted(entry.user)) continue;
      this.unlink(entry);
      entry.conn.logoutAndClose(nextTag());
      this.dropHeld();
      n++;
    }
    return n;
  }

  /** Closes every cached connection to one server (it went down); returns how many. */
  flushServer(server: string): number {
    let n = 0;
    for (const entry of [...this.lru]) {
      if (entry.conn.server !== server) continue;
      this.unlink(entry);
      this.log.info(`Invalidating server sd [${entry.conn.id}]: server ${server} is down`);
      this.stats.invalidated();
      entry.conn.logoutAndClose(nextTag());
      this.dropHeld();
      n++;
    }
    return n;
  }

  entries(): PoolEntryInfo[] {
    const now = Date.now();
    const out: PoolEntryInfo[] = [];
    for (const [conn, a] of this.active) {
      out.push({ id: conn.id, user: a.user, state: 'active', reuseCount: conn.reuseCount, ageMs: now - conn.createdAt, client: a.client, idleMs: now - conn.lastActivityAt, tls: conn.tls, server: conn.server });
    }
    for (const e of this.lru) {
      out.push({ id: e.conn.id, user: e.user, state: 'cached', reuseCount: e.conn.reuseCount, ageMs: now - e.conn.createdAt, client: e.client, idleMs: now - e.cachedAt, tls: e.conn.tls, server: e.conn.server });
    }
    return out;
  }

  /** cache_expiration_time changed (reload): every cached connection expires that long after it was cached. */
  rescheduleExpiry(): void {
    const now = Date.now();
    for (const entry of this.lru) {
      clearTimeout(entry.timer);
      const left = Math.max(0, entry.cachedAt + this.config.cache_expiration_time * 1000 - now);
      entry.timer = setTimeout(() => this.expire(entry), left);
      entry.timer.unref();
    }
  }

  /**
   * Shutdown: logs out of every cached connection, and from now on of every
   * connection a session releases. Returns how many were closed.
   */
  close(): number {
    this.closing = true;
    return this.flush();
  }

  /** Shutdown, when the grace time is over: logs out of the connections still in use. */
  closeActive(): number {
    const conns = [...this.active.keys()];
    for (const conn of conns) this.discard(conn, 'shutting down');
    return conns.length;
  }

  /** Older than max_reuse_age (0: no limit). */
  private tooOld(conn: BackendConnection): boolean {
    return this.config.max_reuse_age > 0 && Date.now() - conn.createdAt >= this.config.max_reuse_age * 1000;
  }

  private expire(entry: CachedEntry): void {
    if (!this.unlink(entry)) return;
    this.log.info(`Expiring server sd [${entry.conn.id}]`);
    this.stats.expired();
    entry.conn.logoutAndClose(nextTag());
    this.dropHeld();
  }

  /** Removes a cached entry from every index; false if it was not cached. */
  private unlink(entry: CachedEntry): boolean {
    if (!this.lru.delete(entry)) return false;
    clearTimeout(entry.timer);
    entry.conn.offClose(entry.onClose);
    entry.conn.setHandler(null);
    const list = this.byUser.get(entry.user)!;
    list.splice(list.indexOf(entry), 1);
    if (list.length === 0) this.byUser.delete(entry.user);
    bump(this.cachedOf, entry.share, -1);
    this.stats.cachedChanged(-1);
    return true;
  }

  private markActive(conn: BackendConnection, user: string, client: string): void {
    const share = this.shareOf(user);
    this.active.set(conn, { user, client, share });
    bump(this.activeOf, share, 1);
    this.stats.activeChanged(1);
  }

  private unmarkActive(conn: BackendConnection): boolean {
    const info = this.active.get(conn);
    if (!info) return false;
    this.active.delete(conn);
    bump(this.activeOf, info.share, -1);
    this.stats.activeChanged(-1);
    return true;
  }

  private dropHeld(): void {
    this.held = Math.max(0, this.held - 1);
  }
}

/** Adds `by` to a per-user count, forgetting users at zero. */
function bump(counts: Map<string, number>, user: string, by: number): void {
  const n = (counts.get(user) ?? 0) + by;
  if (n > 0) counts.set(user, n);
  else counts.delete(user);
}
