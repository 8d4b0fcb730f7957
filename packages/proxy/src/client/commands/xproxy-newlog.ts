import type { PreauthCommand } from '../command.js';
import { adminCommandsEnabled } from './admin-gate.js';

export const xproxyNewlog: PreauthCommand = {
  name: 'XPROXY_NEWLOG',
  admin: true,
  async handle(session, tag) {
    if (!adminCommandsEnabled(session, tag)) return;
    try {
      await session.ctx.trace.truncate();
    } catch (err) {
      session.ctx.log.err(`XPROXY_NEWLOG from ${session.address}: ${(err as Error).message}`);
      session.send(`${tag} NO internal server error\r\n`);
      return;
    }
    session.ctx.log.info(`XPROXY_NEWLOG from ${session.address}: protocol log cleared`);
    session.send(`${tag} OK Logfile cleared\r\n`);
  },
};
