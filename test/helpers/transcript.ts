// A raw-socket IMAP client for protocol tests. It knows exactly one thing about IMAP
// syntax: a line ending in {n} or {n+} is followed by n literal bytes and then the
// rest of the line, so one logical response line may span several CRLFs.
//
//   const c = await RawClient.connect(port);
//   c.greeting                          // "* OK [CAPABILITY ...] Dovecot ready."
//   await c.command('a1 LOGIN user1 pass1')   // ["a1 OK [CAPABILITY ...] Logged in"]
//   await c.command('a2 LOGOUT')              // ["* BYE ...", "a2 OK ..."]
//   await c.expectClosed();
import net from 'node:net';
import tls from 'node:tls';
import { LOOPBACK } from './ports.js';

export interface RawClientOptions {
  host?: string;
  /** Implicit TLS (certificate not verified). */
  tls?: boolean;
  /** Per-read timeout in ms (default 5000). */
  timeoutMs?: number;
  /** Read the greeting in connect() (default true). */
  readGreeting?: boolean;
  /** Return the proxy's login OK with its `[CAPABILITY ...]` code (default false: see loginCapabilities). */
  keepLoginCapability?: boolean;
}

/**
 * The proxy's tagged OK to LOGIN/AUTHENTICATE (its own text) with the server's
 * capabilities after login (issue 18). Most tests compare that line with the
 * original's `a1 OK User logged in`, so RawClient takes the code out of what it
 * returns and keeps the list in `loginCapabilities`; the transcript shows the line as sent.
 */
const PROXY_LOGIN_OK = /^(\S+ OK )\[CAPABILITY ([^\]]*)\] (User logged in|User authenticated)$/;

const CRLF = Buffer.from('\r\n');
const LITERAL_AT_END = /\{(\d+)(\+?)\}$/;
/** Server lines longer than this are shortened in the transcript. */
const TRANSCRIPT_LINE_MAX = 300;

function shorten(line: string): string {
  return line.length <= TRANSCRIPT_LINE_MAX
    ? line
    : `${line.slice(0, TRANSCRIPT_LINE_MAX)}... (${line.length} chars)`;
}

export class RawClient {
  /** The first server line; '' when connect() was told not to read it. */
  greeting = '';
  /** "C: ..." and "S: ..." lines in order, for failure messages. */
  readonly transcript: string[] = [];
  readonly timeoutMs: number;
  /** The capabilities of the proxy's last login OK (null: none seen yet, or an OK without them). */
  loginCapabilities: string[] | null = null;
  /** See RawClientOptions.keepLoginCapability. */
  keepLoginCapability = false;

  private socket: net.Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private ended = false;
  private closed = false;
  private socketError: Error | undefined;
  private wake: (() => void) | undefined;
  private closeWaiters: Array<() => void> = [];

  private constructor(socket: net.Socket, timeoutMs: number) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    this.attach(socket);
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', (err) => {
      this.socketError = err;
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.closed = true;
      this.notify();
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  static async connect(port: number, opts: RawClientOptions = {}): Promise<RawClient> {
    const host = opts.host ?? LOOPBACK;
    const timeoutMs = opts.timeoutMs ?? 5000;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`RawClient: timed out after ${timeoutMs} ms connecting to ${host}:${port}${opts.tls ? ' (TLS)' : ''}`));
      }, timeoutMs);
      const done = (err?: Error): void => {
        clearTimeout(timer);
        if (err) reject(new Error(`RawClient: cannot connect to ${host}:${port}: ${err.message}`, { cause: err }));
        else resolve(s);
      };
      const s: net.Socket = opts.tls
        ? tls.connect({ host, port, rejectUnauthorized: false, servername: 'localhost' }, () => done())
        : net.connect({ host, port }, () => done());
      s.once('error', done);
    });
    socket.setNoDelay(true);
    const client = new RawClient(socket, timeoutMs);
    client.keepLoginCapability = opts.keepLoginCapability ?? false;
    if (opts.readGreeting ?? true) client.greeting = await client.readLine();
    return client;
  }

  /** Sends `line` + CRLF. */
  async send(line: string): Promise<void> {
    this.transcript.push(`C: ${line}`);
    await this.write(Buffer.concat([Buffer.from(line, 'utf8'), CRLF]));
  }

  /** Sends bytes as they are (no CRLF added). */
  async sendRaw(data: Buffer | string): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.transcript.push(`C: ${JSON.stringify(buf.toString('latin1'))} (raw, ${buf.length} bytes)`);
    await this.write(buf);
  }

  private write(buf: Buffer): Promise<void> {
    if (this.closed || this.socket.destroyed) {
      return Promise.reject(new Error(`RawClient: cannot send, connection is closed\n${this.describe()}`));
    }
    return new Promise((resolve, reject) => {
      this.socket.write(buf, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * Upgrades the connection to TLS in place, after the client sent STARTTLS and read
   * the tagged OK. The certificate is not verified.
   */
  async startTls(): Promise<void> {
    if (this.buffer.length > 0) throw new Error('RawClient: bytes after the STARTTLS OK (STARTTLS injection?)');
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('end');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`RawClient: TLS handshake timed out\n${this.describe()}`)), this.timeoutMs);
      const s = tls.connect({ socket: plain, rejectUnauthorized: false, servername: 'localhost' }, () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`RawClient: TLS handshake failed: ${err.message}`, { cause: err }));
      });
    });
    this.socket = secure;
    this.attach(secure);
    this.transcript.push('-- TLS established --');
  }

  /** Waits for data or EOF, or rejects after timeoutMs with `what` and the lines seen. */
  private async waitForInput(what: string, deadline: number, timeoutMs: number): Promise<void> {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw this.timeoutError(what, timeoutMs);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        reject(this.timeoutError(what, timeoutMs));
      }, remaining);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private timeoutError(what: string, timeoutMs: number): Error {
    return new Error(`RawClient: timed out after ${timeoutMs} ms waiting for ${what}\n${this.describe()}`);
  }

  /** The transcript so far plus any unparsed bytes, for error messages. */
  describe(): string {
    const pending = this.buffer.length > 0
      ? `\n  (unterminated: ${JSON.stringify(this.buffer.subarray(0, 300).toString('latin1'))}${this.buffer.length > 300 ? '...' : ''})`
      : '';
    const tailLines = this.transcript.slice(-40);
    const skipped = this.transcript.length - tailLines.length;
    return `transcript so far${skipped > 0 ? ` (last 40 of ${this.transcript.length})` : ''}:\n` +
      tailLines.map((l) => `  ${l}`).join('\n') + pending;
  }

  /**
   * One logical server line as bytes, without the final CRLF; literals ({n}/{n+})
   * are included with their CRLF, followed by the rest of the line.
   */
  async readLineBuffer(timeoutMs = this.timeoutMs): Promise<Buffer> {
    return this.readLogicalLine('a server line', Date.now() + timeoutMs, timeoutMs);
  }

  private async readLogicalLine(what: string, deadline: number, timeoutMs: number): Promise<Buffer> {
    let scanFrom = 0;
    for (;;) {
      const eol = this.buffer.indexOf(CRLF, scanFrom);
      if (eol !== -1) {
        const head = this.buffer.subarray(scanFrom, eol).toString('latin1');
        const lit = LITERAL_AT_END.exec(head);
        if (!lit) {
          const line = this.buffer.subarray(0, eol);
          this.buffer = this.buffer.subarray(eol + 2);
          this.transcript.push(`S: ${shorten(line.toString('utf8'))}`);
          const ok = PROXY_LOGIN_OK.exec(head);
          if (ok && scanFrom === 0) {
            this.loginCapabilities = ok[2]!.split(' ').filter(Boolean);
            if (!this.keepLoginCapability) return Buffer.from(`${ok[1]}${ok[3]}`, 'latin1');
          }
          return line;
        }
        const literalEnd = eol + 2 + Number(lit[1]);
        if (this.buffer.length >= literalEnd) {
          scanFrom = literalEnd; // keep going: the line continues after the literal
          continue;
        }
      }
      if (this.socketError) throw new Error(`RawClient: socket error while waiting for ${what}: ${this.socketError.message}\n${this.describe()}`);
      if (this.ended) throw new Error(`RawClient: connection closed by the server while waiting for ${what}\n${this.describe()}`);
      await this.waitForInput(what, deadline, timeoutMs);
    }
  }

  /** One logical server line (UTF-8), without CRLF. */
  async readLine(timeoutMs = this.timeoutMs): Promise<string> {
    return (await this.readLineBuffer(timeoutMs)).toString('utf8');
  }

  /** Every line up to and including the tagged response for `tag`. */
  async readUntilTagged(tag: string, timeoutMs = this.timeoutMs): Promise<string[]> {
    const lines: string[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = (await this.readLogicalLine(`the tagged response "${tag}"`, deadline, timeoutMs)).toString('utf8');
      lines.push(line);
      if (line.startsWith(`${tag} `)) return lines;
    }
  }

  /** send(line) and readUntilTagged(first word of line). */
  async command(line: string, timeoutMs = this.timeoutMs): Promise<string[]> {
    const tag = line.split(' ', 1)[0]!;
    await this.send(line);
    return this.readUntilTagged(tag, timeoutMs);
  }

  /** Resolves with the lines the server still sent once it closes; rejects on timeout. */
  async expectClosed(timeoutMs = this.timeoutMs): Promise<string[]> {
    const lines: string[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        lines.push((await this.readLogicalLine('the server to close the connection', deadline, timeoutMs)).toString('utf8'));
      } catch (err) {
        if (this.ended || this.socketError) {
          if (this.buffer.length > 0) lines.push(this.buffer.toString('utf8'));
          this.buffer = Buffer.alloc(0);
          this.transcript.push('S: <closed>');
          return lines;
        }
        throw err;
      }
    }
  }

  /** True once the server closed the connection (or it errored). */
  get isClosed(): boolean {
    return this.ended || this.closed || this.socketError !== undefined;
  }

  /** Closes the socket without a LOGOUT; resolves when it is closed. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
      this.socket.destroy();
    });
  }
}

// --- scripted transcripts ------------------------------------------------------------

export interface TranscriptOptions extends RawClientOptions {
  /** Leave the connection open and return the client (default: close at the end). */
  keepOpen?: boolean;
}

export interface TranscriptResult {
  /** "C: ..." / "S: ..." lines as they happened (the greeting is the first S: line). */
  lines: string[];
  /** Only the server lines, in order. */
  serverLines: string[];
  client: RawClient;
}

export class TranscriptMismatchError extends Error {
  readonly transcript: string[];
  constructor(message: string, transcript: string[]) {
    super(message);
    this.name = 'TranscriptMismatchError';
    this.transcript = transcript;
  }
}

/**
 * Runs a scripted session against 127.0.0.1:port and asserts it.
 *   C: a1 LOGIN user1 pass1        send the line (+ CRLF)
 *   S: a1 OK Logged in             expect exactly this next server line
 *   S~ ^a1 OK \[CAPABILITY         expect the next server line to match this regex
 *   S: <closed>                    expect the server to close the connection
 * The greeting is the first server line. Blank lines and lines starting with '#'
 * are ignored; leading indentation is trimmed (template literals read well).
 * Throws TranscriptMismatchError with the script position and the actual transcript.
 */
export async function runTranscript(port: number, script: string, opts: TranscriptOptions = {}): Promise<TranscriptResult> {
  const client = await RawClient.connect(port, { ...opts, readGreeting: false });
  const serverLines: string[] = [];
  const steps = script.split('\n').map((l) => l.replace(/^\s+/, '')).filter((l) => l !== '' && !l.startsWith('#'));
  try {
    for (const [i, step] of steps.entries()) {
      const kind = step.slice(0, 2);
      const text = step.slice(step[2] === ' ' ? 3 : 2);
      const fail = (why: string): never => {
        throw new TranscriptMismatchError(
          `transcript step ${i + 1} "${step}": ${why}\n${client.describe()}`, [...client.transcript]);
      };
      if (kind === 'C:') {
        await client.send(text);
      } else if (kind === 'S:' && text === '<closed>') {
        try {
          const rest = await client.expectClosed();
          if (rest.length > 0) fail(`server sent more lines before closing: ${JSON.stringify(rest)}`);
        } catch (err) {
          if (err instanceof TranscriptMismatchError) throw err;
          fail((err as Error).message.split('\n')[0]!);
        }
      } else if (kind === 'S:' || kind === 'S~') {
        let line: string;
        try {
          line = await client.readLine();
        } catch (err) {
          return fail((err as Error).message.split('\n')[0]!);
        }
        serverLines.push(line);
        if (!client.greeting) client.greeting = line;
        const ok = kind === 'S:' ? line === text : new RegExp(text).test(line);
        if (!ok) fail(`got ${JSON.stringify(line)}`);
      } else {
        fail('a step must start with "C:", "S:" or "S~"');
      }
    }
  } catch (err) {
    await client.close();
    throw err;
  }
  if (!opts.keepOpen) await client.close();
  return { lines: [...client.transcript], serverLines, client };
}
