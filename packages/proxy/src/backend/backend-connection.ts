// One authenticated (or authenticating) connection to the IMAP server and the
// session state the proxy must know to hand it to the next client safely.

import net, { type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { ResponseReader } from './response-reader.js';

/**
 * The reusable read buffer of a plain server connection starts at this size
 * (the replies of a webmail page view fit), and is this size again once the
 * connection is cached, so an idle connection holds no more; a read that
 * fills it switches to READ_BUFFER_LARGE (a big FETCH) for as long as the
 * connection is in use.
 */
const READ_BUFFER_SMALL = 16 * 1024;
const READ_BUFFER_LARGE = 128 * 1024;

/**
 * The reads of one plain TCP server connection, made with net's `onread`
 * into a reusable buffer (performance, issue 7). Node otherwise allocates a
 * fresh 64 KiB Buffer per read: in a bulk FETCH that was a quarter of the
 * proxy's CPU in page faults, plus the GC of the buffers.
 *
 * The bytes handed to the connection's handler are only valid during the
 * call: every consumer reads them synchronously or copies them, except a
 * socket.write() that Node could not finish at once (it keeps the buffer
 * until the write completes). Whoever writes them calls lent() when the
 * write is still pending, the next read goes into another buffer, and the
 * writer calls the function lent() returned once the write is done: the lent
 * buffer is then the spare the following lend switches to. A bulk FETCH to a
 * client that reads at about the server's pace so alternates between two
 * buffers instead of allocating 128 KiB (and faulting its pages in) per lend.
 */
class ReadBuffer {
  private buf: Buffer = Buffer.allocUnsafe(READ_BUFFER_SMALL);
  private isLent = false;
  /** A buffer whose write has completed, ready for the next read after a lend. */
  private spare: Buffer | null = null;
  /** Bytes of the last read. */
  private last = 0;
  /** The connection is being cleaned for the pool, or cached (BackendConnection.state): its next reads need no large buffer. */
  idle: () => boolean = () => false;
  /** Where the bytes go once the BackendConnection exists; until then they are copied and kept. */
  sink: ((chunk: Buffer) => void) | null = null;
  early: Buffer[] = [];

  /** net's onread.buffer: called before the first read and after each one. */
  readonly next = (): Buffer => {
    const size = this.buf.length;
    let want = size;
    if (this.last === size && size < READ_BUFFER_LARGE) want = READ_BUFFER_LARGE;
    // idle() holds from the client's LOGOUT on: the last read before the
    // connection is cached (the reply to its clean-up) happens then, and a
    // cached connection cannot shrink its buffer later (no read happens while
    // it is cached), so it keeps 16 KiB, not 128 (found in review).
    else if (size > READ_BUFFER_SMALL && this.idle()) {
      want = READ_BUFFER_SMALL;
      this.spare = null;
    }
    if (this.isLent || want !== size) {
      const spare = this.spare;
      this.spare = null;
      this.buf = spare !== null && spare.length === want ? spare : Buffer.allocUnsafe(want);
      this.isLent = false;
    }
    return this.buf;
  };

  /** net's onread.callback (false would stop reading: flow control is pause()/resume()). */
  readonly deliver = (nread: number, buf: Uint8Array): boolean => {
    this.last = nread;
    const chunk = (buf as Buffer).subarray(0, nread);
    if (this.sink !== null) this.sink(chunk);
    else this.early.push(Buffer.from(chunk));
    return true;
  };

  /** The current buffer is in a pending write; call the result when that write is done. */
  lent(): () => void {
    this.isLent = true;
    const buf = this.buf;
    return () => {
      // A connection on its way to the pool keeps no spare (it reads into 16 KiB from now on).
      if (!this.idle() && buf !== this.buf) this.spare = buf;
    };
  }
}

const readBuffers = new WeakMap<Socket, ReadBuffer>();
const noop = (): void => {};

/**
 * net.connect() for a server connection whose reads go into a reusable buffer
 * (ReadBuffer). TLS may still be layered on it (implicit TLS, STARTTLS): the
 * TLS socket then reads the connection with buffers of its own, and gets
 * 'data' events as before.
 */
export function connectWithReadBuffer(options: net.TcpNetConnectOpts): Socket {
  const reads = new ReadBuffer();
  const socket = net.connect({ ...options, onread: { buffer: reads.next, callback: reads.deliver } });
  readBuffers.set(socket, reads);
  return socket;
}

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
  /**
   * The server's capabilities after login, as a client logging in directly
   * learns them (the LOGIN reply's code, or CAPABILITY asked once after
   * login), or null when the server named none: every client logging in on
   * this connection, new or reused, gets them in its tagged OK.
   */
  loginCapabilities: string[] | null = null;
  /**
   * Untagged lines the server sent while logging in (`* OK [ALERT] ...`, a
   * message of the day): the client that caused the login gets them, as it
   * would from a direct login. Emptied once handed over.
   */
  loginUntagged: string[] = [];
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
  /** The socket reads into a reusable buffer (connectWithReadBuffer), or null: Node's 'data' events. */
  private readonly reads: ReadBuffer | null;
  /** The response reader's handler: it keeps bytes across reads, so a reused buffer is copied for it. */
  private readonly toReader: (chunk: Buffer) => void;

  constructor(readonly socket: Socket, maxLineLength: number) {
    this.tls = socket instanceof TLSSocket && socket.encrypted;
    this.reader = new ResponseReader(maxLineLength);
    this.reads = readBuffers.get(socket) ?? null;
    this.toReader = this.reads !== null ? (chunk) => this.reader.push(Buffer.from(chunk)) : (chunk) => this.reader.push(chunk);
    this.handler = this.toReader;
    const onGone = (err?: Error) => {
      if (this.state === 'closed') return;
      this.state = 'closed';
      const e = err ?? new Error('connection closed by the server');
      this.reader.fail(e);
      for (const h of this.closeHandlers.splice(0)) h(e);
    };
    const onData = (chunk: Buffer): void => {
      this.lastActivityAt = Date.now();
      this.handler?.(chunk);
    };
    this.listeners = [
      ['error', onGone],
      ['close', () => onGone()],
      ['end', () => onGone()],
    ];
    if (this.reads === null) this.listeners.push(['data', onData]);
    for (const [event, listener] of this.listeners) socket.on(event, listener);
    if (this.reads !== null) {
      const reads = this.reads;
      reads.sink = onData;
      reads.idle = () => this.state === 'cleanup' || this.state === 'cached';
      for (const chunk of reads.early.splice(0)) onData(chunk);
    }
  }

  /**
   * The bytes last handed to the handler went into a socket.write() that is
   * still pending (the writer's writableLength is not 0): the next read must
   * not overwrite them (ReadBuffer). Call the result once that write is done
   * (its callback): the buffer can take reads again.
   */
  readBufferLent(): () => void {
    return this.reads?.lent() ?? noop;
  }

  /**
   * Gives up the socket without closing it, for STARTTLS: the TLS socket
   * built on it becomes a new BackendConnection, and nothing read in clear
   * is carried over.
   */
  detach(): Socket {
    for (const [event, listener] of this.listeners) this.socket.off(event, listener);
    if (this.reads !== null) this.reads.sink = () => {};
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
    this.handler = handler ?? this.toReader;
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
