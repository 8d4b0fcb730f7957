// The pre-login command table, built from one file per command.

import type { PreauthCommand } from '../command.js';
import { authenticate } from './authenticate.js';
import { capability } from './capability.js';
import { id } from './id.js';
import { login } from './login.js';
import { logout } from './logout.js';
import { noop } from './noop.js';
import { starttls } from './starttls.js';
import { xproxyDumpicc } from './xproxy-dumpicc.js';
import { xproxyNewlog } from './xproxy-newlog.js';
import { xproxyResetcounters } from './xproxy-resetcounters.js';
import { xproxyTrace } from './xproxy-trace.js';
import { xproxyVersion } from './xproxy-version.js';

export const PREAUTH_COMMANDS: ReadonlyMap<string, PreauthCommand> = new Map(
  [
    capability, noop, logout, id, login, authenticate, starttls,
    // admin commands (SPEC §6): each answers `BAD Unrecognized command` unless enable_admin_commands
    xproxyVersion, xproxyDumpicc, xproxyTrace, xproxyNewlog, xproxyResetcounters,
  ].map((c) => [c.name, c]),
);
