import { argBytes } from '@imapproxy/shared';
import type { PreauthCommand } from '../command.js';

export const login: PreauthCommand = {
  name: 'LOGIN',
  async handle(session, tag, args) {
    if (session.refusesPlaintextAuth(tag)) return;
    const user = argBytes(args[0]);
    const password = argBytes(args[1]);
    if (user === null || password === null || user.length === 0 || args.length !== 2) {
      session.send(`${tag} BAD Missing required argument to Login\r\n`);
      return;
    }
    await session.login(tag, { user, password }, 'LOGIN');
  },
};
