// Issue 18: the sessions that matter, behind Dovecot, Cyrus and Courier: the
// next session on a cached connection is as clean as a fresh login after the
// previous one ended every way it can (LOGOUT or a drop with a mailbox
// selected, mid-FETCH, mid-IDLE, mid-APPEND); IDLE sees new mail; an APPEND
// comes back byte for byte. "Clean" is judged against a direct login to the
// same server: the same reply to a FETCH without a selected mailbox, the
// same message count, nothing left over from the earlier session.
import test from 'ava';
import { waitForLogLines, reEscape } from './helpers/proxy-log.js';
import { serverMatrix, type MatrixSetup } from './helpers/server-matrix.js';
import { RawClient } from './helpers/transcript.js';

const matrix = serverMatrix();

type Ending = 'LOGOUT with a mailbox selected' | 'drop with a mailbox selected' | 'drop mid-FETCH' | 'drop mid-IDLE' | 'drop mid-APPEND';
const ENDINGS: Array<[Ending, string]> = [
  ['LOGOUT with a mailbox selected', 'user1'],
  ['drop with a mailbox selected', 'user2'],
  ['drop mid-FETCH', 'user3'],
  ['drop mid-IDLE', 'user4'],
  ['drop mid-APPEND', 'user5'],
];

const pass = (user: string): string => user.replace('user', 'pass');

async function login(port: number, user: string): Promise<RawClient> {
  const c = await RawClient.connect(port, { timeoutMs: 10_000 });
  const r = await c.command(`a1 LOGIN ${user} ${pass(user)}`);
  if (!/^a1 OK/.test(r.at(-1)!)) throw new Error(`LOGIN ${user}: ${c.describe()}`);
  return c;
}

const existsOf = (lines: string[]): number | undefined => {
  for (const l of lines) {
    const m = /^\* (\d+) EXISTS$/.exec(l);
    if (m) return Number(m[1]);
  }
  return undefined;
};

/** Ends a session the given way, after selecting INBOX. */
async function endSession(c: RawClient, ending: Ending): Promise<void> {
  if (ending !== 'drop mid-APPEND') await c.command('a2 SELECT INBOX');
  switch (ending) {
    case 'LOGOUT with a mailbox selected':
      await c.command('a9 LOGOUT');
      break;
    case 'drop with a mailbox selected':
      break;
    case 'drop mid-FETCH':
      await c.send('a3 FETCH 1:* (BODY.PEEK[])');
      await c.readLine(); // the first message has started
      break;
    case 'drop mid-IDLE':
      await c.send('a3 IDLE');
      if (!(await c.readLine()).startsWith('+')) throw new Error(`IDLE: ${c.describe()}`);
      break;
    case 'drop mid-APPEND':
      await c.send('a3 APPEND INBOX {300}');
      if (!(await c.readLine()).startsWith('+')) throw new Error(`APPEND: ${c.describe()}`);
      await c.sendRaw('Subject: never finished\r\n\r\nonly part of');
      break;
  }
  await c.close();
}

/** What a fresh direct login shows for the probe commands. */
async function directProbe(s: MatrixSetup, user: string): Promise<{ fetch: string[]; exists: number | undefined }> {
  const d = await login(s.server.port, user);
  try {
    const fetch = await d.command('b2 FETCH 1 (FLAGS)');
    const exists = existsOf(await d.command('b3 EXAMINE INBOX'));
    await d.command('b9 LOGOUT');
    return { fetch, exists };
  } finally {
    await d.close();
  }
}

for (const [ending, user] of ENDINGS) {
  matrix.test(`the next session after a ${ending} is as clean as a fresh login`, async (t, s) => {
    await endSession(await login(s.proxy.port, user), ending);
    // the connection goes back to the pool once cleaned, or is closed; either way the log says so
    await waitForLogLines(s.proxy, new RegExp(`(LOGOUT: '${reEscape(user)}' from server sd|sd \\[\\d+\\].*(closed|discard|not reus|Expiring))`), 1, 15_000)
      .catch(() => undefined);
    const expected = await directProbe(s, user);
    const c = await login(s.proxy.port, user);
    try {
      // no mailbox selected: the server's own answer, nothing from the last session before it
      t.deepEqual(await c.command('b2 FETCH 1 (FLAGS)'), expected.fetch, c.describe());
      const selected = await c.command('b3 SELECT INBOX');
      t.is(existsOf(selected), expected.exists, c.describe());
      t.is(existsOf(selected), s.server.inboxCount, 'the aborted APPEND added nothing');
      const noop = await c.command('b4 NOOP');
      t.is(noop.length, 1, `nothing left over: ${c.describe()}`);
      t.regex(noop[0]!, /^b4 OK/);
      await c.command('b9 LOGOUT');
    } finally {
      await c.close();
    }
  });
}

matrix.test('IDLE through the proxy sees a message delivered meanwhile; DONE ends it', async (t, s) => {
  const c = await login(s.proxy.port, 'user6');
  try {
    const before = existsOf(await c.command('a2 SELECT INBOX'))!;
    await c.send('a3 IDLE');
    t.regex(await c.readLine(), /^\+/);
    const d = await login(s.server.port, 'user6');
    const msg = 'Subject: delivered during IDLE\r\n\r\nhello\r\n';
    await d.send(`d2 APPEND INBOX {${msg.length}}`);
    t.regex(await d.readLine(), /^\+/);
    await d.sendRaw(`${msg}\r\n`);
    t.regex((await d.readUntilTagged('d2')).at(-1)!, /^d2 OK/);
    await d.command('d9 LOGOUT');
    await d.close();
    // Cyrus (imapidlepoll 1) and Courier (IMAP_IDLE_TIMEOUT=1) look every second
    const seen: string[] = [];
    for (;;) {
      const line = await c.readLine(15_000);
      seen.push(line);
      if (line === `* ${before + 1} EXISTS`) break;
    }
    await c.send('DONE');
    t.regex((await c.readUntilTagged('a3')).at(-1)!, /^a3 OK/);
    await c.command('a9 LOGOUT');
  } finally {
    await c.close();
  }
});

matrix.test('APPEND through the proxy (synchronising literal, 8-bit body) comes back byte for byte', async (t, s) => {
  const c = await login(s.proxy.port, 'user7');
  try {
    const body = Buffer.from(`Subject: round trip\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße, ${s.kind}! {5}\r\n* not a response\r\n`, 'utf8');
    await c.send(`a2 APPEND ${s.server.archive} (\\Flagged) {${body.length}}`);
    t.regex(await c.readLine(), /^\+/);
    await c.sendRaw(Buffer.concat([body, Buffer.from('\r\n')]));
    const ok = (await c.readUntilTagged('a2')).at(-1)!;
    const uid = /^a2 OK \[APPENDUID \d+ (\d+)\]/.exec(ok)?.[1];
    t.truthy(uid, `UIDPLUS: ${c.describe()}`);
    const sel = await c.command(`a3 SELECT ${s.server.archive}`);
    t.is(existsOf(sel), 4);
    await c.send(`a4 UID FETCH ${uid} (FLAGS BODY.PEEK[])`);
    const fetched = await c.readLineBuffer();
    t.true(fetched.includes(body), `the message as sent: ${fetched.toString('latin1')}`);
    t.regex(fetched.toString('latin1'), /\\Flagged/);
    t.regex((await c.readUntilTagged('a4')).at(-1)!, /^a4 OK/);
    await c.command('a9 LOGOUT');
  } finally {
    await c.close();
  }
});
