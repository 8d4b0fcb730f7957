// Exit statuses of imapproxyd (sysexits.h values, as mail software uses them),
// so a supervisor, a package script or `imapproxyd -t && systemctl reload ...`
// can tell a broken configuration from a busy port without parsing messages.
// The README's "Exit status" table and imapproxyd(8) list the same values.

import { ConfigError, EX_CONFIG, ImapProxyError } from '@imapproxy/shared';
import { ControlSocketInUseError } from './admin/control-server.js';

/** Started, or `-t` found nothing that stops a start. */
export const EX_OK = 0;
/** Anything not listed below: a bug, or a failure nobody foresaw. */
export const EX_FAILURE = 1;
/** Bad command line. */
export const EX_USAGE = 64;
/** A resource another process holds: the listen port, the metrics port, the control socket. */
export const EX_UNAVAILABLE = 69;
/** The pid file could not be written. */
export const EX_CANTCREAT = 73;
/** The operating system refused: a port below 1024 without root, a file the daemon may not open. */
export const EX_NOPERM = 77;
/** The configuration cannot work: syntax, values, unknown user or group, TLS files that are missing or do not load. */
export { EX_CONFIG };

/** The exit status for an error that stops the start. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof ConfigError) return EX_CONFIG;
  if (err instanceof ControlSocketInUseError) return EX_UNAVAILABLE;
  if (err instanceof ImapProxyError) {
    if (err.code === 'IMAPPROXY_ERR_TLS_FILE' || err.code === 'IMAPPROXY_ERR_CONFIG') return EX_CONFIG;
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE') return EX_UNAVAILABLE;
  if (code === 'EACCES' || code === 'EPERM') return EX_NOPERM;
  if (code === 'EADDRNOTAVAIL') return EX_CONFIG;
  return EX_FAILURE;
}
