// Turning any failure into the one line pimpstat prints and its exit status. No stack traces:
// each message names the file concerned and what to do about it.
import { ConfigError, EX_CONFIG, ImapProxyError } from '@imapproxy/shared';
import type { PimpstatSettings } from './settings.js';

/** sysexits.h: bad command line. */
export const EX_USAGE = 64;
/** Stats file missing, unreadable or not ours: 1, the C pimpstat's status for the same. */
export const EX_STATS = 1;
/** sysexits.h: internal error. */
export const EX_SOFTWARE = 70;

export interface Failure {
  message: string;
  exitCode: number;
}

export function describeFailure(err: unknown, settings: PimpstatSettings | undefined, configGiven = false): Failure {
  if (err instanceof ConfigError) {
    // Advice to use -f only to someone who did not (the file given is the problem otherwise).
    const hint =
      err.code === 'IMAPPROXY_ERR_CONFIG_IO'
        ? configGiven ? 'check the path and that this user may read it' : "pass the daemon's config with -f <file>"
        : configGiven ? 'fix that line' : 'fix that line or pass another config with -f <file>';
    return { message: `${err.message}; ${hint}`, exitCode: EX_CONFIG };
  }
  if (err instanceof ImapProxyError) {
    const origin = settings === undefined ? '' : ` [${settings.statFileOrigin}]`;
    switch (err.code) {
      case 'IMAPPROXY_ERR_STATS_FILE':
        return { message: `${err.message}${origin}`, exitCode: EX_STATS };
      case 'IMAPPROXY_ERR_STATS_LAYOUT':
        return {
          message: `${err.message}; check that stat_filename points at imapproxyd's stats file${origin}`,
          exitCode: EX_STATS,
        };
      default:
        return { message: err.message, exitCode: EX_SOFTWARE };
    }
  }
  const message = err instanceof Error ? err.message : String(err);
  return { message: `internal error: ${message}`, exitCode: EX_SOFTWARE };
}
