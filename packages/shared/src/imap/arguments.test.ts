// Tag, command name and arguments of whole pre-auth commands. Commands are
// written as they travel on the wire and go through the CommandAssembler
// first, so literals arrive exactly as the session will hand them over.

import test from 'ava';
import fc from 'fast-check';
import { ArgumentError, argBytes, isValidTag, parseArguments, readTagAndName, type Arg } from './arguments.js';
import { CommandAssembler, type RawCommand } from './command-assembler.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const text = (b: Buffer): string => b.toString('latin1');

/** The one command in `wire` (CRLF added), every literal accepted. */
function command(wire: string): RawCommand {
  const out: RawCommand[] = [];
  const assembler = new CommandAssembler({ literal: () => true, command: (c) => out.push(c) }, { maxLineLength: 8192, maxLiteralSize: 8192, maxCommandSize: 65536 });
  const chunk = bytes(`${wire}\r\n`);
  let off = 0;
  while (off < chunk.length) off += assembler.push(chunk.subarray(off));
  if (out.length !== 1) throw new Error(`${out.length} commands in ${JSON.stringify(wire)}`);
  return out[0]!;
}

/** Arguments in a form that compares and prints well: strings as text. */
type Shown = { atom: string } | { string: string; literal?: true } | 'NIL' | Shown[];
function show(a: Arg): Shown {
  switch (a.kind) {
    case 'atom':
      return { atom: a.value };
    case 'string':
      return a.literal ? { string: text(a.value), literal: true } : { string: text(a.value) };
    case 'nil':
      return 'NIL';
    case 'list':
      return a.items.map(show);
  }
}

/** C: `wire` → the arguments after the command name. */
function args(wire: string): Shown[] {
  const cmd = command(wire);
  const head = readTagAndName(cmd.segments[0]!);
  if (!('name' in head)) throw new Error(`no command name in ${JSON.stringify(wire)}`);
  return parseArguments(cmd, head.rest).map(show);
}

function argumentError(wire: string): string {
  try {
    args(wire);
  } catch (err) {
    if (err instanceof ArgumentError) return err.message;
    throw err;
  }
  throw new Error(`no ArgumentError for ${JSON.stringify(wire)}`);
}

const atom = (s: string): Shown => ({ atom: s });
const str = (s: string): Shown => ({ string: s });
const lit = (s: string): Shown => ({ string: s, literal: true });

// ---------------------------------------------------------------------------
// readTagAndName

test('readTagAndName: tag, upper-cased command name, offset of the arguments', (t) => {
  t.deepEqual(readTagAndName(bytes('a1 NOOP')), { tag: 'a1', name: 'NOOP', rest: 7 });
  t.deepEqual(readTagAndName(bytes('a1 login alice secret')), { tag: 'a1', name: 'LOGIN', rest: 8 });
  t.deepEqual(readTagAndName(bytes('A.1 Capability')), { tag: 'A.1', name: 'CAPABILITY', rest: 14 });
  t.deepEqual(readTagAndName(bytes('x LOGIN {5}')), { tag: 'x', name: 'LOGIN', rest: 7 });
});

test('readTagAndName: invalid tags give "tag" (C: * NOOP, C: a(9 NOOP, SPEC §4.3)', (t) => {
  for (const line of ['* NOOP', 'a(9 NOOP', '', ' NOOP', 'a) NOOP', 'a{1} NOOP', 'a" NOOP', 'a% NOOP', 'a* NOOP', 'a\\ NOOP', 'a+ NOOP', 'a\x01 NOOP', 'a\x7f NOOP', 'a\xff NOOP', `${'x'.repeat(1025)} NOOP`]) {
    t.deepEqual(readTagAndName(bytes(line)), { tag: null, error: 'tag' }, JSON.stringify(line));
  }
});

test('readTagAndName: a tag without a command gives "null" (C: a → a BAD Null command)', (t) => {
  t.deepEqual(readTagAndName(bytes('a1')), { tag: 'a1', error: 'null' });
  t.deepEqual(readTagAndName(bytes('a1 ')), { tag: 'a1', error: 'null' });
  // SPEC §4.3: a double space gives an empty command.
  t.deepEqual(readTagAndName(bytes('a1  NOOP')), { tag: 'a1', error: 'null' });
});

test('isValidTag: RFC 3501 tag = 1*<ASTRING-CHAR except "+">', (t) => {
  for (const tag of ['a', 'A001', '1', 'x.y-z', 'a]', '}', '~!#$&\'', 'x'.repeat(1024)]) t.true(isValidTag(tag), tag);
  for (const tag of ['', '*', '+', 'a+', '(', 'a b', '%', '"', '\\', '{', '\x00', '\x7f', '\u00e9', 'x'.repeat(1025)]) t.false(isValidTag(tag), JSON.stringify(tag));
});

// ---------------------------------------------------------------------------
// parseArguments

test('atoms, quoted strings and literals', (t) => {
  t.deepEqual(args('a LOGIN alice secret'), [atom('alice'), atom('secret')]);
  t.deepEqual(args('a LOGIN "alice" "my secret"'), [str('alice'), str('my secret')]);
  t.deepEqual(args('a LOGIN {5}\r\nalice {9}\r\nmy secret'), [lit('alice'), lit('my secret')]);
  t.deepEqual(args('a LOGIN {5+}\r\nalice "x"'), [lit('alice'), str('x')]);
  t.deepEqual(args('a LOGIN "" {0}\r\n'), [str(''), lit('')]);
  t.deepEqual(args('a NOOP'), []);
});

test('quoted strings: \\" and \\\\ are unescaped, 8-bit bytes kept', (t) => {
  t.deepEqual(args('a LOGIN "al\\"ice" "back\\\\slash"'), [str('al"ice'), str('back\\slash')]);
  t.deepEqual(args('a LOGIN "\\\\\\"" "\xe9t\xe9"'), [str('\\"'), str('\xe9t\xe9')]);
  t.deepEqual(args('a LOGIN "a b  c" "(x)"'), [str('a b  c'), str('(x)')]);
});

test('literal data is taken as is: CRLF, quotes, parentheses, NUL, markers', (t) => {
  const data = '"(\r\n{5}\r\n\x00\xff';
  t.deepEqual(args(`a LOGIN {${data.length}}\r\n${data} x`), [lit(data), atom('x')]);
});

test('NIL in any case is NIL; quoted "NIL" is a string', (t) => {
  t.deepEqual(args('a ID NIL'), ['NIL']);
  t.deepEqual(args('a ID nil'), ['NIL']);
  t.deepEqual(args('a ID "NIL" NILS'), [str('NIL'), atom('NILS')]);
});

test('lists: ID ("name" "x" "version" NIL), (), nested, literals inside', (t) => {
  t.deepEqual(args('a ID ("name" "x" "version" NIL)'), [[str('name'), str('x'), str('version'), 'NIL']]);
  t.deepEqual(args('a ID ()'), [[]]);
  t.deepEqual(args('a ID (() (()))'), [[[], [[]]]]);
  t.deepEqual(args('a X (a (b ("c" {1}\r\nd)) ()) e'), [[atom('a'), [atom('b'), [str('c'), lit('d')]], []], atom('e')]);
  t.deepEqual(args('a ID ("name" {3}\r\nabc)'), [[str('name'), lit('abc')]]);
  t.deepEqual(args('a ID ("x-originating-ip" "192.0.2.1") NIL'), [[str('x-originating-ip'), str('192.0.2.1')], 'NIL']);
});

test('atoms may hold `]` and `[` (BODY[]), not list wildcards', (t) => {
  t.deepEqual(args('a X BODY[] ]x'), [atom('BODY[]'), atom(']x')]);
});

test('`alice`, `"alice"`, `{5}alice` and `{5+}alice` are the same bytes (SPEC §11 B11)', (t) => {
  const forms = ['a LOGIN alice x', 'a LOGIN "alice" x', 'a LOGIN {5}\r\nalice x', 'a LOGIN {5+}\r\nalice x'];
  for (const wire of forms) {
    const cmd = command(wire);
    const head = readTagAndName(cmd.segments[0]!);
    if (!('name' in head)) return void t.fail(wire);
    const [user] = parseArguments(cmd, head.rest);
    t.deepEqual(argBytes(user), bytes('alice'), JSON.stringify(wire));
  }
});

test('argBytes: only string-like arguments have bytes', (t) => {
  t.deepEqual(argBytes({ kind: 'atom', value: 'x\xe9' }), bytes('x\xe9'));
  t.is(argBytes({ kind: 'nil' }), null);
  t.is(argBytes({ kind: 'list', items: [] }), null);
  t.is(argBytes(undefined), null);
});

test('syntax errors are ArgumentError', (t) => {
  const bad = [
    'a LOGIN "alice', // unterminated quoted string
    'a LOGIN "al\\ice" x', // bad escape
    'a LOGIN "alice\\', // escape at the end
    'a LOGIN "a\rb" x', // CR in a quoted string
    'a LOGIN "a\x00b" x', // NUL in a quoted string
    'a ID ("name" "x"', // unbalanced
    'a ID ((x)',
    'a ID "x")',
    'a ID )',
    'a LOGIN alice  secret', // double space
    'a LOGIN alice ', // trailing space
    'a ID ( x)',
    'a ID (x )',
    'a ID (a)(b)', // no space between arguments
    'a LOGIN "a"b',
    'a LOGIN a"b"',
    'a LOGIN \xffx y', // 8-bit atom
    'a LOGIN a%',
    'a LOGIN {5} x', // a marker not at the end of the line is no literal
    'a LOGIN {x {5}\r\nalice', // junk inside a literal marker
    'a LOGIN {}',
    'a LOGIN ~{5}\r\nalice', // literal8 is not a string
  ];
  for (const wire of bad) t.notThrows(() => argumentError(wire), JSON.stringify(wire));
});

// ---------------------------------------------------------------------------
// Properties

test('property: arbitrary bytes never throw anything but ArgumentError', (t) => {
  const soup = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
    fc
      .array(fc.constantFrom('a', ' ', '  ', '(', ')', '"', '\\', '\\"', '{', '}', '{5}', 'NIL', '\x00', '\r', '\xff', ']', 'LOGIN'), { maxLength: 40 })
      .map((parts) => bytes(parts.join(''))),
  );
  fc.assert(
    fc.property(soup, fc.nat(), (line, at) => {
      const cmd: RawCommand = { segments: [line], literals: [] };
      const head = readTagAndName(line);
      const starts = [at % (line.length + 1)];
      if ('name' in head) starts.push(head.rest);
      for (const start of starts) {
        try {
          parseArguments(cmd, start);
        } catch (err) {
          if (!(err instanceof ArgumentError)) throw err;
        }
      }
    }),
    { numRuns: 5000 },
  );
  t.pass();
});
