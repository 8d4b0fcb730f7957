// Reuse by proof: a server connection goes back to the pool only when the
// proxy understood the whole session on it. The first line of defence is the
// client's side (every command in the command-traits table, its arguments
// parsed); the second is the server's: every tagged reply and continuation
// must answer something the proxy tracked, and nothing the server says may
// show session state the proxy did not see being set. Whatever breaks either
// "taints" the connection: the session goes on, the connection is logged out
// at its end instead of cached, and the log and a counter say why.

import type { BackendConnection } from '../backend/backend-connection.js';

/** The kinds of not understanding, a bounded set (a metrics label). */
export const TAINT_KINDS = [
  'unknown_command',
  'unparsed_arguments',
  'refused_literal',
  'untracked_tag',
  'unexpected_continuation',
  'unexpected_response',
] as const;
export type TaintKind = (typeof TAINT_KINDS)[number];

export interface ReuseProofHooks {
  /** Once per connection, the first time it is tainted. */
  tainted?(kind: TaintKind, reason: string): void;
}

export class ReuseProof {
  constructor(
    private readonly conn: BackendConnection,
    private readonly hooks: ReuseProofHooks,
  ) {}

  /** The connection may not be cached after this session. */
  taint(kind: TaintKind, reason: string): void {
    if (this.conn.notReusable !== null) return;
    this.conn.notReusable = `not understood: ${reason}`;
    this.hooks.tainted?.(kind, reason);
  }
}

/** `* ENABLED`, `* ESEARCH`, `* OK [HIGHESTMODSEQ`, `* n FETCH (... MODSEQ (`: what an untagged line may reveal. */
export type UntaggedSign = 'enabled' | 'search-update' | 'highestmodseq' | 'fetch-modseq' | null;

const MODSEQ_ITEM = Buffer.from('MODSEQ (', 'latin1');
const FETCH_WORD = Buffer.from(' FETCH (', 'latin1');

/**
 * Looks at the first bytes of an untagged server response for the signs of
 * session state switched on (`head` starts with `* `). Cheap on the common
 * lines: one byte decides most of them.
 */
export function untaggedSign(head: Buffer): UntaggedSign {
  const c = head[2];
  if (c === undefined) return null;
  if (c >= 0x30 && c <= 0x39) {
    const fetch = head.indexOf(FETCH_WORD);
    if (fetch > 0 && head.indexOf(MODSEQ_ITEM, fetch) > 0) return 'fetch-modseq';
    return null;
  }
  if (c === 0x45 || c === 0x65 || c === 0x4f || c === 0x6f) {
    const text = head.toString('latin1', 2, Math.min(head.length, 200));
    if (/^ENABLED\b/i.test(text)) return 'enabled';
    if (/^ESEARCH\b/i.test(text) && /\b(?:ADDTO|REMOVEFROM)\b/i.test(text)) return 'search-update';
    if (/^OK \[HIGHESTMODSEQ\b/i.test(text)) return 'highestmodseq';
  }
  return null;
}
