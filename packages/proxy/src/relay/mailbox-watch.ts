// Reads the server's untagged responses for what they say about the selected
// mailbox. Two users:
// - the select cache: a cached SELECT reply stays valid only while nothing the
//   server reports could change it. Changes made by other sessions reach this
//   one as untagged EXISTS/EXPUNGE/FETCH FLAGS mixed into the replies to any
//   command, and the NOOP before a cache hit only shows what has not been
//   reported yet; so every response is looked at, not just the NOOP's.
// - a session that starts on a connection whose mailbox is still selected
//   from an earlier session (select cache, LOGOUT kept it): until the proxy
//   has unselected it, responses about that mailbox must not reach a client
//   that has nothing selected.

import type { Segment } from '@imapproxy/shared';
import type { SelectCacheSlot } from './select-cache.js';

/**
 * - `status`: `* OK`/`* NO`/`* BAD` with no response code or [ALERT], and `* BYE`: nothing about the mailbox;
 * - `data`: a reply to a query (LIST, SEARCH, STATUS, ...): nothing about the selected mailbox;
 * - `fetch`: `* n FETCH`: depends on its items;
 * - `mailbox`: changes what a SELECT reply shows, or cannot be classified.
 */
export type ResponseKind = 'status' | 'data' | 'fetch' | 'mailbox';

const DATA = new Set([
  'CAPABILITY', 'LIST', 'LSUB', 'XLIST', 'STATUS', 'SEARCH', 'ESEARCH', 'SORT', 'THREAD',
  'NAMESPACE', 'ID', 'ENABLED', 'QUOTA', 'QUOTAROOT', 'ACL', 'LISTRIGHTS', 'MYRIGHTS', 'METADATA',
  'LANGUAGE', 'COMPARATOR',
]);

/** Classifies an untagged response by the start of its first line (`* ...`). */
export function classifyUntagged(head: Buffer): ResponseKind {
  const text = head.toString('latin1', 0, Math.min(head.length, 48));
  const numbered = /^\* \d+ ([A-Za-z]+)/.exec(text);
  if (numbered) return numbered[1]!.toUpperCase() === 'FETCH' ? 'fetch' : 'mailbox';
  const m = /^\* ([A-Za-z][A-Za-z0-9=.-]*)(?: (\[)?([A-Za-z-]+)?)?/.exec(text);
  if (!m) return 'mailbox';
  const name = m[1]!.toUpperCase();
  // The server is leaving: the client must hear it, the connection is not kept anyway.
  if (name === 'BYE') return 'status';
  if (name === 'OK' || name === 'NO' || name === 'BAD') {
    if (m[2] === undefined) return 'status';
    return m[3]?.toUpperCase() === 'ALERT' ? 'status' : 'mailbox';
  }
  return DATA.has(name) ? 'data' : 'mailbox';
}

export interface FetchSummary {
  seq: number;
  /** Item names in upper case (`UID`, `FLAGS`, `BODY[HEADER]`, ...). */
  names: string[];
  /** The FLAGS item's flags, or null when there is none. */
  flags: string[] | null;
}

/**
 * Reads the items of a FETCH response from its text without literal data
 * (each `{n}` followed directly by what came after the literal). Null when it
 * does not parse.
 */
export function readFetch(text: string): FetchSummary | null {
  const m = /^\* (\d+) FETCH \(/i.exec(text);
  if (!m) return null;
  const n = text.length;
  let i = m[0].length;
  const names: string[] = [];
  let flags: string[] | null = null;
  for (;;) {
    while (text[i] === ' ') i++;
    if (i >= n) return null;
    if (text[i] === ')') break;
    const start = i;
    while (i < n && text[i] !== ' ' && text[i] !== '(' && text[i] !== ')') {
      if (text[i] === '[') {
        // BODY[HEADER.FIELDS (A B)]: the section may hold spaces and parentheses.
        const close = text.indexOf(']', i);
        if (close < 0) return null;
        i = close + 1;
      } else {
        i++;
      }
    }
    const name = text.slice(start, i).toUpperCase();
    if (name === '' || text[i] !== ' ') return null;
    names.push(name);
    i++;
    if (name === 'FLAGS') {
      if (text[i] !== '(') return null;
      const close = text.indexOf(')', i);
      if (close < 0) return null;
      flags = text.slice(i + 1, close).split(' ').filter((f) => f !== '');
      i = close + 1;
      continue;
    }
    i = skipValue(text, i);
    if (i < 0) return null;
  }
  return { seq: Number(m[1]), names, flags };
}

function skipQuoted(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++;
    else if (text[j] === '"') return j + 1;
  }
  return -1;
}

/** Index after the value at `i` (atom, number, NIL, quoted, literal marker, list), -1 if malformed. */
function skipValue(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return skipQuoted(text, i);
  if (c === '{') {
    const close = text.indexOf('}', i);
    return close < 0 ? -1 : close + 1;
  }
  if (c === '(') {
    let depth = 0;
    while (i < text.length) {
      const ch = text[i];
      if (ch === '"') {
        i = skipQuoted(text, i);
        if (i < 0) return -1;
        continue;
      }
      if (ch === '(') depth++;
      else if (ch === ')' && --depth === 0) return i + 1;
      i++;
    }
    return -1;
  }
  const start = i;
  while (i < text.length && text[i] !== ' ' && text[i] !== ')') i++;
  return i === start ? -1 : i;
}

/**
 * Does this FETCH response change what the cached SELECT reply shows? Without
 * CONDSTORE (the cache is off once anything is ENABLEd) the only per-message
 * state in a SELECT reply is `[UNSEEN n]`, the first message without \Seen.
 * FLAGS that a client asked for are compared with it instead of counted as a
 * change: webmail fetches FLAGS on every page view. `strict` (the NOOP before
 * a hit, or responses no command of the client asked for): any FLAGS is a change.
 */
export function fetchChangesSelect(fetch: FetchSummary | null, firstUnseen: number | null, strict: boolean, unseenReported = true): boolean {
  if (fetch === null) return true;
  if (fetch.names.includes('MODSEQ')) return true;
  if (fetch.flags === null) return false;
  if (strict) return true;
  // A reply that shows no per-message state (Courier: no UNSEEN, no UIDNEXT)
  if (!unseenReported) return false;
  const seen = fetch.flags.some((f) => f.toUpperCase() === '\\SEEN');
  // No [UNSEEN n] in the reply: every message was seen (or the server does not say).
  if (firstUnseen === null || fetch.seq < firstUnseen) return !seen;
  return fetch.seq === firstUnseen && seen;
}

/** Longest FETCH response text (literals excluded) read for its items; longer ones count as a change. */
const FETCH_TEXT_LIMIT = 256 * 1024;

/**
 * Follows the server's responses segment by segment and drops the slot's
 * cached reply when one could change it.
 */
export class MailboxWatch {
  /** Every FETCH FLAGS is a change (see fetchChangesSelect). */
  strict = false;
  private kind: ResponseKind = 'status';
  private fetchText: string[] | null = null;
  private fetchLength = 0;

  constructor(private readonly slot: SelectCacheSlot) {}

  /** The first segment of an untagged response; returns its kind. `complete` is called when it ends. */
  begin(seg: Segment): ResponseKind {
    const kind = classifyUntagged(seg.head);
    this.kind = kind;
    this.fetchText = null;
    if (kind === 'mailbox' && this.slot.closedLine === null && seg.literal === null && /^\* OK \[CLOSED\]/i.test(seg.head.toString('latin1', 0, 14))) {
      this.slot.closedLine = Buffer.from(`${seg.head.toString('latin1')}\r\n`, 'latin1');
    }
    if (kind === 'fetch' && this.slot.entry !== null) {
      this.fetchText = [];
      this.fetchLength = 0;
      this.addText(seg);
    }
    return kind;
  }

  /** A later segment of the same response (after a literal). */
  continued(seg: Segment): void {
    if (this.fetchText !== null) this.addText(seg);
  }

  /** The response is complete. */
  end(): void {
    if (this.slot.entry === null) return;
    if (this.kind === 'mailbox') {
      this.slot.entry = null;
    } else if (this.kind === 'fetch') {
      const text = this.fetchText;
      this.fetchText = null;
      const fetch = text === null ? null : readFetch(text.join(''));
      if (fetchChangesSelect(fetch, this.slot.entry.firstUnseen, this.strict, this.slot.entry.unseenReported)) this.slot.entry = null;
    }
  }

  private addText(seg: Segment): void {
    this.fetchLength += seg.head.length;
    if (seg.head.length < seg.length || this.fetchLength > FETCH_TEXT_LIMIT) {
      // Not all of it was read: it cannot be checked, so it counts as a change.
      this.fetchText = null;
      this.slot.entry = null;
      return;
    }
    this.fetchText!.push(seg.head.toString('latin1'));
  }
}
