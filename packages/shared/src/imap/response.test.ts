// The parts of server responses the relay looks at on every line.

import test from 'ava';
import { completesTag, responseStatus } from './response.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

test('completesTag: the tag followed by a space, compared byte for byte', (t) => {
  const a1 = bytes('a1');
  t.true(completesTag(bytes('a1 OK done'), a1));
  t.true(completesTag(bytes('a1 NO [ALERT] no'), a1));
  t.true(completesTag(bytes('a1 '), a1));
  t.false(completesTag(bytes('a10 OK done'), a1), 'a longer tag with the same start');
  t.false(completesTag(bytes('a OK done'), a1), 'a shorter tag');
  t.false(completesTag(bytes('a1'), a1), 'no space after the tag');
  t.false(completesTag(bytes('A1 OK done'), a1), 'tags are case-sensitive');
  t.false(completesTag(bytes('* OK a1 done'), a1));
  t.false(completesTag(bytes('+ a1 OK'), a1));
  t.false(completesTag(bytes(''), a1));
  t.true(completesTag(bytes('*  x'), bytes('*')));
});

test('completesTag: works on a head cut to a few bytes', (t) => {
  const tag = bytes('QP0001');
  t.true(completesTag(bytes('QP0001 '), tag));
  t.false(completesTag(bytes('QP000'), tag));
});

test('responseStatus: tagged and untagged status responses', (t) => {
  t.deepEqual(responseStatus('a1 OK [READ-WRITE] SELECT completed'), { tag: 'a1', status: 'OK', text: '[READ-WRITE] SELECT completed' });
  t.deepEqual(responseStatus('a1 no LOGIN failed'), { tag: 'a1', status: 'NO', text: 'LOGIN failed' });
  t.deepEqual(responseStatus('* BYE Logging out'), { tag: '*', status: 'BYE', text: 'Logging out' });
  t.deepEqual(responseStatus('* PREAUTH ready'), { tag: '*', status: 'PREAUTH', text: 'ready' });
  t.deepEqual(responseStatus('a2 BAD'), { tag: 'a2', status: 'BAD', text: '' });
});

test('responseStatus: anything else is null', (t) => {
  for (const line of ['* 3 EXISTS', '* CAPABILITY IMAP4rev1', '+ go ahead', 'a1 OKAY', 'a1', '', '* FLAGS (\\Seen)']) {
    t.is(responseStatus(line), null, line);
  }
});
