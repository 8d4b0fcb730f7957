// The capability list clients see before login (SPEC §4.1, §4.2).
//
// Deliberate difference from the original, documented in capabilities.ts: the
// proxy itself implements AUTHENTICATE PLAIN (with SASL-IR) and LOGIN, so it
// always advertises SASL-IR AUTH=PLAIN AUTH=LOGIN, after the server's tokens,
// where the original only kept AUTH=LOGIN when the server had it.

import test from 'ava';
import { PROXY_ADDED, capabilityTokens, readCapabilities, rewriteCapabilities, rewriteGreeting } from './capabilities.js';

test('rewriteGreeting: the SPEC §4.1 lab greeting', (t) => {
  // S: (backend)  * OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN UNSELECT] Fake ready.
  // S: (client)   * OK [CAPABILITY IMAP4rev1 LOGIN-REFERRALS ID ENABLE LITERAL+ UNSELECT SASL-IR AUTH=PLAIN AUTH=LOGIN XIMAPPROXY] Fake ready.
  t.is(
    rewriteGreeting('* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN UNSELECT] Fake ready.'),
    '* OK [CAPABILITY IMAP4rev1 LOGIN-REFERRALS ID ENABLE LITERAL+ UNSELECT SASL-IR AUTH=PLAIN AUTH=LOGIN XIMAPPROXY] Fake ready.',
  );
});

test('rewriteGreeting: a greeting without a capability code passes unchanged, without XIMAPPROXY', (t) => {
  for (const greeting of ['* OK Dovecot ready.', '* OK [ALERT] maintenance tonight', '* OK IMAP4rev1 CAPABILITY ready', '* PREAUTH ready']) {
    t.is(rewriteGreeting(greeting), greeting);
  }
});

test('rewriteGreeting: the code is found in any case and only the code changes', (t) => {
  t.is(rewriteGreeting('* OK [capability IMAP4rev1 idle] x [y] z'), '* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=LOGIN XIMAPPROXY] x [y] z');
});

test('rewriteCapabilities: drop rules are case-insensitive prefix matches (SPEC §4.2)', (t) => {
  t.deepEqual(
    rewriteCapabilities(['IMAP4rev1', 'auth=PLAIN', 'AUTH=XOAUTH2', 'Auth=Login', 'sasl-ir', 'IDLE', 'idle', 'STARTTLS', 'LOGINDISABLED', 'UNSELECT', 'ID', 'ENABLE', 'LITERAL+', 'COMPRESS=DEFLATE', 'NOTIFY', 'CONDSTORE', 'X-IDLEISH']),
    ['IMAP4rev1', 'UNSELECT', 'ID', 'ENABLE', 'LITERAL+', 'COMPRESS=DEFLATE', 'NOTIFY', 'CONDSTORE', 'X-IDLEISH', ...PROXY_ADDED],
  );
  t.deepEqual(rewriteCapabilities([]), PROXY_ADDED);
  t.deepEqual(PROXY_ADDED, ['SASL-IR', 'AUTH=PLAIN', 'AUTH=LOGIN', 'XIMAPPROXY']);
});

test('readCapabilities: what the proxy remembers about the server', (t) => {
  t.deepEqual(readCapabilities(['IMAP4rev1', 'STARTTLS', 'LOGINDISABLED', 'UNSELECT', 'LITERAL+']), {
    tokens: ['IMAP4rev1', 'STARTTLS', 'LOGINDISABLED', 'UNSELECT', 'LITERAL+'],
    startTls: true,
    loginDisabled: true,
    unselect: true,
    literalPlus: true,
  });
  t.deepEqual(readCapabilities(['IMAP4rev1', 'starttls', 'LITERAL-']), {
    tokens: ['IMAP4rev1', 'starttls', 'LITERAL-'],
    startTls: true,
    loginDisabled: false,
    unselect: false,
    literalPlus: false,
  });
});

test('capabilityTokens: from a response code, from a CAPABILITY line, or null', (t) => {
  t.deepEqual(capabilityTokens('* OK [CAPABILITY IMAP4rev1 IDLE] ready'), ['IMAP4rev1', 'IDLE']);
  t.deepEqual(capabilityTokens('a1 OK [CAPABILITY IMAP4rev1  ID] Logged in'), ['IMAP4rev1', 'ID']);
  t.deepEqual(capabilityTokens('* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN'), ['IMAP4rev1', 'LITERAL+', 'AUTH=PLAIN']);
  t.deepEqual(capabilityTokens('* capability IMAP4rev1'), ['IMAP4rev1']);
  t.is(capabilityTokens('* OK ready'), null);
  t.is(capabilityTokens('a1 OK CAPABILITY completed'), null);
});
