// The framer is a pure function of bytes in, events out, so it is tested the
// way node-postgres tests its parser ("chunked parsing"): each stream is fed
// whole, split in two at every byte offset, and in fixed chunks of 1, 2, 3, 4,
// 5, 7, 13, 64 and 128 bytes, and must give the same events every time.

import { isDeepStrictEqual } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import { ImapScanner, parseLiteralMarker, type LiteralSpec, type ScannerEvents, type ScannerOptions, type Segment } from './scanner.js';

const LF = 0x0a;
const CR = 0x0d;
const CHUNK_SIZES = [1, 2, 3, 4, 5, 7, 13, 64, 128];

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const text = (b: Buffer): string => b.toString('latin1');

// ---------------------------------------------------------------------------
// Events in a form that reads like the protocol.

type SegEv = { kind: 'seg'; head: string; length: number; first: boolean; literal: string | null; tooLarge: boolean };
type Ev = SegEv | { kind: 'data'; bytes: string };

const marker = (l: LiteralSpec | null): string | null => (l ? `{${l.size}${l.nonSync ? '+' : ''}}` : null);

/** A segment that starts a command or response. */
const seg = (head: string, literal: string | null = null, length = head.length): SegEv => ({ kind: 'seg', head, length, first: true, literal, tooLarge: false });
/** A segment that goes on after a literal. */
const more = (head: string, literal: string | null = null, length = head.length): SegEv => ({ kind: 'seg', head, length, first: false, literal, tooLarge: false });
/** A complete literal's data. */
const data = (s: string): Ev => ({ kind: 'data', bytes: s });

/**
 * Records the scanner's events and checks the offsets it reports: every byte
 * of every chunk belongs to exactly one segment (line ending included) or one
 * literal, in order, so a relay forwarding `chunk[...end)` and literal ranges
 * forwards the stream unchanged.
 */
class Recorder implements ScannerEvents {
  readonly events: Ev[] = [];
  /** Everything accounted for so far, in stream order. */
  readonly consumed: Buffer[] = [];
  scanner!: ImapScanner;
  private carry: Buffer[] = [];
  private dataParts: Buffer[] = [];
  private chunk: Buffer | null = null;
  private cursor = 0;

  constructor(
    private readonly headLimit: number,
    private readonly onSegment?: (seg: Segment, scanner: ImapScanner) => void,
  ) {}

  begin(chunk: Buffer): void {
    this.chunk = chunk;
    this.cursor = 0;
  }

  /** After a push returned: the rest of the chunk is a partial segment. */
  end(): void {
    const chunk = this.chunk!;
    if (this.cursor < chunk.length) this.carry.push(Buffer.from(chunk.subarray(this.cursor)));
    this.chunk = null;
  }

  /** Bytes of a segment not finished yet (literal pieces are in `consumed` already). */
  pending(): Buffer {
    return Buffer.concat(this.carry);
  }

  segment(s: Segment, chunk: Buffer, end: number): void {
    check(chunk === this.chunk, 'segment: not the chunk being pushed');
    check(end > this.cursor && end <= chunk.length, `segment: end ${end} outside (${this.cursor}, ${chunk.length}]`);
    check(chunk[end - 1] === LF, 'segment: end is not just past a LF');
    const own = chunk.subarray(this.cursor, end);
    check(own.indexOf(LF) === end - 1 - this.cursor, 'segment: a LF inside the segment');
    const raw = Buffer.concat([...this.carry, own]);
    this.carry = [];
    this.cursor = end;
    this.consumed.push(raw);
    let line = raw.subarray(0, raw.length - 1);
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    check(s.length === line.length, `segment: length ${s.length}, the line has ${line.length} bytes`);
    check(s.head.length === Math.min(line.length, this.headLimit), `segment: head of ${s.head.length} bytes`);
    check(s.head.equals(line.subarray(0, s.head.length)), 'segment: head is not the start of the line');
    this.events.push({ kind: 'seg', head: text(s.head), length: s.length, first: s.first, literal: marker(s.literal), tooLarge: s.literalTooLarge });
    this.onSegment?.(s, this.scanner);
  }

  literal(chunk: Buffer, start: number, end: number, last: boolean): void {
    check(chunk === this.chunk, 'literal: not the chunk being pushed');
    check(start === this.cursor, `literal: starts at ${start}, expected ${this.cursor}`);
    check(end > start && end <= chunk.length, `literal: bad range [${start}, ${end})`);
    check(this.carry.length === 0, 'literal: inside a segment');
    this.cursor = end;
    const part = Buffer.from(chunk.subarray(start, end));
    this.consumed.push(part);
    this.dataParts.push(part);
    if (last) {
      this.events.push({ kind: 'data', bytes: text(Buffer.concat(this.dataParts)) });
      this.dataParts = [];
    }
  }
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`scanner contract: ${what}`);
}

interface Run {
  events: Ev[];
  error: unknown;
  scanner: ImapScanner;
  recorder: Recorder;
}

/**
 * Pushes `pieces` one by one. Each piece is a private copy that is overwritten
 * once pushed, so anything the scanner kept without copying shows up as `~`.
 */
function run(pieces: Buffer[], options: ScannerOptions, onSegment?: (seg: Segment, scanner: ImapScanner) => void): Run {
  const recorder = new Recorder(options.headLimit ?? 1024, onSegment);
  const scanner = new ImapScanner(recorder, options);
  recorder.scanner = scanner;
  let error: unknown = null;
  try {
    for (const piece of pieces) {
      const chunk = Buffer.from(piece);
      recorder.begin(chunk);
      scanner.push(chunk);
      recorder.end();
      chunk.fill(0x7e);
    }
  } catch (err) {
    error = err;
  }
  if (error === null) {
    const seen = Buffer.concat([...recorder.consumed, recorder.pending()]);
    check(seen.equals(Buffer.concat(pieces)), 'the events do not account for every byte');
  }
  return { events: recorder.events, error, scanner, recorder };
}

function chunked(stream: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += size) out.push(stream.subarray(i, i + size));
  return out;
}

/** Every way of feeding `stream` the chunked-parsing tests use, with a label. */
function* feeds(stream: Buffer): Generator<[string, Buffer[]]> {
  yield ['whole', [stream]];
  for (let at = 0; at <= stream.length; at++) yield [`split at ${at}`, [stream.subarray(0, at), stream.subarray(at)]];
  for (const size of CHUNK_SIZES) yield [`chunks of ${size}`, chunked(stream, size)];
}

/** The stream gives exactly `expected` however it is cut. Reports the first cut that doesn't. */
function scansTo(t: ExecutionContext, stream: Buffer, options: ScannerOptions, expected: Ev[]): void {
  let cuts = 0;
  for (const [label, pieces] of feeds(stream)) {
    const r = run(pieces, options);
    if (r.error !== null) {
      t.fail(`${label}: ${String(r.error)}`);
      return;
    }
    if (!isDeepStrictEqual(r.events, expected)) {
      t.deepEqual(r.events, expected, label);
      return;
    }
    if (!r.scanner.atBoundary) {
      t.fail(`${label}: not at a boundary after the whole stream`);
      return;
    }
    cuts++;
  }
  t.pass(`${cuts} ways of cutting ${stream.length} bytes`);
}

const CLIENT = { maxLineLength: 8192, maxLiteralSize: 65536 };
const SERVER = { maxLineLength: 65536, maxLiteralSize: Infinity };

// ---------------------------------------------------------------------------
// Client commands.

const APPEND_BODY = 'Subject: {5}\r\nb1 LOGOUT\r\n\nc1 LOGIN {3+}\r\nend';

const CLIENT_STREAM = bytes(
  [
    'a1 CAPABILITY\r\n',
    'a2 LOGIN {5}\r\nalice {6}\r\nsecret\r\n',
    'a3 LOGIN {5+}\r\nalice {0+}\r\n\r\n',
    'a4 ID ("name" "x" "version" NIL)\r\n',
    `a5 APPEND INBOX (\\Seen) {${APPEND_BODY.length}}\r\n${APPEND_BODY}\r\n`,
    'a6 LOGIN {0}\r\n {3}\r\nabc\r\n',
    'a7 NOOP\n',
    'a8 APPEND INBOX ~{5}\r\n\x00\xff\r\n\x01\r\n',
    '\r\n',
    'a9 LOGOUT\r\n',
  ].join(''),
);

const CLIENT_EVENTS: Ev[] = [
  seg('a1 CAPABILITY'),
  seg('a2 LOGIN {5}', '{5}'),
  data('alice'),
  more(' {6}', '{6}'),
  data('secret'),
  more(''),
  seg('a3 LOGIN {5+}', '{5+}'),
  data('alice'),
  more(' {0+}', '{0+}'),
  // `{0+}`: no data at all, the next line goes on with the same command.
  more(''),
  seg('a4 ID ("name" "x" "version" NIL)'),
  seg(`a5 APPEND INBOX (\\Seen) {${APPEND_BODY.length}}`, `{${APPEND_BODY.length}}`),
  data(APPEND_BODY),
  more(''),
  seg('a6 LOGIN {0}', '{0}'),
  more(' {3}', '{3}'),
  data('abc'),
  more(''),
  seg('a7 NOOP'),
  seg('a8 APPEND INBOX ~{5}', '{5}'),
  data('\x00\xff\r\n\x01'),
  more(''),
  seg(''),
  seg('a9 LOGOUT'),
];

test('client commands, whole stream: segments, literals and `first`', (t) => {
  const r = run([CLIENT_STREAM], CLIENT);
  t.is(r.error, null);
  t.deepEqual(r.events, CLIENT_EVENTS);
});

test('client commands: the same events split at every offset and in fixed chunks', (t) => {
  scansTo(t, CLIENT_STREAM, CLIENT, CLIENT_EVENTS);
});

// ---------------------------------------------------------------------------
// Server responses.

/** A message of several KB whose text looks like IMAP in every way that could fool a framer. */
function messageBody(): string {
  const lines = ['From: alice@example.org', 'Subject: {5}', 'X-Trap: a1 OK done {12+}', ''];
  for (let i = 0; i < 120; i++) lines.push(`line ${i} ${'x'.repeat(i % 50)}`);
  lines.push('* 9 FETCH (BODY[] {5}', 'a1 OK not the end', 'bare LF follows\nand a lone CR\r here', '~{3}');
  return lines.join('\r\n') + '\r\n';
}

const BODY = messageBody();
const SEARCH = `* SEARCH ${Array.from({ length: 700 }, (_, i) => i + 1).join(' ')}`;

const SERVER_STREAM = bytes(
  [
    '* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n',
    `* 1 FETCH (UID 7 BODY[] {${BODY.length}}\r\n${BODY})\r\n`,
    '* 2 FETCH (BODY[HEADER] {0}\r\n FLAGS (\\Seen))\r\n',
    '* 3 EXISTS\n',
    `${SEARCH}\r\n`,
    '+ go ahead\r\n',
    '* 4 FETCH (BODY[1] {3}\r\nab\r)\r\n',
    'a1 OK FETCH completed\r\n',
  ].join(''),
);

const SERVER_EVENTS: Ev[] = [
  seg('* OK [CAPABILITY IMAP4rev1 LITERAL+] ready'),
  seg(`* 1 FETCH (UID 7 BODY[] {${BODY.length}}`, `{${BODY.length}}`),
  data(BODY),
  more(')'),
  seg('* 2 FETCH (BODY[HEADER] {0}', '{0}'),
  more(' FLAGS (\\Seen))'),
  seg('* 3 EXISTS'),
  seg(SEARCH.slice(0, 1024), null, SEARCH.length),
  seg('+ go ahead'),
  seg('* 4 FETCH (BODY[1] {3}', '{3}'),
  // The CR is the literal's last byte, not the start of a line ending.
  data('ab\r'),
  more(')'),
  seg('a1 OK FETCH completed'),
];

test('server responses, whole stream: literals of several KB, LF-only and long lines', (t) => {
  t.true(BODY.length > 4000);
  t.true(SEARCH.length > 2000);
  const r = run([SERVER_STREAM], SERVER);
  t.is(r.error, null);
  t.deepEqual(r.events, SERVER_EVENTS);
});

test('server responses: the same events split at every offset and in fixed chunks', (t) => {
  scansTo(t, SERVER_STREAM, SERVER, SERVER_EVENTS);
});

test('a literal far larger than the chunks carrying it', (t) => {
  const size = 256 * 1024;
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = (i * 7 + (i >> 8)) & 0xff;
  // Plant line endings and literal markers in the data.
  body.write('\r\n{5}\r\na1 OK\r\n', 1000, 'latin1');
  body.write('{99}\n', size - 5, 'latin1');
  const stream = Buffer.concat([bytes(`* 1 FETCH (BODY[] {${size}}\r\n`), body, bytes(')\r\na1 OK done\r\n')]);
  for (const chunkSize of [...CHUNK_SIZES, 4096, 65536]) {
    const r = run(chunked(stream, chunkSize), SERVER);
    t.is(r.error, null);
    t.deepEqual(
      r.events.map((e) => (e.kind === 'data' ? { kind: 'data', length: e.bytes.length } : e)),
      [seg(`* 1 FETCH (BODY[] {${size}}`, `{${size}}`), { kind: 'data', length: size }, more(')'), seg('a1 OK done')],
      `chunks of ${chunkSize}`,
    );
    const literal = r.events[1];
    t.true(literal?.kind === 'data' && bytes(literal.bytes).equals(body), `chunks of ${chunkSize}: literal bytes`);
  }
});

test('literal events: ranges are reported per chunk and `last` only on the final piece', (t) => {
  const calls: Array<[number, number, boolean]> = [];
  const scanner = new ImapScanner(
    {
      segment: () => {},
      literal: (_chunk, start, end, last) => calls.push([start, end, last]),
    },
    SERVER,
  );
  scanner.push(bytes('* 1 FETCH (BODY[] {10}\r\n0123'));
  t.is(scanner.literalRemaining, 6);
  scanner.push(bytes('4567'));
  scanner.push(bytes('89)\r\n'));
  t.deepEqual(calls, [
    [24, 28, false],
    [0, 4, false],
    [0, 2, true],
  ]);
  t.is(scanner.literalRemaining, 0);
});

test('a segment reports the chunk offset just past its line ending', (t) => {
  const ends: number[] = [];
  const scanner = new ImapScanner({ segment: (_s, _chunk, end) => ends.push(end) }, CLIENT);
  scanner.push(bytes('a NOOP\r\nb NOOP\nc NO'));
  scanner.push(bytes('OP\r\n'));
  t.deepEqual(ends, [8, 15, 4]);
});

test('line endings: CRLF, LF alone, CR inside a line, empty lines', (t) => {
  scansTo(t, bytes('a NOOP\r\nb NOOP\nc x\ry\r\n\r\n\n\r\r\n'), CLIENT, [
    seg('a NOOP'),
    seg('b NOOP'),
    seg('c x\ry'),
    seg(''),
    seg(''),
    // Only the CR right before the LF belongs to the line ending.
    seg('\r'),
  ]);
});

test('a literal whose data ends with CR is followed by an empty segment', (t) => {
  scansTo(t, bytes('* 1 FETCH (BODY[] {3}\r\nab\r\n* 2 EXISTS\r\n'), SERVER, [
    seg('* 1 FETCH (BODY[] {3}', '{3}'),
    data('ab\r'),
    more(''),
    seg('* 2 EXISTS'),
  ]);
});

test('literal markers: {n}, {n+}, ~{n}; anything else is text', (t) => {
  scansTo(t, bytes('a X {}\r\nb X {+}\r\nc X {5a}\r\nd X 5}\r\ne X {5}x\r\nf X {5} \r\ng X {-1}\r\nh X {1}\r\n!\r\ni X x{1+}\r\n?\r\n'), CLIENT, [
    seg('a X {}'),
    seg('b X {+}'),
    seg('c X {5a}'),
    seg('d X 5}'),
    seg('e X {5}x'),
    seg('f X {5} '),
    seg('g X {-1}'),
    seg('h X {1}', '{1}'),
    data('!'),
    more(''),
    seg('i X x{1+}', '{1+}'),
    data('?'),
    more(''),
  ]);
});

// ---------------------------------------------------------------------------
// Limits.

function limitError(t: ExecutionContext, err: unknown, label = ''): void {
  t.true(err instanceof ProtocolError, `${label} ${String(err)}`);
  t.is((err as ProtocolError).code, 'IMAPPROXY_ERR_LIMIT', label);
}

test('maxLineLength: a line of exactly the limit passes, with CRLF or LF alone', (t) => {
  const line = 'a'.repeat(32);
  for (const ending of ['\r\n', '\n']) {
    for (const [label, pieces] of feeds(bytes(line + ending))) {
      const r = run(pieces, { maxLineLength: 32 });
      t.is(r.error, null, label);
      t.deepEqual(r.events, [seg(line)], label);
    }
  }
});

test('maxLineLength exceeded by one byte: ProtocolError IMAPPROXY_ERR_LIMIT, with CRLF or LF alone', (t) => {
  const line = 'a'.repeat(33);
  for (const ending of ['\r\n', '\n']) {
    for (const [label, pieces] of feeds(bytes(line + ending))) {
      const r = run(pieces, { maxLineLength: 32 });
      limitError(t, r.error, `${JSON.stringify(ending)} ${label}`);
      t.deepEqual(r.events, [], label);
    }
  }
});

test('maxLineLength: an endless line fails as soon as it is too long, without waiting for LF', (t) => {
  // SPEC §11 B10: the original waited forever for the end of a partial line.
  const scanner = new ImapScanner({ segment: () => t.fail('no segment expected') }, { maxLineLength: 100 });
  scanner.push(bytes('a LOGIN '));
  t.true(scanner.midLine);
  const err = t.throws(() => {
    for (let i = 0; i < 200; i++) scanner.push(bytes('x'));
  });
  limitError(t, err);
});

test('maxLineLength counts a segment after a literal on its own', (t) => {
  const r = run([bytes(`a X {3}\r\nabc${'y'.repeat(40)}\r\n`)], { maxLineLength: 32 });
  limitError(t, r.error);
  t.deepEqual(r.events, [seg('a X {3}', '{3}'), data('abc')]);
  // Literal data does not count towards the line length.
  const ok = run([bytes(`a X {100}\r\n${'z'.repeat(100)}\r\n`)], { maxLineLength: 32, maxLiteralSize: 100 });
  t.is(ok.error, null);
});

test('literalTooLarge: flagged on the segment, then a ProtocolError unless cancelled', (t) => {
  const stream = bytes('a APPEND INBOX {11}\r\n');
  for (const [label, pieces] of feeds(stream)) {
    let seen = 0;
    const r = run(pieces, { maxLineLength: 100, maxLiteralSize: 10 }, () => seen++);
    t.is(seen, 1, `${label}: the callback runs before the error`);
    limitError(t, r.error, label);
    t.deepEqual(r.events, [{ ...seg('a APPEND INBOX {11}', '{11}'), tooLarge: true }], label);
  }
});

test('literalTooLarge with cancelLiteral(): the next bytes start a new command', (t) => {
  const stream = bytes('a APPEND INBOX {11}\r\nb NOOP\r\nc APPEND INBOX {10}\r\n0123456789\r\n');
  const expected: Ev[] = [
    { ...seg('a APPEND INBOX {11}', '{11}'), tooLarge: true },
    seg('b NOOP'),
    seg('c APPEND INBOX {10}', '{10}'),
    data('0123456789'),
    more(''),
  ];
  for (const [label, pieces] of feeds(stream)) {
    const r = run(pieces, { maxLineLength: 100, maxLiteralSize: 10 }, (s, scanner) => {
      if (s.literalTooLarge) scanner.cancelLiteral();
    });
    t.is(r.error, null, label);
    t.deepEqual(r.events, expected, label);
    t.true(r.scanner.atBoundary, label);
  }
});

test('cancelLiteral() on an accepted synchronising literal the server refused', (t) => {
  const events: string[] = [];
  const scanner = new ImapScanner(
    {
      segment: (s) => {
        events.push(`${s.first ? 'first' : 'more'} ${text(s.head)}`);
        if (s.literal) scanner.cancelLiteral();
      },
    },
    CLIENT,
  );
  scanner.push(bytes('a APPEND INBOX {5}\r\nb NOOP\r\n'));
  t.deepEqual(events, ['first a APPEND INBOX {5}', 'first b NOOP']);
});

test('huge digit strings in a literal marker are a ProtocolError, never text', (t) => {
  // SPEC §11 B11: a marker read as text would let the literal's bytes be read as commands.
  for (const digits of ['1234567890123456', '9'.repeat(21), '9'.repeat(22), '9'.repeat(23), '9'.repeat(40), '0'.repeat(200) + '5']) {
    for (const plus of ['', '+']) {
      const line = `a APPEND INBOX {${digits}${plus}}`;
      for (const size of [1, 7, 1000]) {
        const r = run(chunked(bytes(`${line}\r\nb LOGOUT\r\n`), size), SERVER);
        limitError(t, r.error, `${digits.length} digits${plus} in chunks of ${size}`);
        t.deepEqual(r.events, []);
      }
    }
  }
});

test('the largest marker that can be represented is a literal', (t) => {
  const r = run([bytes('* 1 FETCH (BODY[] {999999999999999}\r\nabc')], SERVER);
  t.is(r.error, null);
  t.deepEqual(r.events, [seg('* 1 FETCH (BODY[] {999999999999999}', '{999999999999999}')]);
  t.is(r.scanner.literalRemaining, 999999999999996);
  t.false(r.scanner.atBoundary);
});

test('a huge number that is not a literal marker is plain text', (t) => {
  const n = '9'.repeat(40);
  scansTo(t, bytes(`* SEARCH ${n}\r\na X {${n}x}\r\n`), SERVER, [seg(`* SEARCH ${n}`), seg(`a X {${n}x}`)]);
});

test('headLimit: the head is truncated, the marker at the end of a long segment is still found', (t) => {
  const long = `a APPEND INBOX (${'\\Flag '.repeat(700)}) {12}`;
  const stream = bytes(`${long}\r\nhello world!\r\nb NOOP\r\n`);
  scansTo(t, stream, { maxLineLength: 8192, maxLiteralSize: 100, headLimit: 16 }, [
    seg(long.slice(0, 16), '{12}', long.length),
    data('hello world!'),
    more(''),
    seg('b NOOP'),
  ]);
  // The marker split in every way across chunks of a segment longer than the tail the scanner keeps.
  for (let n = 1; n <= 40; n++) {
    const line = `${'x'.repeat(n)} {123+}`;
    const r = run(chunked(bytes(`${line}\r\n`), n), { maxLineLength: 8192, headLimit: 4 });
    t.deepEqual(r.events, [seg(line.slice(0, 4), '{123+}', line.length)], `chunks of ${n}`);
  }
});

test('state getters: midLine, literalRemaining, atBoundary', (t) => {
  const scanner = new ImapScanner({ segment: () => {} }, CLIENT);
  t.true(scanner.atBoundary);
  scanner.push(bytes('a LOGIN {3}'));
  t.true(scanner.midLine);
  t.false(scanner.atBoundary);
  scanner.push(bytes('\r\nab'));
  t.false(scanner.midLine);
  t.is(scanner.literalRemaining, 1);
  scanner.push(bytes('c'));
  t.is(scanner.literalRemaining, 0);
  t.false(scanner.atBoundary, 'the command goes on after its literal');
  scanner.push(bytes(' x\r\n'));
  t.true(scanner.atBoundary);
});

test('pause() in a callback: push returns the bytes consumed, the rest pushed again goes on', (t) => {
  const events: string[] = [];
  const scanner = new ImapScanner(
    {
      segment: (s) => {
        events.push(text(s.head));
        if (s.literal === null) scanner.pause();
      },
      literal: (chunk, start, end) => {
        events.push(`<${text(chunk.subarray(start, end))}>`);
        scanner.pause();
      },
    },
    CLIENT,
  );
  const chunk = bytes('a NOOP\r\nb LOGIN {3}\r\nxyz z\r\nc NO');
  t.is(scanner.push(chunk), 8);
  t.true(scanner.atBoundary);
  t.is(scanner.push(chunk.subarray(8)), 16, 'paused inside the command, after its literal');
  t.is(scanner.push(chunk.subarray(24)), 4);
  t.is(scanner.push(chunk.subarray(28)), 4, 'no segment ended: everything consumed');
  t.true(scanner.midLine);
  t.is(scanner.push(bytes('OP\r\n')), 4);
  t.deepEqual(events, ['a NOOP', 'b LOGIN {3}', '<xyz>', ' z', 'c NOOP']);
});

test('property: pausing after every event and pushing the rest again changes nothing', (t) => {
  fc.assert(
    fc.property(streamArb, cutsArb, (stream, cuts) => {
      const expected = model(stream, 100000, 1024);
      const events: Ev[] = [];
      let parts: Buffer[] = [];
      const scanner = new ImapScanner(
        {
          segment: (s) => {
            events.push({ kind: 'seg', head: text(s.head), length: s.length, first: s.first, literal: marker(s.literal), tooLarge: s.literalTooLarge });
            scanner.pause();
          },
          literal: (chunk, start, end, last) => {
            parts.push(Buffer.from(chunk.subarray(start, end)));
            if (last) {
              events.push(data(text(Buffer.concat(parts))));
              parts = [];
            }
            scanner.pause();
          },
        },
        { maxLineLength: 100000 },
      );
      try {
        for (const piece of cut(stream, cuts)) {
          let off = 0;
          do off += scanner.push(piece.subarray(off));
          while (off < piece.length);
        }
      } catch (err) {
        if (!expected.error) throw err;
      }
      return isDeepStrictEqual(events, expected.events);
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('parseLiteralMarker on its own', (t) => {
  t.deepEqual(parseLiteralMarker(bytes('{5}')), { size: 5, nonSync: false });
  t.deepEqual(parseLiteralMarker(bytes('x {0+}')), { size: 0, nonSync: true });
  t.deepEqual(parseLiteralMarker(bytes('~{7}')), { size: 7, nonSync: false });
  t.is(parseLiteralMarker(bytes('{}')), null);
  t.is(parseLiteralMarker(bytes('{+}')), null);
  t.is(parseLiteralMarker(bytes('5}')), null);
  t.is(parseLiteralMarker(bytes('}')), null);
  t.is(parseLiteralMarker(bytes('')), null);
  t.is(parseLiteralMarker(bytes('{5}\r')), null);
  limitError(t, t.throws(() => parseLiteralMarker(bytes('{1234567890123456}'))));
  limitError(t, t.throws(() => parseLiteralMarker(bytes('9'.repeat(23) + '}'))), 'digits filling the whole tail');
  // The price of the rule above: 16 digits before a final `}` are refused even without `{`.
  limitError(t, t.throws(() => parseLiteralMarker(bytes('x 1234567890123456}'))));
  t.is(parseLiteralMarker(bytes('x 123456789012345}')), null);
});

// ---------------------------------------------------------------------------
// Properties: an independent, non-streaming model of the framing rules.

interface Model {
  events: Ev[];
  error: boolean;
  literalRemaining: number;
}

/**
 * The framing rules written the simple way: whole stream, regular expressions.
 * A run of more than 15 digits before a final `}` or `+}` is an error whether
 * or not `{` precedes it (the scanner cannot always see that far back).
 */
function model(stream: Buffer, maxLine: number, headLimit: number): Model {
  const events: Ev[] = [];
  let pos = 0;
  let first = true;
  while (pos < stream.length) {
    const lf = stream.indexOf(LF, pos);
    if (lf === -1) return { events, error: stream.length - pos > maxLine + 1, literalRemaining: 0 };
    let line = stream.subarray(pos, lf);
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    if (line.length > maxLine) return { events, error: true, literalRemaining: 0 };
    const s = text(line);
    const m = /(\d+)(\+?)\}$/.exec(s);
    if (m && m[1]!.length > 15) return { events, error: true, literalRemaining: 0 };
    const literal = m && s[m.index - 1] === '{' ? `{${Number(m[1])}${m[2]}}` : null;
    events.push({ kind: 'seg', head: s.slice(0, headLimit), length: s.length, first, literal, tooLarge: false });
    first = literal === null;
    pos = lf + 1;
    if (m && literal) {
      const size = Number(m[1]);
      if (pos + size > stream.length) return { events, error: false, literalRemaining: pos + size - stream.length };
      if (size > 0) events.push(data(text(stream.subarray(pos, pos + size))));
      pos += size;
    }
  }
  return { events, error: false, literalRemaining: 0 };
}

/** Byte soup rich in the things a framer trips over. */
const streamArb = fc
  .array(
    fc.oneof(
      fc.constantFrom('\r\n', '\n', '\r', '{', '}', '+}', '~{', ' ', '\x00', '\xff', '\xc3', 'a1 LOGIN ', '* 1 FETCH (BODY[] ', ')', '"', '\\'),
      fc.stringMatching(/^\{[0-9]{1,3}\+?\}\r?\n$/),
      fc.integer({ min: 1, max: 30 }).map((n) => `{${'9'.repeat(n)}}\r\n`),
      fc.integer({ min: 0, max: 30 }).map((n) => `${'1'.repeat(n)}}\r\n`),
      fc.string({ unit: 'binary-ascii', maxLength: 12 }),
      fc.uint8Array({ maxLength: 12 }).map((a) => text(Buffer.from(a))),
    ),
    { maxLength: 50 },
  )
  .map((parts) => bytes(parts.join('')));

/** Cut points, turned into pieces of `stream`. */
const cutsArb = fc.array(fc.nat(), { maxLength: 10 });
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

test('property: any stream, cut anywhere, gives the events of the simple model', (t) => {
  fc.assert(
    fc.property(streamArb, cutsArb, fc.integer({ min: 1, max: 40 }), fc.constantFrom(4, 16, 64, 100000), (stream, cuts, headLimit, maxLine) => {
      const expected = model(stream, maxLine, headLimit);
      const r = run(cut(stream, cuts), { maxLineLength: maxLine, headLimit });
      if (expected.error) {
        if (!(r.error instanceof ProtocolError) || r.error.code !== 'IMAPPROXY_ERR_LIMIT') return false;
      } else {
        if (r.error !== null) throw r.error;
        if (r.scanner.literalRemaining !== expected.literalRemaining) return false;
      }
      return isDeepStrictEqual(r.events, expected.events);
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('property: arbitrary bytes never throw anything but ProtocolError', (t) => {
  const anyBytes = fc.oneof(streamArb, fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)));
  fc.assert(
    fc.property(anyBytes, cutsArb, fc.boolean(), (stream, cuts, cancelTooLarge) => {
      const scanner = new ImapScanner(
        {
          segment: (s) => {
            if (cancelTooLarge && s.literalTooLarge) scanner.cancelLiteral();
          },
          literal: () => {},
        },
        { maxLineLength: 32, maxLiteralSize: 16, headLimit: 8 },
      );
      try {
        for (const piece of cut(stream, cuts)) scanner.push(piece);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
      }
    }),
    { numRuns: 3000 },
  );
  t.pass();
});
