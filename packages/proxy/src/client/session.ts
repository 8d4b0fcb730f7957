// One client connection before login (SPEC §4.3–§4.8): greeting, the
// pre-login commands answered by the proxy, then the server login (a cached
// connection or a new one) and the hand-over to the relay.

import type { Socket } from 'node:net';
import {
  ArgumentError,
  CommandAssembler,
  ImapProxyError,
  parseArguments,
  readTagAndName,
  type LiteralSpec,
  type RawCommand,
} from '@imapproxy/shared';
import type { Credentials } from '../backend/connector.js';
import { CredentialKey } from '../backend/credential-key.js';
import { LoginRefusedError, PoolFullError } from '../backend/errors.js';
import type { BackendConnection } from '../backend/backend-connection.js';
import type { ProxyContext } from '../context.js';
import { Relay } from '../relay/relay.js';
import { PREAUTH_COMMANDS } from './commands/index.js';

const EMPTY = Buffer.alloc(0);

export type LoginKind = 'LOGIN' | 'AUTHENTICATE';

export class ClientSession {
  /** Arguments of every ID the client sent before login, in order. */
  readonly ids: string[] = [];
  readonly address: string;
  private state: 'greeting' | 'preauth' | 'login' | 'relay' | 'closed' = 'greeting';
  private readonly assembler: CommandAssembler;
  private pending: Buffer = EMPTY;
  private ready: RawCommand | null = null;
  private busy = false;
  private lineWaiter: ((line: Buffer) => void) | null = null;

  constructor(
    readonly ctx: ProxyContext,
    readonly socket: Socket,
  ) {
    this.address = `${socket.remoteAddress}:${socket.remotePort}`;
    const c = ctx.config;
    this.assembler = new CommandAssembler(
      {
        literal: (spec, partial, tooLarge) => this.onLiteral(spec, partial, tooLarge),
        command: (cmd) => {
          this.ready = cmd;
        },
      },
      {
        maxLineLength: c.max_preauth_line_length,
        maxLiteralSize: c.max_preauth_literal_size,
        maxCommandSize: c.max_preauth_line_length + 2 * c.max_preauth_literal_size,
      },
    );
  }

  async start(): Promise<void> {
    const { socket, ctx } = this;
    socket.setNoDelay(true);
    if (ctx.config.send_tcp_keepalives) socket.setKeepAlive(true);
    ctx.stats.clientOpened();
    socket.once('close', () => {
      ctx.stats.clientClosed();
      if (this.state !== 'relay') this.state = 'closed';
      this.lineWaiter = null;
    });
    socket.on('error', () => {});
    socket.on('data', this.onData);
    socket.pause();
    socket.setTimeout(ctx.config.preauth_idle_timeout * 1000, () => {
      if (this.state === 'preauth' || this.state === 'greeting') {
        ctx.log.info(`no data received from client ${this.address} for ${ctx.config.preauth_idle_timeout} seconds: closing`);
        this.end('* BYE Autologout; idle for too long\r\n');
      }
    });
    const greeting = await ctx.greeting.clientGreeting();
    if (this.state === 'closed') return;
    this.state = 'preauth';
    this.send(`${greeting}\r\n`);
    socket.resume();
    void this.pump();
  }

  send(text: string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(text);
  }

  /** Last words and close. */
  end(text: string): void {
    this.state = 'closed';
    if (!this.socket.destroyed) this.socket.end(text);
    const timer = setTimeout(() => this.socket.destroy(), 5000);
    timer.unref();
  }

  /** One line from the client (an AUTHENTICATE response), without its ending. */
  readLine(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.state === 'closed') return reject(new ImapProxyError('IMAPPROXY_ERR_PROTOCOL', 'client closed the connection'));
      this.lineWaiter = resolve;
      this.socket.once('close', () => reject(new ImapProxyError('IMAPPROXY_ERR_PROTOCOL', 'client closed the connection')));
      this.socket.resume();
      this.serveLine();
    });
  }

  private readonly onData = (chunk: Buffer): void => {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (this.lineWaiter) this.serveLine();
    else if (!this.busy) void this.pump();
  };

  private serveLine(): void {
    const nl = this.pending.indexOf(0x0a);
    if (nl < 0) {
      if (this.pending.length > this.ctx.config.max_preauth_line_length) this.end('* BYE Line too long\r\n');
      return;
    }
    let line = this.pending.subarray(0, nl);
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    this.pending = this.pending.subarray(nl + 1);
    const waiter = this.lineWaiter!;
    this.lineWaiter = null;
    this.socket.pause();
    waiter(line);
  }

  private onLiteral(spec: LiteralSpec, partial: RawCommand, tooLarge: boolean): boolean {
    const tag = readTagAndName(partial.segments[0]!).tag ?? '*';
    if (tooLarge) {
      if (!spec.nonSync) this.send(`${tag} NO [TOOBIG] Literal too large\r\n`);
      return false;
    }
    if (!spec.nonSync) this.send('+ go ahead\r\n');
    return true;
  }

  /** Reads and runs commands one at a time until one hands the client to the relay. */
  private async pump(): Promise<void> {
    this.busy = true;
    try {
      while (this.state === 'preauth' && this.lineWaiter === null && this.pending.length > 0) {
        this.ready = null;
        let used: number;
        try {
          used = this.assembler.push(this.pending);
        } catch (err) {
          this.ctx.log.info(`client ${this.address}: ${(err as Error).message}: closing`);
          this.end(`* BYE ${(err as Error).message}\r\n`);
          return;
        }
        this.pending = this.pending.subarray(used);
        const cmd = this.ready as RawCommand | null;
        if (cmd === null) break;
        this.socket.pause();
        await this.execute(cmd);
        if (this.state === 'preauth') this.socket.resume();
      }
    } catch (err) {
      this.ctx.log.err(`client ${this.address}: internal error: ${(err as Error).stack ?? err}`);
      this.end('* BYE Internal error\r\n');
    } finally {
      this.busy = false;
    }
  }

  private async execute(cmd: RawCommand): Promise<void> {
    const head = readTagAndName(cmd.segments[0]!);
    if ('error' in head) {
      this.send(head.error === 'tag' ? '* BAD Invalid tag\r\n' : `${head.tag} BAD Null command\r\n`);
      return;
    }
    const { tag, name } = head;
    const command = PREAUTH_COMMANDS.get(name);
    if (!command) {
      this.send(name.startsWith('XPROXY_') ? `${tag} BAD Unrecognized command\r\n` : `${tag} BAD Please login first\r\n`);
      return;
    }
    let args;
    try {
      args = parseArguments(cmd, head.rest);
    } catch (err) {
      if (!(err instanceof ArgumentError)) throw err;
      this.send(`${tag} BAD Invalid arguments: ${err.message}\r\n`);
      return;
    }
    await command.handle(this, tag, args);
  }

  /** The server login for LOGIN and AUTHENTICATE, cached connection first. */
  async login(tag: string, creds: Credentials, kind: LoginKind): Promise<void> {
    const { ctx } = this;
    // latin1 maps bytes to characters one to one, so distinct usernames stay
    // distinct keys even when they are not valid UTF-8.
    const userKey = creds.user.toString('latin1');
    const shown = creds.user.toString('utf8');
    const okText = kind === 'LOGIN' ? 'User logged in' : 'User authenticated';
    const failText = kind === 'LOGIN' ? 'LOGIN failed' : 'AUTHENTICATE failed';
    const key = CredentialKey.of(creds.password);
    this.state = 'login';

    const cached = ctx.pool.take(userKey, key, this.address);
    if (cached) {
      ctx.log.info(`LOGIN: '${shown}' (${this.address}) on existing sd [${cached.id}]`);
      ctx.stats.loginSucceeded('reused');
      this.send(`* OK [XPROXYREUSE] IMAP connection reused by imapproxy\r\n${tag} OK ${okText}\r\n`);
      this.startRelay(cached, userKey, key, EMPTY);
      return;
    }

    ctx.log.info(`LOGIN: '${shown}' (${this.address}) no previous connection: creating a new one`);
    try {
      ctx.pool.reserve();
    } catch (err) {
      if (!(err instanceof PoolFullError)) throw err;
      ctx.log.info(`LOGIN: '${shown}' (${this.address}) failed: ${err.message}`);
      ctx.stats.loginFailed();
      this.afterFailedLogin(`${tag} NO [UNAVAILABLE] ${failText}: too many connections\r\n`);
      return;
    }
    let conn: BackendConnection;
    try {
      conn = await ctx.connector.login(creds, this.ids, Date.now() + ctx.config.login_timeout * 1000);
    } catch (err) {
      ctx.pool.unreserve();
      ctx.stats.loginFailed();
      if (err instanceof LoginRefusedError) {
        ctx.log.info(`LOGIN: '${shown}' (${this.address}) failed: ${err.message}`);
        this.afterFailedLogin(`${tag} ${err.status} ${err.serverText}\r\n`);
      } else {
        ctx.stats.serverConnectFailed();
        ctx.log.err(`LOGIN: '${shown}' (${this.address}) failed: ${(err as Error).message}`);
        this.afterFailedLogin(`${tag} NO [UNAVAILABLE] ${failText}: IMAP server unavailable\r\n`);
      }
      return;
    }
    ctx.pool.attach(conn, userKey);
    ctx.stats.loginSucceeded('new');
    ctx.log.info(`LOGIN: '${shown}' (${this.address}) on new sd [${conn.id}]`);
    this.send(`${tag} OK ${okText}\r\n`);
    this.startRelay(conn, userKey, key, conn.reader.takeUnread());
  }

  private afterFailedLogin(reply: string): void {
    if (this.state === 'login') this.state = 'preauth';
    this.send(reply);
  }

  private startRelay(conn: BackendConnection, userKey: string, key: CredentialKey, pendingServer: Buffer): void {
    const { ctx, socket } = this;
    socket.off('data', this.onData);
    socket.setTimeout(0);
    const done = (reusable: boolean, reason: string) => {
      if (reusable) ctx.pool.release(conn, userKey, key);
      else ctx.pool.discard(conn, reason);
    };
    if (this.state === 'closed' || socket.destroyed) {
      // The client left while the server login ran: the connection is as
      // clean as a fresh login, so it is cached for the next one.
      done(true, '');
      return;
    }
    this.state = 'relay';
    const relay = new Relay(socket, conn, ctx.config, {
      log: ctx.log,
      done: (outcome) => done(outcome.reusable, outcome.reusable ? '' : outcome.reason),
    });
    const pendingClient = this.pending;
    this.pending = EMPTY;
    relay.start(pendingClient, pendingServer);
  }
}
