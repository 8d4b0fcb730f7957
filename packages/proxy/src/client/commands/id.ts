// ID before login (RFC 2971): answered like the original (`OK Completed`, no
// untagged ID), kept, and replayed in order on every new server connection.
// Unlike the original (SPEC §11 B1) the arguments are checked here, so a bare
// `ID` gets BAD at once instead of breaking the later login.

import { quote, type Arg } from '@imapproxy/shared';
import type { PreauthCommand } from '../command.js';

const MAX_IDS = 8;

export const id: PreauthCommand = {
  name: 'ID',
  handle(session, tag, args) {
    const encoded = encodeIdArgs(args);
    if (encoded === null) {
      session.send(`${tag} BAD Invalid ID arguments\r\n`);
      return;
    }
    if (session.ids.length < MAX_IDS) session.ids.push(encoded);
    session.send(`${tag} OK Completed\r\n`);
  },
};

/** `NIL` or a list of field/value pairs, re-encoded as quoted strings. */
function encodeIdArgs(args: Arg[]): string | null {
  if (args.length !== 1) return null;
  const arg = args[0]!;
  if (arg.kind === 'nil') return 'NIL';
  if (arg.kind !== 'list' || arg.items.length % 2 !== 0 || arg.items.length > 60) return null;
  const parts: string[] = [];
  for (const item of arg.items) {
    if (item.kind === 'nil') parts.push('NIL');
    else if (item.kind === 'string') parts.push(quote(item.value.toString('utf8')));
    else if (item.kind === 'atom') parts.push(quote(item.value));
    else return null;
  }
  return `(${parts.join(' ')})`;
}
