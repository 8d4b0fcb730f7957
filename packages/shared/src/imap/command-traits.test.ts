// The command-traits table read through readClientCommand, as the relay
// reads client commands: what webmail clients send is understood (reuse
// depends on it), anything else is not, and the session state each command
// switches on is seen wherever in the command it stands.

import test from 'ava';
import { readClientCommand } from './client-command.js';
import type { CommandUse } from './command-traits.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A command given as its lines: every line but the last ends with a literal marker. */
function read(...lines: string[]): ReturnType<typeof readClientCommand>['understanding'] {
  return readClientCommand(lines.map(b)).understanding;
}

function use(...lines: string[]): CommandUse {
  const u = read(...lines);
  if (!u.understood) throw new Error(`not understood: ${lines.join(' | ')}: ${u.reason}`);
  return u.use;
}

// What Roundcube 1.6, imapflow, SquirrelMail and Python's imaplib send after login.
const WEBMAIL = [
  'a CAPABILITY', 'a NOOP', 'a ID ("name" "Roundcube" "version" "1.6.0")', 'a ID NIL', 'a NAMESPACE',
  'a LIST "" "*"', 'a LIST "" %', 'a LSUB "" "*"', 'a LIST (SUBSCRIBED) "" "*" RETURN (SPECIAL-USE)', 'a LIST "" "*" RETURN (CHILDREN SPECIAL-USE)',
  'a LIST "" ("INBOX" "Sent")', 'a STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)', 'a SELECT INBOX', 'a SELECT "Sent Items"', 'a EXAMINE Archive',
  'a UID SEARCH ALL UNDELETED', 'a UID SEARCH CHARSET UTF-8 SUBJECT "x y" NOT DELETED', 'a UID SEARCH RETURN (COUNT MIN) UNSEEN', 'a SEARCH 1:* NOT SEEN',
  'a UID SORT (REVERSE ARRIVAL) US-ASCII ALL', 'a UID SORT RETURN (ALL COUNT) (DATE) UTF-8 ALL', 'a UID THREAD REFS US-ASCII ALL',
  'a UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE)', 'a UID FETCH 1:* (UID FLAGS)', 'a FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] RFC822.HEADER)',
  'a UID FETCH 4 (UID RFC822.SIZE FLAGS BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (DATE FROM TO SUBJECT CONTENT-TYPE CC REPLY-TO LIST-POST DISPOSITION-NOTIFICATION-TO X-PRIORITY)])',
  'a UID FETCH 21 (BODY.PEEK[1.2]<0.2048>)', 'a UID FETCH 21 BODY[]', 'a FETCH 1 BINARY.PEEK[1]', 'a FETCH 1:2 FAST',
  'a UID STORE 3 +FLAGS.SILENT (\\Seen)', 'a UID STORE 3 -FLAGS (\\Flagged $Label1)', 'a STORE 1 FLAGS \\Deleted', 'a UID COPY 4 Trash', 'a UID MOVE 4:5,7 "Trash"',
  'a EXPUNGE', 'a UID EXPUNGE 4', 'a CLOSE', 'a UNSELECT', 'a CHECK', 'a IDLE', 'a CREATE "New folder"', 'a DELETE "New folder"', 'a RENAME a b',
  'a SUBSCRIBE Sent', 'a UNSUBSCRIBE Sent', 'a GETQUOTAROOT INBOX', 'a GETQUOTA ""', 'a MYRIGHTS INBOX', 'a GETACL INBOX',
  'a GETMETADATA "" (/private/vendor/kolab/activesync)', 'a GETMETADATA (DEPTH 1) INBOX /shared/comment', 'a SETMETADATA INBOX (/private/comment "x")',
  'a APPEND Sent (\\Seen) "03-Dec-2026 18:00:00 +0000" {310}\n',
];

test('what webmail clients send after login is understood', (t) => {
  for (const line of WEBMAIL) {
    const lines = line.endsWith('}\n') ? [line.slice(0, -1), ''] : [line];
    t.true(read(...lines).understood, line);
  }
  t.true(read('a APPEND Sent {3}', ' {4+}', '').understood, 'MULTIAPPEND');
  t.true(read('a STATUS {5}', ' (MESSAGES)').understood, 'a literal mailbox name');
});

test('anything not in the table, or not of its shape, is not understood', (t) => {
  for (const line of [
    'a FOO', 'a XFOO bar', 'a XPROXY_TRACE alice', 'a UID FOO 1', 'a UID', 'DONE', 'a',
    'a NOOP extra', 'a SELECT', 'a SELECT INBOX extra', 'a FETCH', 'a FETCH 1', 'a FETCH x FLAGS', 'a FETCH 0 FLAGS', 'a STORE 1 FLAG (\\Seen)',
    'a COPY 1', 'a STATUS INBOX', 'a STATUS INBOX ("MESSAGES")', 'a LIST "" "*" RETURN', 'a ID', 'a UNSELECT x', 'a ENABLE', 'a FETCH 1 (FLAGS',
    'a FETCH 1 BODY[HEADER', 'a UID FETCH 1 (FLAGS) extra more', 'a SEARCH', 'a LOGIN a', 'a SELECT "a\x00b"', 'a NOOP "unterminated',
  ]) {
    t.false(read(line).understood, JSON.stringify(line));
  }
  // a literal where an atom belongs: the server refuses such a line before reading the literal (framing)
  t.false(read('x FOO {16+}', 'h SELECT INBOX').understood);
  t.false(read('x NOOP {5+}', '').understood);
  t.false(read('x FETCH 1 {5}', '').understood);
  t.false(read('x SELECT INBOX {5}', '').understood);
});

test('CONDSTORE switched on implicitly is seen anywhere in the command (RFC 7162 §3.1)', (t) => {
  for (const lines of [
    ['a STATUS INBOX (MESSAGES HIGHESTMODSEQ)'], ['a SELECT INBOX (CONDSTORE)'], ['a EXAMINE INBOX (condstore)'],
    ['a FETCH 1:* (FLAGS) (CHANGEDSINCE 12)'], ['a UID FETCH 1 (MODSEQ)'], ['a UID SEARCH MODSEQ 5'], ['a SEARCH OR MODSEQ 5 UNSEEN'],
    ['a UID STORE 1 (UNCHANGEDSINCE 7) +FLAGS (\\Seen)'], ['a LIST "" "*" RETURN (STATUS (MESSAGES HIGHESTMODSEQ))'], ['a UID SORT (DATE) UTF-8 MODSEQ 3'],
    // after a literal
    ['a STATUS {5}', ' (HIGHESTMODSEQ)'], ['a UID SEARCH SUBJECT {3}', ' MODSEQ 9'],
  ]) {
    t.deepEqual(use(...lines).enables, ['CONDSTORE'], lines.join('|'));
  }
  // ... and only there: a string that says MODSEQ is a string
  t.deepEqual(use('a UID SEARCH SUBJECT "MODSEQ"').enables, []);
  t.deepEqual(use('a UID SEARCH SUBJECT {6}', '').enables, []);
  t.deepEqual(use('a FETCH 1 (BODY.PEEK[HEADER.FIELDS (MODSEQ)])').enables, []);
  // a line far beyond 8 KiB
  t.deepEqual(use(`a UID FETCH ${Array.from({ length: 3000 }, (_, i) => i + 1).join(',')} (FLAGS) (CHANGEDSINCE 1)`).enables, ['CONDSTORE']);
  t.deepEqual(use('a ENABLE CONDSTORE qresync').enables, ['CONDSTORE', 'QRESYNC']);
  t.deepEqual(use('a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211))').enables, ['QRESYNC']);
});

test('state kept with the selection: a saved result and search updates', (t) => {
  t.regex(use('a UID SEARCH RETURN (SAVE) UNSEEN').selectionState ?? '', /\$/);
  t.regex(use('a SEARCH RETURN (MIN SAVE) ALL').selectionState ?? '', /\$/);
  t.regex(use('a SEARCH RETURN (UPDATE) ALL').selectionState ?? '', /updates/);
  t.regex(use('a UID SORT RETURN (SAVE) (DATE) UTF-8 ALL').selectionState ?? '', /\$/);
  t.is(use('a UID SEARCH RETURN (COUNT) ALL').selectionState, null);
  t.is(use('a UID FETCH $ (FLAGS)').selectionState, null);
});

test('what each command does to the selection and whether it may run on an inherited one', (t) => {
  t.true(use('a SELECT INBOX').selects);
  t.true(use('a UNSELECT').unselects);
  t.true(use('a CLOSE').unselects);
  t.regex(use('a LOGIN a b').irreversible ?? '', /LOGIN/);
  t.regex(use('a AUTHENTICATE PLAIN').irreversible ?? '', /AUTHENTICATE/);
  t.regex(use('a NOTIFY NONE').irreversible ?? '', /NOTIFY/);
  t.true(use('a LIST "" "*"').independentOfSelection);
  t.false(use('a LIST "" "*" RETURN (STATUS (MESSAGES))').independentOfSelection);
  t.false(use('a STATUS INBOX (MESSAGES)').independentOfSelection);
  t.false(use('a FETCH 1 FLAGS').independentOfSelection);
  t.is(use('a UID FETCH 1 (FLAGS BODY.PEEK[])').touches, 'nothing');
  t.is(use('a UID FETCH 1 (FLAGS BODY[])').touches, 'selected');
  t.deepEqual(use('a UID COPY 1 "Sent Items"').touches, { mailbox: b('Sent Items') });
  t.is(use('a UID COPY 1 {5}', '').touches, 'selected');
  t.is(use('a UID MOVE 1 Trash').touches, 'selected');
  t.is(use('a UID FETCH 1 FLAGS').name, 'UID FETCH');
});
