// The trace masker is a function of the client byte stream, so it is tested
// like the framer: the same stream whole, split in two at every offset and in
// fixed chunks, must give the same trace text, and no secret may leak in any
// of them.

import test from 'ava';
import { TraceMasker } from './credential-mask.js';

const CHUNK_SIZES = [1, 2, 3, 4, 5, 7, 13, 64, 128];

// "a7 LOGIN user1 inliteral7890\r\n" is 30 bytes of message data that only looks like a LOGIN.
const STREAM = [
  'a1 SELECT INBOX\r\n',
  'a2 LOGIN user1 pass1\r\n',
  'a3 LOGIN "us er" "p a\\"ss1"\r\n',
  'a4 LOGIN user1 {5}\r\npass1\r\n',
  'a5 LOGIN {5}\r\nuser1 {5+}\r\npass1\r\n',
  'a6 APPEND INBOX {30}\r\na7 LOGIN user1 inliteral7890\r\n\r\n',
  'a8 AUTHENTICATE PLAIN AHVzZXIxAHBhc3Mx\r\n',
  'b1 NOOP\r\n',
  // extra blanks: the regex this replaced let the first one through
  'c1  LOGIN user1 pass1\r\n',
  'c2 LOGIN  user1 pass1\r\n',
  'c3 LOGIN user1  pass1\r\n',
  'c4 LOGIN user1 pass1 \r\n',
  'c5 LOGIN\tuser1 pass1\r\n',
  'c6 XSECRET pass1 {5}\r\npass1\r\n',
  'c7 FETCH 1:* (FLAGS)\r\n',
  'b3 login user1 pass1\r\n',
  'b4 LOGOUT\r\n',
].join('');

const EXPECTED = [
  'a1 SELECT INBOX\r\n',
  'a2 LOGIN user1 ********\r\n',
  'a3 LOGIN "us er" ********\r\n',
  'a4 LOGIN user1 ********\r\n********\r\n',
  'a5 LOGIN {5}\r\nuser1 ********\r\n********\r\n',
  'a6 APPEND INBOX {30}\r\na7 LOGIN user1 inliteral7890\r\n\r\n',
  'a8 AUTHENTICATE PLAIN ********\r\n',
  'b1 NOOP\r\n',
  '********\r\n',
  'c2 LOGIN ********\r\n',
  'c3 LOGIN ********\r\n',
  'c4 LOGIN ********\r\n',
  'c5 LOGIN\tuser1 ********\r\n',
  'c6 XSECRET ********\r\n********\r\n',
  'c7 FETCH 1:* (FLAGS)\r\n',
  'b3 login user1 ********\r\n',
  'b4 LOGOUT\r\n',
].join('');

const SECRETS = ['pass1', 'p a\\"ss1', 'AHVzZXIxAHBhc3Mx'];

function mask(chunks: Buffer[]): string {
  const m = new TraceMasker();
  return chunks.map((c) => m.client(c).toString('latin1')).join('');
}

function splits(stream: Buffer): Array<{ how: string; chunks: Buffer[] }> {
  const out = [{ how: 'whole', chunks: [stream] }];
  for (let i = 1; i < stream.length; i++) out.push({ how: `split at ${i}`, chunks: [stream.subarray(0, i), stream.subarray(i)] });
  for (const size of CHUNK_SIZES) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
    out.push({ how: `chunks of ${size}`, chunks });
  }
  return out;
}

test('passwords, literal passwords and SASL data are masked, however the stream is split', (t) => {
  const stream = Buffer.from(STREAM, 'latin1');
  for (const { how, chunks } of splits(stream)) {
    const shown = mask(chunks);
    if (shown !== EXPECTED) return t.fail(`${how}:\n${JSON.stringify(shown)}\n!==\n${JSON.stringify(EXPECTED)}`);
    // Only the look-alike inside the APPEND literal says "pass"-like things, and not these.
    for (const secret of SECRETS) if (shown.includes(secret)) return t.fail(`${how}: ${secret} leaked`);
  }
  t.pass();
});

test('a line is held until it ends, literal bytes are passed on at once', (t) => {
  const m = new TraceMasker();
  t.is(m.client(Buffer.from('a1 LOGIN user1 pa')).toString(), '');
  t.is(m.client(Buffer.from('ss1\r\na2 APPEND INBOX {10}\r\n01234')).toString(), 'a1 LOGIN user1 ********\r\na2 APPEND INBOX {10}\r\n01234');
  t.is(m.client(Buffer.from('56789')).toString(), '56789');
  t.is(m.client(Buffer.from('\r\n')).toString(), '\r\n');
});

test('a stream the framer refuses shows nothing more', (t) => {
  const m = new TraceMasker();
  t.is(m.client(Buffer.from('a1 NOOP\r\n')).toString(), 'a1 NOOP\r\n');
  t.regex(m.client(Buffer.from('a2 APPEND INBOX {99999999999999999999}\r\n')).toString(), /^\*{8} \(client data the proxy cannot frame; not traced\)\r\n$/);
  t.is(m.client(Buffer.from('a3 LOGIN user1 pass1\r\n')).toString(), '');
});

test('a synchronising literal the server refuses is not awaited: the next bytes are a new command', (t) => {
  const m = new TraceMasker();
  t.is(m.client(Buffer.from('a3 LOGIN user2 {5}\r\n')).toString(), 'a3 LOGIN user2 ********\r\n');
  m.server(Buffer.from('* 3 EXISTS\r\na3 BAD Unknown command\r\n'));
  t.is(m.client(Buffer.from('a4 NOOP\r\n')).toString(), 'a4 NOOP\r\n');
  // accepted with `+`: the literal is the password
  t.is(m.client(Buffer.from('a5 LOGIN user2 {5}\r\n')).toString(), 'a5 LOGIN user2 ********\r\n');
  m.server(Buffer.from('+ OK\r\n'));
  t.is(m.client(Buffer.from('pass2\r\na6 NOOP\r\n')).toString(), '********\r\na6 NOOP\r\n');
  // a tagged line inside a server literal is data, not a refusal
  t.is(m.client(Buffer.from('a7 LOGIN {5}\r\n')).toString(), 'a7 LOGIN {5}\r\n');
  m.server(Buffer.from('* 1 FETCH (BODY[] {14}\r\na7 BAD fake\r\n)\r\n+ go\r\n'));
  t.is(m.client(Buffer.from('user2 pass2\r\n')).toString(), 'user2 ********\r\n');
});

/** Client and server bytes in the order the relay sees them; returns what each side shows. */
function converse(m: TraceMasker, steps: Array<['C' | 'S', string]>): Array<[string, string]> {
  return steps.map(([side, text]) => [side, (side === 'C' ? m.client(Buffer.from(text, 'latin1')) : m.server(Buffer.from(text, 'latin1'))).toString('latin1')]);
}

test('SASL: after the server\'s `+` to an AUTHENTICATE every client line is a response, until the tagged reply', (t) => {
  const m = new TraceMasker();
  t.deepEqual(converse(m, [
    ['C', 'a9 AUTHENTICATE PLAIN\r\n'],
    ['S', '+ \r\n'],
    ['C', 'AHVzZXIxAHBhc3Mx\r\n'],
    ['S', 'a9 OK done\r\n'],
    ['C', 'b2 AUTHENTICATE LOGIN\r\n'],
    ['S', '+ VXNlcm5hbWU6\r\n'],
    ['C', 'dXNlcjE=\r\n'],
    ['S', '+ UGFzc3dvcmQ6\r\n'],
    ['C', 'c3 NOOP pass word\n'],
    ['S', 'b2 NO failed\r\n'],
    ['C', 'b3 NOOP\r\n'],
  ]), [
    ['C', 'a9 AUTHENTICATE PLAIN\r\n'],
    ['S', '+ \r\n'],
    ['C', '********\r\n'],
    ['S', 'a9 OK done\r\n'],
    ['C', 'b2 AUTHENTICATE LOGIN\r\n'],
    ['S', '+ VXNlcm5hbWU6\r\n'],
    ['C', '********\r\n'],
    ['S', '+ UGFzc3dvcmQ6\r\n'],
    ['C', '********\n'],
    ['S', 'b2 NO failed\r\n'],
    ['C', 'b3 NOOP\r\n'],
  ]);
});

test('the server\'s side: an echo of what was masked on the client\'s side is masked too', (t) => {
  const m = new TraceMasker();
  const shown = converse(m, [
    // AUTHENTICATE refused at once: the client's SASL data reaches the server as a command, its "tag" is echoed
    ['C', 'a1 AUTHENTICATE PLAIN\r\n'],
    ['S', 'a1 BAD Unknown command\r\n'],
    ['C', 'AHVzZXIxAHBhc3Mx\r\n'],
    ['S', 'AHVzZXIxAHBhc3Mx BAD Error in IMAP command received by server.\r\n'],
    // a non-synchronising literal the server did not take as one
    ['C', 'a2 LOGIN user1 {7+}\r\nsecret7\r\n'],
    ['S', 'a2 BAD Already logged in\r\nsecret7 BAD Error in IMAP command received by server.\r\n'],
    // a password repeated inside a reply's text
    ['C', 'a3 LOGIN user1 hunter22\r\n'],
    ['S', 'a3 NO [ALERT] hunter22 is not accepted here\r\n* 3 EXISTS\r\n'],
    ['S', '* 1 FETCH (BODY[] {8}\r\nhunter22)\r\n'],
  ]);
  t.deepEqual(shown.filter(([side]) => side === 'S').map(([, text]) => text), [
    'a1 BAD Unknown command\r\n',
    '******** BAD Error in IMAP command received by server.\r\n',
    'a2 BAD Already logged in\r\n******** BAD Error in IMAP command received by server.\r\n',
    'a3 NO [ALERT] ******** is not accepted here\r\n* 3 EXISTS\r\n',
    // message data is the user's own, passed on as it is
    '* 1 FETCH (BODY[] {8}\r\nhunter22)\r\n',
  ]);
  for (const [, text] of shown.filter(([side]) => side === 'C')) t.false(/AHVz|secret7|hunter22/.test(text), text);
});
