// Masks credentials in a protocol trace, both sides. The original traced
// everything after login raw, so a LOGIN or AUTHENTICATE typed inside a traced
// session put a password into the trace file (SPEC §7). Here:
//   a1 LOGIN alice secret        -> a1 LOGIN alice ********
//   a1 LOGIN alice {6} / secret  -> a1 LOGIN alice ******** / ******** (the literal too)
//   a1 AUTHENTICATE PLAIN AGFs.. -> a1 AUTHENTICATE PLAIN ********
//   every SASL response line     -> ********
//
// Commands are read with the parser the pre-login phase and the relay use
// (@imapproxy/shared: the scanner frames, readTagAndName/parseArguments
// read), not with a regex over the line, which missed `LOGIN` with extra
// blanks (issue 16, finding 6). What the parser does not understand is not
// shown: a LOGIN or AUTHENTICATE whose arguments do not parse shows only its
// name, a command not in the command table only its tag and name, a line
// without a tag and a name nothing. A server may still take such a line (or
// bytes the proxy framed as a literal) as a command and echo its first word
// as a tag: the secrets masked on the client side are remembered, and the
// server's side is masked where it repeats them.
//
// The stream is framed like the relay frames it, so a literal's bytes are
// never mistaken for a command and a password literal is found wherever the
// chunks split it. A line is held until it ends (the decision needs the whole
// line); literal bytes are passed on at once. The server's side is read for
// three more things: a synchronising literal the server refuses (a tagged
// reply instead of `+`) is never sent, and the next client bytes start a new
// command (the relay does the same); a `+` during AUTHENTICATE makes the
// client's next line a SASL response; the tagged reply ends the exchange.

import { ArgumentError, ImapScanner, isKnownCommand, parseArguments, readTagAndName, type Arg, type Segment } from '@imapproxy/shared';

export const MASK = '********';
const MASK_BYTES = Buffer.from(MASK, 'latin1');
const SP_MASK = Buffer.from(` ${MASK}`, 'latin1');
const EMPTY = Buffer.alloc(0);
const SP = 0x20;
/** Secrets remembered for the server's side; the oldest are forgotten. */
const MAX_SECRETS = 16;
/** Longest secret remembered (a password literal is rarely longer). */
const MAX_SECRET_BYTES = 1024;
/** Shorter secrets are only masked where the server puts a tag, not anywhere in its text. */
const MIN_SECRET_IN_TEXT = 4;

/** Holds each line of one direction until it ends; literal bytes go out at once. */
class LineFramer {
  private readonly scanner: ImapScanner;
  private held: Buffer[] = [];
  private out: Buffer[] = [];
  private cursor = 0;
  broken = false;

  constructor(
    /** A whole line (content without its ending, and the ending): the bytes to show. */
    private readonly line: (seg: Segment, content: Buffer, eol: Buffer) => Buffer,
    /** Literal bytes (`last`: the literal ends with them): the bytes to show. */
    private readonly literal: (data: Buffer, last: boolean) => Buffer,
  ) {
    this.scanner = new ImapScanner(
      {
        segment: (seg, chunk, end) => this.onSegment(seg, chunk, end),
        literal: (chunk, start, end, last) => {
          this.cursor = end;
          const shown = this.literal(chunk.subarray(start, end), last);
          if (shown.length > 0) this.out.push(shown);
        },
      },
      { maxLineLength: Number.MAX_SAFE_INTEGER, headLimit: 0 },
    );
  }

  cancelLiteral(): void {
    this.scanner.cancelLiteral();
  }

  /** The bytes of `chunk` fit to show (throws ProtocolError when the stream cannot be framed). */
  push(chunk: Buffer): Buffer {
    this.cursor = 0;
    this.out = [];
    try {
      this.scanner.push(chunk);
    } catch (err) {
      this.broken = true;
      this.held = [];
      throw err;
    }
    if (this.cursor < chunk.length) this.held.push(Buffer.from(chunk.subarray(this.cursor)));
    return this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
  }

  private onSegment(seg: Segment, chunk: Buffer, end: number): void {
    const piece = chunk.subarray(this.cursor, end);
    this.cursor = end;
    const bytes = this.held.length > 0 ? Buffer.concat([...this.held, piece]) : piece;
    this.held = [];
    const eolLength = bytes.length >= 2 && bytes[bytes.length - 2] === 0x0d ? 2 : 1;
    const content = bytes.subarray(0, bytes.length - eolLength);
    const eol = bytes.subarray(bytes.length - eolLength);
    const shown = this.line(seg, content, eol);
    this.out.push(shown === content ? bytes : Buffer.concat([shown, eol]));
  }
}

export class TraceMasker {
  private readonly clientSide: LineFramer;
  private readonly serverSide: LineFramer;
  /** The rest of the current client command (segments and literals) is secret. */
  private secretRest = false;
  /** A LOGIN whose user name is a literal: the next segment starts with the password. */
  private passwordNext = false;
  /** The literal being read is secret; `literalMasked` once its mask was written. */
  private secretLiteral = false;
  private literalMasked = false;
  private secretParts: Buffer[] = [];
  private secretLength = 0;
  /** Tag of the AUTHENTICATE in progress (until its tagged reply). */
  private authTag: string | null = null;
  /** The server sent `+` to the AUTHENTICATE: the client's next line is a SASL response. */
  private saslResponse = false;
  /** Tag of the client command whose synchronising literal awaits the server's `+`. */
  private literalTag: string | null = null;
  private tag: string | null = null;
  /** Recent secrets (passwords, SASL responses, lines not shown), for the server's side. */
  private secrets: Buffer[] = [];

  constructor() {
    this.clientSide = new LineFramer(
      (seg, content) => this.clientLine(seg, content),
      (data, last) => this.clientLiteral(data, last),
    );
    this.serverSide = new LineFramer(
      (seg, content) => this.serverLine(seg, content),
      (data) => data,
    );
  }

  /** The client's bytes fit for the trace file (possibly none yet, possibly held bytes of earlier chunks). */
  client(chunk: Buffer): Buffer {
    if (this.clientSide.broken) return EMPTY;
    try {
      return this.clientSide.push(chunk);
    } catch {
      return Buffer.from(`${MASK} (client data the proxy cannot frame; not traced)\r\n`, 'latin1');
    }
  }

  /** The server's bytes fit for the trace file. */
  server(chunk: Buffer): Buffer {
    if (this.serverSide.broken) return this.secrets.length === 0 ? chunk : EMPTY;
    try {
      return this.serverSide.push(chunk);
    } catch {
      // Unframed, the server's echo of a secret cannot be found any more.
      return this.secrets.length === 0 ? chunk : Buffer.from(`${MASK} (server data the proxy cannot frame; not traced)\r\n`, 'latin1');
    }
  }

  // --- the client's side ---

  private clientLiteral(data: Buffer, last: boolean): Buffer {
    this.literalTag = null;
    if (!this.secretLiteral) return data;
    this.collectSecret(data);
    if (last) this.endSecretLiteral();
    if (this.literalMasked) return EMPTY;
    this.literalMasked = true;
    return MASK_BYTES;
  }

  private clientLine(seg: Segment, content: Buffer): Buffer {
    this.secretLiteral = false;
    this.literalMasked = false;
    const shown = seg.first ? this.firstSegment(seg, content) : this.laterSegment(seg, content);
    this.literalTag = seg.literal !== null && !seg.literal.nonSync ? this.tag : null;
    return shown;
  }

  /** The rest of this command is secret, its literal too. */
  private hideRest(seg: Segment): void {
    this.secretRest = true;
    this.secretLiteral = seg.literal !== null;
  }

  private firstSegment(seg: Segment, content: Buffer): Buffer {
    this.secretRest = false;
    this.passwordNext = false;
    this.tag = null;
    if (this.saslResponse) {
      this.saslResponse = false;
      if (content.length === 0) return content;
      this.remember(content);
      this.hideRest(seg);
      return MASK_BYTES;
    }
    if (content.length === 0 || /^done$/i.test(content.toString('latin1'))) return content; // IDLE's DONE
    const head = readTagAndName(content);
    if ('error' in head) {
      // Not a command to the proxy; a lenient server may still read one (and echo its first word).
      this.remember(content);
      const sp = content.indexOf(SP);
      if (sp > 0) this.remember(content.subarray(0, sp));
      this.hideRest(seg);
      return MASK_BYTES;
    }
    this.tag = head.tag;
    const named = content.subarray(0, head.rest);
    if (head.name === 'LOGIN') return this.login(seg, content, head.rest, named);
    if (head.name === 'AUTHENTICATE') return this.authenticate(seg, content, head.rest, named);
    if (isKnownCommand(head.name) || (head.rest >= content.length && seg.literal === null)) return content;
    // Not in the command table: its arguments could be anything.
    this.remember(content.subarray(head.rest + 1));
    this.hideRest(seg);
    return Buffer.concat([named, SP_MASK]);
  }

  private login(seg: Segment, content: Buffer, rest: number, named: Buffer): Buffer {
    const args = readFirstSegment(content, rest, seg.literal !== null);
    const user = args?.[0];
    if (args === null || user === undefined || user.kind === 'list') {
      this.remember(content.subarray(rest + 1));
      this.hideRest(seg);
      return Buffer.concat([named, SP_MASK]);
    }
    if (args.length === 1 && seg.literal !== null) {
      // The user name is the literal that follows: shown; the password comes after it.
      this.passwordNext = true;
      return content;
    }
    if (args.length === 1) return content;
    for (const a of args.slice(1)) this.rememberArg(a);
    this.hideRest(seg);
    return Buffer.concat([named, Buffer.from(` ${renderString(user)}`, 'latin1'), SP_MASK]);
  }

  private authenticate(seg: Segment, content: Buffer, rest: number, named: Buffer): Buffer {
    this.authTag = this.tag;
    const args = readFirstSegment(content, rest, seg.literal !== null);
    const mech = args?.[0];
    if (args === null || mech === undefined || mech.kind !== 'atom') {
      if (rest >= content.length && seg.literal === null) return content;
      this.remember(content.subarray(rest + 1));
      this.hideRest(seg);
      return Buffer.concat([named, SP_MASK]);
    }
    if (args.length === 1 && seg.literal === null) return content;
    for (const a of args.slice(1)) this.rememberArg(a);
    this.hideRest(seg);
    return Buffer.concat([named, Buffer.from(` ${mech.value}`, 'latin1'), SP_MASK]);
  }

  private laterSegment(seg: Segment, content: Buffer): Buffer {
    if (this.passwordNext) {
      this.passwordNext = false;
      this.secretRest = true;
    }
    if (!this.secretRest) return content;
    this.secretLiteral = seg.literal !== null;
    if (content.length === 0) return content;
    this.remember(content[0] === SP ? content.subarray(1) : content);
    return content[0] === SP ? SP_MASK : MASK_BYTES;
  }

  // --- the server's side ---

  private serverLine(seg: Segment, content: Buffer): Buffer {
    if (seg.first) {
      if (content[0] === 0x2b /* + */) {
        this.literalTag = null;
        if (this.authTag !== null) this.saslResponse = true;
      } else {
        const sp = content.indexOf(SP);
        const tag = content.toString('latin1', 0, sp < 0 ? content.length : sp);
        if (this.literalTag !== null && tag === this.literalTag) {
          // Refused: the literal will not come, the command is over.
          this.literalTag = null;
          this.clientSide.cancelLiteral();
          this.secretRest = false;
          this.passwordNext = false;
          this.secretLiteral = false;
        }
        if (this.authTag !== null && tag === this.authTag) {
          this.authTag = null;
          this.saslResponse = false;
        }
      }
    }
    return this.secrets.length === 0 ? content : this.maskEcho(content);
  }

  /** The server's line with every remembered secret in it masked (its tag, or any long one anywhere). */
  private maskEcho(content: Buffer): Buffer {
    let line = content;
    const sp = line.indexOf(SP);
    const first = sp < 0 ? line : line.subarray(0, sp);
    if (first.length > 0 && !(first.length === 1 && (first[0] === 0x2a || first[0] === 0x2b))) {
      if (this.secrets.some((s) => s.equals(first) || (first.length >= MIN_SECRET_IN_TEXT && s.includes(first)))) {
        line = Buffer.concat([MASK_BYTES, line.subarray(first.length)]);
      }
    }
    for (const s of this.secrets) {
      if (s.length < MIN_SECRET_IN_TEXT) continue;
      let at = line.indexOf(s);
      if (at < 0) continue;
      const parts: Buffer[] = [];
      let from = 0;
      while (at >= 0) {
        parts.push(line.subarray(from, at), MASK_BYTES);
        from = at + s.length;
        at = line.indexOf(s, from);
      }
      parts.push(line.subarray(from));
      line = Buffer.concat(parts);
    }
    return line;
  }

  // --- secrets ---

  private rememberArg(arg: Arg): void {
    if (arg.kind === 'atom') this.remember(Buffer.from(arg.value, 'latin1'));
    else if (arg.kind === 'string' && !arg.literal) this.remember(arg.value);
    // a literal's bytes are collected as they pass (clientLiteral)
  }

  private remember(secret: Buffer): void {
    if (secret.length === 0) return;
    this.secrets.push(Buffer.from(secret.subarray(0, MAX_SECRET_BYTES)));
    if (this.secrets.length > MAX_SECRETS) this.secrets.shift();
  }

  private collectSecret(data: Buffer): void {
    if (this.secretLength >= MAX_SECRET_BYTES) return;
    const part = data.subarray(0, MAX_SECRET_BYTES - this.secretLength);
    this.secretParts.push(Buffer.from(part));
    this.secretLength += part.length;
  }

  private endSecretLiteral(): void {
    if (this.secretParts.length === 0) return;
    const secret = Buffer.concat(this.secretParts);
    this.secretParts = [];
    this.secretLength = 0;
    this.remember(secret);
    // Read by the server as a command line, its first word comes back as a tag.
    const end = secret.findIndex((b) => b === SP || b === 0x0d || b === 0x0a);
    if (end > 0) this.remember(secret.subarray(0, end));
  }
}

/**
 * The arguments of a command's first line, read with the shared parser; a
 * literal announced at its end stands as an empty string. Null when they do
 * not parse.
 */
function readFirstSegment(content: Buffer, rest: number, endsWithLiteral: boolean): Arg[] | null {
  try {
    return endsWithLiteral
      ? parseArguments({ segments: [content, EMPTY], literals: [EMPTY] }, rest)
      : parseArguments({ segments: [content], literals: [] }, rest);
  } catch (err) {
    if (err instanceof ArgumentError) return null;
    throw err;
  }
}

/** A user name as an IMAP string: an atom as it is, anything else quoted. */
function renderString(arg: Arg): string {
  if (arg.kind === 'atom') return arg.value;
  if (arg.kind === 'nil') return 'NIL';
  if (arg.kind === 'string') return `"${arg.value.toString('latin1').replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  return '';
}
