import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { servicePort } from './services.js';

test('service names come from a services(5) file, TCP entries and aliases only', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'imapproxy-services-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'services');
  writeFileSync(file, [
    '# Network services',
    'pop3\t\t110/tcp\t\tpop-3\t# POP version 3',
    'imap2\t\t143/tcp\t\timap',
    'syslog\t\t514/udp',
    'sieve\t\t4190/tcp',
    '',
  ].join('\n'));
  t.is(servicePort('pop3', file), 110);
  t.is(servicePort('pop-3', file), 110);
  t.is(servicePort('IMAP', file), 143);
  t.is(servicePort('sieve', file), 4190);
  t.is(servicePort('syslog', file), undefined);
  t.is(servicePort('nosuchservice', file), undefined);
});

test('without a services file the IMAP names still resolve', (t) => {
  const file = join(tmpdir(), 'imapproxy-no-such-dir', 'services');
  t.is(servicePort('imap', file), 143);
  t.is(servicePort('imap2', file), 143);
  t.is(servicePort('imaps', file), 993);
  t.is(servicePort('pop3', file), undefined);
});
