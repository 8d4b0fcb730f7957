import type { PreauthCommand } from '../command.js';

export const noop: PreauthCommand = {
  name: 'NOOP',
  handle(session, tag) {
    session.send(`${tag} OK Completed\r\n`);
  },
};
