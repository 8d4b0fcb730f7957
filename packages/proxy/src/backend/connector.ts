// Opens new server connections and logs them in (SPEC §4.9, improved): a
// timeout on the connect and on every read, connect retries bounded by the
// login deadline, the greeting checked, every queued client ID replayed, the
// preauth command, then LOGIN with the credentials re-encoded (quoted or
// literal) from their decoded bytes. TLS (SPEC §10) is decided per
// connection: implicit TLS (server_tls), or STARTTLS whenever this
// connection's server advertises LOGINDISABLED or force_tls is set, with the
// capabilities read again after TLS. A server that said LOGINDISABLED never
// gets a LOGIN in clear (B2).

import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { capabilityTokens, encodeString, type EncodedPart, type ProxyConfig } from '@imapproxy/shared';
import { BackendConnection, connectWithReadBuffer } from './backend-connection.js';
import type { BackendServer } from './backend-server.js';
import { LoginRefusedError, ServerUnavailableError } from './errors.js';
import { SaslProxyIdentity } from './sasl-proxy.js';
import type { UserKey } from './rendezvous.js';
import type { ServerSet } from './server-set.js';
import { nextTag } from './tags.js';
import type { Logger } from '../log/logger.js';
import { secondsSince, type ProxyMetrics } from '../metrics/proxy-metrics.js';
import { ServerTls, ServerTlsError } from '../tls/server-tls.js';

export interface Credentials {
  user: Buffer;
  password: Buffer;
}

/** The client's connection as the client sees it (send_originating_ip): sent in an ID before LOGIN. */
export interface OriginatingAddress {
  client: { address: string; port: number };
  /** The address the client connected to. */
  connected: { address: string; port: number };
}

/**
 * The ID arguments Dovecot reads from a trusted peer (login_trusted_networks)
 * to log and check the real client instead of the proxy: rip/rport and lip/lport.
 */
export function originatingIdArgs(origin: OriginatingAddress): string {
  const fields: Array<[string, string | number]> = [
    ['x-originating-ip', origin.client.address],
    ['x-originating-port', origin.client.port],
    ['x-connected-ip', origin.connected.address],
    ['x-connected-port', origin.connected.port],
  ];
  // addresses and port numbers need no escaping inside quotes
  return `(${fields.map(([k, v]) => `"${k}" "${v}"`).join(' ')})`;
}

export interface OpenedConnection {
  conn: BackendConnection;
  /** The server's greeting; after STARTTLS its capability code holds the capabilities read over TLS. */
  greeting: string;
}

type ConnectorConfig = Pick<
  ProxyConfig,
  | 'connect_timeout' | 'connect_retries' | 'connect_delay' | 'server_timeout'
  | 'send_tcp_keepalives' | 'preauth_command' | 'max_line_length'
  | 'auth_sasl_plain_username' | 'auth_sasl_plain_password' | 'auth_shared_secret'
>;

/** A client's ID arguments for a log line: at most 300 characters. */
function shortened(args: string): string {
  return args.length <= 300 ? args : `${args.slice(0, 300)}... (${args.length} chars)`;
}

const hasCapability = (caps: string[], name: string): boolean => caps.some((c) => c.toUpperCase() === name);

export class Connector {
  constructor(
    private readonly config: ConnectorConfig,
    private readonly servers: ServerSet,
    private readonly log: Logger,
    private readonly tls: ServerTls | null = null,
  ) {
    this.proxyIdentity = SaslProxyIdentity.fromConfig(config);
  }

  /** The SASL PLAIN proxy identity (SPEC §4.10), or null: logins with the client's own credentials. */
  readonly proxyIdentity: SaslProxyIdentity | null;

  /** Prometheus metrics (metrics_listen_port), set by the daemon; absent when they are off. */
  metrics?: ProxyMetrics;

  private get serverTimeoutMs(): number {
    return this.config.server_timeout * 1000;
  }

  /**
   * server_timeout for one read, but never past the login's deadline: each
   * read used to get the full server_timeout, so login_timeout did not bound
   * a login to a server that accepts and then stays silent (found by
   * test/proxy-pool.test.ts).
   */
  private readTimeout(deadline: number): number {
    return Math.max(1, Math.min(this.serverTimeoutMs, deadline - Date.now()));
  }

  /**
   * TCP connection and greeting: the servers in `user`'s order (ServerSet),
   * every address of each; retries until `deadline` allows no more. A server
   * that fails here is marked down, so the next logins of its users go to
   * their next server at once; the greeting fetch (no user) takes any server.
   */
  async open(deadline: number, retries = this.config.connect_retries, user?: UserKey): Promise<OpenedConnection> {
    let lastError: unknown;
    const failures = new Map<BackendServer, unknown>();
    /** Servers whose certificate was refused: trying again cannot help. */
    const refused = new Set<BackendServer>();
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        const delayMs = this.config.connect_delay * 1000;
        if (Date.now() + delayMs >= deadline) break;
        await sleep(delayMs);
      }
      let tried = 0;
      for (const server of this.servers.order(user)) {
        if (refused.has(server)) continue;
        // Failover stays within the login's deadline; a server not tried for
        // lack of time is not counted as down.
        if (tried++ > 0 && Date.now() >= deadline) break;
        try {
          const opened = await this.openOn(server, deadline);
          this.servers.setUp(server);
          return opened;
        } catch (err) {
          lastError = err;
          failures.set(server, err);
          // A connect cut short by the deadline says nothing about the server.
          if (Date.now() < deadline) this.servers.connectFailed(server, (err as Error).message);
          if (err instanceof ServerTlsError && err.certificateRefused) {
            // The login fails now, with the reason, when no other server is left to try.
            if (this.servers.single) throw err;
            refused.add(server);
          }
        }
      }
      if (refused.size === this.servers.servers.length) break;
    }
    if (lastError instanceof ServerTlsError && lastError.certificateRefused) throw lastError;
    if (this.servers.single || failures.size === 0) {
      const reason = lastError instanceof Error ? lastError.message : String(lastError);
      throw new ServerUnavailableError(`cannot connect to the IMAP server: ${reason}`, { cause: lastError });
    }
    const reasons = [...failures].map(([s, err]) => `${s.name}: ${err instanceof Error ? err.message : String(err)}`);
    throw new ServerUnavailableError(`cannot connect to any IMAP server: ${reasons.join('; ')}`, { cause: lastError });
  }

  /** One server, each of its addresses in turn, once. */
  private async openOn(server: BackendServer, deadline: number): Promise<OpenedConnection> {
    // The first lookup of a name is part of connecting: the same bound.
    const addresses = await server.addresses.forNewConnection(Math.min(this.config.connect_timeout * 1000, Math.max(1, deadline - Date.now())));
    let lastError: unknown = new Error(`no address for ${server.host}`);
    for (const a of addresses) {
      try {
        const connectMs = Math.min(this.config.connect_timeout * 1000, Math.max(1, deadline - Date.now()));
        let socket: net.Socket = await this.connect(a.address, server.port, connectMs);
        if (this.tls?.implicit) socket = await this.tls.handshake(socket, a.address, server.port, connectMs, server.host);
        const opened = await this.secure(await this.readGreeting(socket, deadline), server, a.address, deadline);
        opened.conn.server = server.name;
        return opened;
      } catch (err) {
        if (err instanceof ServerTlsError && err.certificateRefused) throw err;
        lastError = err;
      }
    }
    throw lastError;
  }

  /**
   * A health check: a connection to `server` as a login would open it
   * (TLS included), then LOGOUT. Rejects when that fails within `timeoutMs`.
   */
  async probe(server: BackendServer, timeoutMs: number): Promise<void> {
    const { conn } = await this.openOn(server, Date.now() + timeoutMs);
    conn.logoutAndClose(nextTag());
  }

  private connect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      // Reads into a reused buffer (backend-connection.ts); TLS, implicit or after STARTTLS, reads on its own.
      const socket = connectWithReadBuffer({ host, port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        if (this.config.send_tcp_keepalives) socket.setKeepAlive(true);
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /**
   * STARTTLS when this server needs it (SPEC §4.9 step 4, done on every new
   * connection, unlike the original's start-up decision, B2), then the
   * capabilities again, since they change with TLS. The bytes read in clear
   * are dropped with the plain connection.
   */
  private async secure(opened: OpenedConnection, server: BackendServer, address: string, deadline: number): Promise<OpenedConnection> {
    const { conn, greeting } = opened;
    if (this.tls === null || conn.tls) return opened;
    try {
      if (capabilityTokens(greeting) === null && !this.tls.forced) conn.capabilities = await this.capability(conn, deadline);
      const loginDisabled = hasCapability(conn.capabilities, 'LOGINDISABLED');
      if (!loginDisabled && !this.tls.forced) return opened;
      const why = loginDisabled ? 'IMAP server has LOGINDISABLED' : 'force_tls is set';
      if (conn.capabilities.length > 0 && !hasCapability(conn.capabilities, 'STARTTLS')) {
        throw new ServerUnavailableError(`${why} and the server does not offer STARTTLS`);
      }
      const tag = nextTag();
      conn.write(`${tag} STARTTLS\r\n`);
      const r = await conn.reader.untilTagged(tag, this.readTimeout(deadline), 'the reply to STARTTLS');
      if (r.status !== 'OK') throw new ServerUnavailableError(`${why} and STARTTLS failed: ${r.status} ${r.text}`);
      // Anything after the OK came before TLS: whoever can write it could also have forged it.
      if (conn.reader.takeUnread().length > 0) throw new ServerUnavailableError('the IMAP server sent data after its STARTTLS reply');
      const plain = conn.detach();
      const secure = await this.tls.handshake(plain, address, server.port, this.readTimeout(deadline), server.host);
      const upgraded = new BackendConnection(secure, this.config.max_line_length);
      try {
        upgraded.capabilities = await this.capability(upgraded, deadline);
      } catch (err) {
        upgraded.destroy();
        throw err;
      }
      const tokens = upgraded.capabilities.join(' ');
      return { conn: upgraded, greeting: greeting.replace(/\[CAPABILITY [^\]]*\]/i, () => `[CAPABILITY ${tokens}]`) };
    } catch (err) {
      conn.destroy();
      throw err;
    }
  }

  /** CAPABILITY, for servers whose greeting has none and after STARTTLS. */
  private async capability(conn: BackendConnection, deadline: number): Promise<string[]> {
    const tag = nextTag();
    conn.write(`${tag} CAPABILITY\r\n`);
    let caps: string[] = [];
    const r = await conn.reader.untilTagged(tag, this.readTimeout(deadline), 'the reply to CAPABILITY', (line) => {
      caps = capabilityTokens(line) ?? caps;
    });
    if (r.status !== 'OK') throw new ServerUnavailableError(`CAPABILITY failed: ${r.status} ${r.text}`);
    return capabilityTokens(r.text) ?? caps;
  }

  private async readGreeting(socket: net.Socket, deadline: number): Promise<OpenedConnection> {
    const conn = new BackendConnection(socket, this.config.max_line_length);
    try {
      const { text } = await conn.reader.next(this.readTimeout(deadline), 'the server greeting');
      if (!/^\* OK\b/i.test(text)) throw new Error(`unexpected server greeting: ${text.slice(0, 200)}`);
      const caps = capabilityTokens(text);
      if (caps) conn.capabilities = caps;
      return { conn, greeting: text };
    } catch (err) {
      conn.destroy();
      throw err;
    }
  }

  /**
   * A new logged-in connection. `ids` are the client's pre-login ID commands
   * (arguments only), replayed in order; a server that rejects one only gets
   * a log line (SPEC §11 B1: the original crashed). `origin` (given under
   * send_originating_ip) goes first in an ID of its own; refused, it only
   * gets a log line too.
   */
  async login(creds: Credentials, ids: string[], deadline: number, origin?: OriginatingAddress): Promise<BackendConnection> {
    const connectStarted = performance.now();
    const { conn } = await this.open(deadline, this.config.connect_retries, creds.user);
    this.metrics?.observeConnect(conn.server, secondsSince(connectStarted));
    const server = this.servers.byName(conn.server);
    if (server) server.loginsRouted++;
    // login_timeout bounds the whole login, not only each read: a server that
    // kept sending untagged lines, each within server_timeout, held the login
    // (and its client) for ever (found by test/faults.test.ts).
    const overall = setTimeout(() => {
      conn.reader.fail(new ServerUnavailableError(`the server login took longer than login_timeout`));
      conn.destroy();
    }, Math.max(1, deadline - Date.now()));
    try {
      const t = (): number => this.readTimeout(deadline);
      // Before the client's own IDs: Dovecot takes the x-* fields from the
      // first ID only, so a client cannot forge its address with an ID of its own.
      if (origin) {
        const tag = nextTag();
        conn.write(`${tag} ID ${originatingIdArgs(origin)}\r\n`);
        const r = await conn.reader.untilTagged(tag, t(), 'the reply to ID');
        if (r.status !== 'OK') this.log.notice(`ID with the client address (send_originating_ip) refused by the server: ${r.status} ${r.text}`);
      }
      for (const args of ids) {
        const tag = nextTag();
        conn.write(`${tag} ID ${args}\r\n`);
        const r = await conn.reader.untilTagged(tag, t(), 'the reply to ID');
        // The arguments are what the client sent as ID (no credentials): shown,
        // shortened, so the refusal can be understood (it used to say `(ID )`).
        if (r.status !== 'OK') this.log.notice(`QUEUED PREAUTH failed: non-OK server response to queued pre-authentication command (ID ${shortened(args)}): ${r.status} ${r.text}`);
      }
      if (this.config.preauth_command) {
        const tag = nextTag();
        conn.write(`${tag} ${this.config.preauth_command}\r\n`);
        const r = await conn.reader.untilTagged(tag, t(), 'the reply to preauth_command');
        if (r.status !== 'OK') throw new ServerUnavailableError(`PREAUTH failed: non-OK server response to preauth_command: ${r.status} ${r.text}`);
      }
      // Never send a password in clear to a server that asked for TLS first
      // (SPEC §11 B2): STARTTLS has happened above when it said so; if it
      // still says LOGINDISABLED, the server is unavailable rather than exposed.
      if (hasCapability(conn.capabilities, 'LOGINDISABLED')) {
        throw new ServerUnavailableError(conn.tls
          ? 'the IMAP server advertises LOGINDISABLED even over TLS'
          : 'the IMAP server advertises LOGINDISABLED and TLS to the server is not configured');
      }
      const tag = nextTag();
      // What a direct login shows the client besides the tagged OK: untagged
      // lines (an ALERT, a message of the day) and the capabilities after login.
      const untagged: string[] = [];
      let loginCaps: string[] | null = null;
      if (this.proxyIdentity) await this.sendProxyAuthenticate(conn, tag, this.proxyIdentity.plainResponse(creds.user), deadline, untagged);
      else await this.sendLogin(conn, tag, creds, deadline, untagged);
      const r = await conn.reader.untilTagged(tag, t(), 'the reply to LOGIN', (line) => {
        loginCaps = capabilityTokens(line) ?? loginCaps;
        untagged.push(line);
      });
      if (r.status === 'NO' || r.status === 'BAD') throw new LoginRefusedError(r.status, r.text);
      if (r.status !== 'OK') throw new ServerUnavailableError(`unexpected server response to LOGIN: ${r.line.slice(0, 200)}`);
      loginCaps = capabilityTokens(r.text) ?? loginCaps;
      // Courier's LOGIN reply names no capabilities: ask once, on this new
      // connection only (the list is kept with it for every reuse). Sent after
      // the tagged OK, never pipelined with LOGIN (Courier drops what follows
      // LOGIN in the same packet).
      loginCaps ??= await this.capabilityAfterLogin(conn, deadline, untagged);
      if (loginCaps !== null) conn.capabilities = loginCaps;
      conn.loginCapabilities = loginCaps;
      conn.loginUntagged = untagged;
      return conn;
    } catch (err) {
      conn.logoutAndClose(nextTag());
      throw err;
    } finally {
      clearTimeout(overall);
    }
  }

  /**
   * AUTHENTICATE PLAIN as the proxy identity for the client's user: the
   * response on the command line where the server has SASL-IR (RFC 4959),
   * else after its `+` (1.2.8 always sent SASL-IR and failed without it).
   */
  private async sendProxyAuthenticate(conn: BackendConnection, tag: string, response: string, deadline: number, untagged: string[]): Promise<void> {
    if (hasCapability(conn.capabilities, 'SASL-IR')) {
      conn.write(`${tag} AUTHENTICATE PLAIN ${response}\r\n`);
      return;
    }
    conn.write(`${tag} AUTHENTICATE PLAIN\r\n`);
    let cont = await conn.reader.next(this.readTimeout(deadline), 'the continuation for AUTHENTICATE PLAIN');
    while (cont.text.startsWith('* ')) {
      untagged.push(cont.text);
      cont = await conn.reader.next(this.readTimeout(deadline), 'the continuation for AUTHENTICATE PLAIN');
    }
    if (!cont.text.startsWith('+')) {
      const m = /^\S+ (NO|BAD) ?(.*)$/i.exec(cont.text);
      if (m) throw new LoginRefusedError(m[1]!.toUpperCase() as 'NO' | 'BAD', m[2]!);
      throw new ServerUnavailableError(`unexpected server response to AUTHENTICATE PLAIN: ${cont.text.slice(0, 200)}`);
    }
    conn.write(`${response}\r\n`);
  }

  /** LOGIN with each credential quoted, or as a literal when it must be one. */
  /**
   * CAPABILITY after a login whose reply named none: the list or, when the
   * server refuses or names none, null (the client's OK then carries no
   * code, as the server's did). Its untagged lines other than CAPABILITY
   * (an ALERT sent after the LOGIN reply) go to `untagged`.
   */
  private async capabilityAfterLogin(conn: BackendConnection, deadline: number, untagged: string[]): Promise<string[] | null> {
    const tag = nextTag();
    conn.write(`${tag} CAPABILITY\r\n`);
    let caps: string[] | null = null;
    const r = await conn.reader.untilTagged(tag, this.readTimeout(deadline), 'the reply to CAPABILITY after LOGIN', (line) => {
      const tokens = /^\* CAPABILITY /i.test(line) ? capabilityTokens(line) : null;
      if (tokens) caps = tokens;
      else untagged.push(line);
    });
    if (r.status !== 'OK') return null;
    return capabilityTokens(r.text) ?? caps;
  }

  private async sendLogin(conn: BackendConnection, tag: string, creds: Credentials, deadline: number, untagged: string[]): Promise<void> {
    const literalPlus = conn.capabilities.some((c) => c.toUpperCase() === 'LITERAL+');
    const parts: EncodedPart[] = [encodeString(creds.user), encodeString(creds.password)];
    let line: Buffer[] = [Buffer.from(`${tag} LOGIN`)];
    for (const part of parts) {
      line.push(Buffer.from(' '));
      if ('text' in part) {
        line.push(part.text);
        continue;
      }
      line.push(Buffer.from(`{${part.literal.length}${literalPlus ? '+' : ''}}\r\n`));
      if (!literalPlus) {
        conn.write(Buffer.concat(line));
        line = [];
        let cont = await conn.reader.next(this.readTimeout(deadline), 'the continuation for a LOGIN literal');
        // Untagged data may come first (RFC 3501 §7: at any time): it is the
        // client's, like the LOGIN reply's own untagged lines.
        while (cont.text.startsWith('* ')) {
          untagged.push(cont.text);
          cont = await conn.reader.next(this.readTimeout(deadline), 'the continuation for a LOGIN literal');
        }
        if (!cont.text.startsWith('+')) {
          const m = /^\S+ (NO|BAD) ?(.*)$/i.exec(cont.text);
          if (m) throw new LoginRefusedError(m[1]!.toUpperCase() as 'NO' | 'BAD', m[2]!);
          throw new ServerUnavailableError(`unexpected server response to a LOGIN literal: ${cont.text.slice(0, 200)}`);
        }
      }
      line.push(part.literal);
    }
    line.push(Buffer.from('\r\n'));
    conn.write(Buffer.concat(line));
  }
}
