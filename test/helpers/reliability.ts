// Helpers of the reliability tests (limits, faults, regressions, fuzz, soak):
// a daemon's RSS and open descriptors from /proc, a bare socket client that
// can stop reading or vanish at any byte, the stats file polled until it shows
// something, a TCP tap that records what the proxy sent to the server, and a
// scripted fake IMAP server for fault injection.
//
// The fake server is for fault injection only (a server that drops the
// connection mid-login or mid-FETCH, rejects an ID, sends a hostile banner):
// Dovecot cannot be made to do those things on cue. Every normal-path test
// talks to a real Dovecot. It lives in fake-server.ts.
import net from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { readStatsFile, type DecodedStats } from '@imapproxy/shared';
import { LOOPBACK } from './ports.js';
import { eventually } from './proxy-log.js';
import { FAKE_GREETING, type FakeConn } from './fake-server.js';
import { scaled } from './wait.js';

/** Resident set size of a process in KiB (VmRSS), or 0 when it is gone. */
export function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Open file descriptors of a process (-1 when it is gone). */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/** Samples rssKb(pid) every `everyMs` until stop(); returns the peak seen. */
export function rssSampler(pid: number, everyMs = 100): { peakKb(): number; stop(): number } {
  let peak = rssKb(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssKb(pid));
  }, everyMs);
  timer.unref();
  return {
    peakKb: () => peak,
    stop: () => {
      clearInterval(timer);
      peak = Math.max(peak, rssKb(pid));
      return peak;
    },
  };
}

/** The stats file once `ready(stats)` holds (the daemon flushes it about once a second). */
export function statsWhen(statFile: string, ready: (s: DecodedStats) => boolean, timeoutMs = 6000): Promise<DecodedStats> {
  let last: DecodedStats | undefined;
  return eventually(
    'the stats file to show the expected counters',
    () => {
      try {
        last = readStatsFile(statFile);
      } catch {
        return undefined;
      }
      return ready(last) ? last : undefined;
    },
    timeoutMs,
    () => JSON.stringify(last, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v), 1),
  );
}

/**
 * A raw client socket: collects everything as latin1 text, can stop reading
 * (back-pressure on the proxy), half-close, reset or vanish at any moment.
 */
export class Bare {
  data: Buffer = Buffer.alloc(0);
  ended = false;
  closed = false;
  readonly closedPromise: Promise<void>;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (b: Buffer) => {
      this.data = this.data.length === 0 ? b : Buffer.concat([this.data, b]);
      this.notify();
    });
    socket.on('error', () => {});
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    this.closedPromise = new Promise((resolve) =>
      socket.on('close', () => {
        this.closed = true;
        this.ended = true;
        this.notify();
        resolve();
      }),
    );
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Connects; with `greeting` (default) waits for the first line. */
  static async connect(port: number, opts: { greeting?: boolean; allowHalfOpen?: boolean; localAddress?: string } = {}): Promise<Bare> {
    const socket = net.connect({ host: LOOPBACK, port, allowHalfOpen: opts.allowHalfOpen ?? false, localAddress: opts.localAddress });
    socket.setNoDelay(true);
    const bare = new Bare(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    if (opts.greeting ?? true) await bare.waitFor('\r\n');
    return bare;
  }

  text(): string {
    return this.data.toString('latin1');
  }

  /** Lines received so far (complete ones only). */
  lines(): string[] {
    const t = this.text();
    const end = t.lastIndexOf('\r\n');
    return end < 0 ? [] : t.slice(0, end).split('\r\n');
  }

  /** Waits until the text contains `s` (or matches it); rejects after timeoutMs (stretched by the load) or on close without it. */
  async waitFor(s: string | RegExp, quietMs = 5000): Promise<void> {
    const timeoutMs = scaled(quietMs);
    const deadline = Date.now() + timeoutMs;
    const seen = () => (typeof s === 'string' ? this.text().includes(s) : s.test(this.text()));
    while (!seen()) {
      const left = deadline - Date.now();
      if (left <= 0 || this.ended) {
        throw new Error(`Bare: no ${String(s)} within ${timeoutMs} ms${this.ended ? ' (closed)' : ''}; got ${JSON.stringify(this.text().slice(-400))}`);
      }
      await this.sleepUntilData(left);
    }
  }

  /** Waits until the proxy closes the connection (EOF); rejects after timeoutMs (stretched by the load). */
  async waitForEnd(quietMs = 5000): Promise<void> {
    const timeoutMs = scaled(quietMs);
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Bare: still open after ${timeoutMs} ms; got ${JSON.stringify(this.text().slice(-400))}`);
      await this.sleepUntilData(left);
    }
  }

  private sleepUntilData(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Resolves once the bytes are handed to the kernel (rejects if the socket is gone). */
  write(s: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(s, (err) => (err ? reject(err) : resolve())));
  }

  /** Stops reading: the kernel buffers fill and the proxy meets back-pressure. */
  stopReading(): void {
    this.socket.pause();
  }

  /** Gone without LOGOUT (FIN). */
  destroy(): void {
    this.socket.destroy();
  }

  /** Gone with a TCP RST. */
  reset(): void {
    this.socket.resetAndDestroy();
  }
}

// The scripted fake server lives in fake-server.ts; re-exported here for the tests
// that import it with the other reliability helpers.
export { FAKE_GREETING, startFakeServer, type FakeConn, type FakeServer } from './fake-server.js';
/**
 * Greeting, then the proxy's start-up CAPABILITY probe or its LOGIN, answered
 * OK. Returns after LOGIN was answered (true), or false for a probe
 * connection that only asked for capabilities and logged out.
 */
export async function standardLogin(c: FakeConn, greeting = FAKE_GREETING): Promise<boolean> {
  c.send(`${greeting}\r\n`);
  for (;;) {
    const line = await c.readLine();
    const m = /^(\S+) (\S+)/.exec(line);
    if (!m) continue;
    const [, tag, cmd] = m;
    const name = cmd!.toUpperCase();
    if (name === 'CAPABILITY') {
      c.send(`* CAPABILITY IMAP4rev1 LITERAL+ ID UNSELECT\r\n${tag} OK done\r\n`);
    } else if (name === 'LOGOUT') {
      c.send(`* BYE bye\r\n${tag} OK done\r\n`);
      c.socket.end();
      return false;
    } else if (name === 'LOGIN') {
      c.send(`${tag} OK [CAPABILITY IMAP4rev1 LITERAL+ ID UNSELECT] Logged in\r\n`);
      return true;
    } else {
      c.send(`${tag} OK done\r\n`);
    }
  }
}
