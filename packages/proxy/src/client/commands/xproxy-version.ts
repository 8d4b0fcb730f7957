import { COMPAT_VERSION } from '../../version.js';
import type { PreauthCommand } from '../command.js';
import { adminCommandsEnabled } from './admin-gate.js';

// The original's string, `[SVN]` included, so scripts that parse it keep
// working; `imapproxyctl version` tells the real version.
export const xproxyVersion: PreauthCommand = {
  name: 'XPROXY_VERSION',
  admin: true,
  handle(session, tag) {
    if (!adminCommandsEnabled(session, tag)) return;
    session.send(`* XPROXY_VERSION ${COMPAT_VERSION} [SVN]\r\n${tag} OK Completed\r\n`);
  },
};
