// The shape of one pre-login command (one file each under commands/, the
// wildduck habit): a name and a handler that answers through the session.

import type { Arg } from '@imapproxy/shared';
import type { ClientSession } from './session.js';

export interface PreauthCommand {
  readonly name: string;
  handle(session: ClientSession, tag: string, args: Arg[]): Promise<void> | void;
}
