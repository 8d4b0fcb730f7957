import type { PreauthCommand } from '../command.js';

export const capability: PreauthCommand = {
  name: 'CAPABILITY',
  handle(session, tag) {
    session.send(`${session.ctx.greeting.capabilityLine(session.tlsView)}\r\n${tag} OK Completed\r\n`);
  },
};
