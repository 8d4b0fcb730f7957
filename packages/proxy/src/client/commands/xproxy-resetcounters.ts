import type { PreauthCommand } from '../command.js';
import { adminCommandsEnabled } from './admin-gate.js';

// Exactly the fields the original resets (StatsRegistry.resetCounters, SPEC §6).
export const xproxyResetcounters: PreauthCommand = {
  name: 'XPROXY_RESETCOUNTERS',
  admin: true,
  handle(session, tag) {
    if (!adminCommandsEnabled(session, tag)) return;
    session.ctx.stats.resetCounters();
    session.ctx.log.info(`XPROXY_RESETCOUNTERS from ${session.address}: counters reset`);
    session.send(`${tag} OK Counters reset\r\n`);
  },
};
