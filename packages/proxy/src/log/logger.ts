// The daemon's log. Messages keep the original's wording (SPEC §4.9, §4.12,
// Appendix A) so existing log watchers keep matching; the sink decides where
// they go (stderr in foreground mode, ./journal-sink.ts under systemd's journal,
// ./syslog-sink.ts in background mode). Every message is made printable here,
// once for every sink: messages quote login names and server replies, and a
// CR LF or ESC in them forged log lines or reached terminals (./printable.ts).

import { printable } from './printable.js';

export type Level = 'err' | 'warning' | 'notice' | 'info' | 'debug';

const RANK: Record<Level, number> = { err: 3, warning: 4, notice: 5, info: 6, debug: 7 };

export interface LogSink {
  write(level: Level, message: string): void;
}

export class Logger {
  constructor(
    private sink: LogSink,
    /** Highest syslog priority number written (LOG_UPTO semantics). */
    private maxRank = 7,
  ) {}

  /** syslog_prioritymask can change on reload. */
  setMaxRank(maxRank: number): void {
    this.maxRank = maxRank;
  }

  private log(level: Level, message: string): void {
    if (RANK[level] <= this.maxRank) this.sink.write(level, printable(message));
  }

  err(message: string): void {
    this.log('err', message);
  }
  warning(message: string): void {
    this.log('warning', message);
  }
  notice(message: string): void {
    this.log('notice', message);
  }
  info(message: string): void {
    this.log('info', message);
  }
  debug(message: string): void {
    this.log('debug', message);
  }
}

/** Lines on stderr, for foreground mode under systemd/journald and for tests. */
export class StderrSink implements LogSink {
  write(level: Level, message: string): void {
    process.stderr.write(`imapproxyd[${process.pid}]: ${level}: ${message}\n`);
  }
}

/** Keeps messages in memory: `imapproxyd -t` loads the TLS files with a logger whose lines it prints itself. */
export class MemorySink implements LogSink {
  readonly lines: string[] = [];
  write(level: Level, message: string): void {
    this.lines.push(`${level}: ${message}`);
  }
}
