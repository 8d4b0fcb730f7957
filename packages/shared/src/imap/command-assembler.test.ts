// Whole pre-auth commands out of a client byte stream, however it is cut
// (node-postgres "chunked parsing", see /work/shared/STYLE.md), and what
// happens to literals the proxy accepts or refuses.

import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import { ArgumentError, parseArguments, readTagAndName, type Arg } from './arguments.js';
import { CommandAssembler, type AssemblerOptions, type RawCommand } from './command-assembler.js';
import type { LiteralSpec } from './scanner.js';

const CHUNK_SIZES = [1, 2, 3, 4, 5, 7, 13, 64, 128];
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const text = (b: Buffer): string => b.toString('latin1');

/** A command as text: `segments[i]` is followed by `literals[i]`. */
interface Cmd {
  segments: string[];
  literals: string[];
}
/** What the assembler asked about a literal: the command so far, the marker, tooLarge. */
interface Offer {
  partial: string[];
  literal: string;
  tooLarge: boolean;
}

const cmd = (segments: string[], literals: string[] = []): Cmd => ({ segments, literals });
const asCmd = (raw: RawCommand): Cmd => ({ segments: raw.segments.map(text), literals: raw.literals.map(text) });
const marker = (l: LiteralSpec): string => `{${l.size}${l.nonSync ? '+' : ''}}`;

type Decide = (spec: LiteralSpec, partial: RawCommand, tooLarge: boolean) => boolean;

interface Run {
  commands: Cmd[];
  raw: RawCommand[];
  offers: Offer[];
  error: unknown;
  assembler: CommandAssembler;
}

/** Pushes private copies of `pieces`, overwritten once pushed, so a kept reference shows. */
function assemble(pieces: Buffer[], options: AssemblerOptions, decide: Decide = () => true): Run {
  const raw: RawCommand[] = [];
  const offers: Offer[] = [];
  const assembler = new CommandAssembler(
    {
      literal: (spec, partial, tooLarge) => {
        offers.push({ partial: partial.segments.map(text), literal: marker(spec), tooLarge });
        return decide(spec, partial, tooLarge);
      },
      command: (c) => raw.push(c),
    },
    options,
  );
  let error: unknown = null;
  try {
    for (const piece of pieces) {
      const chunk = Buffer.from(piece);
      feed(assembler, chunk);
      chunk.fill(0x7e);
    }
  } catch (err) {
    error = err;
  }
  return { commands: raw.map(asCmd), raw, offers, error, assembler };
}

/** `push` stops after each complete command; a caller pushes the rest again. */
function feed(assembler: CommandAssembler, chunk: Buffer): void {
  let off = 0;
  do {
    const n = assembler.push(chunk.subarray(off));
    if (n <= 0 && off < chunk.length) throw new Error(`push consumed ${n} of ${chunk.length - off} bytes`);
    off += n;
  } while (off < chunk.length);
}

function chunked(stream: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += size) out.push(stream.subarray(i, i + size));
  return out;
}

function* feeds(stream: Buffer): Generator<[string, Buffer[]]> {
  yield ['whole', [stream]];
  for (let at = 0; at <= stream.length; at++) yield [`split at ${at}`, [stream.subarray(0, at), stream.subarray(at)]];
  for (const size of CHUNK_SIZES) yield [`chunks of ${size}`, chunked(stream, size)];
}

/** However the stream is cut: these commands and these questions about literals, and idle at the end. */
function assemblesTo(t: ExecutionContext, stream: string, options: AssemblerOptions, decide: Decide, commands: Cmd[], offers?: Offer[]): void {
  let n = 0;
  for (const [label, pieces] of feeds(bytes(stream))) {
    const r = assemble(pieces, options, decide);
    if (r.error !== null) return void t.fail(`${label}: ${String(r.error)}`);
    if (!isDeepStrictEqual(r.commands, commands)) return void t.deepEqual(r.commands, commands, label);
    if (offers && !isDeepStrictEqual(r.offers, offers)) return void t.deepEqual(r.offers, offers, label);
    if (!r.assembler.idle) return void t.fail(`${label}: not idle after the whole stream`);
    n++;
  }
  t.pass(`${n} ways of cutting`);
}

const LIMITS: AssemblerOptions = { maxLineLength: 1024, maxLiteralSize: 255, maxCommandSize: 2048 };
const acceptAll: Decide = () => true;
const refuseAll: Decide = () => false;

// ---------------------------------------------------------------------------

const STREAM = [
  'a1 CAPABILITY\r\n',
  'a2 LOGIN {5}\r\nalice {6}\r\nsecret\r\n',
  'a3 LOGIN {5+}\r\nalice "pass word"\r\n',
  'a4 LOGIN {0}\r\n {0+}\r\n\r\n',
  'a5 ID ("name" "x" "version" NIL)\n',
  'a6 LOGIN {14}\r\nb1 LOGOUT\r\n{3} {3}\r\nx\r\n\r\n',
  'a7 NOOP\r\n',
].join('');

test('commands with literals: the same commands however the stream is cut', (t) => {
  assemblesTo(
    t,
    STREAM,
    LIMITS,
    acceptAll,
    [
      cmd(['a1 CAPABILITY']),
      cmd(['a2 LOGIN {5}', ' {6}', ''], ['alice', 'secret']),
      cmd(['a3 LOGIN {5+}', ' "pass word"'], ['alice']),
      cmd(['a4 LOGIN {0}', ' {0+}', ''], ['', '']),
      cmd(['a5 ID ("name" "x" "version" NIL)']),
      // Literal data that looks like a command and like a marker is data.
      cmd(['a6 LOGIN {14}', ' {3}', ''], ['b1 LOGOUT\r\n{3}', 'x\r\n']),
      cmd(['a7 NOOP']),
    ],
    [
      { partial: ['a2 LOGIN {5}'], literal: '{5}', tooLarge: false },
      { partial: ['a2 LOGIN {5}', ' {6}'], literal: '{6}', tooLarge: false },
      { partial: ['a3 LOGIN {5+}'], literal: '{5+}', tooLarge: false },
      { partial: ['a4 LOGIN {0}'], literal: '{0}', tooLarge: false },
      { partial: ['a4 LOGIN {0}', ' {0+}'], literal: '{0+}', tooLarge: false },
      { partial: ['a6 LOGIN {14}'], literal: '{14}', tooLarge: false },
      { partial: ['a6 LOGIN {14}', ' {3}'], literal: '{3}', tooLarge: false },
    ],
  );
});

test('{0}: an accepted empty literal is an empty string, the command goes on', (t) => {
  const r = assemble([bytes('a LOGIN {0}\r\n {3}\r\nabc\r\n')], LIMITS);
  t.deepEqual(r.commands, [cmd(['a LOGIN {0}', ' {3}', ''], ['', 'abc'])]);
});

test('a refused synchronising literal: the command is dropped, the next bytes are a new command', (t) => {
  // C: a LOGIN {300}      (the client waits for "+", gets "a NO LOGIN failed")
  // C: b NOOP
  assemblesTo(t, 'a LOGIN {300}\r\nb NOOP\r\n', LIMITS, acceptAll, [cmd(['b NOOP'])], [{ partial: ['a LOGIN {300}'], literal: '{300}', tooLarge: true }]);
  assemblesTo(t, 'a LOGIN {5}\r\nb NOOP\r\n', LIMITS, refuseAll, [cmd(['b NOOP'])], [{ partial: ['a LOGIN {5}'], literal: '{5}', tooLarge: false }]);
});

test('a synchronising literal over maxCommandSize is refused even if the caller accepts', (t) => {
  // 12 + 10 bytes fit in 30; 12 + 10 + 5 + 10 do not.
  const options = { ...LIMITS, maxCommandSize: 30 };
  assemblesTo(t, 'a LOGIN {10}\r\n0123456789 {10}\r\nb NOOP\r\n', options, acceptAll, [cmd(['b NOOP'])], [
    { partial: ['a LOGIN {10}'], literal: '{10}', tooLarge: false },
    { partial: ['a LOGIN {10}', ' {10}'], literal: '{10}', tooLarge: true },
  ]);
});

test('a refused {n+} literal: its bytes never come out as a command (SPEC §11 B11)', (t) => {
  // C: a LOGIN {10+}       refused with "a NO LOGIN failed"; the client sends the data anyway
  // C: b LOGOUT<CRLF>      the literal's 10 bytes, not a command
  // C:  secret             the rest of command a
  // C: c NOOP
  const stream = 'a LOGIN {10+}\r\nb LOGOUT\r\n secret\r\nc NOOP\r\n';
  assemblesTo(t, stream, LIMITS, refuseAll, [cmd(['c NOOP'])], [{ partial: ['a LOGIN {10+}'], literal: '{10+}', tooLarge: false }]);
});

test('a {n+} literal over maxCommandSize is skipped, not read as commands', (t) => {
  const stream = 'a LOGIN {10+}\r\nb LOGOUT\r\n secret\r\nc NOOP\r\n';
  assemblesTo(t, stream, { ...LIMITS, maxCommandSize: 16 }, acceptAll, [cmd(['c NOOP'])], [{ partial: ['a LOGIN {10+}'], literal: '{10+}', tooLarge: true }]);
});

test('a {n+} literal over maxLiteralSize is a ProtocolError: it cannot be skipped safely', (t) => {
  const stream = bytes(`a1 NOOP\r\na LOGIN {300+}\r\nb LOGOUT\r\n${'x'.repeat(290)}\r\nc NOOP\r\n`);
  for (const [label, pieces] of feeds(stream)) {
    const r = assemble(pieces, LIMITS, acceptAll);
    t.true(r.error instanceof ProtocolError, label);
    t.is((r.error as ProtocolError).code, 'IMAPPROXY_ERR_LIMIT', label);
    t.deepEqual(r.commands, [cmd(['a1 NOOP'])], label);
    t.deepEqual(r.offers, [{ partial: ['a LOGIN {300+}'], literal: '{300+}', tooLarge: true }], label);
  }
});

test('a refused command that goes on with more {n+} literals is skipped to its end', (t) => {
  const stream = 'a X {3+}\r\nabc {8+}\r\nb NOOP\r\n\r\nc NOOP\r\n';
  assemblesTo(t, stream, LIMITS, refuseAll, [cmd(['c NOOP'])], [{ partial: ['a X {3+}'], literal: '{3+}', tooLarge: false }]);
});

test('a refused command that goes on with a synchronising literal ends there', (t) => {
  // The client sent `{3+}` data and then waits for "+" that never comes: its
  // next bytes are a new command and must not be swallowed with the old one.
  const stream = 'a X {3+}\r\nabc {5}\r\nb NOOP\r\nc NOOP\r\n';
  assemblesTo(t, stream, LIMITS, refuseAll, [cmd(['b NOOP']), cmd(['c NOOP'])], [{ partial: ['a X {3+}'], literal: '{3+}', tooLarge: false }]);
});

test('{0+} refused: nothing to skip, the rest of the line is dropped with it', (t) => {
  assemblesTo(t, 'a LOGIN {0+}\r\n x\r\nb NOOP\r\n', LIMITS, refuseAll, [cmd(['b NOOP'])]);
});

test('refusing the second literal drops the whole command, including the first', (t) => {
  let n = 0;
  assemblesTo(t, 'a LOGIN {5}\r\nalice {6}\r\nb NOOP\r\n', LIMITS, () => n++ % 2 === 0, [cmd(['b NOOP'])]);
});

test('the partial command handed to literal() is not changed afterwards', (t) => {
  const partials: RawCommand[] = [];
  const assembler = new CommandAssembler(
    {
      literal: (_spec, partial) => {
        partials.push(partial);
        return false;
      },
      command: () => {},
    },
    LIMITS,
  );
  assembler.push(bytes('a LOGIN {5}\r\nb LOGIN {3}\r\n'));
  t.deepEqual(partials.map(asCmd), [cmd(['a LOGIN {5}']), cmd(['b LOGIN {3}'])]);
});

test('push stops after each complete command and returns the bytes it consumed', (t) => {
  const seen: string[] = [];
  const assembler = new CommandAssembler({ literal: () => true, command: (c) => seen.push(text(c.segments[0]!)) }, LIMITS);
  const chunk = bytes('a NOOP\r\nb LOGIN {1}\r\nx y\r\nc NO');
  t.is(assembler.push(chunk), 8);
  t.deepEqual(seen, ['a NOOP']);
  t.true(assembler.idle);
  t.is(assembler.push(chunk.subarray(8)), 18);
  t.deepEqual(seen, ['a NOOP', 'b LOGIN {1}']);
  t.is(assembler.push(chunk.subarray(26)), 4);
  t.false(assembler.idle);
  t.is(assembler.push(bytes('OP\r\nd')), 4);
  t.deepEqual(seen, ['a NOOP', 'b LOGIN {1}', 'c NOOP']);
});

test('idle: only between commands', (t) => {
  const assembler = new CommandAssembler({ literal: () => true, command: () => {} }, LIMITS);
  const states: boolean[] = [];
  for (const piece of ['a LOGIN', ' {2}\r\n', 'x', 'y', ' z', '\r\n']) {
    feed(assembler, bytes(piece));
    states.push(assembler.idle);
  }
  t.deepEqual(states, [false, false, false, false, false, true]);
});

test('a line over maxLineLength is a ProtocolError', (t) => {
  const r = assemble([bytes(`a LOGIN ${'x'.repeat(2000)}\r\n`)], LIMITS);
  t.true(r.error instanceof ProtocolError);
  t.is((r.error as ProtocolError).code, 'IMAPPROXY_ERR_LIMIT');
  t.deepEqual(r.commands, []);
});

// ---------------------------------------------------------------------------
// Properties over generated, valid command streams.

type GenArg =
  | { kind: 'atom'; value: string }
  | { kind: 'quoted'; value: Buffer }
  | { kind: 'literal'; value: Buffer; nonSync: boolean }
  | { kind: 'nil' }
  | { kind: 'list'; items: GenArg[] };

interface GenCommand {
  tag: string;
  name: string;
  args: GenArg[];
  eol: '\r\n' | '\n';
}

const atomArb = fc.stringMatching(/^[A-Za-z0-9!#$&'+,\-./:;<=>?@[\]^_`|}~]{1,10}$/).filter((s) => s.toUpperCase() !== 'NIL');
const quotableArb = fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a.filter((b) => b !== 0 && b !== 0x0a && b !== 0x0d)));
const literalDataArb = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  fc.constantFrom('b LOGOUT\r\n', '{5}\r\n', '\r\n', '\n', 'x {3+}').map(bytes),
);

const { arg: genArgArb } = fc.letrec<{ arg: GenArg }>((tie) => ({
  arg: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    atomArb.map((value): GenArg => ({ kind: 'atom', value })),
    quotableArb.map((value): GenArg => ({ kind: 'quoted', value })),
    fc.record({ value: literalDataArb, nonSync: fc.boolean() }).map(({ value, nonSync }): GenArg => ({ kind: 'literal', value, nonSync })),
    fc.constant<GenArg>({ kind: 'nil' }),
    fc.array(tie('arg'), { maxLength: 4 }).map((items): GenArg => ({ kind: 'list', items })),
  ),
}));

const commandArb: fc.Arbitrary<GenCommand> = fc.record({
  tag: fc.stringMatching(/^[A-Za-z0-9.]{1,8}$/),
  name: fc.constantFrom('LOGIN', 'ID', 'NOOP', 'CAPABILITY', 'AUTHENTICATE', 'XPROXY_TRACE'),
  args: fc.array(genArgArb, { maxLength: 5 }),
  eol: fc.constantFrom('\r\n' as const, '\n' as const),
});

/** Writes a command to the wire and the segments/literals the assembler must make of it. */
function write(c: GenCommand): { wire: string; expected: Cmd } {
  let wire = '';
  let current = '';
  const segments: string[] = [];
  const literals: string[] = [];
  const put = (s: string) => {
    wire += s;
    current += s;
  };
  const putArg = (a: GenArg): void => {
    switch (a.kind) {
      case 'atom':
        return put(a.value);
      case 'nil':
        return put('NIL');
      case 'quoted':
        return put(`"${text(a.value).replace(/["\\]/g, '\\$&')}"`);
      case 'literal':
        put(`{${a.value.length}${a.nonSync ? '+' : ''}}`);
        segments.push(current);
        literals.push(text(a.value));
        current = '';
        wire += `\r\n${text(a.value)}`;
        return;
      case 'list':
        put('(');
        a.items.forEach((item, i) => {
          if (i > 0) put(' ');
          putArg(item);
        });
        return put(')');
    }
  };
  put(`${c.tag} ${c.name}`);
  for (const a of c.args) {
    put(' ');
    putArg(a);
  }
  segments.push(current);
  wire += c.eol;
  return { wire, expected: { segments, literals } };
}

/** The parser's view of a generated argument. */
function parsedForm(a: GenArg): unknown {
  switch (a.kind) {
    case 'atom':
      return { kind: 'atom', value: a.value };
    case 'nil':
      return { kind: 'nil' };
    case 'quoted':
      return { kind: 'string', value: text(a.value), literal: false };
    case 'literal':
      return { kind: 'string', value: text(a.value), literal: true };
    case 'list':
      return { kind: 'list', items: a.items.map(parsedForm) };
  }
}

function comparable(a: Arg): unknown {
  if (a.kind === 'string') return { kind: 'string', value: text(a.value), literal: a.literal };
  if (a.kind === 'list') return { kind: 'list', items: a.items.map(comparable) };
  return a;
}

function hasLiteral(args: GenArg[], test: (a: Extract<GenArg, { kind: 'literal' }>) => boolean): boolean {
  return args.some((a) => (a.kind === 'literal' && test(a)) || (a.kind === 'list' && hasLiteral(a.items, test)));
}

const cutsArb = fc.array(fc.nat(), { maxLength: 12 });
function cut(stream: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    pieces.push(stream.subarray(from, c));
    from = c;
  }
  pieces.push(stream.subarray(from));
  return pieces;
}

const BIG: AssemblerOptions = { maxLineLength: 65536, maxLiteralSize: 65536, maxCommandSize: 1 << 20 };

test('property: valid command streams cut anywhere give the commands written, and parse back to their arguments', (t) => {
  fc.assert(
    fc.property(fc.array(commandArb, { minLength: 1, maxLength: 6 }), cutsArb, (commands, cuts) => {
      const written = commands.map(write);
      const stream = bytes(written.map((w) => w.wire).join(''));
      const whole = assemble([stream], BIG);
      const r = assemble(cut(stream, cuts), BIG);
      if (r.error !== null) throw r.error;
      assert.deepEqual(r.commands, whole.commands);
      assert.deepEqual(
        r.commands,
        written.map((w) => w.expected),
      );
      assert.ok(r.assembler.idle);
      r.raw.forEach((raw, i) => {
        const head = readTagAndName(raw.segments[0]!);
        if (!('name' in head)) throw new Error(`tag/name not read: ${JSON.stringify(head)}`);
        assert.equal(head.tag, commands[i]!.tag);
        assert.equal(head.name, commands[i]!.name);
        assert.deepEqual(parseArguments(raw, head.rest).map(comparable), commands[i]!.args.map(parsedForm));
      });
    }),
    { numRuns: 1500 },
  );
  t.pass();
});

test('property: refusing every odd-sized {n+} literal drops exactly the commands that have one', (t) => {
  // A LITERAL+ client sends every literal's bytes whatever the proxy answers.
  const nonSyncOnly = commandArb.map((c) => {
    const fix = (a: GenArg): GenArg => (a.kind === 'literal' ? { ...a, nonSync: true } : a.kind === 'list' ? { ...a, items: a.items.map(fix) } : a);
    return { ...c, args: c.args.map(fix) };
  });
  fc.assert(
    fc.property(fc.array(nonSyncOnly, { minLength: 1, maxLength: 6 }), cutsArb, (commands, cuts) => {
      const written = commands.map(write);
      const stream = bytes(written.map((w) => w.wire).join(''));
      const r = assemble(cut(stream, cuts), BIG, (spec) => spec.size % 2 === 0);
      if (r.error !== null) throw r.error;
      const kept = commands.map((c, i) => (hasLiteral(c.args, (a) => a.value.length % 2 === 1) ? null : written[i]!.expected)).filter((c) => c !== null);
      assert.deepEqual(r.commands, kept);
    }),
    { numRuns: 1500 },
  );
  t.pass();
});

test('property: arbitrary bytes throw nothing but ProtocolError, and what comes out parses or gives ArgumentError', (t) => {
  const soup = fc
    .array(
      fc.oneof(
        fc.constantFrom('\r\n', '\n', '{', '}', '+}', ' ', '(', ')', '"', '\\', '\x00', '\xff', 'a LOGIN ', 'NIL', '{0}\r\n', '{3+}\r\n', '{99999999999999999999}\r\n'),
        fc.stringMatching(/^\{[0-9]{1,3}\+?\}\r?\n$/),
        fc.uint8Array({ maxLength: 16 }).map((a) => text(Buffer.from(a))),
      ),
      { maxLength: 40 },
    )
    .map((parts) => bytes(parts.join('')));
  const anyBytes = fc.oneof(soup, fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)));
  fc.assert(
    fc.property(anyBytes, cutsArb, fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), (stream, cuts, answers) => {
      let n = 0;
      const r = assemble(cut(stream, cuts), { maxLineLength: 64, maxLiteralSize: 32, maxCommandSize: 100 }, () => answers[n++ % answers.length]!);
      if (r.error !== null && !(r.error instanceof ProtocolError)) throw r.error;
      for (const raw of r.raw) {
        const head = readTagAndName(raw.segments[0]!);
        if (!('name' in head)) continue;
        try {
          parseArguments(raw, head.rest);
        } catch (err) {
          if (!(err instanceof ArgumentError)) throw err;
        }
      }
    }),
    { numRuns: 3000 },
  );
  t.pass();
});
