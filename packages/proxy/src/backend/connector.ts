// Opens new server connections and logs them in (SPEC §4.9, improved): a
// timeout on the connect and on every read, connect retries bounded by the
// login deadline, the greeting checked, every queued client ID replayed, the
// preauth command, then LOGIN with the credentials re-encoded (quoted or
// literal) from their decoded bytes.

import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { capabilityTokens, encodeString, type EncodedPart, type ProxyConfig } from '@imapproxy/shared';
import { BackendConnection } from './backend-connection.js';
import { LoginRefusedError, ServerUnavailableError } from './errors.js';
import type { ServerAddresses } from './server-address.js';
import { nextTag } from './tags.js';
import type { Logger } from '../log/logger.js';

export interface Credentials {
  user: Buffer;
  password: Buffer;
}

export interface OpenedConnection {
  conn: BackendConnection;
  greeting: string;
}

type ConnectorConfig = Pick<
  ProxyConfig,
  | 'connect_timeout' | 'connect_retries' | 'connect_delay' | 'server_timeout' | 'server_port'
  | 'send_tcp_keepalives' | 'preauth_command' | 'max_line_length'
>;

export class Connector {
  constructor(
    private readonly config: ConnectorConfig,
    private readonly addresses: ServerAddresses,
    private readonly log: Logger,
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
          const socket = await this.connect(a.address, Math.min(this.config.connect_timeout * 1000, Math.max(1, deadline - Date.now())));
          return await this.readGreeting(socket, deadline);
        } catch (err) {
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
      // (SPEC §11 B2). TLS to the server comes with its own issue; until then
      // such a server is unavailable rather than exposed.
      if (conn.capabilities.some((c) => c.toUpperCase() === 'LOGINDISABLED')) {
        throw new ServerUnavailableError('the IMAP server advertises LOGINDISABLED and TLS to the server is not available in this version');
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
