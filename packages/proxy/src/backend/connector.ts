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
import { BackendConnection } from './backend-connection.js';
import { LoginRefusedError, ServerUnavailableError } from './errors.js';
import type { ServerAddresses } from './server-address.js';
import { nextTag } from './tags.js';
import type { Logger } from '../log/logger.js';
import { ServerTls, ServerTlsError } from '../tls/server-tls.js';

export interface Credentials {
  user: Buffer;
  password: Buffer;
}

export interface OpenedConnection {
  conn: BackendConnection;
  /** The server's greeting; after STARTTLS its capability code holds the capabilities read over TLS. */
  greeting: string;
}

type ConnectorConfig = Pick<
  ProxyConfig,
  | 'connect_timeout' | 'connect_retries' | 'connect_delay' | 'server_timeout' | 'server_port'
  | 'send_tcp_keepalives' | 'preauth_command' | 'max_line_length'
>;

const hasCapability = (caps: string[], name: string): boolean => caps.some((c) => c.toUpperCase() === name);

export class Connector {
  constructor(
    private readonly config: ConnectorConfig,
    private readonly addresses: ServerAddresses,
    private readonly log: Logger,
    private readonly tls: ServerTls | null = null,
  ) {}

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

  /** TCP connection and greeting, trying every address; retries until `deadline` allows no more. */
  async open(deadline: number, retries = this.config.connect_retries): Promise<OpenedConnection> {
    let lastError: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        const delayMs = this.config.connect_delay * 1000;
        if (Date.now() + delayMs >= deadline) break;
        await sleep(delayMs);
      }
      let addresses;
      try {
        addresses = await this.addresses.forNewConnection();
      } catch (err) {
        lastError = err;
        continue;
      }
      for (const a of addresses) {
        try {
          const connectMs = Math.min(this.config.connect_timeout * 1000, Math.max(1, deadline - Date.now()));
          let socket: net.Socket = await this.connect(a.address, connectMs);
          if (this.tls?.implicit) socket = await this.tls.handshake(socket, a.address, this.config.server_port, connectMs);
          return await this.secure(await this.readGreeting(socket, deadline), a.address, deadline);
        } catch (err) {
          // A refused certificate is not fixed by trying again: the login fails now, with the reason.
          if (err instanceof ServerTlsError && err.certificateRefused) throw err;
          lastError = err;
        }
      }
    }
    const reason = lastError instanceof Error ? lastError.message : String(lastError);
    throw new ServerUnavailableError(`cannot connect to the IMAP server: ${reason}`, { cause: lastError });
  }

  private connect(host: string, timeoutMs: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port: this.config.server_port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${this.config.server_port} timed out after ${timeoutMs} ms`));
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
  private async secure(opened: OpenedConnection, address: string, deadline: number): Promise<OpenedConnection> {
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
      const secure = await this.tls.handshake(plain, address, this.config.server_port, this.readTimeout(deadline));
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
   * a log line (SPEC §11 B1: the original crashed).
   */
  async login(creds: Credentials, ids: string[], deadline: number): Promise<BackendConnection> {
    const { conn } = await this.open(deadline);
    // login_timeout bounds the whole login, not only each read: a server that
    // kept sending untagged lines, each within server_timeout, held the login
    // (and its client) for ever (found by test/faults.test.ts).
    const overall = setTimeout(() => {
      conn.reader.fail(new ServerUnavailableError(`the server login took longer than login_timeout`));
      conn.destroy();
    }, Math.max(1, deadline - Date.now()));
    try {
      const t = (): number => this.readTimeout(deadline);
      for (const args of ids) {
        const tag = nextTag();
        conn.write(`${tag} ID ${args}\r\n`);
        const r = await conn.reader.untilTagged(tag, t(), 'the reply to ID');
        if (r.status !== 'OK') this.log.notice(`QUEUED PREAUTH failed: non-OK server response to queued pre-authentication command (ID ): ${r.status} ${r.text}`);
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
      await this.sendLogin(conn, tag, creds, deadline);
      const r = await conn.reader.untilTagged(tag, t(), 'the reply to LOGIN', (line) => {
        const caps = capabilityTokens(line);
        if (caps) conn.capabilities = caps;
      });
      if (r.status === 'NO' || r.status === 'BAD') throw new LoginRefusedError(r.status, r.text);
      if (r.status !== 'OK') throw new ServerUnavailableError(`unexpected server response to LOGIN: ${r.line.slice(0, 200)}`);
      const caps = capabilityTokens(r.text);
      if (caps) conn.capabilities = caps;
      return conn;
    } catch (err) {
      conn.logoutAndClose(nextTag());
      throw err;
    } finally {
      clearTimeout(overall);
    }
  }

  /** LOGIN with each credential quoted, or as a literal when it must be one. */
  private async sendLogin(conn: BackendConnection, tag: string, creds: Credentials, deadline: number): Promise<void> {
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
        const cont = await conn.reader.next(this.readTimeout(deadline), 'the continuation for a LOGIN literal');
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
