// The pre-login command table, built from one file per command.

import type { PreauthCommand } from '../command.js';
import { authenticate } from './authenticate.js';
import { capability } from './capability.js';
import { id } from './id.js';
import { login } from './login.js';
import { logout } from './logout.js';
import { noop } from './noop.js';

export const PREAUTH_COMMANDS: ReadonlyMap<string, PreauthCommand> = new Map(
  [capability, noop, logout, id, login, authenticate].map((c) => [c.name, c]),
);
