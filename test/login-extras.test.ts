// Issue 18, the rest of "logins that look like direct logins": untagged lines
// before the `+` of a LOGIN literal (a server may send them at any time; a
// scripted server stands in, as no real one here does it on demand), a long
// pre-login ID (imaptest's 32 KB one) within max_preauth_id_length, and a
// replayed ID the server refuses (Courier has no ID) logged with its arguments.
import test from 'ava';
import { courierMissing, startCourier } from './helpers/courier.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { waitForLogLines } from './helpers/proxy-log.js';
import { startProxy } from './helpers/proxy.js';
import { startFakeServer } from './helpers/reliability.js';
import { RawClient } from './helpers/transcript.js';

let dovecot: Dovecot;

test.before(async () => {
  dovecot = await startDovecot({ extraConf: 'imap_id_log = *' });
});

test.after.always(async () => {
  await dovecot?.stop();
});

test('untagged lines before the continuation of a LOGIN literal reach the client; the login succeeds (fault injection)', async (t) => {
  const fake = await startFakeServer(async (c) => {
    // no LITERAL+: an 8-bit password goes as a synchronising literal
    c.send('* OK [CAPABILITY IMAP4rev1 ID] fake ready\r\n');
    for (;;) {
      const line = await c.readLine();
      const [tag, name] = line.split(' ');
      if (name === 'LOGIN') {
        c.send('* OK [ALERT] Your password expires in 3 days\r\n* OK still here\r\n+ go ahead\r\n');
        await c.readLine(); // the literal and the end of the line
        c.send(`${tag} OK [CAPABILITY IMAP4rev1 ID IDLE MOVE] Logged in\r\n`);
      } else if (name === 'LOGOUT') {
        return void c.socket.end(`* BYE\r\n${tag} OK\r\n`);
      } else {
        c.send(`* CAPABILITY IMAP4rev1 ID\r\n${tag} OK done\r\n`);
      }
    }
  });
  const proxy = await startProxy({ serverPort: fake.port });
  try {
    const c = await RawClient.connect(proxy.port);
    const pass = Buffer.from('pässwörd', 'utf8');
    await c.sendRaw(Buffer.concat([Buffer.from(`a1 LOGIN utf8user {${pass.length}+}\r\n`), pass, Buffer.from('\r\n')]));
    t.deepEqual(await c.readUntilTagged('a1'), ['* OK [ALERT] Your password expires in 3 days', '* OK still here', 'a1 OK User logged in'], c.describe());
    t.deepEqual(c.loginCapabilities, ['IMAP4rev1', 'ID', 'IDLE', 'MOVE']);
    await c.close();
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('a 32 KB pre-login ID is accepted and replayed; past max_preauth_id_length, and other lines past max_preauth_line_length, BYE', async (t) => {
  const proxy = await startProxy({ serverPort: dovecot.port });
  try {
    // 30 fields of 1000 bytes (RFC 2971's most; Dovecot closes the connection on a value over 1 KB)
    const fields = Array.from({ length: 30 }, (_, i) => `"field${i}" "${String(i % 10).repeat(1000)}"`).join(' ');
    t.true(fields.length > 30_000);
    const c = await RawClient.connect(proxy.port);
    t.deepEqual(await c.command(`i1 ID (${fields})`), ['i1 OK Completed']);
    t.is((await c.command('a1 LOGIN user1 pass1')).at(-1), 'a1 OK User logged in', c.describe());
    await c.command('a2 LOGOUT');
    await c.close();
    // Dovecot logged the replayed ID (imap_id_log)
    await waitForLogLines(proxy, /LOGIN: 'user1' .* on new sd/);

    const tooLong = await RawClient.connect(proxy.port);
    await tooLong.send(`i1 ID ("name" "${'y'.repeat(70 * 1024)}")`);
    t.regex((await tooLong.expectClosed()).join('\n'), /^\* BYE line longer than 65536 bytes/);
    const notId = await RawClient.connect(proxy.port);
    await notId.send(`a1 LOGIN user1 "${'z'.repeat(10 * 1024)}"`);
    t.regex((await notId.expectClosed()).join('\n'), /^\* BYE line longer than 8192 bytes/);
  } finally {
    await proxy.stop();
  }
});

const noCourier = courierMissing();
(noCourier ? test.skip : test)(`a replayed ID the server refuses (Courier has no ID) is logged with its arguments; the login goes on${noCourier ? ` (${noCourier})` : ''}`, async (t) => {
  const courier = await startCourier();
  const proxy = await startProxy({ serverPort: courier.port });
  try {
    const c = await RawClient.connect(proxy.port);
    t.deepEqual(await c.command('i1 ID ("name" "webmail" "version" "1.6")'), ['i1 OK Completed']);
    t.is((await c.command('a1 LOGIN user1 pass1')).at(-1), 'a1 OK User logged in', c.describe());
    await c.command('a2 LOGOUT');
    await c.close();
    const [line] = await waitForLogLines(proxy, /QUEUED PREAUTH failed/);
    t.regex(line!, /\(ID \("name" "webmail" "version" "1\.6"\)\): (BAD|NO) /);
    t.false(line!.includes('pass1'));
  } finally {
    await proxy.stop();
    await courier.stop();
  }
});
