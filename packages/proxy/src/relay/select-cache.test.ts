// The select cache's decisions, without a server: which replies may be kept,
// which client commands drop a kept reply, and what a server response says
// about the selected mailbox. The integration test (test/proxy-select-cache)
// runs them against Dovecot.

import test from 'ava';
import { readClientCommand } from '@imapproxy/shared';
import { classifyUntagged, fetchChangesSelect, readFetch } from './mailbox-watch.js';
import { buildEntry, cacheableSelect, keepsSelectCache, readAstring, sameMailbox, SELECT_CACHE_MAX_BYTES } from './select-cache.js';

const INBOX = Buffer.from('INBOX');
const b = (s: string): Buffer => Buffer.from(s, 'latin1');

test('mailbox names: decoded, INBOX in any case, every other name exactly', (t) => {
  t.deepEqual(cacheableSelect('a1 SELECT INBOX'), b('INBOX'));
  t.deepEqual(cacheableSelect('a1 select "INBOX"'), b('INBOX'));
  t.deepEqual(cacheableSelect('a1 SELECT "a \\"b\\" \\\\c"'), b('a "b" \\c'));
  t.deepEqual(cacheableSelect('a1 SELECT Sent]x'), b('Sent]x'));
  // parameters change the reply, a literal name is not in the line: not cacheable
  t.is(cacheableSelect('a1 SELECT INBOX (CONDSTORE)'), null);
  t.is(cacheableSelect('a1 SELECT {5}'), null);
  t.is(cacheableSelect('a1 SELECT "INBOX'), null);
  t.is(cacheableSelect('a1 SELECT INBOX '), null);
  t.is(cacheableSelect('a1 EXAMINE INBOX'), null);
  t.true(sameMailbox(b('inbox'), INBOX));
  t.true(sameMailbox(b('InBoX'), b('INBOX')));
  t.false(sameMailbox(b('Sent'), b('sent')));
  t.false(sameMailbox(b('INBOX/a'), b('inbox/a')));
  t.is(readAstring('x "unterminated', 2), null);
});

test('client commands: read-only ones keep the cached reply, anything that may change it drops it', (t) => {
  // As the relay reads them: the whole line, or the first line of a command that goes on after a literal.
  const keeps = (head: string): boolean => {
    const reading = readClientCommand([b(head)], head.endsWith('}'));
    return keepsSelectCache(reading.understanding.understood ? reading.understanding.use : null, INBOX);
  };
  for (const head of ['a NOOP', 'a IDLE', 'a UID SEARCH UNSEEN', 'a LIST "" *', 'a STATUS Sent (MESSAGES)', 'a UID SORT (DATE) UTF-8 ALL',
    'a UID FETCH 1:10 (FLAGS RFC822.SIZE ENVELOPE)', 'a FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] RFC822.HEADER)', 'a FETCH 1 BINARY.PEEK[1]',
    'a APPEND Sent (\\Seen) {310}', 'a UID COPY 4 Trash', 'a COPY 1:3 "Sent Items"']) {
    t.true(keeps(head), head);
  }
  for (const head of ['a STORE 1 +FLAGS.SILENT (\\Seen)', 'a UID STORE 1 +FLAGS (\\Flagged)', 'a EXPUNGE', 'a UID EXPUNGE 3', 'a UID MOVE 1 Trash',
    'a CLOSE', 'a UNSELECT', 'a EXAMINE INBOX', 'a SELECT Sent', 'a ENABLE CONDSTORE', 'a DELETE INBOX', 'a XFOO',
    'a FETCH 1 BODY[]', 'a UID FETCH 1 (FLAGS BODY[TEXT])', 'a FETCH 1 RFC822', 'a FETCH 1 (RFC822.TEXT)', 'a FETCH 1 BINARY[1]',
    'a APPEND INBOX {310}', 'a APPEND inbox (\\Seen) {3}', 'a APPEND {5}', 'a COPY 1 INBOX', 'a UID COPY 1 "inbox"', 'a COPY 1 {5}',
    'a UID SEARCH RETURN (SAVE) UNSEEN', 'a SEARCH RETURN (UPDATE) ALL', 'a STATUS Sent (HIGHESTMODSEQ)', 'a FETCH 1 (FLAGS) (CHANGEDSINCE 5)']) {
    t.false(keeps(head), head);
  }
  // a FETCH whose items go on after a literal
  t.false(keeps('a FETCH 1 (BODY.PEEK[HEADER.FIELDS {7}'));
});

test('untagged responses: what may change a SELECT reply', (t) => {
  const kind = (line: string): string => classifyUntagged(b(line));
  t.is(kind('* 22 EXISTS'), 'mailbox');
  t.is(kind('* 3 EXPUNGE'), 'mailbox');
  t.is(kind('* 1 RECENT'), 'mailbox');
  t.is(kind('* VANISHED 4:6'), 'mailbox');
  t.is(kind('* FLAGS (\\Seen $Important)'), 'mailbox');
  t.is(kind('* OK [UIDNEXT 23] Predicted next UID'), 'mailbox');
  t.is(kind('* OK [CLOSED] Previous mailbox closed.'), 'mailbox');
  t.is(kind('* OK [HIGHESTMODSEQ 9] Highest'), 'mailbox');
  t.is(kind('* XSOMETHING new'), 'mailbox');
  t.is(kind('* 5 FETCH (FLAGS (\\Seen))'), 'fetch');
  t.is(kind('* OK Still here'), 'status');
  t.is(kind('* OK [ALERT] maintenance at 5'), 'status');
  t.is(kind('* NO disk almost full'), 'status');
  t.is(kind('* BYE shutting down'), 'status');
  for (const line of ['* SEARCH 1 2', '* ESEARCH (TAG "a") ALL 1:3', '* LIST () "/" INBOX', '* STATUS INBOX (MESSAGES 1)', '* CAPABILITY IMAP4rev1', '* SORT 2 1', '* NAMESPACE (("" "/")) NIL NIL']) {
    t.is(kind(line), 'data', line);
  }
});

test('FETCH responses: items read past sections, quoted strings and literals', (t) => {
  t.deepEqual(readFetch('* 12 FETCH (UID 12 FLAGS (\\Seen \\Recent) RFC822.SIZE 2468)'), { seq: 12, names: ['UID', 'FLAGS', 'RFC822.SIZE'], flags: ['\\Seen', '\\Recent'] });
  // the ENVELOPE holds parentheses in quotes and a literal; FLAGS comes after a BODY literal
  const text = '* 3 FETCH (UID 3 ENVELOPE ("date" "a (b) \\"c)" NIL NIL NIL NIL NIL NIL NIL "<id>") BODY[HEADER.FIELDS (SUBJECT FROM)] {42} FLAGS (\\Answered) BODY[]<0> {5})';
  t.deepEqual(readFetch(text), { seq: 3, names: ['UID', 'ENVELOPE', 'BODY[HEADER.FIELDS (SUBJECT FROM)]', 'FLAGS', 'BODY[]<0>'], flags: ['\\Answered'] });
  t.deepEqual(readFetch('* 1 FETCH (FLAGS ())'), { seq: 1, names: ['FLAGS'], flags: [] });
  t.is(readFetch('* 1 FETCH (UID 1 FLAGS (\\Seen)'), null, 'unterminated');
  t.is(readFetch('* 1 FETCH (ENVELOPE ("unterminated))'), null);
  t.is(readFetch('* 1 EXISTS'), null);
});

test('a FETCH changes the reply when it moves the first unseen message (or, strictly, when it has FLAGS)', (t) => {
  const f = (seq: number, flags: string[] | null, names = ['UID', 'FLAGS']) => ({ seq, names, flags });
  // [UNSEEN 5]: 1-4 are seen, 5 is not
  t.false(fetchChangesSelect(f(3, ['\\Seen']), 5, false));
  t.true(fetchChangesSelect(f(3, []), 5, false), 'an earlier message became unseen');
  t.false(fetchChangesSelect(f(5, []), 5, false));
  t.true(fetchChangesSelect(f(5, ['\\Seen']), 5, false), 'the first unseen was read');
  t.false(fetchChangesSelect(f(9, ['\\Seen']), 5, false));
  t.false(fetchChangesSelect(f(9, []), 5, false));
  // no [UNSEEN]: everything was seen
  t.true(fetchChangesSelect(f(9, ['\\Flagged']), null, false));
  t.false(fetchChangesSelect(f(9, ['\\Seen', '\\Flagged']), null, false));
  // no FLAGS: data only; MODSEQ or an unreadable response: a change
  t.false(fetchChangesSelect(f(3, null, ['UID', 'RFC822.SIZE']), 5, true));
  t.true(fetchChangesSelect(f(9, null, ['UID', 'MODSEQ']), 5, false));
  t.true(fetchChangesSelect(null, 5, false));
  // strict (the NOOP before a hit): any FLAGS
  t.true(fetchChangesSelect(f(9, ['\\Seen']), 5, true));
  // a reply without UNSEEN and UIDNEXT (Courier) shows no per-message state: FLAGS cannot change it, except in the NOOP check
  t.false(fetchChangesSelect(f(1, []), null, false, false));
  t.true(fetchChangesSelect(f(1, []), null, true, false));
});

test('replies kept: OK, whole, with EXISTS and `* 0 RECENT`; [CLOSED] is kept apart', (t) => {
  const reply = [
    '* OK [CLOSED] Previous mailbox closed.',
    '* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)',
    '* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.',
    '* 21 EXISTS',
    '* 0 RECENT',
    '* OK [UNSEEN 4] First unseen.',
    '* OK [UIDVALIDITY 1795312052] UIDs valid',
    '* OK [UIDNEXT 22] Predicted next UID',
  ];
  const body = (lines: string[]): Buffer => b(lines.map((l) => `${l}\r\n`).join(''));
  const built = buildEntry(INBOX, body(reply), 'OK [READ-WRITE] Select completed.');
  if (typeof built === 'string') return t.fail(built);
  t.deepEqual(built.entry.body, body(reply.slice(1)));
  t.is(built.closedLine?.toString(), `${reply[0]}\r\n`);
  t.is(built.entry.firstUnseen, 4);
  t.is(built.entry.status, 'OK [READ-WRITE] Select completed.');
  t.is(buildEntry(INBOX, body(reply), 'NO Mailbox doesn\'t exist'), 'not OK');
  t.is(buildEntry(INBOX, body(reply.map((l) => l.replace('0 RECENT', '21 RECENT'))), 'OK x'), 'RECENT is not 0');
  t.is(buildEntry(INBOX, body(reply.filter((l) => !l.endsWith('EXISTS'))), 'OK x'), 'no EXISTS');
  t.is(buildEntry(INBOX, body([...reply, '* 3 FETCH (FLAGS ())']), 'OK x'), 'unexpected response');
  t.is(buildEntry(INBOX, body([...reply, '* OK [ALERT] hello']), 'OK x'), 'unexpected response ALERT');
  // Courier's SELECT reply (ACLs on): its MYRIGHTS line is kept like the others
  const courier = [...reply.slice(1), '* OK [MYRIGHTS "acdilrsw"] ACL'];
  const withRights = buildEntry(INBOX, body(courier), 'OK [READ-WRITE] Ok');
  if (typeof withRights === 'string') return t.fail(withRights);
  t.deepEqual(withRights.entry.body, body(courier));
  t.true(withRights.entry.unseenReported, 'UNSEEN is in that reply');
  const bare = buildEntry(INBOX, body(courier.filter((l) => !/UNSEEN|UIDNEXT/.test(l))), 'OK [READ-WRITE] Ok');
  if (typeof bare === 'string') return t.fail(bare);
  t.false(bare.entry.unseenReported);
  t.is(buildEntry(INBOX, b(`${body(reply).toString('latin1')}* 1 EXI`), 'OK x'), 'incomplete line');
  const big = [...reply.slice(0, 1), `* FLAGS (${'k'.repeat(SELECT_CACHE_MAX_BYTES)})`, ...reply.slice(2)];
  t.is(buildEntry(INBOX, body(big), 'OK x'), 'too large');
});
