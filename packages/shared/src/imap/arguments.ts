// Tokenises a complete client command (RFC 3501 §9 grammar, the parts a proxy
// needs before login): tag, command name and arguments as atoms, quoted
// strings, literals, NIL and parenthesised lists. Strings are returned as the
// decoded bytes, so `alice`, `"alice"` and `{5}alice` are the same value
// (SPEC §11 B11).

import type { RawCommand } from './command-assembler.js';

export type Arg =
  | { kind: 'atom'; value: string }
  | { kind: 'string'; value: Buffer; literal: boolean }
  | { kind: 'nil' }
  | { kind: 'list'; items: Arg[] };

export interface ParsedCommand {
  tag: string;
  name: string;
  args: Arg[];
}

export class ArgumentError extends Error {}

export interface ParseOptions {
  /**
   * The grammar of the authenticated state (RFC 3501 §9): `*` and `%` in
   * atoms (sequence sets `1:*`, list wildcards) and bracketed sections inside
   * an atom (`BODY.PEEK[HEADER.FIELDS (From To)]<0.512>`), which may hold
   * spaces, parentheses and quoted strings. Before login neither is valid.
   */
  authenticated?: boolean;
}

const SP = 0x20;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

/** atom-specials of RFC 3501 plus the characters never valid in a tag. */
function isAtomChar(b: number): boolean {
  if (b <= 0x1f || b >= 0x7f) return false;
  return !(b === 0x28 || b === 0x29 || b === 0x7b || b === SP || b === 0x25 || b === 0x2a || b === DQUOTE || b === BACKSLASH || b === 0x5d);
}

/** A tag is an atom without `+` (RFC 3501 `tag`). */
export function isValidTag(tag: string): boolean {
  if (tag.length === 0 || tag.length > 1024) return false;
  for (let i = 0; i < tag.length; i++) {
    const c = tag.charCodeAt(i);
    // `]` is an ASTRING-CHAR (resp-specials), so RFC 3501 and the original
    // (SPEC §4.3) both accept it in a tag; isAtomChar alone refused it.
    if ((!isAtomChar(c) && c !== 0x5d) || c === 0x2b) return false;
  }
  return true;
}

/** Splits off the tag and command name; both must be present and valid. */
export function readTagAndName(firstSegment: Buffer): { tag: string; name: string; rest: number } | { tag: string | null; error: 'tag' | 'null' } {
  let i = 0;
  while (i < firstSegment.length && firstSegment[i] !== SP) i++;
  const tag = firstSegment.toString('latin1', 0, i);
  if (!isValidTag(tag)) return { tag: null, error: 'tag' };
  const start = i + 1;
  let j = start;
  while (j < firstSegment.length && firstSegment[j] !== SP) j++;
  if (start >= firstSegment.length || j === start) return { tag, error: 'null' };
  return { tag, name: firstSegment.toString('latin1', start, j).toUpperCase(), rest: j };
}

/**
 * Parses the arguments of a command after its name. Throws ArgumentError with
 * a short reason on any syntax error.
 */
export function parseArguments(cmd: RawCommand, start: number, options: ParseOptions = {}): Arg[] {
  const p = new Cursor(cmd, start, options.authenticated === true);
  const args: Arg[] = [];
  const stack: Arg[][] = [args];
  let needSpace = true;
  while (!p.atEnd()) {
    const b = p.peek();
    if (b === 0x29 /* ) */ && stack.length > 1) {
      // `(x )`: the top-level "trailing space" rule holds inside lists too.
      if (!needSpace && stack[stack.length - 1]!.length > 0) throw new ArgumentError('trailing space');
      p.skip();
      const inner = stack.pop()!;
      stack[stack.length - 1]!.push({ kind: 'list', items: inner });
      needSpace = true;
    } else if (needSpace) {
      if (b !== SP) throw new ArgumentError('expected a space between arguments');
      p.skip();
      needSpace = false;
    } else if (b === 0x28 /* ( */) {
      p.skip();
      stack.push([]);
    } else {
      stack[stack.length - 1]!.push(p.readValue());
      needSpace = true;
    }
  }
  if (!needSpace && stack.length === 1 && args.length > 0) throw new ArgumentError('trailing space');
  if (stack.length !== 1) throw new ArgumentError('unbalanced parenthesis');
  return args;
}

class Cursor {
  private seg = 0;
  private pos: number;
  constructor(private readonly cmd: RawCommand, start: number, private readonly authenticated: boolean) {
    this.pos = start;
  }

  private get buf(): Buffer {
    return this.cmd.segments[this.seg]!;
  }

  atEnd(): boolean {
    return this.pos >= this.buf.length && this.seg >= this.cmd.segments.length - 1;
  }

  peek(): number {
    return this.pos < this.buf.length ? this.buf[this.pos]! : -1;
  }

  skip(): void {
    this.pos++;
  }

  readValue(): Arg {
    const b = this.peek();
    if (b === DQUOTE) return this.readQuoted();
    if (b === 0x7b /* { */) return this.readLiteral();
    // `~{n}`: a literal8 (RFC 3516, APPEND of binary data).
    if (b === 0x7e && this.authenticated && this.buf[this.pos + 1] === 0x7b) {
      this.pos++;
      return this.readLiteral();
    }
    return this.readAtom();
  }

  private readQuoted(): Arg {
    const out: number[] = [];
    this.pos++;
    const buf = this.buf;
    for (;;) {
      if (this.pos >= buf.length) throw new ArgumentError('unterminated quoted string');
      const c = buf[this.pos++]!;
      if (c === DQUOTE) break;
      if (c === BACKSLASH) {
        const e = buf[this.pos++];
        if (e !== DQUOTE && e !== BACKSLASH) throw new ArgumentError('invalid escape in quoted string');
        out.push(e);
        continue;
      }
      if (c === 0x0d || c === 0x0a || c === 0) throw new ArgumentError('invalid character in quoted string');
      out.push(c);
    }
    return { kind: 'string', value: Buffer.from(out), literal: false };
  }

  private readLiteral(): Arg {
    const buf = this.buf;
    const close = buf.indexOf(0x7d, this.pos);
    if (close !== buf.length - 1 || this.seg >= this.cmd.literals.length) {
      throw new ArgumentError('a literal must end the line');
    }
    // Only digits and an optional `+` may stand between the braces: `{x {5}`
    // used to be taken as one literal.
    if (!/^\{[0-9]+\+?\}$/.test(buf.toString('latin1', this.pos, buf.length))) {
      throw new ArgumentError('invalid literal marker');
    }
    const value = this.cmd.literals[this.seg]!;
    this.seg++;
    this.pos = 0;
    return { kind: 'string', value, literal: true };
  }

  private readAtom(): Arg {
    const buf = this.buf;
    const start = this.pos;
    // `]` is allowed inside an atom argument (resp-specials only matter to servers).
    while (this.pos < buf.length) {
      const c = buf[this.pos]!;
      if (this.authenticated && c === 0x5b /* [ */) this.pos = sectionEnd(buf, this.pos);
      else if (isAtomChar(c) || c === 0x5d) this.pos++;
      // `\Seen`: a flag is an atom after a backslash (RFC 3501 flag-extension).
      else if (this.authenticated && (c === 0x2a /* * */ || c === 0x25 /* % */ || (c === BACKSLASH && this.pos === start))) this.pos++;
      else break;
    }
    if (this.pos === start) throw new ArgumentError('expected an argument');
    const value = buf.toString('latin1', start, this.pos);
    if (value.toUpperCase() === 'NIL') return { kind: 'nil' };
    return { kind: 'atom', value };
  }
}

/**
 * The index after the `]` that closes the section opened at `open`, on the
 * same line: quoted strings and nested parentheses inside are skipped, a
 * literal is not allowed there.
 */
function sectionEnd(buf: Buffer, open: number): number {
  let depth = 0;
  for (let i = open + 1; i < buf.length; i++) {
    const c = buf[i]!;
    if (c === DQUOTE) {
      for (i++; i < buf.length && buf[i] !== DQUOTE; i++) if (buf[i] === BACKSLASH) i++;
      if (i >= buf.length) break;
    } else if (c === 0x28) {
      depth++;
    } else if (c === 0x29) {
      if (--depth < 0) throw new ArgumentError('unbalanced parenthesis in a section');
    } else if (c === 0x7b /* { */ || c < 0x20 || c === 0x7f) {
      throw new ArgumentError('invalid character in a section');
    } else if (c === 0x5d && depth === 0) {
      return i + 1;
    }
  }
  throw new ArgumentError('unterminated section');
}

/** The bytes of a string-like argument (atom, quoted, literal), else null. */
export function argBytes(arg: Arg | undefined): Buffer | null {
  if (!arg) return null;
  if (arg.kind === 'string') return arg.value;
  if (arg.kind === 'atom') return Buffer.from(arg.value, 'latin1');
  return null;
}
