// The shape of one pre-login command (one file each under commands/, the
// wildduck habit): a name and a handler that answers through the session.

import type { Arg } from '@imapproxy/shared';
import type { ClientSession } from './session.js';

export interface PreauthCommand {
  readonly name: string;
  /** An XPROXY_* admin command (SPEC §6): a literal on its line drops the client. */
  readonly admin?: true;
  handle(session: ClientSession, tag: string, args: Arg[]): Promise<void> | void;
}
