// Reuse with ENABLE (issue 17): a cached server connection with extensions
// switched on (enabled-origin.ts) serves a later session only when that
// session's first command after login switches on the same ones the same
// way. After that command the session is in exactly the state a fresh login
// would be in; before it, it has sent nothing that could show the difference.
// Webmail clients do the same at every login (Roundcube with its message
// cache: ENABLE QRESYNC; without it: STATUS ... HIGHESTMODSEQ), so they keep
// their reuse; a session that asks for nothing never gets such a connection.

import type { ClientCommandReading } from '@imapproxy/shared';
import type { BackendConnection } from '../backend/backend-connection.js';
import { requestedKey } from '../backend/enabled-origin.js';

/**
 * Whether the session's first decisive command (`reading`, its line as
 * readClientCommand read it) fits `conn`: null when it does not; else what
 * the proxy answers in the server's place (the recorded answer to the same
 * ENABLE), or null `answer` when the line goes to the server as it is.
 */
export function firstCommandFits(conn: BackendConnection, reading: ClientCommandReading): { answer: Buffer | null } | null {
  const how = conn.enabledBy;
  if (how === null || how.kind === 'mixed') return null;
  const { tag, understanding } = reading;
  if (tag === null || !understanding.understood) return null;
  const use = understanding.use;
  if (how.kind === 'enable') {
    if (use.name !== 'ENABLE' || requestedKey(use.enables) !== how.requested) return null;
    return { answer: Buffer.concat([how.untagged, Buffer.from(`${tag} ${how.ok}\r\n`, 'latin1')]) };
  }
  // implicit: CONDSTORE only, switched on by this command as it would be on a fresh connection
  if (use.name === 'ENABLE' || use.irreversible !== null) return null;
  const wanted = new Set(use.enables);
  if (wanted.has('QRESYNC')) return null;
  return wanted.size === 1 && wanted.has('CONDSTORE') ? { answer: null } : null;
}
