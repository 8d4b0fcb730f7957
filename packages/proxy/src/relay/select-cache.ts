// The select cache (`enable_select_cache`, SPEC §5, fixing B3): per server
// connection, the last SELECT reply for the mailbox that is still selected on
// the server. The relay answers a repeated SELECT of that mailbox from here
// after a NOOP showed the server has nothing new to say about it.
//
// What this module decides, and why:
// - which replies may be stored: OK only (never NO/BAD), whole or not at all
//   (at most SELECT_CACHE_MAX_BYTES: the original lost lines and sent SELECT
//   twice above 8 KB), and only one that says `* 0 RECENT`. \Recent belongs to
//   the server session that first saw a message; the first SELECT of a
//   connection claims them, and selecting again shows `* 0 RECENT`. A reply
//   with RECENT n > 0 replayed later would announce messages as recent a second
//   time; a reply with `* 0 RECENT` is exactly what the server would say again
//   as long as nothing arrived, which the NOOP and the response watch check;
// - which client commands may change what a SELECT reply shows (and so drop
//   the entry): everything but a list of read-only commands. When unsure, drop.
// The relay keeps the entry in step with the server's responses (mailbox-watch.ts).

import type { CommandUse } from '@imapproxy/shared';
import type { BackendConnection } from '../backend/backend-connection.js';

/** Largest SELECT reply kept (untagged part). Larger replies are relayed whole and not cached. */
export const SELECT_CACHE_MAX_BYTES = 64 * 1024;

export interface CachedSelect {
  /** The mailbox name as decoded from the client's SELECT. */
  mailbox: Buffer;
  /** The untagged responses as the server sent them, CRLFs included, `* OK [CLOSED]` left out. */
  body: Buffer;
  /** The tagged status after the tag: `OK [READ-WRITE] Select completed.` */
  status: string;
  /** `[UNSEEN n]` of the reply: the first message without \Seen; null when the server sent none. */
  firstUnseen: number | null;
  /**
   * The reply can show per-message flags ([UNSEEN n], or none because every
   * message is seen). False for a server that sends neither UNSEEN nor
   * UIDNEXT (Courier): its reply never depends on flags, so FETCH FLAGS
   * cannot make it stale (issue 18: they made every page view a miss).
   */
  unseenReported: boolean;
}

/** The select cache state of one server connection. It outlives the sessions that use the connection. */
export interface SelectCacheSlot {
  /** Valid for the mailbox the server has selected, or null. */
  entry: CachedSelect | null;
  /**
   * The server's `* OK [CLOSED] ...` line (CRLF included), once it sent one on
   * this connection: a cached reply to a session that already has a mailbox
   * selected starts with it, as the server's own reply would.
   */
  closedLine: Buffer | null;
  /**
   * The text of the server's tagged OK to a STATUS of a mailbox that was not
   * selected (`OK Status completed.`), once one was seen on this connection.
   * Dovecot answers a STATUS of the selected mailbox `OK [CLIENTBUG] Status on
   * selected mailbox completed.`: when the proxy runs a session's STATUS on the
   * mailbox an earlier session left selected, the session gets this text, as
   * a fresh login would, and without it the proxy unselects first.
   */
  statusOk: string | null;
}

// A WeakMap rather than a field: the slot belongs to the relay's view of the
// connection, and goes away with it.
const slots = new WeakMap<BackendConnection, SelectCacheSlot>();

export function selectCacheSlot(conn: BackendConnection): SelectCacheSlot {
  let slot = slots.get(conn);
  if (!slot) slots.set(conn, (slot = { entry: null, closedLine: null, statusOk: null }));
  return slot;
}

// --- mailbox names -----------------------------------------------------------

/**
 * Decodes an atom or a quoted string at `text[i]` (RFC 3501 astring, without
 * literals): the name's bytes and the index after it, or null.
 */
export function readAstring(text: string, i: number): { value: Buffer; end: number } | null {
  if (text[i] === '"') {
    let out = '';
    for (let j = i + 1; j < text.length; j++) {
      const c = text[j]!;
      if (c === '"') return { value: Buffer.from(out, 'latin1'), end: j + 1 };
      if (c === '\\') {
        const e = text[++j];
        if (e !== '"' && e !== '\\') return null;
        out += e;
      } else if (c === '\r' || c === '\n') {
        return null;
      } else {
        out += c;
      }
    }
    return null;
  }
  let j = i;
  // ASTRING-CHAR: any CHAR except atom-specials, plus `]`.
  while (j < text.length && !/[\x00-\x20(){%*"\\\x7f-\xff]/.test(text[j]!)) j++;
  if (j === i) return null;
  return { value: Buffer.from(text.slice(i, j), 'latin1'), end: j };
}

/** The same mailbox, as IMAP compares names: INBOX in any case, every other name exactly. */
export function sameMailbox(a: Buffer, b: Buffer): boolean {
  if (a.equals(b)) return true;
  return a.length === 5 && b.length === 5 && a.toString('latin1').toUpperCase() === 'INBOX' && b.toString('latin1').toUpperCase() === 'INBOX';
}

/**
 * `tag SELECT mailbox` with nothing after the name (no CONDSTORE/QRESYNC
 * parameters, whose replies differ) and no literal: the mailbox, else null.
 */
export function cacheableSelect(head: string): Buffer | null {
  const m = /^\S+ SELECT /i.exec(head);
  if (!m) return null;
  const name = readAstring(head, m[0].length);
  if (!name || name.end !== head.length) return null;
  return name.value;
}

// --- what a client command does to the cached reply --------------------------

/**
 * Whether the cached reply for `cached` is still right after a client command
 * reaches the server. `use` is what the command-traits table says of it (as
 * far as its first line goes, for a command that goes on after a literal);
 * null when it is not understood. Changes other sessions make arrive as
 * untagged responses; the relay watches those separately.
 */
export function keepsSelectCache(use: CommandUse | null, cached: Buffer): boolean {
  if (use === null) return false;
  if (use.enables.length > 0 || use.selectionState !== null || use.irreversible !== null) return false;
  if (use.touches === 'nothing') return true;
  if (use.touches === 'selected') return false;
  // APPEND and COPY into another mailbox leave this one alone.
  return !sameMailbox(use.touches.mailbox, cached);
}

// --- storing a reply -----------------------------------------------------------

/**
 * `* OK [CODE ...]` codes that belong in a SELECT reply (RFC 3501 §6.3.1, RFC
 * 7162, RFC 8474). MYRIGHTS (RFC 4314 §3.8): Courier sends the user's rights
 * in every SELECT reply; without it here the cache never hit behind Courier
 * (issue 18). Rights change only by SETACL/DELETEACL, which end the entry
 * like every command not known to be harmless.
 */
const SELECT_CODES = new Set(['PERMANENTFLAGS', 'UNSEEN', 'UIDVALIDITY', 'UIDNEXT', 'HIGHESTMODSEQ', 'NOMODSEQ', 'MAILBOXID', 'URLMECH', 'ANNOTATIONS', 'MYRIGHTS']);

/**
 * Builds an entry from the untagged bytes of a SELECT reply (complete CRLF
 * lines, no literals) and its tagged status; a reason string when the reply
 * may not be cached.
 */
export function buildEntry(mailbox: Buffer, untagged: Buffer, status: string): { entry: CachedSelect; closedLine: Buffer | null } | string {
  if (!/^OK\b/i.test(status)) return 'not OK';
  if (untagged.length > SELECT_CACHE_MAX_BYTES) return 'too large';
  const kept: Buffer[] = [];
  let closedLine: Buffer | null = null;
  let exists = false;
  let recent: number | null = null;
  let firstUnseen: number | null = null;
  let pos = 0;
  while (pos < untagged.length) {
    const nl = untagged.indexOf(0x0a, pos);
    if (nl < 0) return 'incomplete line';
    const line = untagged.subarray(pos, nl + 1);
    pos = nl + 1;
    const text = line.toString('latin1').replace(/\r?\n$/, '');
    if (/\{\d+\+?\}$/.test(text)) return 'literal in the reply';
    let m: RegExpExecArray | null;
    if (/^\* FLAGS \(/i.test(text)) {
      kept.push(line);
    } else if ((m = /^\* (\d+) (EXISTS|RECENT)$/i.exec(text))) {
      if (m[2]!.toUpperCase() === 'EXISTS') exists = true;
      else recent = Number(m[1]);
      kept.push(line);
    } else if ((m = /^\* OK \[([A-Za-z-]+)(?: ([^\]]*))?\]/i.exec(text))) {
      const code = m[1]!.toUpperCase();
      if (code === 'CLOSED') {
        closedLine = Buffer.from(line);
        continue;
      }
      if (!SELECT_CODES.has(code)) return `unexpected response ${code}`;
      if (code === 'UNSEEN') firstUnseen = Number(m[2]);
      kept.push(line);
    } else {
      return 'unexpected response';
    }
  }
  if (!exists) return 'no EXISTS';
  if (recent !== 0) return 'RECENT is not 0';
  if (firstUnseen !== null && !(Number.isSafeInteger(firstUnseen) && firstUnseen > 0)) return 'bad UNSEEN';
  const unseenReported = firstUnseen !== null || /\[UIDNEXT /i.test(Buffer.concat(kept).toString('latin1'));
  return { entry: { mailbox, body: Buffer.concat(kept), status, firstUnseen, unseenReported }, closedLine };
}
