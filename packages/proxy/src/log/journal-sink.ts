// Foreground mode under systemd: stderr is a journal stream. Each line starts
// with `<N>` (the sd-daemon(3) priority prefix), so the journal records the
// message's priority instead of giving every line LOG_INFO; the identifier and
// facility come from the unit (SyslogIdentifier=, SyslogFacility=).

import fs from 'node:fs';
import type { Level, LogSink } from './logger.js';
import { SEVERITY_CODE } from './syslog-sink.js';

export class JournalSink implements LogSink {
  write(level: Level, message: string): void {
    process.stderr.write(`<${SEVERITY_CODE[level]}>${message.replace(/\r?\n/g, ' ')}\n`);
  }
}

/** True when systemd connected stderr to the journal (JOURNAL_STREAM names its device:inode). */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const stream = env.JOURNAL_STREAM;
  if (!stream) return false;
  try {
    const st = fs.fstatSync(2);
    return stream === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}
