// The protocol trace (SPEC §7): both directions of the sessions of chosen
// users, in the original's record format, to protocol_log_filename.
//
// What is kept: the file is opened once at start (truncated, mode 0600, owned
// by proc_username) before privileges are dropped; a session is traced when
// its user is on the list at login time, and keeps being traced until it ends
// even if tracing is switched off meanwhile; the records and markers look the
// same. What changed: several users can be traced at once (imapproxyctl trace);
// credentials typed inside a traced session are masked (./credential-mask.ts);
// writes go through one queue with the file opened O_APPEND, so `newlog`
// (ftruncate) between two writes can neither leave a hole of zeros nor cut a
// record in half (the original wrote from many threads without a lock).

import fs from 'node:fs';
import type { Socket } from 'node:net';
import { ImapProxyError } from '@imapproxy/shared';
import type { Logger } from '../log/logger.js';
import { printable } from '../log/printable.js';
import { TraceMasker } from './credential-mask.js';
import { userMatchKey } from './user-match.js';

/** What the relay calls for every chunk of a traced session (RelayHooks.trace). */
export interface TraceRecorder {
  client(data: Buffer): void;
  server(data: Buffer): void;
}

/** Queued bytes above which records are dropped rather than buffered (a stuck disk must not eat the memory). */
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;

type QueueItem = { kind: 'data'; data: Buffer } | { kind: 'truncate'; done: (err: Error | null) => void };

export class ProtocolTrace {
  private readonly users = new Set<string>();
  private queue: QueueItem[] = [];
  private queuedBytes = 0;
  private droppedBytes = 0;
  private writing = false;
  private reportedError = false;
  private closing: (() => void) | null = null;

  private constructor(
    readonly path: string | null,
    private fd: number | null,
    private readonly log: Logger,
  ) {}

  /** Opens (creates, truncates) the trace file; on failure tracing is unavailable and the error is logged. */
  static open(path: string, log: Logger): ProtocolTrace {
    try {
      const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_APPEND, 0o600);
      // open()'s mode applies to a new file only.
      fs.fchmodSync(fd, 0o600);
      return new ProtocolTrace(path, fd, log);
    } catch (err) {
      log.err(`cannot open protocol log file ${path}: ${(err as Error).message}; protocol tracing is unavailable`);
      return new ProtocolTrace(path, null, log);
    }
  }

  /** No file: tracing can be switched on and off but nothing is written (tests, embedding). */
  static disabled(log: Logger): ProtocolTrace {
    return new ProtocolTrace(null, null, log);
  }

  get available(): boolean {
    return this.fd !== null;
  }

  /** The original chown()s the file to proc_username. */
  chown(uid: number, gid: number): void {
    if (this.fd !== null) fs.fchownSync(this.fd, uid, gid);
  }

  /** Users traced at their next login, in the order they were added. */
  tracedUsers(): string[] {
    return [...this.users];
  }

  /** The entry of the list that names `user` (user-match.ts), if any. */
  private tracedEntry(user: string, exact: boolean): string | undefined {
    if (this.users.has(user)) return user;
    if (exact) return undefined;
    const key = userMatchKey(user, false);
    for (const u of this.users) if (userMatchKey(u, false) === key) return u;
    return undefined;
  }

  /** Adds users; returns those that were not traced yet (each gets the "enabled" marker). */
  enable(users: readonly string[]): string[] {
    const added: string[] = [];
    for (const user of users) {
      if (this.users.has(user)) continue;
      this.users.add(user);
      added.push(user);
      this.marker(user, 'user tracing enabled.');
    }
    return added;
  }

  /**
   * Removes one user, or all. Returns the users removed. Like the original,
   * switching off all tracing when nobody is traced still writes the marker
   * (with an empty user name).
   */
  disable(user?: string, exact = true): string[] {
    const key = user === undefined ? '' : userMatchKey(user, exact);
    const removed = user === undefined ? [...this.users] : [...this.users].filter((u) => userMatchKey(u, exact) === key);
    for (const u of removed) {
      this.users.delete(u);
      this.marker(u, 'user tracing disabled. Expect further output until client logout.');
    }
    if (user === undefined && removed.length === 0) this.marker('', 'user tracing disabled. Expect further output until client logout.');
    return removed;
  }

  /**
   * A session starts relaying: its recorder when `userKey` (the login name's
   * bytes as latin1, as the pool keys it) is traced, else undefined. Names
   * match ignoring case unless `exact` (user_match_exact).
   */
  begin(userKey: string, client: Socket, serverId: number, exact = false): TraceRecorder | undefined {
    if (this.users.size === 0) return undefined;
    const user = Buffer.from(userKey, 'latin1').toString('utf8');
    const entry = this.tracedEntry(user, exact);
    if (entry === undefined) return undefined;
    const clientSd = socketFd(client);
    const masker = new TraceMasker();
    const name = () => (this.users.has(entry) ? user : 'Null username');
    return {
      client: (data) => {
        const shown = masker.client(data);
        if (shown.length > 0) this.record(name(), 'CLIENT', clientSd, shown);
      },
      server: (data) => {
        // the server may repeat what was masked on the client's side
        const shown = masker.server(data);
        if (shown.length > 0) this.record(name(), 'SERVER', serverId, shown);
      },
    };
  }

  /** XPROXY_NEWLOG / imapproxyctl newlog: empties the file once every record queued before it is written. */
  truncate(): Promise<void> {
    if (this.fd === null) return Promise.reject(unavailable(this.path));
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: 'truncate', done: (err) => (err ? reject(new ImapProxyError('IMAPPROXY_ERR_TRACE_FILE', `cannot truncate ${this.path}: ${err.message}`)) : resolve()) });
      this.pump();
    });
  }

  /** Writes what is queued, then closes the file. */
  close(): Promise<void> {
    if (this.fd === null) return Promise.resolve();
    return new Promise((resolve) => {
      this.closing = resolve;
      this.pump();
    });
  }

  private marker(user: string, text: string): void {
    this.enqueue(Buffer.from(`\n\n-----> C= ${unixTime()} ${printable(user)} PROXY: ${text}\n`, 'utf8'));
  }

  private record(user: string, side: 'CLIENT' | 'SERVER', sd: number, data: Buffer): void {
    const header = Buffer.from(`\n\n-----> C= ${unixTime()} ${printable(user)} ${side}: sd [${sd}]\n`, 'utf8');
    this.enqueue(Buffer.concat([header, data]));
  }

  private enqueue(data: Buffer): void {
    if (this.fd === null) return;
    if (this.queuedBytes + data.length > MAX_QUEUED_BYTES) {
      this.droppedBytes += data.length;
      return;
    }
    if (this.droppedBytes > 0) {
      const note = Buffer.from(`\n\n-----> C= ${unixTime()}  PROXY: ${this.droppedBytes} bytes of trace dropped: the file cannot be written fast enough.\n`);
      this.droppedBytes = 0;
      this.queue.push({ kind: 'data', data: note });
      this.queuedBytes += note.length;
    }
    this.queue.push({ kind: 'data', data });
    this.queuedBytes += data.length;
    this.pump();
  }

  private pump(): void {
    if (this.writing || this.fd === null) return;
    const fd = this.fd;
    const item = this.queue.shift();
    if (!item) {
      if (this.closing) {
        const resolve = this.closing;
        this.closing = null;
        this.fd = null;
        fs.close(fd, () => resolve());
      }
      return;
    }
    this.writing = true;
    if (item.kind === 'truncate') {
      fs.ftruncate(fd, 0, (err) => {
        this.writing = false;
        item.done(err);
        this.pump();
      });
      return;
    }
    // Several small records are written together.
    let data = item.data;
    if (this.queue.length > 0 && this.queue[0]!.kind === 'data') {
      const parts = [data];
      while (this.queue.length > 0 && this.queue[0]!.kind === 'data' && parts.length < 256) {
        parts.push((this.queue.shift() as { data: Buffer }).data);
      }
      data = Buffer.concat(parts);
    }
    this.writeAll(fd, data, () => {
      this.queuedBytes -= data.length;
      this.writing = false;
      this.pump();
    });
  }

  private writeAll(fd: number, data: Buffer, done: () => void): void {
    fs.write(fd, data, 0, data.length, null, (err, written) => {
      if (err) {
        if (!this.reportedError) {
          this.reportedError = true;
          this.log.err(`cannot write protocol log file ${this.path}: ${err.message}`);
        }
        return done();
      }
      if (written < data.length) return this.writeAll(fd, data.subarray(written), done);
      done();
    });
  }
}

function unixTime(): number {
  return Math.floor(Date.now() / 1000);
}

function unavailable(path: string | null): ImapProxyError {
  return new ImapProxyError('IMAPPROXY_ERR_TRACE_FILE', path === null ? 'no protocol log file' : `protocol log file ${path} could not be opened at start`);
}

/**
 * The client socket's descriptor, which is what the original printed as the
 * client `sd`; -1 when Node does not expose it. (Server records show the
 * connection number the log lines and `dump` use.)
 */
function socketFd(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}
