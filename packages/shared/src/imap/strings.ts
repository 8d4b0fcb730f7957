// Encoding IMAP strings for the server. The proxy re-encodes the decoded
// username and password itself instead of replaying the client's bytes, so a
// quoted, literal or atom credential reaches the server correctly whatever the
// client used (SPEC §4.10 and §11 B11: the original sent literal usernames raw).

/** One piece of an encoded command: text to send, or a literal to send after `{n}`. */
export type EncodedPart = { text: Buffer } | { literal: Buffer };

/** Bytes that a quoted string can carry (RFC 3501 TEXT-CHAR: 7-bit, no CR/LF/NUL). */
function quotable(value: Buffer): boolean {
  for (const b of value) {
    if (b === 0 || b === 0x0a || b === 0x0d || b >= 0x80) return false;
  }
  return true;
}

/**
 * Encodes `value` as an IMAP string: a quoted string when it can be one, else
 * a literal (8-bit bytes, CR, LF, NUL).
 */
export function encodeString(value: Buffer): EncodedPart {
  if (!quotable(value)) return { literal: value };
  let escaped = value.toString('latin1');
  if (/["\\]/.test(escaped)) escaped = escaped.replace(/(["\\])/g, '\\$1');
  return { text: Buffer.from(`"${escaped}"`, 'latin1') };
}

/** A quoted string for text we generate ourselves (never needs a literal). */
export function quote(text: string): string {
  return `"${text.replace(/(["\\])/g, '\\$1').replace(/[\r\n]/g, ' ')}"`;
}
