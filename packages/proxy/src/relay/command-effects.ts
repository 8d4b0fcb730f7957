// What a client command does to the session state that a cached connection
// would carry to the next user (SPEC §4.11 last paragraph, §11 B4).

export interface CommandEffects {
  /** May leave a mailbox selected (SELECT, EXAMINE). */
  selects: boolean;
  /** Leaves no mailbox selected once it succeeds (CLOSE, UNSELECT). */
  unselects: boolean;
  /** Extensions switched on for the rest of the session (ENABLE, or CONDSTORE implicitly, RFC 7162 §3.1). */
  enables: string[];
  /** Why the connection can no longer be given to another session, or null. */
  notReusable: string | null;
}

/**
 * Commands whose effect on the session the proxy cannot undo: another
 * identity (LOGIN, AUTHENTICATE, UNAUTHENTICATE), a TLS or notification layer.
 */
const IRREVERSIBLE = new Set(['LOGIN', 'AUTHENTICATE', 'UNAUTHENTICATE', 'STARTTLS', 'NOTIFY']);

const IMPLICIT_CONDSTORE = /\b(CONDSTORE|MODSEQ|CHANGEDSINCE|UNCHANGEDSINCE)\b/i;
const IMPLICIT_QRESYNC = /\bQRESYNC\b/i;

export function commandEffects(name: string, head: string): CommandEffects {
  const effects: CommandEffects = { selects: false, unselects: false, enables: [], notReusable: null };
  switch (name) {
    case 'SELECT':
    case 'EXAMINE':
      effects.selects = true;
      break;
    case 'CLOSE':
    case 'UNSELECT':
      effects.unselects = true;
      break;
    case 'ENABLE':
      effects.enables = head.split(/\s+/).slice(2).map((t) => t.toUpperCase()).filter(Boolean);
      break;
    default:
      if (IRREVERSIBLE.has(name)) effects.notReusable = `${name} inside the session`;
  }
  if (name !== 'ENABLE') {
    if (IMPLICIT_CONDSTORE.test(head)) effects.enables.push('CONDSTORE');
    if (IMPLICIT_QRESYNC.test(head)) effects.enables.push('QRESYNC');
  }
  return effects;
}
