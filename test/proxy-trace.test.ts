// Issue 5, the protocol trace (SPEC §7): the file's records compared with the
// C original's for the same session, credentials masked inside a traced
// session, several users at once, switching off while a session is traced,
// and newlog while records are being written.
import test from 'ava';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startCImapproxy } from './helpers/c-imapproxy.js';
import { runCtl } from './helpers/ctl.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { proxyFor, type Proxy } from './helpers/proxy.js';
import { eventually, waitForCached, waitForLoginEvents } from './helpers/proxy-log.js';
import { lookupUser } from './helpers/system-user.js';
import { RawClient } from './helpers/transcript.js';

let dovecot: Dovecot;

test.before(async () => {
  dovecot = await startDovecot({ users: 12 });
});

test.after.always(async () => {
  await dovecot?.stop();
});

interface TraceRecord {
  user: string;
  /** CLIENT, SERVER, or PROXY for a marker. */
  side: string;
  sd: number | null;
  data: string;
}

const RECORD = /^\d+ (.*) (CLIENT|SERVER): sd \[(-?\d+)\]\n([\s\S]*)$/;
const MARKER = /^\d+ (.*) PROXY: (.*)\n$/;

/** The records of a trace file, consecutive chunks of one side of one session merged. */
function parseTrace(text: string): TraceRecord[] {
  if (text === '') return [];
  if (!text.startsWith('\n\n-----> C= ')) throw new Error(`not a trace file: ${JSON.stringify(text.slice(0, 80))}`);
  const out: TraceRecord[] = [];
  for (const part of text.slice('\n\n-----> C= '.length).split('\n\n-----> C= ')) {
    const m = RECORD.exec(part);
    if (m) {
      const last = out[out.length - 1];
      if (last && last.side === m[2] && last.user === m[1] && last.sd === Number(m[3])) last.data += m[4];
      else out.push({ user: m[1]!, side: m[2]!, sd: Number(m[3]), data: m[4]! });
      continue;
    }
    const k = MARKER.exec(part);
    if (!k) throw new Error(`bad trace record: ${JSON.stringify(part.slice(0, 120))}`);
    out.push({ user: k[1]!, side: 'PROXY', sd: null, data: k[2]! });
  }
  return out;
}

/** Trace records as text lines that two proxies can share: Dovecot's timings and the sd numbers left out. */
function comparable(records: TraceRecord[]): string[] {
  return records
    // our clean-up UNSELECT's answer (the original read it without tracing it)
    .filter((r) => !(r.side === 'SERVER' && /^X[0-9A-F]{6}\.\d+ OK/.test(r.data)))
    .map((r) => `${r.user} ${r.side}: ${r.data.replace(/\(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)/g, '(t secs)').replace(/^\* \d+ RECENT\r$/m, '* N RECENT\r')}`);
}

async function traceOf(file: string): Promise<TraceRecord[]> {
  return parseTrace(await readFile(file, 'latin1'));
}

test('a session traced with XPROXY_TRACE: the same records as the C original', async (t) => {
  const [ours, c] = await Promise.all([proxyFor(t, { serverPort: dovecot.port, extraConf: 'enable_admin_commands yes' }), startCImapproxy({ serverPort: dovecot.port })]);
  t.teardown(() => c.stop());
  const files: Array<[Proxy | null, number, string]> = [[ours, ours.port, path.join(ours.dir, 'protocol.log')], [null, c.port, c.traceFile]];
  for (const [proxy, port, file] of files) {
    const admin = await RawClient.connect(port);
    t.deepEqual(await admin.command('t1 XPROXY_TRACE user1'), ['t1 OK Tracing enabled for user user1.']);
    const s = await RawClient.connect(port);
    t.deepEqual(await s.command('a1 LOGIN user1 pass1'), ['a1 OK User logged in']);
    await s.command('a2 SELECT INBOX');
    await s.command('a3 NOOP');
    await s.command('a4 LOGOUT');
    await s.close();
    if (proxy) await waitForCached(proxy, 'user1');
    t.deepEqual(await admin.command('t2 XPROXY_TRACE'), ['t2 OK Tracing disabled']);
    await admin.close();
    // the last record is written
    await eventually('trace written', async () => ((await readFile(file, 'latin1')).includes('tracing disabled') ? true : undefined));
  }
  const [oursTrace, cTrace] = [await traceOf(files[0]![2]), await traceOf(files[1]![2])];
  const expected = comparable(oursTrace);
  t.is(expected[0], 'user1 PROXY: user tracing enabled.');
  t.is(expected[1], 'user1 CLIENT: a2 SELECT INBOX\r\n');
  t.regex(expected[2]!, /^user1 SERVER: \* FLAGS [^\n]*\r\n[\s\S]*a2 OK \[READ-WRITE\] Select completed \(t secs\)\.\r\n$/);
  t.deepEqual(expected.slice(3), [
    'user1 CLIENT: a3 NOOP\r\n',
    'user1 SERVER: a3 OK NOOP completed (t secs).\r\n',
    'user1 CLIENT: a4 LOGOUT\r\n',
    'user1 PROXY: user tracing disabled. Expect further output until client logout.',
  ]);
  t.deepEqual(expected, comparable(cTrace));
  // our server sd is the one of the log lines
  const [login] = await waitForLoginEvents(ours, 'user1', 1);
  t.true(oursTrace.filter((r) => r.side === 'SERVER').every((r) => r.sd === login!.sd));
  t.true(oursTrace.filter((r) => r.side === 'CLIENT').every((r) => r.sd! > 2));
  // opened as root, handed to proc_username, readable by nobody else
  const st = await stat(files[0]![2]);
  t.is(st.mode & 0o777, 0o600);
  if (process.getuid?.() === 0) t.is(st.uid, (await lookupUser('nobody'))!.uid);
});

test('passwords and AUTHENTICATE data inside a traced session are masked', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  t.deepEqual(await runCtl(['-f', proxy.confFile, 'trace', 'user2']), {
    code: 0, stdout: 'tracing user2 from the next login\ntraced: user2\n', stderr: '',
  });
  const plain = Buffer.from('\0user2\0pass2').toString('base64');
  const s = await RawClient.connect(proxy.port);
  t.deepEqual(await s.command('a1 LOGIN user2 pass2'), ['a1 OK User logged in']);
  t.regex((await s.command('a2 LOGIN user2 pass2'))[0]!, /^a2 BAD /);
  // a password literal: Dovecot refuses the command before it, so the client never sends it
  // (the masking of literals the server reads is in credential-mask.test.ts)
  t.regex((await s.command('a3 LOGIN user2 {5}'))[0]!, /^a3 BAD /);
  t.regex((await s.command(`a4 AUTHENTICATE PLAIN ${plain}`))[0]!, /^a4 BAD /);
  t.regex((await s.command('a5 login "user2" "pass2"'))[0]!, /^a5 BAD /);
  await s.command('a6 LOGOUT');
  await s.close();
  const file = path.join(proxy.dir, 'protocol.log');
  const text = await eventually('LOGOUT traced', async () => {
    const x = await readFile(file, 'latin1');
    return x.includes('a6 LOGOUT') ? x : undefined;
  });
  t.false(text.includes('pass2'), text);
  t.false(text.includes(plain), text);
  const client = parseTrace(text).filter((r) => r.side === 'CLIENT').map((r) => r.data).join('');
  t.is(
    client,
    'a2 LOGIN user2 ********\r\n' +
      'a3 LOGIN user2 ********\r\n' +
      'a4 AUTHENTICATE PLAIN ********\r\n' +
      'a5 login "user2" ********\r\n' +
      'a6 LOGOUT\r\n',
  );
});

test('several users at once; trace --off keeps tracing the running session as "Null username"', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  const ctl = (...args: string[]) => runCtl(['-f', proxy.confFile, ...args]);
  t.deepEqual(await ctl('trace', 'user3', 'user4'), { code: 0, stdout: 'tracing user3, user4 from the next login\ntraced: user3, user4\n', stderr: '' });
  t.deepEqual(await ctl('trace', 'user3'), { code: 0, stdout: 'already traced: user3\ntraced: user3, user4\n', stderr: '' });
  t.deepEqual(await ctl('trace'), { code: 0, stdout: 'traced: user3, user4\n', stderr: '' });

  const s3 = await RawClient.connect(proxy.port);
  await s3.command('a1 LOGIN user3 pass3');
  await s3.command('a2 NOOP');
  for (const [user, pass] of [['user4', 'pass4'], ['user5', 'pass5']]) {
    const s = await RawClient.connect(proxy.port);
    await s.command(`b1 LOGIN ${user} ${pass}`);
    await s.command(`b2 STATUS INBOX (MESSAGES)`);
    await s.command('b3 LOGOUT');
    await s.close();
  }
  t.deepEqual(await ctl('trace', '--off', 'user3'), {
    code: 0, stdout: 'tracing disabled for user3 (sessions being traced go on until they end)\ntraced: user4\n', stderr: '',
  });
  await s3.command('a3 NOOP');
  await s3.command('a4 LOGOUT');
  await s3.close();
  await waitForCached(proxy, 'user3');
  const again = await RawClient.connect(proxy.port);
  await again.command('c1 LOGIN user3 pass3');
  await again.command('c2 NOOP');
  await again.command('c3 LOGOUT');
  await again.close();
  t.deepEqual(await ctl('trace', '--off'), {
    code: 0, stdout: 'tracing disabled for user4 (sessions being traced go on until they end)\nno user is traced\n', stderr: '',
  });
  t.deepEqual(await ctl('trace', '--off'), { code: 0, stdout: 'no user was traced\nno user is traced\n', stderr: '' });
  t.deepEqual(await ctl('trace', '--off', 'user5'), { code: 0, stdout: 'user5 was not traced\nno user is traced\n', stderr: '' });

  const records = await eventually('trace complete', async () => {
    const r = await traceOf(path.join(proxy.dir, 'protocol.log'));
    return r.filter((x) => x.side === 'PROXY').length === 5 ? r : undefined;
  });
  const lines = comparable(records);
  t.deepEqual(lines.filter((l) => l.includes(' PROXY: ')), [
    'user3 PROXY: user tracing enabled.',
    'user4 PROXY: user tracing enabled.',
    'user3 PROXY: user tracing disabled. Expect further output until client logout.',
    'user4 PROXY: user tracing disabled. Expect further output until client logout.',
    // switching off with nobody traced: the original's marker with an empty user name
    ' PROXY: user tracing disabled. Expect further output until client logout.',
  ]);
  const clientLines = lines.filter((l) => l.includes(' CLIENT: '));
  t.deepEqual(clientLines, [
    'user3 CLIENT: a2 NOOP\r\n',
    'user4 CLIENT: b2 STATUS INBOX (MESSAGES)\r\n',
    'user4 CLIENT: b3 LOGOUT\r\n',
    'Null username CLIENT: a3 NOOP\r\n',
    'Null username CLIENT: a4 LOGOUT\r\n',
  ]);
  t.false(lines.some((l) => l.includes('user5') || l.includes('c2 NOOP')), 'untraced sessions are not in the file');
});

test('newlog empties the file while a session is traced; later records start at offset 0 (no hole)', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-trace-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'trace.log');
  await writeFile(file, 'left over from the last run\n', { mode: 0o644 });
  const proxy = await proxyFor(t, { serverPort: dovecot.port, extraConf: `enable_admin_commands yes\nprotocol_log_filename ${file}` });
  // truncated and made private at start
  t.is((await readFile(file)).length, 0);
  t.is((await stat(file)).mode & 0o777, 0o600);

  t.is((await runCtl(['-f', proxy.confFile, 'trace', 'user6'])).code, 0);
  const s = await RawClient.connect(proxy.port, { timeoutMs: 15_000 });
  await s.command('a1 LOGIN user6 pass6');
  await s.command('a2 SELECT INBOX');
  await eventually('SELECT traced', async () => ((await stat(file)).size > 500 ? true : undefined));
  t.deepEqual(await runCtl(['-f', proxy.confFile, 'newlog']), { code: 0, stdout: `protocol log ${file} cleared\n`, stderr: '' });
  t.is((await readFile(file)).length, 0);
  await s.command('a3 NOOP');
  const afterCtl = await eventually('NOOP traced', async () => {
    const r = await traceOf(file);
    return r.length >= 2 ? r : undefined;
  });
  t.deepEqual(comparable(afterCtl), ['user6 CLIENT: a3 NOOP\r\n', 'user6 SERVER: a3 OK NOOP completed (t secs).\r\n']);

  // XPROXY_NEWLOG in the middle of a 3 MiB FETCH being traced
  const admin = await RawClient.connect(proxy.port);
  await s.send('a4 UID FETCH 21 BODY.PEEK[]');
  t.deepEqual(await admin.command('n1 XPROXY_NEWLOG'), ['n1 OK Logfile cleared']);
  await s.readUntilTagged('a4');
  await s.command('a5 NOOP');
  await s.command('a6 LOGOUT');
  await s.close();
  await admin.close();
  const bytes = await eventually('LOGOUT traced', async () => {
    const b = await readFile(file);
    return b.includes('a6 LOGOUT') ? b : undefined;
  });
  t.is(bytes.indexOf(0), -1, 'no run of zero bytes where the old content was');
  const records = parseTrace(bytes.toString('latin1'));
  const tail = comparable(records).slice(-3);
  t.deepEqual(tail.slice(0, 2), ['user6 CLIENT: a5 NOOP\r\n', 'user6 SERVER: a5 OK NOOP completed (t secs).\r\n']);
  t.is(tail[2], 'user6 CLIENT: a6 LOGOUT\r\n');
});

test('XPROXY_TRACE without a usable file still answers; newlog then fails with NO internal server error', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port, extraConf: `enable_admin_commands yes\nprotocol_log_filename /nonexistent-dir/trace.log` });
  await proxy.waitForLog(/err: cannot open protocol log file \/nonexistent-dir\/trace\.log: .*; protocol tracing is unavailable$/);
  const admin = await RawClient.connect(proxy.port);
  t.deepEqual(await admin.command('n1 XPROXY_NEWLOG'), ['n1 NO internal server error']);
  await admin.close();
  // the control socket works all the same
  const s = net.connect(path.join(proxy.dir, 'control.sock'));
  await new Promise((resolve) => s.once('connect', resolve));
  s.destroy();
});
