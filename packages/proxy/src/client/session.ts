// One client connection before login (SPEC §4.3–§4.8): greeting, the
// pre-login commands answered by the proxy, then the server login (a cached
// connection or a new one) and the hand-over to the relay.

import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import {
  ArgumentError,
  CommandAssembler,
  ImapProxyError,
  parseArguments,
  readClientCommand,
  readTagAndName,
  unmapIpv4,
  type LiteralSpec,
  type RawCommand,
} from '@imapproxy/shared';
import type { Credentials } from '../backend/connector.js';
import { CredentialKey } from '../backend/credential-key.js';
import { SaslProxyIdentity } from '../backend/sasl-proxy.js';
import { LoginRefusedError, PoolFullError, UserLimitError } from '../backend/errors.js';
import type { BackendConnection } from '../backend/backend-connection.js';
import type { ProxyContext } from '../context.js';
import { secondsSince } from '../metrics/proxy-metrics.js';
import { Relay } from '../relay/relay.js';
import { selectCacheSlot } from '../relay/select-cache.js';
import type { ClientTlsView } from '../tls/client-tls.js';
import { hasControlBytes } from '../log/printable.js';
import { ChunkQueue } from './chunk-queue.js';
import { PREAUTH_COMMANDS } from './commands/index.js';
import { firstCommandFits } from './enabled-reuse.js';
import type { ProxyEndpoint } from './proxy-protocol.js';

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n', 'latin1');
/** Commands whose reply depends on nothing of the session: run while its connection is chosen (chooseByFirstCommand). */
const PRELUDE_COMMANDS = new Set(['ID', 'CAPABILITY', 'NAMESPACE']);
/**
 * Bytes read and thrown away after the proxy's last words (a BYE) before it
 * stops reading. A few are read so that a client that closes after the BYE
 * is seen to close; a client that goes on sending gets TCP back-pressure
 * instead of the daemon's time and memory (issue 16, finding 4).
 */
const DISCARD_AFTER_BYE = 64 * 1024;
/** Bytes of a command enough to tell an ID (tag, name, the space after it). */
const COMMAND_HEAD = 64;
const ID_COMMAND = /^[^ \r\n]+ ID[ (]/i;

import type { LoginKind, PreauthSession } from './command.js';

export type { LoginKind };

/** readLine(): the client left while a command waited for its next line (an AUTHENTICATE response). */
class ClientClosedError extends ImapProxyError {
  constructor() {
    super('IMAPPROXY_ERR_PROTOCOL', 'client closed the connection');
  }
}

/** Both ends of the client's connection as the client sees them. */
export interface ClientPeer {
  remote: ProxyEndpoint;
  local: ProxyEndpoint;
}

/**
 * `[CAPABILITY ...] ` for the tagged OK of a login: the server's list after
 * login, which the client of a direct login gets there too (Dovecot, Cyrus)
 * and which webmail clients read instead of asking (issue 17: Roundcube
 * without it took the pre-login list and never saw MOVE or UIDPLUS). It is
 * the list a CAPABILITY command gets from the server after login, unchanged.
 */
function capabilityCode(conn: BackendConnection): string {
  const caps = conn.loginCapabilities;
  return caps === null || caps.length === 0 ? '' : `[CAPABILITY ${caps.join(' ')}] `;
}

export class ClientSession implements PreauthSession {
  /** Arguments of every ID the client sent before login, in order. */
  readonly ids: string[] = [];
  /** The client "ip:port" for logs, limits and dumps: the real client's when a PROXY protocol header named it. */
  readonly address: string;
  /** The client, and the address it connected to (the proxy's, or the balancer's front end). */
  readonly peer: ClientPeer;
  private state: 'greeting' | 'preauth' | 'login' | 'relay' | 'closed' = 'greeting';
  private readonly assembler: CommandAssembler;
  private readonly pending = new ChunkQueue();
  /** Bytes read after end(). */
  private discarded = 0;
  private ready: RawCommand | null = null;
  private busy = false;
  private lineWaiter: ((line: Buffer) => void) | null = null;
  /** Told of every chunk while the first line after a login is awaited (firstLine). */
  private dataWaiter: (() => void) | null = null;
  private preauthTimer: NodeJS.Timeout | undefined;
  /** The first bytes of the command being received (chooseLimits). */
  private commandHead: Buffer = EMPTY;
  /** The line bound the assembler has now. */
  private lineLimit: number;

  constructor(
    readonly ctx: ProxyContext,
    /** The client's connection; replaced by the TLS socket after the handshake. */
    public socket: Socket,
    /** Accepted on the implicit-TLS listener: the handshake comes before the greeting. */
    private readonly implicitTls = false,
    /** From a PROXY protocol header; default: the socket's own addresses. */
    peer?: ClientPeer,
  ) {
    this.peer = peer ?? {
      remote: { address: unmapIpv4(socket.remoteAddress ?? '?'), port: socket.remotePort ?? 0 },
      local: { address: unmapIpv4(socket.localAddress ?? '?'), port: socket.localPort ?? 0 },
    };
    this.address = `${this.peer.remote.address}:${this.peer.remote.port}`;
    const c = ctx.config;
    this.lineLimit = c.max_preauth_line_length;
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

  /** Handed to the relay: logged in to the server. */
  get loggedIn(): boolean {
    return this.state === 'relay';
  }

  /** The connection is encrypted (implicit TLS or after STARTTLS). */
  get tls(): boolean {
    return this.socket instanceof TLSSocket;
  }

  /** What this client is offered before login: STARTTLS, and LOGINDISABLED under client_require_tls. */
  get tlsView(): ClientTlsView {
    const plain = !this.tls;
    return { startTls: plain && this.ctx.clientTls?.startTls === true, loginDisabled: plain && this.ctx.config.client_require_tls };
  }

  async start(): Promise<void> {
    const { ctx } = this;
    const plain = this.socket;
    plain.setNoDelay(true);
    if (ctx.config.send_tcp_keepalives) plain.setKeepAlive(true);
    ctx.stats.clientOpened();
    // The TCP socket closes after the TLS socket built on it, so this covers both.
    plain.once('close', () => {
      ctx.stats.clientClosed();
      if (this.state !== 'relay') this.state = 'closed';
      this.lineWaiter = null;
      clearTimeout(this.preauthTimer);
    });
    plain.on('error', () => {});
    if (this.implicitTls && !(await this.handshake())) return;
    const { socket } = this;
    socket.on('data', this.onData);
    socket.pause();
    this.armPreauthTimer();
    const greeting = await ctx.greeting.clientGreeting(this.tlsView);
    if (this.state === 'closed') return;
    this.state = 'preauth';
    this.send(`${greeting}\r\n`);
    socket.resume();
    void this.pump();
  }

  /**
   * preauth_idle_timeout counts from the greeting or from the last command
   * (or AUTHENTICATE line) the client completed, not from its last byte. It
   * used to be Node's socket timeout, which every byte in either direction
   * resets, so a client that trickled a line or a literal a byte at a time
   * (slowloris) held its connection for ever (found by test/limits.test.ts).
   */
  private armPreauthTimer(): void {
    clearTimeout(this.preauthTimer);
    if (this.state === 'relay' || this.state === 'closed') return;
    const seconds = this.ctx.config.preauth_idle_timeout;
    this.preauthTimer = setTimeout(() => {
      if (this.state !== 'preauth' && this.state !== 'greeting') return; // logging in: login_timeout applies
      this.ctx.log.info(`no command received from client ${this.address} for ${seconds} seconds: closing`);
      this.end('* BYE Autologout; idle for too long\r\n');
    }, seconds * 1000);
  }

  /**
   * Back-pressure before login: waits until the client has read what was
   * sent to it. A client that pipelines commands and never reads the replies
   * (a CAPABILITY reply is ten times the command) made the daemon buffer them
   * all: 40 MB of `a CAPABILITY` took it to 850 MB RSS (found by
   * test/limits.test.ts).
   */
  private drained(): Promise<void> {
    const { socket } = this;
    if (!socket.writableNeedDrain || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  send(text: string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(text);
  }

  /**
   * TLS on the client's connection, then the rest of the session on the TLS
   * socket; false (connection closed) when the handshake failed.
   */
  private async handshake(): Promise<boolean> {
    const { ctx } = this;
    try {
      this.socket = await ctx.clientTls!.accept(this.socket, ctx.config.preauth_idle_timeout * 1000);
      return true;
    } catch (err) {
      ctx.log.info(`client ${this.address}: ${(err as Error).message}`);
      this.state = 'closed';
      return false;
    }
  }

  /**
   * STARTTLS (RFC 9051 §6.2.1). Bytes the client sent after the STARTTLS line
   * arrived in clear, where a man in the middle can add commands that would
   * then run inside the TLS session (CVE-2011-0411): they are discarded. What
   * the client told us in clear (its ID) is forgotten too.
   */
  async startTls(tag: string): Promise<void> {
    if (this.tls) {
      this.send(`${tag} BAD TLS is already active\r\n`);
      return;
    }
    if (!this.ctx.clientTls?.startTls) {
      this.send(`${tag} BAD Please login first\r\n`);
      return;
    }
    const plain = this.socket;
    plain.off('data', this.onData);
    let discarded = this.pending.clear();
    for (let chunk: Buffer | null; (chunk = plain.read() as Buffer | null) !== null; ) discarded += chunk.length;
    if (discarded > 0) this.ctx.log.notice(`client ${this.address}: ${discarded} byte(s) sent after STARTTLS discarded`);
    clearTimeout(this.preauthTimer);
    this.send(`${tag} OK Begin TLS negotiation now\r\n`);
    if (!(await this.handshake())) return;
    this.ids.length = 0;
    this.socket.on('data', this.onData);
    this.socket.pause();
  }

  /**
   * client_require_tls before TLS: LOGIN and AUTHENTICATE are refused as
   * Dovecot refuses them with disable_plaintext_auth (RFC 5530 PRIVACYREQUIRED).
   */
  refusesPlaintextAuth(tag: string): boolean {
    if (!this.tlsView.loginDisabled) return false;
    this.send(`${tag} NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n`);
    return true;
  }

  /** Last words and close. */
  end(text: string): void {
    this.state = 'closed';
    this.pending.clear();
    clearTimeout(this.preauthTimer);
    if (!this.socket.destroyed) this.socket.end(text);
    const timer = setTimeout(() => this.socket.destroy(), 5000);
    timer.unref();
  }

  /** One line from the client (an AUTHENTICATE response), without its ending. */
  readLine(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.state === 'closed') return reject(new ClientClosedError());
      const onClose = () => reject(new ClientClosedError());
      // Removed once the line is there: one listener per AUTHENTICATE response
      // used to stay on the socket for its lifetime (a client cancelling
      // AUTHENTICATE in a loop grew the list without bound).
      this.lineWaiter = (line) => {
        this.socket.off('close', onClose);
        resolve(line);
      };
      this.socket.once('close', onClose);
      this.socket.resume();
      this.serveLine();
    });
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.state === 'closed') {
      // After the BYE nothing the client sends is read as a command.
      this.discarded += chunk.length;
      if (this.discarded > DISCARD_AFTER_BYE) this.socket.pause();
      return;
    }
    this.pending.push(chunk);
    if (this.dataWaiter) this.dataWaiter();
    else if (this.lineWaiter) this.serveLine();
    else if (!this.busy) void this.pump();
  };

  private serveLine(): void {
    const taken = this.pending.takeLine();
    if (taken === null) {
      if (this.pending.length > this.ctx.config.max_preauth_line_length) {
        // logged like every other limit (it was the one that closed silently)
        this.ctx.log.info(`client ${this.address}: AUTHENTICATE response longer than ${this.ctx.config.max_preauth_line_length} bytes: closing`);
        this.end('* BYE Line too long\r\n');
      }
      return;
    }
    let line = taken.subarray(0, taken.length - 1);
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    const waiter = this.lineWaiter!;
    this.lineWaiter = null;
    this.socket.pause();
    this.armPreauthTimer();
    waiter(line);
  }

  private onLiteral(spec: LiteralSpec, partial: RawCommand, tooLarge: boolean): boolean {
    const head = readTagAndName(partial.segments[0]!);
    const tag = head.tag ?? '*';
    if ('name' in head && PREAUTH_COMMANDS.get(head.name)?.admin && this.ctx.config.enable_admin_commands) {
      // The original drops a client that sends a literal with an admin command (SPEC §6).
      this.end('');
      return false;
    }
    if (tooLarge) {
      if (!spec.nonSync) this.send(`${tag} NO [TOOBIG] Literal too large\r\n`);
      return false;
    }
    if (!spec.nonSync) this.send('+ go ahead\r\n');
    return true;
  }

  /**
   * The bounds of the command being received: a pre-login ID may be as long
   * as max_preauth_id_length (imaptest sends a 32 KB one, Dovecot takes 64
   * KiB lines), anything else max_preauth_line_length. Decided from the
   * command's first bytes, kept across reads, before each push.
   */
  private chooseLimits(): void {
    if (this.assembler.idle) this.commandHead = EMPTY;
    if (this.commandHead.length < COMMAND_HEAD) {
      const more = this.pending.peekBytes(COMMAND_HEAD - this.commandHead.length);
      this.commandHead = this.commandHead.length === 0 ? Buffer.from(more) : Buffer.concat([this.commandHead, more]);
    }
    const c = this.ctx.config;
    const isId = ID_COMMAND.test(this.commandHead.toString('latin1'));
    const line = isId ? Math.max(c.max_preauth_id_length, c.max_preauth_line_length) : c.max_preauth_line_length;
    if (line === this.lineLimit) return;
    this.lineLimit = line;
    this.assembler.setLimits(line, line + 2 * c.max_preauth_literal_size);
  }

  /** Reads and runs commands one at a time until one hands the client to the relay. */
  private async pump(): Promise<void> {
    this.busy = true;
    try {
      while (this.state === 'preauth' && this.lineWaiter === null && this.pending.length > 0) {
        this.ready = null;
        let used: number;
        try {
          this.chooseLimits();
          // chunk by chunk: the parser keeps what it needs of a partial line
          used = this.assembler.push(this.pending.peek()!);
        } catch (err) {
          this.ctx.log.info(`client ${this.address}: ${(err as Error).message}: closing`);
          this.end(`* BYE ${(err as Error).message}\r\n`);
          return;
        }
        // the parser's callbacks may have ended the session (an admin command with a literal)
        if (this.state !== 'preauth') break;
        this.pending.consume(used);
        const cmd = this.ready as RawCommand | null;
        if (cmd === null) {
          if (used === 0) break;
          continue;
        }
        this.socket.pause();
        await this.execute(cmd);
        this.armPreauthTimer();
        await this.drained();
        if (this.state === 'preauth') this.socket.resume();
      }
    } catch (err) {
      // A client that leaves in the middle of AUTHENTICATE is not an error of ours
      // (the short fuzz run logged it as an internal error a few times in 20,000 inputs).
      if (err instanceof ClientClosedError) return;
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
      // The five XPROXY_* commands answer `BAD Unrecognized command` themselves
      // when admin commands are off; any other name, XPROXY_FOO included, gets
      // what the original says to it (SPEC §6, checked against 1.2.8).
      this.send(`${tag} BAD Please login first\r\n`);
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
    const started = performance.now();
    // latin1 maps bytes to characters one to one, so distinct usernames stay
    // distinct keys even when they are not valid UTF-8.
    const userKey = creds.user.toString('latin1');
    const shown = creds.user.toString('utf8');
    const okText = kind === 'LOGIN' ? 'User logged in' : 'User authenticated';
    const failText = kind === 'LOGIN' ? 'LOGIN failed' : 'AUTHENTICATE failed';
    if (hasControlBytes(creds.user)) {
      // Refused before any server connection: servers disagree about such
      // names (Dovecot stops at a NUL), and flush/trace could not name them.
      ctx.log.info(`LOGIN: '${shown}' (${this.address}) refused: control character in the user name`);
      ctx.stats.loginFailed();
      this.send(`${tag} NO [AUTHENTICATIONFAILED] ${failText}: invalid characters in user name\r\n`);
      ctx.metrics?.observeLogin('failed', secondsSince(started));
      return;
    }
    // cache_key_client_ip: a cached connection only serves logins from the
    // address it was opened for (its server saw that address, and IP-based
    // server policies stay exact), at the cost of fewer reuses.
    // With a SASL proxy identity the client's password is the shared secret:
    // checked here, before any server or cached connection is involved, and
    // the pool keeps these connections apart from ordinary logins (their scope).
    const proxyIdentity = ctx.connector.proxyIdentity;
    if (proxyIdentity && !proxyIdentity.checkSecret(creds.password)) {
      ctx.log.info(`LOGIN: '${shown}' (${this.address}) failed: shared secret was wrong`);
      ctx.stats.loginFailed();
      this.send(`${tag} NO [AUTHENTICATIONFAILED] ${failText}\r\n`);
      ctx.metrics?.observeLogin('failed', secondsSince(started));
      return;
    }
    const ipScope = ctx.config.cache_key_client_ip ? this.peer.remote.address : '';
    const key = CredentialKey.of(creds.password, proxyIdentity ? `${SaslProxyIdentity.SCOPE} ${ipScope}` : ipScope);
    this.state = 'login';

    // With connections of the user that have extensions on in the pool, which
    // one serves the session is decided by its first command (below).
    const withExtensions = ctx.pool.heldFor(userKey, key, (c) => c.enabled.size > 0);
    const cached = withExtensions === null ? ctx.pool.take(userKey, key, this.address, (c) => c.enabled.size === 0) : null;
    if (cached) {
      ctx.log.info(`LOGIN: '${shown}' (${this.address}) on existing sd [${cached.id}]`);
      ctx.stats.loginSucceeded('reused');
      this.send(`* OK [XPROXYREUSE] IMAP connection reused by imapproxy\r\n${tag} OK ${capabilityCode(cached)}${okText}\r\n`);
      ctx.metrics?.observeLogin('reused', secondsSince(started));
      this.startRelay(cached, userKey, key, EMPTY);
      return;
    }

    // A connection with extensions on (enabled-reuse.ts): its key proves the
    // password, so the login succeeds; which connection serves the session is
    // decided by its first command.
    let answered = false;
    if (withExtensions !== null) {
      // The login is proven (the cached connection's key matched). XPROXYREUSE
      // when one without extensions is there too: the session gets a cached
      // connection whatever its first command asks for (unless another
      // session takes it meanwhile). The capabilities after login are the
      // server's, whichever connection serves the session.
      const reuse = ctx.pool.heldFor(userKey, key, (c) => c.enabled.size === 0) !== null ? '* OK [XPROXYREUSE] IMAP connection reused by imapproxy\r\n' : '';
      this.send(`${reuse}${tag} OK ${capabilityCode(withExtensions)}${okText}\r\n`);
      answered = true;
      const seconds = secondsSince(started);
      const chosen = await this.chooseByFirstCommand(userKey, key);
      if (chosen === 'ended') return;
      if (chosen !== null) {
        ctx.log.info(`LOGIN: '${shown}' (${this.address}) on existing sd [${chosen.conn.id}]`);
        ctx.stats.loginSucceeded('reused');
        ctx.metrics?.observeLogin('reused', seconds);
        this.startRelay(chosen.conn, userKey, key, chosen.pendingServer);
        return;
      }
      ctx.log.info(`LOGIN: '${shown}' (${this.address}): no cached connection has the extensions on that its first command asks for`);
    }

    ctx.log.info(`LOGIN: '${shown}' (${this.address}) no previous connection: creating a new one`);
    try {
      ctx.pool.reserve(userKey);
    } catch (err) {
      if (!(err instanceof PoolFullError) && !(err instanceof UserLimitError)) throw err;
      ctx.log.info(`LOGIN: '${shown}' (${this.address}) failed: ${err.message}`);
      ctx.stats.loginFailed();
      // RFC 5530: [LIMIT] is this user's own share, [UNAVAILABLE] the whole pool
      const limit = err instanceof UserLimitError;
      if (answered) this.end(limit ? '* BYE [LIMIT] Too many connections for this user\r\n' : '* BYE [UNAVAILABLE] Too many connections\r\n');
      else this.afterFailedLogin(limit
        ? `${tag} NO [LIMIT] ${failText}: too many connections for this user\r\n`
        : `${tag} NO [UNAVAILABLE] ${failText}: too many connections\r\n`);
      ctx.metrics?.observeLogin('failed', secondsSince(started));
      return;
    }
    let conn: BackendConnection;
    try {
      const origin = ctx.config.send_originating_ip ? { client: this.peer.remote, connected: this.peer.local } : undefined;
      conn = await ctx.connector.login(creds, this.ids, Date.now() + ctx.config.login_timeout * 1000, origin);
    } catch (err) {
      ctx.pool.unreserve(userKey);
      ctx.stats.loginFailed();
      if (err instanceof LoginRefusedError) {
        ctx.log.info(`LOGIN: '${shown}' (${this.address}) failed: ${err.message}`);
        // (answered: the password the cached connection proved was changed meanwhile)
        if (answered) this.end(`* BYE ${err.serverText}\r\n`);
        else this.afterFailedLogin(`${tag} ${err.status} ${err.serverText}\r\n`);
      } else {
        ctx.stats.serverConnectFailed();
        ctx.log.err(`LOGIN: '${shown}' (${this.address}) failed: ${(err as Error).message}`);
        if (answered) this.end('* BYE [UNAVAILABLE] IMAP server unavailable\r\n');
        else this.afterFailedLogin(`${tag} NO [UNAVAILABLE] ${failText}: IMAP server unavailable\r\n`);
      }
      ctx.metrics?.observeLogin('failed', secondsSince(started));
      return;
    }
    ctx.pool.attach(conn, userKey, this.address);
    ctx.stats.loginSucceeded('new');
    ctx.log.info(`LOGIN: '${shown}' (${this.address}) on new sd [${conn.id}]`);
    // The server's untagged lines of this login (an ALERT the client MUST
    // show, RFC 3501 §7.1) come first, as from a direct login (after the OK
    // when the login was answered before the first command, enabled-reuse.ts).
    const untagged = conn.loginUntagged.map((line) => `${line}\r\n`).join('');
    conn.loginUntagged = [];
    if (!this.socket.destroyed && this.socket.writable) {
      // latin1: the server's bytes as they came (the reader's text is latin1)
      this.socket.write(Buffer.from(answered ? untagged : `${untagged}${tag} OK ${capabilityCode(conn)}${okText}\r\n`, 'latin1'));
    }
    ctx.metrics?.observeLogin('new', secondsSince(started));
    this.startRelay(conn, userKey, key, conn.reader.takeUnread());
  }

  /**
   * A login answered before its connection is chosen (a cached one with
   * extensions on proved the password, enabled-reuse.ts): the connection
   * whose extensions the session's first decisive command asks for, or null
   * (a connection without them is needed), or 'ended' (the client left or
   * stayed silent). Commands before it whose reply depends on nothing of the
   * session (ID, CAPABILITY, NAMESPACE: Roundcube sends ID first) run on one
   * of the candidates meanwhile; of the server's untagged lines only their own
   * data reaches the client (news about a mailbox an earlier session left
   * selected stays here, as in the relay, and the select cache forgets it).
   */
  private async chooseByFirstCommand(userKey: string, key: CredentialKey): Promise<{ conn: BackendConnection; pendingServer: Buffer } | null | 'ended'> {
    const { ctx } = this;
    let prelude: BackendConnection | null = null;
    const giveBack = (): void => {
      if (prelude !== null) ctx.pool.release(prelude, userKey, key);
      prelude = null;
    };
    for (;;) {
      const line = await this.firstLine();
      if (line === null) {
        giveBack();
        // (the client left, or stayed silent for idle_timeout)
        if (!this.socket.destroyed) this.end('* BYE Autologout; idle for too long\r\n');
        return 'ended';
      }
      const reading = readClientCommand([line.text]);
      const understood = reading.understanding.understood ? reading.understanding.use : null;
      if (understood !== null && reading.tag !== null && PRELUDE_COMMANDS.has(understood.name)) {
        prelude ??= ctx.pool.take(userKey, key, this.address, (c) => c.enabled.size === 0) ?? ctx.pool.take(userKey, key, this.address);
        if (prelude === null) return null;
        this.pending.skip(line.end);
        try {
          await this.runPreludeCommand(prelude, reading.tag, understood.name, line.text);
        } catch (err) {
          ctx.log.info(`client ${this.address}: server sd [${prelude.id}] failed during ${understood.name}: ${(err as Error).message}`);
          ctx.pool.discard(prelude, (err as Error).message);
          prelude = null;
          this.end('* BYE [UNAVAILABLE] IMAP server unavailable\r\n');
          return 'ended';
        }
        continue;
      }
      // 1. a connection with extensions on that this command switches on alike (the prelude's first)
      let conn: BackendConnection | null;
      let answer: Buffer | null = null;
      const fitsPrelude = prelude !== null && prelude.enabled.size > 0 ? firstCommandFits(prelude, reading) : null;
      if (fitsPrelude !== null) {
        conn = prelude;
        answer = fitsPrelude.answer;
      } else {
        conn = ctx.pool.take(userKey, key, this.address, (c) => {
          const fit = c.enabled.size > 0 ? firstCommandFits(c, reading) : null;
          if (fit) answer = fit.answer;
          return fit !== null;
        });
        if (conn !== null) giveBack();
      }
      // 2. else one with nothing on, as for any login; 3. a LOGOUT (answered by the proxy) may have any
      if (conn === null) {
        const logout = understood !== null && understood.name === 'LOGOUT';
        if (prelude !== null && (prelude.enabled.size === 0 || logout)) {
          conn = prelude;
        } else {
          giveBack();
          conn = ctx.pool.take(userKey, key, this.address, (c) => c.enabled.size === 0)
            ?? (logout ? ctx.pool.take(userKey, key, this.address) : null);
        }
      }
      if (conn === null) return null;
      if (answer !== null) {
        this.pending.skip(line.end);
        if (!this.socket.destroyed && this.socket.writable) this.socket.write(answer);
      }
      return { conn, pendingServer: conn.reader.takeUnread() };
    }
  }

  /** One prelude command on `conn`: its line to the server, its own reply to the client. */
  private async runPreludeCommand(conn: BackendConnection, tag: string, name: string, line: Buffer): Promise<void> {
    const own = `* ${name} `;
    let foreign = false;
    conn.write(Buffer.concat([line, CRLF]));
    const reply = await conn.reader.untilTagged(tag, this.ctx.config.login_timeout * 1000, `the reply to ${name}`, (untagged) => {
      if (untagged.toUpperCase().startsWith(own)) this.socket.write(Buffer.from(`${untagged}\r\n`, 'latin1'));
      else foreign = true;
    });
    // News about an inherited mailbox was kept from the client: a cached SELECT reply may be stale now.
    if (foreign) selectCacheSlot(conn).entry = null;
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(Buffer.from(`${reply.line}\r\n`, 'latin1'));
  }

  /**
   * The client's first line after its login, left in `pending` (`end`: the
   * offset after its line ending); null when the client leaves or stays
   * silent for idle_timeout. A line longer than max_line_length is returned
   * cut (it fits no connection; the relay refuses it).
   */
  private firstLine(): Promise<{ text: Buffer; end: number } | null> {
    const limit = this.ctx.config.max_line_length;
    return new Promise((resolve) => {
      const finish = (result: { text: Buffer; end: number } | null): void => {
        this.dataWaiter = null;
        this.socket.off('close', onClose);
        clearTimeout(timer);
        this.socket.pause();
        resolve(result);
      };
      const check = (): void => {
        const nl = this.pending.indexOfLf();
        if (nl >= 0) {
          const text = this.pending.peekBytes(nl);
          finish({ text: nl > 0 && text[nl - 1] === 0x0d ? text.subarray(0, nl - 1) : text, end: nl + 1 });
        } else if (this.pending.length > limit) {
          finish({ text: this.pending.peekBytes(limit), end: 0 });
        }
      };
      const onClose = (): void => finish(null);
      const timer = setTimeout(() => finish(null), this.ctx.config.idle_timeout * 1000);
      this.socket.once('close', onClose);
      this.dataWaiter = check;
      this.socket.resume();
      check();
    });
  }

  private afterFailedLogin(reply: string): void {
    if (this.state === 'login') this.state = 'preauth';
    this.send(reply);
  }

  private startRelay(conn: BackendConnection, userKey: string, key: CredentialKey, pendingServer: Buffer): void {
    const { ctx, socket } = this;
    socket.off('data', this.onData);
    clearTimeout(this.preauthTimer);
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
      trace: ctx.trace.begin(userKey, socket, conn.id, ctx.config.user_match_exact),
      resync: (ok) => ctx.stats.resync(ok),
      selectCommand: (hit) => ctx.stats.selectCommand(hit),
      tainted: (kind, reason) => {
        ctx.log.notice(`server sd [${conn.id}] will be logged out, not cached: ${reason}`);
        ctx.metrics?.observeNotUnderstood(kind);
      },
      done: (outcome) => done(outcome.reusable, outcome.reusable ? '' : outcome.reason),
    });
    const pendingClient = this.pending.takeAll();
    relay.start(pendingClient, pendingServer);
  }
}
