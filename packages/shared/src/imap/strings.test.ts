// Strings the proxy sends to the server: quoted when they can be, literal
// otherwise, and always read back by an IMAP parser as the original bytes.

import test from 'ava';
import fc from 'fast-check';
import { argBytes, parseArguments, readTagAndName } from './arguments.js';
import { CommandAssembler, type RawCommand } from './command-assembler.js';
import { encodeString, quote, type EncodedPart } from './strings.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

/** The part as a readable string: `"..."` text, or `{n}` + data for a literal. */
function shown(part: EncodedPart): string {
  return 'text' in part ? part.text.toString('latin1') : `{${part.literal.length}}${part.literal.toString('latin1')}`;
}

test('encodeString: plain text is quoted', (t) => {
  t.is(shown(encodeString(bytes('alice'))), '"alice"');
  t.is(shown(encodeString(bytes('my secret'))), '"my secret"');
  t.is(shown(encodeString(bytes(''))), '""');
  t.is(shown(encodeString(bytes('(x) {5} %*'))), '"(x) {5} %*"');
});

test('encodeString: " and \\ are escaped inside quotes', (t) => {
  t.is(shown(encodeString(bytes('al"ice'))), '"al\\"ice"');
  t.is(shown(encodeString(bytes('back\\slash'))), '"back\\\\slash"');
  t.is(shown(encodeString(bytes('"\\"'))), '"\\"\\\\\\""');
});

test('encodeString: 8-bit bytes, CR, LF and NUL need a literal', (t) => {
  for (const value of ['\xe9', 'p\xc3\xa4ss', 'a\rb', 'a\nb', 'a\r\nb', 'a\x00b', '\x80']) {
    const part = encodeString(bytes(value));
    t.true('literal' in part, JSON.stringify(value));
    t.deepEqual('literal' in part && part.literal, bytes(value));
  }
  // Other control characters are still quotable.
  t.is(shown(encodeString(bytes('a\tb\x01'))), '"a\tb\x01"');
});

test('quote: text the proxy makes up itself', (t) => {
  t.is(quote('x-originating-ip'), '"x-originating-ip"');
  t.is(quote('say "hi" \\o/'), '"say \\"hi\\" \\\\o/"');
  t.is(quote('line1\r\nline2'), '"line1  line2"');
});

/** S: what an IMAP server parses out of `a LOGIN <encoded> x`. */
function serverReads(part: EncodedPart): Buffer | null {
  const wire = 'text' in part ? Buffer.concat([bytes('a LOGIN '), part.text, bytes(' x\r\n')]) : Buffer.concat([bytes(`a LOGIN {${part.literal.length}}\r\n`), part.literal, bytes(' x\r\n')]);
  const out: RawCommand[] = [];
  const assembler = new CommandAssembler({ literal: () => true, command: (c) => out.push(c) }, { maxLineLength: 8192, maxLiteralSize: 8192, maxCommandSize: 65536 });
  let off = 0;
  while (off < wire.length) off += assembler.push(wire.subarray(off));
  if (out.length !== 1) throw new Error(`${out.length} commands`);
  const head = readTagAndName(out[0]!.segments[0]!);
  if (!('name' in head)) throw new Error('no command name');
  const args = parseArguments(out[0]!, head.rest);
  if (args.length !== 2) throw new Error(`${args.length} arguments`);
  return argBytes(args[0]);
}

test('property: any bytes, encoded, are read back as the same bytes', (t) => {
  const value = fc.oneof(
    fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
    fc.array(fc.constantFrom('a', ' ', '"', '\\', '{5}', '(', ')', '\r', '\n', '\x00', '\xff', 'NIL'), { maxLength: 20 }).map((p) => bytes(p.join(''))),
  );
  fc.assert(
    fc.property(value, (v) => {
      const read = serverReads(encodeString(v));
      return read !== null && read.equals(v);
    }),
    { numRuns: 3000 },
  );
  t.pass();
});
