import { argBytes } from '@imapproxy/shared';
import type { PreauthCommand } from '../command.js';
import { printable } from '../../log/printable.js';
import { adminCommandsEnabled } from './admin-gate.js';

// `XPROXY_TRACE user` traces that user's sessions from their next login;
// `XPROXY_TRACE` alone switches tracing off. Like the original, only one user
// at a time this way (imapproxyctl trace takes several), extra arguments are
// ignored, and the user name is compared with the login name after decoding,
// so `"bob"` and `bob` are the same user (the original compared them as sent).
export const xproxyTrace: PreauthCommand = {
  name: 'XPROXY_TRACE',
  admin: true,
  handle(session, tag, args) {
    if (!adminCommandsEnabled(session, tag)) return;
    const { trace, log } = session.ctx;
    const bytes = args.length > 0 ? argBytes(args[0]) : null;
    if (bytes === null) {
      trace.disable();
      log.info(`XPROXY_TRACE from ${session.address}: tracing disabled`);
      session.send(`${tag} OK Tracing disabled\r\n`);
      return;
    }
    const user = bytes.toString('utf8');
    const current = trace.tracedUsers();
    if (current.length > 0) {
      session.send(`${tag} BAD Tracing already enabled for user ${printable(current[0]!)}\r\n`);
      return;
    }
    trace.enable([user]);
    log.info(`XPROXY_TRACE from ${session.address}: tracing enabled for user '${user}'`);
    session.send(`${tag} OK Tracing enabled for user ${printable(user)}.\r\n`);
  },
};
