// One authenticated (or authenticating) connection to the IMAP server and the
// session state the proxy must know to hand it to the next client safely.

import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { ResponseReader } from './response-reader.js';

export type BackendState = 'login' | 'active' | 'cleanup' | 'cached' | 'closed';

let nextId = 1;

export class BackendConnection {
  /** Stands where the original logged its socket number: `sd [<id>]`. */
  readonly id = nextId++;
  readonly createdAt = Date.now();
  /** When the server last sent data (imapproxyctl dump's idle time). */
  lastActivityAt = this.createdAt;
  state: BackendState = 'login';
  reuseCount = 0;
  /** Capabilities after login (from the LOGIN reply or CAPABILITY). */
  capabilities: string[] = [];
  /** A mailbox may be selected (a SELECT/EXAMINE was sent and not undone). */
  selected = false;
  /** Extensions ENABLEd or switched on implicitly (CONDSTORE) in this session. */
  readonly enabled = new Set<string>();
  /** Set when the session did something that cannot be undone (COMPRESS, ...). */
  notReusable: string | null = null;
  readonly reader: ResponseReader;
  /** Encrypted (STARTTLS or implicit TLS): imapproxyctl dump shows it. */
  readonly tls: boolean;
  /** The server_hostname entry it is connected to ("host:port"), set by the connector. */
  server = '';
  private handler: ((chunk: Buffer) => void) | null;
  private closeHandlers: Array<(err?: Error) => void> = [];
  private readonly listeners: Array<[string, (...args: any[]) => void]>;

  constructor(readonly socket: Socket, maxLineLength: number) {
    this.tls = socket instanceof TLSSocket && socket.encrypted;
    this.reader = new ResponseReader(maxLineLength);
    this.handler = (chunk) => this.reader.push(chunk);
    const onGone = (err?: Error) => {
      if (this.state === 'closed') return;
      this.state = 'closed';
      const e = err ?? new Error('connection closed by the server');
      this.reader.fail(e);
      for (const h of this.closeHandlers.splice(0)) h(e);
    };
    this.listeners = [
      ['data', (chunk: Buffer) => {
        this.lastActivityAt = Date.now();
        this.handler?.(chunk);
      }],
      ['error', onGone],
      ['close', () => onGone()],
      ['end', () => onGone()],
    ];
    for (const [event, listener] of this.listeners) socket.on(event, listener);
  }

  /**
   * Gives up the socket without closing it, for STARTTLS: the TLS socket
   * built on it becomes a new BackendConnection, and nothing read in clear
   * is carried over.
   */
  detach(): Socket {
    for (const [event, listener] of this.listeners) this.socket.off(event, listener);
    this.state = 'closed';
    this.handler = () => {};
    this.closeHandlers = [];
    return this.socket;
  }

  /**
   * Why this connection cannot be given to another session, or null. ENABLEd
   * extensions cannot be switched off again (RFC 5161), so a session that
   * enabled any is never cached: handing it out would change what the next
   * client sees before it asked for it.
   */
  get cannotReset(): string | null {
    if (this.notReusable !== null) return this.notReusable;
    if (this.enabled.size > 0) return `extensions enabled (${[...this.enabled].join(' ')})`;
    return null;
  }

  get alive(): boolean {
    return this.state !== 'closed' && !this.socket.destroyed && this.socket.readable && this.socket.writable;
  }

  get unselectSupported(): boolean {
    return this.capabilities.some((c) => c.toUpperCase() === 'UNSELECT');
  }

  /** Who receives the server's bytes from now on (null: the response reader). */
  setHandler(handler: ((chunk: Buffer) => void) | null): void {
    this.handler = handler ?? ((chunk) => this.reader.push(chunk));
  }

  /** Hands bytes already read to whoever owns the connection now. */
  dispatch(chunk: Buffer): void {
    this.handler?.(chunk);
  }

  onClose(handler: (err?: Error) => void): void {
    this.closeHandlers.push(handler);
  }

  offClose(handler: (err?: Error) => void): void {
    this.closeHandlers = this.closeHandlers.filter((h) => h !== handler);
  }

  write(data: string | Buffer): boolean {
    return this.socket.write(data);
  }

  /** Polite close: LOGOUT (its reply is not awaited), then FIN. */
  logoutAndClose(tag: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.handler = () => {};
    if (this.socket.writable) this.socket.end(`${tag} LOGOUT\r\n`);
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    timer.unref();
    this.socket.once('close', () => clearTimeout(timer));
    for (const h of this.closeHandlers.splice(0)) h();
  }

  /** Immediate close, for a connection whose state is unknown. */
  destroy(): void {
    const wasClosed = this.state === 'closed';
    this.state = 'closed';
    this.socket.destroy();
    if (!wasClosed) for (const h of this.closeHandlers.splice(0)) h();
  }
}
