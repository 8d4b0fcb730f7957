// syslog for the daemon in background mode: RFC 3164 datagrams to /dev/log,
// like the original's openlog("in.imapproxyd", LOG_PID, facility).
//
// Node cannot open AF_UNIX datagram sockets. Instead of a native addon (the
// npm package unix-dgram needs node-gyp and a compiler at install time, and
// breaks with Node ABI changes), one util-linux `logger` process is started
// and kept: each message is one `<PRI>text` line on its stdin, and logger
// sends it as one datagram in the same "local" RFC 3164 form glibc's
// syslog(3) uses (`<22>Nov 22 01:28:10 in.imapproxyd[123]: text`). logger is
// in every Debian/Ubuntu/RHEL base system (package bsdutils/util-linux).
//
// With --socket-errors=on logger exits when the socket goes away (syslogd
// restarted); the sink then starts a new one, which connects to the new
// socket — the original's syslog connection made before the chroot could not
// do that (SPEC §9.1). While no logger runs, messages wait in a bounded queue.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Facility } from '@imapproxy/shared';
import type { Level, LogSink } from './logger.js';

export const SYSLOG_IDENT = 'in.imapproxyd';
/** Where syslog listens. IMAPPROXYD_SYSLOG_SOCKET overrides it (tests, containers). */
export const DEFAULT_SYSLOG_SOCKET = '/dev/log';
export const SYSLOG_SOCKET_ENV = 'IMAPPROXYD_SYSLOG_SOCKET';

const FACILITY_CODE: Record<Facility, number> = {
  LOG_USER: 1, LOG_MAIL: 2, LOG_DAEMON: 3, LOG_AUTH: 4, LOG_LPR: 6, LOG_NEWS: 7, LOG_UUCP: 8, LOG_CRON: 9,
  LOG_LOCAL0: 16, LOG_LOCAL1: 17, LOG_LOCAL2: 18, LOG_LOCAL3: 19, LOG_LOCAL4: 20, LOG_LOCAL5: 21, LOG_LOCAL6: 22, LOG_LOCAL7: 23,
};
export const SEVERITY_CODE: Record<Level, number> = { err: 3, warning: 4, notice: 5, info: 6, debug: 7 };

/** Messages kept while logger is (re)starting; older ones are dropped and counted. */
const MAX_QUEUED = 1000;
/** Bytes buffered in logger's stdin before messages are dropped (syslogd stuck). */
const MAX_PIPE_BYTES = 1024 * 1024;
/** Longest message sent (logger's --size); longer ones are cut by logger. */
const MAX_MESSAGE = 8192;

export interface SyslogSinkOptions {
  facility: Facility;
  socketPath?: string;
  /** Run logger as this user/group (the daemon's proc_username when started as root). */
  uid?: number;
  gid?: number;
  /** The `[pid]` after the ident: the daemon's own pid. */
  pid?: number;
  loggerBin?: string;
  /** Where the sink reports its own trouble (logger missing, ...); stderr by default. */
  onProblem?: (message: string) => void;
}

export class SyslogSink implements LogSink {
  private facility: number;
  readonly socketPath: string;
  private child: ChildProcess | null = null;
  private queue: string[] = [];
  private dropped = 0;
  private restartDelayMs = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private lastProblem = '';
  private stderrText = '';

  constructor(private readonly opts: SyslogSinkOptions) {
    this.facility = FACILITY_CODE[opts.facility];
    this.socketPath = opts.socketPath ?? DEFAULT_SYSLOG_SOCKET;
    this.start();
  }

  /** syslog_facility can change on reload. */
  setFacility(facility: Facility): void {
    this.facility = FACILITY_CODE[facility];
  }

  write(level: Level, message: string): void {
    if (this.closed) return;
    // One message per line: logger splits at newlines (server replies quoted in
    // messages may carry CR LF; the original sent them raw, syslogd escaped them).
    const text = message.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
    const line = `<${this.facility * 8 + SEVERITY_CODE[level]}>${text}\n`;
    const child = this.child;
    if (child && child.stdin && child.stdin.writable && this.queue.length === 0) {
      if (child.stdin.writableLength > MAX_PIPE_BYTES) {
        this.dropped++;
        return;
      }
      child.stdin.write(line);
      return;
    }
    if (this.queue.length >= MAX_QUEUED) {
      this.queue.shift();
      this.dropped++;
    }
    this.queue.push(line);
  }

  /** Sends what is queued and waits (at most timeoutMs) for logger to exit. */
  close(timeoutMs = 2000): Promise<void> {
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGTERM');
        resolve();
      }, timeoutMs);
      timer.unref();
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.stdin?.end();
    });
  }

  private start(): void {
    this.restartTimer = null;
    if (this.closed) return;
    const args = [
      '--prio-prefix',
      '--socket', this.socketPath,
      '--socket-errors=on',
      '-t', SYSLOG_IDENT,
      `--id=${this.opts.pid ?? process.pid}`,
      '--size', String(MAX_MESSAGE),
    ];
    let child: ChildProcess;
    try {
      child = spawn(this.opts.loggerBin ?? 'logger', args, {
        stdio: ['pipe', 'ignore', 'pipe'],
        uid: this.opts.uid,
        gid: this.opts.gid,
      });
    } catch (err) {
      this.problem(`cannot start logger for syslog: ${(err as Error).message}`);
      this.scheduleRestart();
      return;
    }
    this.child = child;
    this.stderrText = '';
    const started = Date.now();
    child.stdin!.on('error', () => {});
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      if (this.stderrText.length < 1000) this.stderrText += s;
    });
    child.once('error', (err) => {
      // logger missing or not executable: there may be no 'exit' event.
      if (this.child === child) this.child = null;
      this.problem(`cannot start logger for syslog: ${err.message}`);
      this.restartDelayMs = Math.min(Math.max(this.restartDelayMs * 2, 1000), 30_000);
      this.scheduleRestart();
    });
    child.once('exit', () => {
      if (this.child === child) this.child = null;
      if (this.closed) return;
      const why = this.stderrText.trim().split('\n').pop() || 'logger exited';
      this.problem(`syslog: ${why}; retrying`);
      // A logger that ran for a while is restarted at once (syslogd restarted);
      // one that fails at start is retried with a growing delay.
      this.restartDelayMs = Date.now() - started > 5000 ? 0 : Math.min(Math.max(this.restartDelayMs * 2, 250), 30_000);
      this.scheduleRestart();
    });
    this.flushQueue();
  }

  private scheduleRestart(): void {
    if (this.closed || this.restartTimer) return;
    this.restartTimer = setTimeout(() => this.start(), this.restartDelayMs);
    this.restartTimer.unref();
  }

  private flushQueue(): void {
    const child = this.child;
    if (!child?.stdin?.writable) return;
    if (this.dropped > 0) {
      child.stdin.write(`<${this.facility * 8 + SEVERITY_CODE.warning}>${this.dropped} log messages were dropped (syslog unavailable or too slow)\n`);
      this.dropped = 0;
    }
    for (const line of this.queue) child.stdin.write(line);
    this.queue = [];
  }

  private problem(message: string): void {
    if (message === this.lastProblem) return;
    this.lastProblem = message;
    if (this.opts.onProblem) this.opts.onProblem(message);
    else process.stderr.write(`imapproxyd[${process.pid}]: ${message}\n`);
  }
}
