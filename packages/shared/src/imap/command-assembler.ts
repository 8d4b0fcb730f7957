// Collects whole client commands (every segment and literal) for the phase
// before login, where the proxy itself must understand each command. After
// login the relay uses the scanner directly and never holds a whole command.

import { ImapScanner, type LiteralSpec, type Segment } from './scanner.js';

/** A complete command: `segments[i]` is followed by `literals[i]` when present. */
export interface RawCommand {
  segments: Buffer[];
  literals: Buffer[];
}

export interface AssemblerEvents {
  /**
   * The command announced a literal. Return true to accept it (the caller
   * sends `+ ...` for a synchronising one), false to refuse: the partial
   * command is then dropped and, for a synchronising literal, the next bytes
   * start a new command.
   */
  literal(spec: LiteralSpec, partial: RawCommand, tooLarge: boolean): boolean;
  command(cmd: RawCommand): void;
}

export interface AssemblerOptions {
  maxLineLength: number;
  maxLiteralSize: number;
  /** Upper bound of the whole command (segments and literals). */
  maxCommandSize: number;
}

export class CommandAssembler {
  private readonly scanner: ImapScanner;
  private current: RawCommand = { segments: [], literals: [] };
  private literalParts: Buffer[] = [];
  private size = 0;
  private maxCommand: number;
  /** Set while a refused non-synchronising literal's bytes are skipped. */
  private discarding = false;

  constructor(private readonly events: AssemblerEvents, options: AssemblerOptions) {
    this.maxCommand = options.maxCommandSize;
    this.scanner = new ImapScanner(
      {
        segment: (seg, chunk, end) => this.onSegment(seg, chunk, end),
        literal: (chunk, start, end, last) => this.onLiteral(chunk, start, end, last),
      },
      { maxLineLength: options.maxLineLength, maxLiteralSize: options.maxLiteralSize, headLimit: options.maxLineLength },
    );
  }

  /**
   * Feeds client bytes; throws ProtocolError on an unrecoverable framing error.
   * Stops after each complete command and returns the bytes consumed, so the
   * caller can act on the command before reading on (after LOGIN the rest
   * belongs to the relay, not to this parser).
   */
  push(chunk: Buffer): number {
    return this.scanner.push(chunk);
  }

  /**
   * New line and command bounds from the next byte on (a pre-login ID may be
   * longer than other commands): called between pushes.
   */
  setLimits(maxLineLength: number, maxCommandSize: number): void {
    this.scanner.setMaxLineLength(maxLineLength);
    this.maxCommand = maxCommandSize;
  }

  /** True when no command is partly received. */
  get idle(): boolean {
    return this.scanner.atBoundary && this.current.segments.length === 0;
  }

  private onSegment(seg: Segment, _chunk: Buffer, _end: number): void {
    if (this.discarding) {
      // The rest of a refused command: skip it up to its end.
      if (seg.literal === null) this.discarding = false;
      else if (!seg.literal.nonSync) {
        // The client now waits for a "+" that never comes: the refused
        // command ends here, and its next bytes are a new command, which
        // must not be swallowed as the rest of this one.
        this.scanner.cancelLiteral();
        this.discarding = false;
      }
      return;
    }
    this.size += seg.length;
    this.current.segments.push(seg.head);
    if (seg.literal === null) {
      const cmd = this.current;
      this.reset();
      this.scanner.pause();
      this.events.command(cmd);
      return;
    }
    const tooLarge = seg.literalTooLarge || this.size + seg.literal.size > this.maxCommand;
    const accepted = this.events.literal(seg.literal, this.current, tooLarge) && !tooLarge;
    if (!accepted) {
      this.reset();
      if (seg.literal.nonSync) {
        // The client sends the bytes anyway: they must not be read as commands
        // (SPEC §11 B11). Only a size within limits can be skipped safely.
        if (seg.literalTooLarge) return; // the scanner throws after we return
        this.discarding = true;
      } else {
        this.scanner.cancelLiteral();
      }
      return;
    }
    // A `{0}` literal has no bytes, so no literal event will close it.
    if (seg.literal.size === 0) this.current.literals.push(Buffer.alloc(0));
  }

  private onLiteral(chunk: Buffer, start: number, end: number, last: boolean): void {
    if (this.discarding) return;
    this.literalParts.push(Buffer.from(chunk.subarray(start, end)));
    this.size += end - start;
    if (last) {
      this.current.literals.push(Buffer.concat(this.literalParts));
      this.literalParts = [];
    }
  }

  private reset(): void {
    this.current = { segments: [], literals: [] };
    this.literalParts = [];
    this.size = 0;
  }
}
