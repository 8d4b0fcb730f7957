// Issue 16, finding 6: the trace masks credentials by parsing, on both sides.
// A real Dovecot behind the proxy: LOGIN with extra blanks, SASL data sent
// after Dovecot refused the AUTHENTICATE (it reads the data as a command and
// echoes it as the tag of its BAD), and a non-synchronising password literal
// Dovecot reads as a command line. No secret may reach the trace file.
import test from 'ava';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { runCtl } from './helpers/ctl.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { startProxy } from './helpers/proxy.js';
import { eventually } from './helpers/proxy-log.js';
import { RawClient } from './helpers/transcript.js';

let dovecot: Dovecot;

test.before(async () => {
  dovecot = await startDovecot({ users: 3 });
});

test.after.always(async () => {
  await dovecot?.stop();
});

test('trace: LOGIN with extra blanks, SASL data and literals Dovecot reads as commands, and its echo of them, are masked', async (t) => {
  const proxy = await startProxy({ serverPort: dovecot.port });
  t.teardown(() => proxy.stop());
  t.is((await runCtl(['-f', proxy.confFile, 'trace', 'user3'])).code, 0);
  const sasl = Buffer.from('\0user3\0saslpass3').toString('base64');
  const s = await RawClient.connect(proxy.port);
  t.deepEqual(await s.command('a1 LOGIN user3 pass3'), ['a1 OK User logged in']);
  const replies: string[] = [];
  for (const line of ['a2  LOGIN user3 blankpass3', 'a3 LOGIN  user3 blankpass4', 'a4 LOGIN user3 blankpass5 ']) replies.push(...(await s.command(line)));
  // AUTHENTICATE refused at once; the client sends its response anyway
  replies.push(...(await s.command('a5 AUTHENTICATE PLAIN')));
  await s.sendRaw(`${sasl}\r\n`);
  replies.push(...(await s.readUntilTagged(sasl)));
  // a password literal Dovecot does not take as one
  await s.sendRaw('a6 LOGIN user3 {9+}\r\nlitpass33\r\n');
  replies.push(...(await s.readUntilTagged('a6')));
  replies.push(...(await s.readUntilTagged('litpass33')));
  t.log(replies.join('\n'));
  await s.command('a9 LOGOUT');
  await s.close();
  const file = path.join(proxy.dir, 'protocol.log');
  const text = await eventually('LOGOUT traced', async () => {
    const x = await readFile(file, 'latin1');
    return x.includes('a9 LOGOUT') ? x : undefined;
  });
  // Dovecot did echo the secrets: the test is only meaningful if it does
  t.true(replies.some((r) => r.startsWith(`${sasl} BAD`)), 'Dovecot echoes SASL data as a tag');
  t.true(replies.some((r) => r.startsWith('litpass33 BAD')), 'Dovecot echoes literal data as a tag');
  for (const secret of ['blankpass3', 'blankpass4', 'blankpass5', sasl, 'saslpass3', 'litpass33', 'pass3\r']) {
    t.false(text.includes(secret), `${JSON.stringify(secret)} is in the trace:\n${text}`);
  }
  t.true(text.includes('******** BAD'), 'the echo is shown masked');
});
