// Masks credentials in the client side of a protocol trace. The original
// traced everything after login raw, so a LOGIN or AUTHENTICATE typed inside a
// traced session put a password into the trace file (SPEC §7). Here:
//   a1 LOGIN alice secret        -> a1 LOGIN alice ********
//   a1 LOGIN alice {6} / secret  -> a1 LOGIN alice ******** / ******** (the literal too)
//   a1 AUTHENTICATE PLAIN AGFs.. -> a1 AUTHENTICATE PLAIN ********
//   every SASL response line     -> ********
// The stream is framed with the same scanner as the relay, so a literal's
// bytes are never mistaken for a command and a password literal is found
// wherever the chunks split it. A segment is held until its line ends (the
// decision needs the whole line); literal bytes are passed on at once. The
// server's side is read too, for one thing: a synchronising literal the
// server refuses (a tagged reply instead of `+`) is never sent, and the next
// client bytes start a new command (the relay does the same).

import { ImapScanner, type Segment } from '@imapproxy/shared';

export const MASK = '********';
const MASK_BYTES = Buffer.from(MASK, 'latin1');
const SP = 0x20;

export class ClientTraceMasker {
  private readonly scanner: ImapScanner;
  /** Bytes of the current segment that arrived in earlier chunks. */
  private held: Buffer[] = [];
  private out: Buffer[] = [];
  private cursor = 0;
  /** The rest of the current command (segments and literals) is secret. */
  private secretRest = false;
  /** A LOGIN whose user name is a literal: the next segment starts with the password. */
  private passwordNext = false;
  /** The literal being read is secret; `literalMasked` once its mask was written. */
  private secretLiteral = false;
  private literalMasked = false;
  /** An AUTHENTICATE is in progress: client lines without a space are SASL responses. */
  private sasl = false;
  /** The stream could not be framed: nothing more is shown. */
  private broken = false;
  /** Tag of the command whose synchronising literal awaits the server's `+`. */
  private literalTag: string | null = null;
  private tag: string | null = null;
  private readonly serverScanner: ImapScanner;
  private serverBroken = false;

  constructor() {
    this.scanner = new ImapScanner(
      {
        segment: (seg, chunk, end) => this.onSegment(seg, chunk, end),
        literal: (chunk, start, end) => this.onLiteral(chunk, start, end),
      },
      { maxLineLength: Number.MAX_SAFE_INTEGER, headLimit: 0 },
    );
    this.serverScanner = new ImapScanner(
      { segment: (seg) => this.onServerSegment(seg) },
      { maxLineLength: Number.MAX_SAFE_INTEGER, headLimit: 256 },
    );
  }

  /** The server's bytes of the same session (they are traced unchanged). */
  observeServer(chunk: Buffer): void {
    if (this.serverBroken || this.broken) return;
    try {
      this.serverScanner.push(chunk);
    } catch {
      this.serverBroken = true;
    }
  }

  private onServerSegment(seg: Segment): void {
    if (!seg.first || this.literalTag === null) return;
    if (seg.head[0] === 0x2b /* + */) {
      this.literalTag = null;
      return;
    }
    if (seg.head.toString('latin1').startsWith(`${this.literalTag} `)) {
      // Refused: the literal will not come, the command is over.
      this.literalTag = null;
      this.scanner.cancelLiteral();
      this.secretRest = false;
      this.passwordNext = false;
      this.secretLiteral = false;
    }
  }

  /** The bytes of `chunk` fit for the trace file (possibly none yet, possibly held bytes of earlier chunks). */
  push(chunk: Buffer): Buffer {
    if (this.broken) return Buffer.alloc(0);
    this.cursor = 0;
    this.out = [];
    try {
      this.scanner.push(chunk);
    } catch {
      this.broken = true;
      this.held = [];
      return Buffer.from(`${MASK} (client data the proxy cannot frame; not traced)\r\n`, 'latin1');
    }
    if (this.cursor < chunk.length) this.held.push(Buffer.from(chunk.subarray(this.cursor)));
    return this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
  }

  private onLiteral(chunk: Buffer, start: number, end: number): void {
    this.cursor = end;
    this.literalTag = null;
    if (!this.secretLiteral) {
      this.out.push(chunk.subarray(start, end));
    } else if (!this.literalMasked) {
      this.literalMasked = true;
      this.out.push(MASK_BYTES);
    }
  }

  private onSegment(seg: Segment, chunk: Buffer, end: number): void {
    const piece = chunk.subarray(this.cursor, end);
    this.cursor = end;
    const bytes = this.held.length > 0 ? Buffer.concat([...this.held, piece]) : piece;
    this.held = [];
    const eolLength = bytes.length >= 2 && bytes[bytes.length - 2] === 0x0d ? 2 : 1;
    const content = bytes.subarray(0, bytes.length - eolLength);
    const eol = bytes.subarray(bytes.length - eolLength);
    this.secretLiteral = false;
    this.literalMasked = false;
    const shown = seg.first ? this.firstSegment(seg, content) : this.laterSegment(seg, content);
    this.literalTag = seg.literal !== null && !seg.literal.nonSync ? this.tag : null;
    this.out.push(shown === content ? bytes : Buffer.concat([shown, eol]));
  }

  private firstSegment(seg: Segment, content: Buffer): Buffer {
    this.secretRest = false;
    this.passwordNext = false;
    if (this.sasl) {
      // base64 never contains a space and a command always does, so a line
      // without one is a SASL response (or the `*` that cancels).
      if (content.indexOf(SP) < 0) return content.length === 0 ? content : MASK_BYTES;
      this.sasl = false;
    }
    const text = content.toString('latin1');
    const m = /^(\S+) (\S+)(?: |$)/.exec(text);
    this.tag = m ? m[1]! : null;
    if (!m) return content;
    const name = m[2]!.toUpperCase();
    const argsAt = m[0].length;
    if (name === 'AUTHENTICATE') {
      this.sasl = true;
      const mech = /^\S+/.exec(text.slice(argsAt));
      const keep = argsAt + (mech ? mech[0].length : 0);
      if (keep >= content.length && seg.literal === null) return content;
      this.secretRest = true;
      this.secretLiteral = seg.literal !== null;
      return Buffer.concat([content.subarray(0, keep), Buffer.from(` ${MASK}`, 'latin1')]);
    }
    if (name !== 'LOGIN') return content;
    const userEnd = endOfUser(text, argsAt, seg.literal !== null);
    if (userEnd === null) {
      // The user name is a literal: it is shown, the password follows it.
      this.passwordNext = true;
      return content;
    }
    if (userEnd >= content.length && seg.literal === null) return content;
    this.secretRest = true;
    this.secretLiteral = seg.literal !== null;
    return Buffer.concat([content.subarray(0, userEnd), Buffer.from(` ${MASK}`, 'latin1')]);
  }

  private laterSegment(seg: Segment, content: Buffer): Buffer {
    if (this.passwordNext) {
      this.passwordNext = false;
      this.secretRest = true;
    }
    if (!this.secretRest) return content;
    this.secretLiteral = seg.literal !== null;
    if (content.length === 0) return content;
    return content[0] === SP ? Buffer.from(` ${MASK}`, 'latin1') : MASK_BYTES;
  }
}

/**
 * Where the user name of a LOGIN ends (an atom or a quoted string starting at
 * `at`), or null when it is the literal announced at the end of the segment.
 */
function endOfUser(text: string, at: number, endsWithLiteral: boolean): number | null {
  if (text[at] === '"') {
    let i = at + 1;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    return Math.min(i + 1, text.length);
  }
  if (endsWithLiteral && /^~?\{\d+\+?\}$/.test(text.slice(at))) return null;
  const sp = text.indexOf(' ', at);
  return sp < 0 ? text.length : sp;
}
