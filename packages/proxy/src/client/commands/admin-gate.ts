// The XPROXY_* commands exist only with `enable_admin_commands yes`; otherwise
// each answers exactly what the original answers to it (SPEC §6). The option
// is read at every command, so a reload switches them on or off at once.

import type { PreauthSession } from '../command.js';

/** True when admin commands are on; otherwise answers `BAD Unrecognized command`. */
export function adminCommandsEnabled(session: PreauthSession, tag: string): boolean {
  if (session.ctx.config.enable_admin_commands) return true;
  session.send(`${tag} BAD Unrecognized command\r\n`);
  return false;
}

/** A pool key (the login name's bytes as latin1) as people read it. */
export function displayUser(userKey: string): string {
  return Buffer.from(userKey, 'latin1').toString('utf8');
}
