import type { PreauthCommand } from '../command.js';

export const logout: PreauthCommand = {
  name: 'LOGOUT',
  handle(session, tag) {
    session.end(`* BYE LOGOUT received\r\n${tag} OK Completed\r\n`);
  },
};
