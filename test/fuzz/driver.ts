// The fuzz driver (issue 8, part 3): mutated client input, before and after
// login, sent to a running imapproxyd in front of a real Dovecot, bounded in
// count and time; then the daemon must be alive, its RSS bounded, and a
// normal login must still work.
//
// How: `connections` sockets in parallel, half of them logged in first. Each
// sends batches of mutated inputs (one input = one mutated command, literals
// and all, usually with its CRLF, sometimes cut so the next one continues the
// line), then a sync point `\r\nDONE\r\nZ<n> NOOP\r\n` and waits for `Z<n> `.
// A connection the proxy closes (BYE: line too long, LOGOUT, ...) or that
// stalls (waiting for the bytes of a literal it was promised) is dropped and
// replaced: that is fuzzing too. The unit-level fast-check properties of the
// scanner, the command assembler and the argument parser
// (packages/shared/src/imap/*.test.ts) cover the parsers alone; this covers
// the daemon as a whole.
//
//   node test/dist/fuzz/driver.js --inputs 1000000 --max-seconds 900   (bench/fuzz.sh)
//   test/fuzz-short.test.ts runs 20,000 in CI.
//
// Loopback only. Every loop is bounded by the input count and the deadline.
import net from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDovecot, type Dovecot } from '../helpers/dovecot.js';
import { LOOPBACK } from '../helpers/ports.js';
import { isAlive } from '../helpers/process-tree.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { fdCount, rssKb } from '../helpers/reliability.js';
import { RawClient } from '../helpers/transcript.js';
import { settled } from '../helpers/wait.js';

export interface FuzzOptions {
  /** Mutated inputs to send (the run also stops at the deadline). */
  inputs: number;
  maxSeconds: number;
  connections?: number;
  seed?: number;
  /** Inputs per batch, before each sync point (default 16; the command line: 32). */
  batch?: number;
  /** Peak RSS allowed for the daemon, in MiB (default 256). */
  rssLimitMb?: number;
  /** Where inputs that crashed the daemon are saved (default: a new dir under the temp dir). */
  crashDir?: string;
  /** Progress lines on stderr every this many seconds (0: none). */
  progressSeconds?: number;
  /** Extra config lines for the daemon. */
  extraConf?: string;
}

export interface FuzzResult {
  inputs: number;
  preauthInputs: number;
  postauthInputs: number;
  batches: number;
  /** The daemon died (must be 0). */
  crashes: number;
  /** Handled internal errors the daemon logged ("internal error"), must be 0. */
  internalErrors: number;
  /** Connections the proxy closed (BYE and the like). */
  closedByProxy: number;
  /** Sync points that did not come back in time (a literal waiting for its bytes, a slow server). */
  stalls: number;
  /** Connections the driver dropped on purpose right after a batch (FIN or RST). */
  drops: number;
  reconnects: number;
  logins: number;
  peakRssKb: number;
  finalRssKb: number;
  startRssKb: number;
  /** A normal LOGIN / SELECT / LOGOUT worked at the end. */
  loginWorksAfter: boolean;
  seconds: number;
  seed: number;
  crashFiles: string[];
  /** Last lines of the daemon's log when it crashed. */
  crashLog: string[];
}

// --- generation -------------------------------------------------------------------

/** xorshift32. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const B64_PLAIN = Buffer.from('\0user1\0pass1').toString('base64');

/** Commands before login (no tag: the generator adds one). */
const PREAUTH_SEEDS = [
  'CAPABILITY', 'NOOP', 'ID NIL', 'ID ("name" "fuzz" "version" "1.0")', 'ID ("a" {3}\r\nabc)',
  'LOGIN user1 pass1', 'LOGIN "user1" "pass1"', 'LOGIN {5}\r\nuser1 {5}\r\npass1', 'LOGIN {5+}\r\nuser1 {5+}\r\npass1',
  'LOGIN "us\\"er" "p\\\\w"', 'LOGIN user1', 'LOGIN', 'AUTHENTICATE PLAIN ' + B64_PLAIN, 'AUTHENTICATE PLAIN\r\n' + B64_PLAIN,
  'AUTHENTICATE LOGIN\r\ndXNlcjE=\r\ncGFzczE=', 'AUTHENTICATE PLAIN\r\n*', 'AUTHENTICATE CRAM-MD5', 'AUTHENTICATE',
  'STARTTLS', 'SELECT INBOX', 'ENABLE UTF8=ACCEPT', 'XPROXY_TRACE user1', 'XPROXY_VERSION', 'COMPRESS DEFLATE',
];

/** Commands after login. */
const POSTAUTH_SEEDS = [
  'NOOP', 'CHECK', 'CAPABILITY', 'SELECT INBOX', 'EXAMINE INBOX', 'SELECT Archive', 'EXAMINE "Archive"', 'UNSELECT', 'CLOSE',
  'FETCH 1:5 (FLAGS UID)', 'FETCH 1 BODY.PEEK[HEADER]', 'UID FETCH 1:* (UID RFC822.SIZE)', 'FETCH 2 ENVELOPE',
  'FETCH 1:3 (BODY.PEEK[TEXT]<0.100> INTERNALDATE)', 'FETCH 1 BODYSTRUCTURE', 'SEARCH ALL', 'SEARCH SUBJECT {6}\r\nreport',
  'UID SEARCH UNSEEN', 'SEARCH OR SEEN FLAGGED', 'SEARCH CHARSET UTF-8 TEXT {6+}\r\nGr\xc3\xbc\xc3\x9fe', 'STATUS INBOX (MESSAGES UIDNEXT)',
  'LIST "" "*"', 'LSUB "" "*"', 'LIST "" %', 'NAMESPACE', 'ID NIL', 'IDLE', 'DONE', 'ENABLE CONDSTORE', 'GETQUOTAROOT INBOX',
  'STORE 1 +FLAGS (\\Flagged)', 'STORE 1 -FLAGS.SILENT (\\Flagged)', 'COPY 1 Archive', 'CREATE fuzz', 'DELETE fuzz',
  'SUBSCRIBE fuzz', 'UNSUBSCRIBE fuzz', 'RENAME fuzz fuzz2', 'LOGIN user1 pass1', 'AUTHENTICATE PLAIN', 'STARTTLS',
  'APPEND fuzz {12}\r\nSubject: x\r\n', 'UID EXPUNGE 999', 'EXPUNGE', 'SELECT INBOX (CONDSTORE)', 'COMPRESS DEFLATE',
];

const INTERESTING: string[] = [
  '\0', '\r', '\n', '\r\n', ' ', '  ', '(', ')', '((((', ')))', '"', '\\', '{', '}', '{0}', '{1}', '{2+}', '{7}\r\n',
  '{4294967296}', '{99999999999999999999}', '{-1}', '{18446744073709551616+}', '~{3}\r\nabc', '*', '%', '+', '[', ']',
  '\x7f', '\xff', '\xc3', '\xc3\x28', '\xed\xa0\x80', '\xf0\x9f\x92\xa9', 'NIL', 'LOGOUT', 'DONE', 'UID', 'BODY[', '<0.>',
  '1:*', '*:1', '4294967295', '0', '-1', '""', '"\\"', 'x LOGOUT\r\n',
];

class Generator {
  readonly rand: () => number;
  private tagNo = 0;
  constructor(seed: number) {
    this.rand = rng(seed);
  }

  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  private tag(): string {
    const r = this.rand();
    if (r < 0.9) return `f${++this.tagNo}`;
    return this.pick(['', '*', '+', 'a(b', 'x'.repeat(300), 't\0g', '\xff', 'A0001', 'X1.1', 'DONE']);
  }

  /** One mutated input (latin1 bytes). */
  next(postauth: boolean): Buffer {
    let s = postauth ? this.pick(POSTAUTH_SEEDS) : this.pick(PREAUTH_SEEDS);
    if (this.rand() < 0.15) s = `${s} ${this.pick(postauth ? POSTAUTH_SEEDS : PREAUTH_SEEDS)}`;
    s = `${this.tag()} ${s}`;
    const rounds = this.rand() < 0.15 ? 0 : 1 + this.int(4);
    for (let i = 0; i < rounds; i++) s = this.mutate(s);
    // usually a whole line; sometimes cut, so the next input continues it
    if (this.rand() < 0.93) s += '\r\n';
    else if (this.rand() < 0.5) s += '\n';
    return Buffer.from(s, 'latin1');
  }

  private mutate(s: string): string {
    const at = this.int(s.length + 1);
    switch (this.int(9)) {
      case 0: // flip a byte
        return s.length === 0 ? s : s.slice(0, at) + String.fromCharCode(this.int(256)) + s.slice(at + 1);
      case 1: // insert something interesting
      case 2:
        return s.slice(0, at) + this.pick(INTERESTING) + s.slice(at);
      case 3: { // delete a range
        const len = 1 + this.int(8);
        return s.slice(0, at) + s.slice(at + len);
      }
      case 4: { // duplicate a range
        const len = 1 + this.int(16);
        return s.slice(0, at) + s.slice(at, at + len).repeat(1 + this.int(4)) + s.slice(at);
      }
      case 5: // a literal announcement with a plausible size
        return `${s.slice(0, at)}{${this.int(40)}${this.rand() < 0.5 ? '+' : ''}}\r\n${s.slice(at)}`;
      case 6: { // something long: around and over the line and literal limits (rarely over: BYE, new connection)
        const n = this.rand() < 0.85 ? this.pick([50, 100, 1000, 4000, 8000]) : this.pick([8191, 8193, 9000, 66000]);
        return s.slice(0, at) + this.pick(['x', 'A', ' ', '(', '"', '\0', '\xff']).repeat(n) + s.slice(at);
      }
      case 7: // a huge number somewhere
        return s.slice(0, at) + this.pick(['4294967296', '99999999999999999999999', '18446744073709551615', '2147483648']) + s.slice(at);
      default: // random bytes
        return s.slice(0, at) + String.fromCharCode(...Array.from({ length: 1 + this.int(6) }, () => this.int(256))) + s.slice(at);
    }
  }
}

// --- the run --------------------------------------------------------------------

interface Worker {
  socket: net.Socket | null;
  postauth: boolean;
  recent: Buffer[];
}

export async function runFuzz(opts: FuzzOptions, target?: { proxy: Proxy; dovecot: Dovecot }): Promise<FuzzResult> {
  const seed = opts.seed ?? Date.now() % 1_000_000;
  const connections = opts.connections ?? 16;
  const batch = opts.batch ?? 16;
  const rssLimitKb = (opts.rssLimitMb ?? 256) * 1024;
  const started = Date.now();
  const deadline = started + opts.maxSeconds * 1000;
  const ownDovecot = target ? null : await startDovecot({ users: 10 });
  const dovecot = target?.dovecot ?? ownDovecot!;
  // max_clients_per_ip just above the connections: a reconnect that races
  // the daemon's close of an old connection is refused now and then (the
  // refusal path, with the client's FIN or RST, gets fuzzed too).
  const ownProxy = target ? null : await startProxy({
    serverPort: dovecot.port,
    extraConf: opts.extraConf ?? `preauth_idle_timeout 10\nidle_timeout 30\nmax_clients_per_ip ${connections + 1}`,
  });
  const proxy = target?.proxy ?? ownProxy!;
  const result: FuzzResult = {
    inputs: 0, preauthInputs: 0, postauthInputs: 0, batches: 0, crashes: 0, internalErrors: 0, closedByProxy: 0,
    stalls: 0, drops: 0, reconnects: 0, logins: 0, peakRssKb: 0, finalRssKb: 0, startRssKb: rssKb(proxy.pid), loginWorksAfter: false,
    seconds: 0, seed, crashFiles: [], crashLog: [],
  };
  let dead = false;
  const workers: Worker[] = [];
  const monitor = setInterval(() => {
    result.peakRssKb = Math.max(result.peakRssKb, rssKb(proxy.pid));
    if (!dead && !isAlive(proxy.pid)) dead = true;
  }, 100);
  let lastProgress = Date.now();
  const progress = () => {
    if (!opts.progressSeconds || Date.now() - lastProgress < opts.progressSeconds * 1000) return;
    lastProgress = Date.now();
    process.stderr.write(`fuzz: ${result.inputs} inputs in ${((Date.now() - started) / 1000).toFixed(0)} s, ` +
      `${result.closedByProxy} closed by the proxy, ${result.stalls} stalls, RSS ${(rssKb(proxy.pid) / 1024).toFixed(0)} MiB (peak ${(result.peakRssKb / 1024).toFixed(0)})\n`);
  };

  const connect = async (postauth: boolean, n: number): Promise<net.Socket | null> => {
    const socket = net.connect({ host: LOOPBACK, port: proxy.port, noDelay: true });
    socket.on('error', () => {});
    const ok = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true));
      socket.once('error', () => resolve(false));
      setTimeout(() => resolve(false), 3000).unref();
    });
    if (!ok) {
      socket.destroy();
      return null;
    }
    if (postauth) {
      const user = `user${1 + (n % 10)}`;
      socket.write(`L1 LOGIN ${user} ${user.replace('user', 'pass')}\r\n`);
      const reply = await waitFor(socket, /(^|\r\n)L1 [^\r]*\r\n/, 5000);
      if (reply === null || !/L1 OK/.test(reply)) {
        socket.destroy();
        return null;
      }
      result.logins++;
    }
    return socket;
  };

  const run = async (w: Worker, n: number, gen: Generator) => {
    let sync = 0;
    while (!dead && result.inputs < opts.inputs && Date.now() < deadline) {
      if (w.socket === null || w.socket.destroyed) {
        w.postauth = n % 2 === 0; // half the connections log in first
        w.socket = await connect(w.postauth, n);
        result.reconnects++;
        if (w.socket === null) {
          if (dead) break;
          await new Promise((r) => setTimeout(r, 50)); // back-off before reconnecting, not a synchronisation
          continue;
        }
      }
      const socket = w.socket;
      const parts: Buffer[] = [];
      // Dovecot ends a session after 20 bad commands in a row (most of the
      // inputs are): after login, smaller batches, each ended by the good NOOP.
      const size = w.postauth ? Math.min(batch, 8) : batch;
      for (let i = 0; i < size && result.inputs < opts.inputs; i++) {
        parts.push(gen.next(w.postauth));
        result.inputs++;
        if (w.postauth) result.postauthInputs++;
        else result.preauthInputs++;
      }
      const tag = `Z${++sync}`;
      parts.push(Buffer.from(`\r\nDONE\r\n${tag} NOOP\r\n`));
      const data = Buffer.concat(parts);
      w.recent.push(data);
      if (w.recent.length > 3) w.recent.shift();
      result.batches++;
      const reply = waitFor(socket, new RegExp(`(^|\\r\\n)${tag} [^\\r]*\\r\\n`), 1500, true);
      socket.write(data);
      if (gen.rand() < 0.02) {
        // gone in the middle of it all, with a FIN or a RST
        if (gen.rand() < 0.5) socket.resetAndDestroy();
        else socket.destroy();
        w.socket = null;
        result.drops++;
        continue;
      }
      const got = await reply;
      if (got === 'closed') {
        result.closedByProxy++;
        socket.destroy();
        w.socket = null;
      } else if (got === null) {
        result.stalls++;
        if (gen.rand() < 0.5) socket.resetAndDestroy();
        else socket.destroy();
        w.socket = null;
      } else if (!w.postauth && /OK User (logged in|authenticated)/.test(got)) {
        w.postauth = true; // a mutated LOGIN that worked
        result.logins++;
      }
      progress();
    }
    w.socket?.destroy();
  };

  try {
    await Promise.all(
      Array.from({ length: connections }, (_, i) => {
        const w: Worker = { socket: null, postauth: false, recent: [] };
        workers.push(w);
        return run(w, i, new Generator(seed * 31 + i));
      }),
    );
    // let the daemon finish with the last inputs (its open files stop changing), then check it
    await settled('the daemon to settle', () => fdCount(proxy.pid), { quietMs: 300, timeoutMs: 10_000 }).catch(() => undefined);
    if (!dead && !isAlive(proxy.pid)) dead = true;
    if (dead) {
      result.crashes = 1;
      result.crashLog = proxy.log().slice(-40);
      const dir = opts.crashDir ?? path.join(os.tmpdir(), `imapproxy-fuzz-crash-${seed}-${Date.now()}`);
      mkdirSync(dir, { recursive: true });
      workers.forEach((w, i) =>
        w.recent.forEach((b, j) => {
          const f = path.join(dir, `worker${i}-batch${j}.bin`);
          writeFileSync(f, b);
          result.crashFiles.push(f);
        }),
      );
    } else {
      result.finalRssKb = rssKb(proxy.pid);
      result.loginWorksAfter = await normalLogin(proxy.port);
    }
    result.internalErrors = proxy.log().filter((l) => /internal error/i.test(l)).length;
  } finally {
    clearInterval(monitor);
    for (const w of workers) w.socket?.destroy();
    result.seconds = (Date.now() - started) / 1000;
    await ownProxy?.stop();
    await ownDovecot?.stop();
  }
  if (result.peakRssKb > rssLimitKb) result.crashLog.push(`peak RSS ${result.peakRssKb} KiB over the limit of ${rssLimitKb} KiB`);
  return result;
}

/**
 * Resolves with the received text once it matches `re` ('closed' when the
 * proxy closes first and `closedIsResult`), or null after `timeoutMs`. Only
 * the last 64 KiB of text are kept for matching.
 */
function waitFor(socket: net.Socket, re: RegExp, timeoutMs: number, closedIsResult = false): Promise<string | null> {
  return new Promise((resolve) => {
    let text = '';
    const done = (v: string | null) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(v);
    };
    const onData = (b: Buffer) => {
      text += b.toString('latin1');
      if (text.length > 65536) text = text.slice(-65536);
      if (re.test(text)) done(text);
    };
    const onClose = () => done(closedIsResult ? 'closed' : null);
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

async function normalLogin(port: number): Promise<boolean> {
  const c = await RawClient.connect(port, { timeoutMs: 10_000 });
  try {
    if ((await c.command('n1 LOGIN user1 pass1')).at(-1) !== 'n1 OK User logged in') return false;
    if (!/^n2 OK/.test((await c.command('n2 SELECT INBOX')).at(-1)!)) return false;
    const lines = await c.command('n3 LOGOUT');
    return lines.at(-1) === 'n3 OK Completed';
  } catch {
    return false;
  } finally {
    await c.close();
  }
}

export function fuzzSummary(r: FuzzResult): string {
  return [
    `inputs tried: ${r.inputs} (${r.preauthInputs} before login, ${r.postauthInputs} after) in ${r.batches} batches, ${r.seconds.toFixed(1)} s, seed ${r.seed}`,
    `crashes: ${r.crashes}; internal errors logged: ${r.internalErrors}`,
    `connections closed by the proxy: ${r.closedByProxy}; stalls: ${r.stalls}; dropped by the client: ${r.drops}; reconnects: ${r.reconnects}; logins: ${r.logins}`,
    `RSS: start ${(r.startRssKb / 1024).toFixed(0)} MiB, peak ${(r.peakRssKb / 1024).toFixed(0)} MiB, end ${(r.finalRssKb / 1024).toFixed(0)} MiB`,
    `normal login afterwards: ${r.loginWorksAfter ? 'works' : 'FAILED'}`,
    ...(r.crashFiles.length > 0 ? [`inputs before the crash: ${path.dirname(r.crashFiles[0]!)}`] : []),
    ...r.crashLog.map((l) => `  ${l}`),
  ].join('\n');
}

// --- command line -----------------------------------------------------------------

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const opts: FuzzOptions = {
    inputs: arg('inputs', 1_000_000),
    maxSeconds: arg('max-seconds', 900),
    connections: arg('connections', 16),
    batch: arg('batch', 32),
    seed: arg('seed', Date.now() % 1_000_000),
    rssLimitMb: arg('rss-limit-mb', 256),
    progressSeconds: arg('progress', 10),
  };
  runFuzz(opts).then(
    (r) => {
      process.stdout.write(`${fuzzSummary(r)}\n`);
      const ok = r.crashes === 0 && r.internalErrors === 0 && r.loginWorksAfter && r.peakRssKb <= (opts.rssLimitMb ?? 256) * 1024;
      process.exit(ok ? 0 : 1);
    },
    (err: unknown) => {
      process.stderr.write(`fuzz: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(2);
    },
  );
}
