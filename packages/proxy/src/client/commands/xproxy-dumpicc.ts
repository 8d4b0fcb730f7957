import type { PreauthCommand } from '../command.js';
import { printable } from '../../log/printable.js';
import { adminCommandsEnabled, displayUser } from './admin-gate.js';

// One line per server connection, in use first, then cached. The number is
// the `sd [N]` of the log lines (the original printed the socket descriptor).
// The original wrote these lines while holding its global lock, stalling every
// login behind a slow admin client; here the list is copied first.
export const xproxyDumpicc: PreauthCommand = {
  name: 'XPROXY_DUMPICC',
  admin: true,
  handle(session, tag) {
    if (!adminCommandsEnabled(session, tag)) return;
    const lines = session.ctx.pool
      .entries()
      .map((e) => `* XPROXY_DUMPICC ${e.id} ${printable(displayUser(e.user))} ${e.state === 'active' ? 'Active' : 'Cached'}\r\n`);
    session.send(`${lines.join('')}${tag} OK Completed\r\n`);
  },
};
