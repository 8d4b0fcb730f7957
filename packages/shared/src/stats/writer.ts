// Copies the live counters to the stats file. The only sync I/O the daemon does after start-up
// (ARCHITECTURE.md): three small positional writes, at most once per interval.
//
// File protocol (seqlock, see ./reader.ts for the other half):
//   1. write the generation word (offset 80), now odd: "a flush is in progress";
//   2. write the whole 512-byte image at offset 0 (its generation word is the same odd value);
//   3. write the generation word again, now even: "the file is complete".
// The C pimpstat mmap()s the first 72 bytes and ignores all of this, as it always did.
import fs from 'node:fs';
import { ImapProxyError } from '../errors.js';
import { encodeStats } from './codec.js';
import { EXT_FIELDS, EXT_HEADER } from './layout.js';
import { beginFlush, endFlush, type StatsRegistry } from './registry.js';

/** The writer rewrites the file at least this often even when nothing changed, so readers
 * (pimpstat's "stats file stopped changing" banner) can tell a quiet daemon from a dead one. */
export const STATS_HEARTBEAT_MS = 2000;
export const STATS_FLUSH_INTERVAL_MS = 1000;

export interface StatsFileWriterOptions {
  /** Rewrite at least this often (ms) even without changes; default STATS_HEARTBEAT_MS. */
  heartbeatMs?: number;
  /** Called when a timer-driven flush fails (the timer never throws). */
  onError?: (err: ImapProxyError) => void;
  /** Clock, for tests. */
  now?: () => number;
}

export class StatsFileWriter {
  readonly path: string;
  readonly #registry: StatsRegistry;
  readonly #heartbeatMs: number;
  readonly #onError: ((err: ImapProxyError) => void) | undefined;
  readonly #now: () => number;
  #fd: number | null;
  #timer: NodeJS.Timeout | null = null;
  /** The counters last written, with generation and flush time zeroed, to skip idle flushes. */
  #lastBody: Buffer | null = null;
  #lastFlushMs = 0;

  /**
   * Creates (or truncates: zeroed at every daemon start, like the original) the file with mode
   * 0600 and writes the current counters into it at once.
   */
  constructor(registry: StatsRegistry, path: string, options: StatsFileWriterOptions = {}) {
    this.#registry = registry;
    this.path = path;
    this.#heartbeatMs = options.heartbeatMs ?? STATS_HEARTBEAT_MS;
    this.#onError = options.onError;
    this.#now = options.now ?? Date.now;
    try {
      this.#fd = fs.openSync(path, 'w', 0o600);
      // open()'s mode only applies to a new file; an old file keeps its mode otherwise.
      fs.fchmodSync(this.#fd, 0o600);
    } catch (err) {
      throw fileError(path, 'cannot create', err);
    }
    // The file is empty: write the image in one go (with an even generation) rather than start with
    // a lone generation word at offset 80, which would leave a short, magic-less file behind.
    try {
      beginFlush(registry, this.#now());
      endFlush(registry);
      const image = encodeStats(registry.snapshot());
      fs.writeSync(this.#fd, image, 0, image.length, 0);
      this.#lastBody = bodyOf(image);
      this.#lastFlushMs = this.#now();
    } catch (err) {
      fs.closeSync(this.#fd);
      throw fileError(path, 'cannot write', err);
    }
  }

  /** Owner of the file, for the daemon before it drops privileges (the original chown()s it). */
  chown(uid: number, gid: number): void {
    try {
      fs.fchownSync(this.#openFd(), uid, gid);
    } catch (err) {
      throw fileError(this.path, 'cannot chown', err);
    }
  }

  /**
   * Checks every `intervalMs` (default 1000) and flushes when a counter changed or the
   * heartbeat is due. The timer is unref()'d: it never keeps the process alive.
   */
  start(intervalMs: number = STATS_FLUSH_INTERVAL_MS): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = setInterval(() => this.#tick(), intervalMs);
    this.#timer.unref();
  }

  /** Writes the whole layout now (seqlock protocol above). */
  flush(): void {
    const fd = this.#openFd();
    const nowMs = this.#now();
    try {
      writeGeneration(fd, beginFlush(this.#registry, nowMs));
      const snapshot = this.#registry.snapshot();
      const image = encodeStats(snapshot);
      fs.writeSync(fd, image, 0, image.length, 0);
      writeGeneration(fd, endFlush(this.#registry));
      this.#lastBody = bodyOf(image);
      this.#lastFlushMs = nowMs;
    } catch (err) {
      throw fileError(this.path, 'cannot write', err);
    }
  }

  /** Final flush, then closes the file. Safe to call twice. */
  close(): void {
    if (this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
    if (this.#fd === null) return;
    try {
      this.flush();
    } finally {
      const fd = this.#fd;
      this.#fd = null;
      fs.closeSync(fd);
    }
  }

  #tick(): void {
    try {
      const due = this.#now() - this.#lastFlushMs >= this.#heartbeatMs;
      if (!due && this.#lastBody !== null) {
        const body = bodyOf(encodeStats(this.#registry.snapshot()));
        if (body.equals(this.#lastBody)) return;
      }
      this.flush();
    } catch (err) {
      this.#onError?.(
        err instanceof ImapProxyError ? err : fileError(this.path, 'cannot write', err),
      );
    }
  }

  #openFd(): number {
    if (this.#fd === null) {
      throw new ImapProxyError('IMAPPROXY_ERR_STATS_FILE', `stats file ${this.path} is closed`);
    }
    return this.#fd;
  }
}

function writeGeneration(fd: number, generation: number): void {
  const word = Buffer.alloc(4);
  word.writeUInt32LE(generation >>> 0, 0);
  fs.writeSync(fd, word, 0, 4, EXT_HEADER.generation.offset);
}

/** The image without the words that change on every flush (generation, flushedAtMs). */
function bodyOf(image: Buffer): Buffer {
  const body = Buffer.from(image);
  body.writeUInt32LE(0, EXT_HEADER.generation.offset);
  body.fill(0, EXT_FIELDS.flushedAtMs.offset, EXT_FIELDS.flushedAtMs.offset + 8);
  return body;
}

function fileError(path: string, what: string, err: unknown): ImapProxyError {
  const reason = err instanceof Error ? err.message : String(err);
  return new ImapProxyError('IMAPPROXY_ERR_STATS_FILE', `${what} stats file ${path}: ${reason}`, {
    cause: err,
  });
}
