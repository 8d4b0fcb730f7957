// The IMAP framer: a pure, streaming scanner of bytes into line segments and
// literals. It never copies the data it is given except the first `headLimit`
// bytes of each segment (enough to read a tag and a command name), so the
// relay can forward the original chunks untouched and still know where every
// command and response starts (see ../../../../../shared/STYLE.md,
// node-postgres' parser).
//
// Vocabulary (RFC 3501 §4.3, RFC 7888):
//   segment  = bytes up to CRLF (LF alone is accepted: Dovecot does too),
//              excluding any literal data that precedes it;
//   literal  = `{n}` / `{n+}` / `~{n}` at the very end of a segment: the next
//              n bytes are data, after which the same command or response
//              goes on with another segment.
// A segment is `first` when it starts a new command/response, i.e. the segment
// before it did not announce a literal.

import { ProtocolError } from '../errors.js';

export interface LiteralSpec {
  size: number;
  /** `{n+}` (RFC 7888): the sender does not wait for a continuation. */
  nonSync: boolean;
}

export interface Segment {
  /** The segment's first bytes without the line ending (at most headLimit). */
  head: Buffer;
  /** Full length of the segment without the line ending. */
  length: number;
  /** True when this segment starts a new command or response. */
  first: boolean;
  /** The literal announced at the end of this segment, if any. */
  literal: LiteralSpec | null;
  /**
   * The announced literal is over `maxLiteralSize`. The caller must refuse it
   * and call `cancelLiteral()` during the callback (a synchronising literal
   * the peer will not send), or the scanner throws once the callback returns.
   */
  literalTooLarge: boolean;
}

export interface ScannerEvents {
  /**
   * A segment ended. `end` is the offset in `chunk` just past its line ending,
   * so `chunk.subarray(0, end)` is everything of this chunk up to that point.
   */
  segment(seg: Segment, chunk: Buffer, end: number): void;
  /** Literal bytes `chunk[start, end)`; `last` once the literal is complete. */
  literal?(chunk: Buffer, start: number, end: number, last: boolean): void;
}

export interface ScannerOptions {
  /** Longest segment accepted, line ending excluded. */
  maxLineLength: number;
  /** Largest literal accepted (Infinity for server responses). */
  maxLiteralSize?: number;
  /** How many bytes of each segment to keep for the caller. */
  headLimit?: number;
}

const LF = 0x0a;
const CR = 0x0d;
/** Enough to hold `~{` + 16 digits + `+}` of a literal marker at a segment's end. */
const TAIL_KEEP = 24;
/** Shared empty buffer (zero length: nobody can write into it). */
const EMPTY = Buffer.alloc(0);

export class ImapScanner {
  private maxLine: number;
  private readonly maxLiteral: number;
  private headLimit: number;
  private readonly events: ScannerEvents;

  private head: Buffer[] = [];
  private headLen = 0;
  private tail: Buffer = EMPTY;
  private lineLen = 0;
  private first = true;
  private literalLeft = 0;
  private paused = false;

  constructor(events: ScannerEvents, options: ScannerOptions) {
    this.events = events;
    this.maxLine = options.maxLineLength;
    this.maxLiteral = options.maxLiteralSize ?? Number.MAX_SAFE_INTEGER;
    this.headLimit = options.headLimit ?? 1024;
  }

  /**
   * Changes the longest segment (and the bytes kept of it) from the next
   * byte on: the pre-login ID has a larger bound than other commands.
   */
  setMaxLineLength(maxLineLength: number): void {
    this.maxLine = maxLineLength;
    this.headLimit = maxLineLength;
  }

  /** Bytes of literal data still expected before the next segment. */
  get literalRemaining(): number {
    return this.literalLeft;
  }

  /** True while a segment has started but not ended. */
  get midLine(): boolean {
    return this.lineLen > 0;
  }

  /** True when the next byte starts a new command or response. */
  get atBoundary(): boolean {
    return this.literalLeft === 0 && this.lineLen === 0 && this.first;
  }

  /**
   * The synchronising literal just announced will not be sent (the server
   * refused it with a tagged NO/BAD, or the proxy did): the next bytes start
   * a new command.
   */
  cancelLiteral(): void {
    this.literalLeft = 0;
    this.first = true;
  }

  /**
   * Called from a callback: stop after the current segment. `push` then
   * returns how many bytes it consumed and the caller re-pushes the rest later.
   */
  pause(): void {
    this.paused = true;
  }

  /** Scans `chunk`; returns the number of bytes consumed (all unless paused). */
  push(chunk: Buffer): number {
    let pos = 0;
    const len = chunk.length;
    this.paused = false;
    while (pos < len && !this.paused) {
      if (this.literalLeft > 0) {
        const take = Math.min(this.literalLeft, len - pos);
        this.literalLeft -= take;
        this.events.literal?.(chunk, pos, pos + take, this.literalLeft === 0);
        pos += take;
        continue;
      }
      const nl = chunk.indexOf(LF, pos);
      if (nl === -1) {
        this.take(chunk, pos, len);
        pos = len;
        break;
      }
      if (this.lineLen === 0) {
        this.wholeSegment(chunk, pos, nl);
      } else {
        this.take(chunk, pos, nl);
        this.endSegment(chunk, nl + 1);
      }
      pos = nl + 1;
    }
    return pos;
  }

  /**
   * Fast path (performance, issue 7): a segment that starts and ends inside
   * this chunk, the usual case. Same result as take() + endSegment(), without
   * their per-segment buffers: the head is copied once straight from the chunk
   * and the literal marker is read in place (only when the line ends in `}`).
   */
  private wholeSegment(chunk: Buffer, start: number, nl: number): void {
    // +1: a CR that belongs to the line ending is still inside this count (as in take).
    if (nl - start > this.maxLine + 1) {
      throw new ProtocolError(`line longer than ${this.maxLine} bytes`, 'IMAPPROXY_ERR_LIMIT');
    }
    const stop = nl > start && chunk[nl - 1] === CR ? nl - 1 : nl;
    const length = stop - start;
    if (length > this.maxLine) {
      throw new ProtocolError(`line longer than ${this.maxLine} bytes`, 'IMAPPROXY_ERR_LIMIT');
    }
    const keep = Math.min(length, this.headLimit);
    let head = EMPTY;
    if (keep > 0) {
      head = Buffer.allocUnsafe(keep); // every byte is written by the copy below
      chunk.copy(head, 0, start, start + keep);
    }
    // The same bytes endSegment() parses: the line's last TAIL_KEEP bytes, CR removed.
    const literal = length > 0 && chunk[stop - 1] === 0x7d /* } */
      ? parseLiteralMarker(chunk.subarray(Math.max(start, nl - TAIL_KEEP), stop))
      : null;
    this.emit(head, length, literal, chunk, nl + 1);
  }

  private take(chunk: Buffer, start: number, stop: number): void {
    const n = stop - start;
    if (n === 0) return;
    this.lineLen += n;
    // +1: a CR that belongs to the line ending is still inside this count.
    if (this.lineLen > this.maxLine + 1) {
      throw new ProtocolError(`line longer than ${this.maxLine} bytes`, 'IMAPPROXY_ERR_LIMIT');
    }
    if (this.headLen < this.headLimit) {
      const keep = Math.min(n, this.headLimit - this.headLen);
      this.head.push(Buffer.from(chunk.subarray(start, start + keep)));
      this.headLen += keep;
    }
    if (n >= TAIL_KEEP) {
      this.tail = Buffer.from(chunk.subarray(stop - TAIL_KEEP, stop));
    } else {
      const joined = Buffer.concat([this.tail, chunk.subarray(start, stop)]);
      this.tail = joined.length > TAIL_KEEP ? joined.subarray(joined.length - TAIL_KEEP) : joined;
    }
  }

  private endSegment(chunk: Buffer, end: number): void {
    let length = this.lineLen;
    let tail = this.tail;
    if (tail.length > 0 && tail[tail.length - 1] === CR) {
      length -= 1;
      tail = tail.subarray(0, tail.length - 1);
    }
    // `take` allows one byte over the limit in case it is the CR of a CRLF; a
    // line ended by LF alone must not use that byte for content.
    if (length > this.maxLine) {
      throw new ProtocolError(`line longer than ${this.maxLine} bytes`, 'IMAPPROXY_ERR_LIMIT');
    }
    let head = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head);
    if (head.length > length) head = head.subarray(0, length);
    const literal = parseLiteralMarker(tail);
    this.head = [];
    this.headLen = 0;
    this.tail = EMPTY;
    this.lineLen = 0;
    this.emit(head, length, literal, chunk, end);
  }

  private emit(head: Buffer, length: number, literal: LiteralSpec | null, chunk: Buffer, end: number): void {
    const literalTooLarge = literal !== null && literal.size > this.maxLiteral;
    const seg: Segment = { head, length, first: this.first, literal, literalTooLarge };
    this.first = literal === null;
    this.literalLeft = literal ? literal.size : 0;
    this.events.segment(seg, chunk, end);
    if (literalTooLarge && this.literalLeft > 0) {
      throw new ProtocolError(`literal of ${literal.size} bytes exceeds the limit of ${this.maxLiteral}`, 'IMAPPROXY_ERR_LIMIT');
    }
  }
}

/**
 * Reads `{n}`, `{n+}` or `~{n}` at the end of a segment. A marker whose number
 * cannot be represented is a protocol error rather than "no literal": treating
 * it as text would let literal bytes be read as commands (SPEC §11 B11). So is
 * any run of more than 15 digits before the final `}`, with or without a
 * visible `{`, because `tail` may have been cut inside the digits.
 */
export function parseLiteralMarker(tail: Buffer): LiteralSpec | null {
  const n = tail.length;
  if (n < 3 || tail[n - 1] !== 0x7d /* } */) return null;
  let i = n - 2;
  let nonSync = false;
  if (tail[i] === 0x2b /* + */) {
    nonSync = true;
    i--;
  }
  const digitsEnd = i + 1;
  while (i >= 0 && tail[i]! >= 0x30 && tail[i]! <= 0x39) i--;
  // Checked before looking for `{`: the scanner keeps only the last TAIL_KEEP
  // bytes, so with 22 or more digits the `{` is cut off and the marker used to
  // pass as text, its literal bytes then read as commands (SPEC §11 B11).
  if (digitsEnd - (i + 1) > 15) {
    throw new ProtocolError(`literal of ${tail.toString('latin1', i + 1, digitsEnd)} bytes is too large`, 'IMAPPROXY_ERR_LIMIT');
  }
  if (i < 0 || tail[i] !== 0x7b /* { */ || i + 1 === digitsEnd) return null;
  const digits = tail.toString('latin1', i + 1, digitsEnd);
  return { size: Number(digits), nonSync };
}
