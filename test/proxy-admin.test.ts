// Issue 5, administration: every imapproxyctl command against a running daemon
// and a real Dovecot, its errors and exit statuses, the control socket's
// protocol and permissions, and the in-band XPROXY_* commands, whose replies
// are compared line by line with the C original's (SPEC §6).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { readStatsFile } from '@imapproxy/shared';
import { startCImapproxy } from './helpers/c-imapproxy.js';
import { ctlJson, runCtl } from './helpers/ctl.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { proxyFor, type Proxy } from './helpers/proxy.js';
import { eventually, waitForCached, waitForLoginEvents } from './helpers/proxy-log.js';
import { lookupUser } from './helpers/system-user.js';
import { statsWhen } from './helpers/reliability.js';
import { RawClient } from './helpers/transcript.js';

let dovecot: Dovecot;
const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';
const asRoot = process.getuid?.() === 0;

test.before(async () => {
  dovecot = await startDovecot({ users: 12 });
});

test.after.always(async () => {
  await dovecot?.stop();
});

/** LOGIN, LOGOUT, and the connection is back in the pool. */
async function loginLogout(proxy: Proxy, user: string, pass: string, cachedCount = 1): Promise<string[]> {
  const c = await RawClient.connect(proxy.port);
  const lines = await c.command(`a1 LOGIN ${user} ${pass}`);
  await c.command('a2 LOGOUT');
  await c.close();
  await waitForCached(proxy, user, cachedCount);
  return lines;
}

/** The same commands on one connection; the server's lines of each, for comparing two proxies. */
async function replies(port: number, commands: string[]): Promise<string[]> {
  const c = await RawClient.connect(port);
  const out: string[] = [];
  try {
    for (const cmd of commands) out.push(`C: ${cmd}`, ...(await c.command(cmd)).map((l) => `S: ${l}`));
  } finally {
    await c.close();
  }
  return out;
}

// --- imapproxyctl ------------------------------------------------------------

test('version, --version and --help', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  const v = await runCtl(['-f', proxy.confFile, 'version']);
  t.is(v.code, 0, v.stderr);
  t.regex(
    v.stdout,
    new RegExp(
      String.raw`^imapproxyctl 0\.1\.0\nimapproxyd 0\.1\.0 \(up-imapproxy 1\.2\.8 compatible\), pid ${proxy.pid}, Node\.js v\d+\.\d+\.\d+, up \d+s, config ${proxy.confFile.replace(/[.]/g, '\\.')}\n$`,
    ),
  );
  const json = await ctlJson<{ ok: boolean; version: string; compatVersion: string; pid: number }>(proxy.confFile, 'version');
  t.like(json, { ok: true, version: '0.1.0', compatVersion: '1.2.8', pid: proxy.pid });

  const version = await runCtl(['--version']);
  t.deepEqual(version, { code: 0, stdout: '0.1.0\n', stderr: '' });
  const help = await runCtl(['--help']);
  t.is(help.code, 0);
  for (const cmd of ['trace [user..]', 'dump', 'flush [user]', 'reset-counters', 'newlog', 'stats', 'version', 'reload']) {
    t.true(help.stdout.includes(`imapproxyctl ${cmd}`), `--help lists ${cmd}:\n${help.stdout}`);
  }
});

test('dump lists active and cached connections; flush USER makes the next login a new server login', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  await loginLogout(proxy, 'user1', 'pass1');
  const active = await RawClient.connect(proxy.port);
  t.deepEqual(await active.command('b1 LOGIN user2 pass2'), ['b1 OK User logged in']);
  const [ev1] = await waitForLoginEvents(proxy, 'user1', 1);
  const [ev2] = await waitForLoginEvents(proxy, 'user2', 1);

  const dump = await ctlJson<{ connections: Array<Record<string, unknown>> }>(proxy.confFile, 'dump');
  const byUser = Object.fromEntries(dump.connections.map((c) => [c.user, c]));
  t.is(dump.connections.length, 2);
  t.like(byUser.user1, { id: ev1!.sd, user: 'user1', state: 'cached', client: ev1!.client, reuseCount: 0 });
  t.like(byUser.user2, { id: ev2!.sd, user: 'user2', state: 'active', client: ev2!.client, reuseCount: 0 });
  for (const c of dump.connections) {
    t.true(Number.isInteger(c.ageSeconds) && (c.ageSeconds as number) >= 0 && (c.ageSeconds as number) < 30);
    t.true(Number.isInteger(c.idleSeconds) && (c.idleSeconds as number) >= 0);
  }
  // the client connections too: the one logged in as user2 (the others have closed)
  const { clients } = await ctlJson<{ clients: Array<Record<string, unknown>> }>(proxy.confFile, 'dump');
  t.deepEqual(clients, [{ address: ev2!.client, tls: false, loggedIn: true }]);
  const text = await runCtl(['-f', proxy.confFile, 'dump']);
  t.true(text.stdout.endsWith(`\nCLIENT           STATE      TRANSPORT\n${ev2!.client}  logged in  plain\n`), text.stdout);
  t.is(text.code, 0);
  const lines = text.stdout.trimEnd().split('\n');
  t.regex(lines[0]!, /^ID +USER +STATE +CLIENT +AGE +IDLE +REUSED +TRANSPORT$/);
  t.true(lines.slice(1).some((l) => new RegExp(`^${ev2!.sd} +user2 +active +${ev2!.client} +\\d+s +\\d+s +0 +plain$`).test(l)), text.stdout);
  t.true(lines.slice(1).some((l) => new RegExp(`^${ev1!.sd} +user1 +cached +${ev1!.client} +\\d+s +\\d+s +0 +plain$`).test(l)), text.stdout);

  // a reuse counts in dump
  t.deepEqual(await loginLogout(proxy, 'user1', 'pass1', 2), [REUSE, 'a1 OK User logged in']);
  const again = await ctlJson<{ connections: Array<Record<string, unknown>> }>(proxy.confFile, 'dump');
  t.like(again.connections.find((c) => c.user === 'user1'), { id: ev1!.sd, state: 'cached', reuseCount: 1 });

  // flush of one user: only its cached connection goes; the next login is a new server login
  t.is(await dovecot.loginCount('user1'), 1);
  const flush = await runCtl(['-f', proxy.confFile, 'flush', 'user1']);
  t.deepEqual(flush, { code: 0, stdout: 'closed 1 cached server connection(s) of user1\n', stderr: '' });
  const after = await ctlJson<{ connections: Array<Record<string, unknown>> }>(proxy.confFile, 'dump');
  t.deepEqual(after.connections.map((c) => [c.user, c.state]), [['user2', 'active']]);
  t.deepEqual(await loginLogout(proxy, 'user1', 'pass1', 3), ['a1 OK User logged in']);
  t.is(await dovecot.loginCount('user1'), 2);

  // flush of everybody: the active connection is not touched
  t.deepEqual(await runCtl(['-f', proxy.confFile, 'flush']), { code: 0, stdout: 'closed 1 cached server connection(s)\n', stderr: '' });
  t.regex((await active.command('b2 NOOP'))[0]!, /^b2 OK NOOP completed/);
  await active.close();
});

test('stats and reset-counters: the totals and peaks of XPROXY_RESETCOUNTERS, gauges untouched', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  await loginLogout(proxy, 'user3', 'pass3');
  t.deepEqual(await loginLogout(proxy, 'user3', 'pass3', 2), [REUSE, 'a1 OK User logged in']);
  type Stats = { counters: Record<string, number>; pool: Record<string, number>; traced: string[] };
  const before = await ctlJson<Stats>(proxy.confFile, 'stats');
  t.like(before.counters, {
    totalClientConnectionsAccepted: 2, totalClientLogins: 2, totalServerConnectionsCreated: 1, totalServerConnectionsReused: 1,
    retainedServerConnections: 1, peakRetainedServerConnections: 1, inUseServerConnections: 0, peakInUseServerConnections: 1,
  });
  t.deepEqual(before.pool, { cacheSize: 3072, active: 0, cached: 1, total: 1 });
  t.deepEqual(before.traced, []);
  const text = await runCtl(['-f', proxy.confFile, 'stats']);
  t.is(text.code, 0);
  // pimpstat -c's twelve lines first (the first client may still be closing when the second
  // connects, so the peak of clients is 1 or 2: the text is compared with the JSON)
  t.true(text.stdout.startsWith(
    ` 0 Current Client Connections\n ${before.counters.peakClientConnections} Peak Client Connections\n 0 In Use Connections\n 1 Peak In Use Connections\n` +
    ' 1 Retained Server Connections\n 1 Peak Retained Server Connections\n 2 Total Client Connections\n 2 Total Client Logins\n' +
    ' 1 Total Reused Connections\n 1 Total Created Connections\n 0 Cache Hits\n 0 Cache Misses\n',
  ), text.stdout);
  t.regex(text.stdout, /^ 1\/3072 Server Connections \/ cache_size$/m);

  t.deepEqual(await runCtl(['-f', proxy.confFile, 'reset-counters']), { code: 0, stdout: 'counters reset\n', stderr: '' });
  const after = await ctlJson<Stats>(proxy.confFile, 'stats');
  t.like(after.counters, {
    totalClientConnectionsAccepted: 0, totalClientLogins: 0, totalServerConnectionsCreated: 0, totalServerConnectionsReused: 0,
    peakClientConnections: 0, peakInUseServerConnections: 0, peakRetainedServerConnections: 0,
    retainedServerConnections: 1, startTime: before.counters.startTime,
  });
  t.true(after.counters.countTime! >= before.counters.countTime!);
  // the stats file follows within its flush interval
  await eventually('stats file reset', () => (readStatsFile(proxy.statFile).totalClientLogins === 0 ? true : undefined));
});

test('reload applies live options, reports those that need a restart, and refuses a bad file', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  const conf = await readFile(proxy.confFile, 'utf8');
  await writeFile(proxy.confFile, `${conf}cache_expiration_time 7\nmax_clients 50\nlisten_port 1\nno_such_option 1\n`);
  const r = await runCtl(['-f', proxy.confFile, 'reload']);
  t.is(r.code, 0, r.stderr);
  t.is(
    r.stdout,
    `configuration ${proxy.confFile} reloaded\n` +
      '  changed: cache_expiration_time: 300 -> 7\n' +
      '  changed: max_clients: 10000 -> 50\n' +
      `  needs a restart: listen_port: ${proxy.port} -> 1\n` +
      `  warning: ${proxy.confFile}:${conf.split('\n').length + 3}: unknown option 'no_such_option' ignored\n`,
  );
  await proxy.waitForLog(/imapproxyctl reload: cache_expiration_time: 300 -> 7$/);
  await proxy.waitForLog(/warning: imapproxyctl reload: listen_port: \d+ -> 1 needs a restart; still using the old value$/);
  // still listening where it was
  const c = await RawClient.connect(proxy.port);
  await c.close();
  // nothing changed: says so
  const same = await runCtl(['-f', proxy.confFile, 'reload']);
  t.true(same.stdout.includes('  needs a restart: listen_port') && !same.stdout.includes('changed:'), same.stdout);

  // a bad line: imapproxyctl still finds the socket (with a warning), the daemon refuses the file
  await writeFile(proxy.confFile, `${conf}cache_expiration_time soon\n`);
  const bad = await runCtl(['-f', proxy.confFile, 'reload']);
  t.is(bad.code, 1);
  t.is(bad.stdout, '');
  const [warning, error, ...rest] = bad.stderr.split('\n');
  t.regex(warning!, /^imapproxyctl: warning: .*imapproxy\.conf:\d+: option 'cache_expiration_time'/);
  t.regex(error!, /^imapproxyctl: .*imapproxy\.conf:\d+: option 'cache_expiration_time'.*; the running configuration is unchanged \(IMAPPROXY_ERR_RELOAD\)$/);
  t.deepEqual(rest, ['']);
  await writeFile(proxy.confFile, `${conf}cache_expiration_time 7\nmax_clients 50\n`);
  const back = await ctlJson<{ applied: unknown[] }>(proxy.confFile, 'reload');
  t.deepEqual(back.applied, [], 'the bad file changed nothing');
});

test('the control socket: mode 0600, owned by proc_username, answers requests in order, refuses bad ones', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  const sock = path.join(proxy.dir, 'control.sock');
  const st = await stat(sock);
  t.true(st.isSocket());
  t.is(st.mode & 0o777, 0o600);
  if (asRoot) t.is(st.uid, (await lookupUser('nobody'))!.uid);

  const answers = await new Promise<string[]>((resolve, reject) => {
    const s = net.connect(sock);
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      if (lines.length > 5) {
        s.destroy();
        resolve(lines.slice(0, 5));
      }
    });
    s.on('error', reject);
    s.write('{"cmd":"nope"}\nnot json\n{"cmd":"flush","user":5}\n{"cmd":"trace","users":[]}\n{"cmd":"trace-list"}\n');
  });
  const parsed = answers.map((l) => JSON.parse(l) as { ok: boolean; error?: { code: string; message: string } });
  t.deepEqual(parsed.map((a) => a.error?.code ?? 'ok'), [
    'IMAPPROXY_ERR_CONTROL_REQUEST', 'IMAPPROXY_ERR_CONTROL_REQUEST', 'IMAPPROXY_ERR_CONTROL_REQUEST', 'IMAPPROXY_ERR_CONTROL_REQUEST', 'ok',
  ]);
  t.regex(parsed[0]!.error!.message, /^unknown command "nope"; known: version, dump, stats, flush, /);
  t.is(parsed[1]!.error!.message, 'not a JSON object');
  t.is(parsed[2]!.error!.message, 'user: expected a non-empty string');
  t.deepEqual(parsed[4], { ok: true, traced: [] });
});

test('errors: no daemon, stale socket, no permission, bad config, bad usage, daemon error -- each its exit status', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxyctl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  const missing = path.join(dir, 'missing.sock');
  t.deepEqual(await runCtl(['-s', missing, 'dump']), {
    code: 69, stdout: '', stderr: `imapproxyctl: imapproxyd is not running: control socket ${missing} does not exist\n`,
  });
  // a socket file nobody listens on (a daemon that was killed)
  const stale = path.join(dir, 'stale.sock');
  const bound = spawnSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]);
  t.is(bound.status, 0, String(bound.stderr));
  t.deepEqual(await runCtl(['-s', stale, 'stats']), {
    code: 69, stdout: '', stderr: `imapproxyctl: imapproxyd is not running: nothing listens on control socket ${stale}\n`,
  });
  t.deepEqual(await runCtl(['-f', path.join(dir, 'nope.conf'), 'dump']), {
    code: 78, stdout: '', stderr: `imapproxyctl: ${path.join(dir, 'nope.conf')}: cannot read config file: no such file or directory (ENOENT)\n`,
  });
  const usage = await runCtl(['-s', missing, 'frobnicate']);
  t.is(usage.code, 64);
  t.is(usage.stderr, 'imapproxyctl: Unknown argument: frobnicate\nRun imapproxyctl --help for the commands.\n');
  t.is((await runCtl(['-s', missing])).code, 64);
  t.is((await runCtl(['-s', missing, 'trace', '--off', 'a', 'b'])).code, 64);

  // a daemon whose trace file could not be opened answers trace with an error
  const proxy = await proxyFor(t, { serverPort: dovecot.port, extraConf: `protocol_log_filename ${path.join(dir, 'no/such/dir/trace.log')}` });
  const r = await runCtl(['-f', proxy.confFile, 'trace', 'user4']);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^imapproxyctl: protocol log file .*trace\.log could not be opened at start: nothing would be written \(IMAPPROXY_ERR_TRACE_FILE\)\n$/);
  const newlog = await runCtl(['-f', proxy.confFile, 'newlog']);
  t.is(newlog.code, 1);
  t.regex(newlog.stderr, /\(IMAPPROXY_ERR_TRACE_FILE\)\n$/);

  if (!asRoot) return;
  // a user that is neither root nor proc_username may not use the socket (uid 1: daemon)
  const denied = await runCtl(['-f', proxy.confFile, 'dump'], { asUid: 1, asGid: 1 });
  t.deepEqual(denied, {
    code: 77, stdout: '',
    stderr: `imapproxyctl: permission denied on control socket ${path.join(proxy.dir, 'control.sock')}: run imapproxyctl as root or as proc_username\n`,
  });
});

// --- XPROXY_* ------------------------------------------------------------------

const ADMIN_SCRIPT = [
  'v1 XPROXY_VERSION',
  'v2 xproxy_version extra args',
  'd1 XPROXY_DUMPICC',
  't0 XPROXY_TRACE',
  't1 XPROXY_TRACE user5',
  't2 XPROXY_TRACE user5',
  't3 XPROXY_TRACE user6',
  't4 XPROXY_TRACE',
  't5 XPROXY_TRACE a b',
  't6 XPROXY_TRACE',
  'n1 XPROXY_NEWLOG',
  'n2 XPROXY_NEWLOG extra',
  'r1 XPROXY_RESETCOUNTERS',
  'x1 XPROXY_FOO',
  'x2 P_VERSION',
  'x3 P_TRACE user5',
];

const ADMIN_REPLIES = [
  'C: v1 XPROXY_VERSION', 'S: * XPROXY_VERSION 1.2.8 [SVN]', 'S: v1 OK Completed',
  'C: v2 xproxy_version extra args', 'S: * XPROXY_VERSION 1.2.8 [SVN]', 'S: v2 OK Completed',
  'C: d1 XPROXY_DUMPICC', 'S: d1 OK Completed',
  'C: t0 XPROXY_TRACE', 'S: t0 OK Tracing disabled',
  'C: t1 XPROXY_TRACE user5', 'S: t1 OK Tracing enabled for user user5.',
  'C: t2 XPROXY_TRACE user5', 'S: t2 BAD Tracing already enabled for user user5',
  'C: t3 XPROXY_TRACE user6', 'S: t3 BAD Tracing already enabled for user user5',
  'C: t4 XPROXY_TRACE', 'S: t4 OK Tracing disabled',
  'C: t5 XPROXY_TRACE a b', 'S: t5 OK Tracing enabled for user a.',
  'C: t6 XPROXY_TRACE', 'S: t6 OK Tracing disabled',
  'C: n1 XPROXY_NEWLOG', 'S: n1 OK Logfile cleared',
  'C: n2 XPROXY_NEWLOG extra', 'S: n2 OK Logfile cleared',
  'C: r1 XPROXY_RESETCOUNTERS', 'S: r1 OK Counters reset',
  'C: x1 XPROXY_FOO', 'S: x1 BAD Please login first',
  'C: x2 P_VERSION', 'S: x2 BAD Please login first',
  'C: x3 P_TRACE user5', 'S: x3 BAD Please login first',
];

test('XPROXY_* with enable_admin_commands yes: the exact replies, and the same as the C original', async (t) => {
  const [ours, c] = await Promise.all([
    proxyFor(t, { serverPort: dovecot.port, extraConf: 'enable_admin_commands yes' }),
    startCImapproxy({ serverPort: dovecot.port }),
  ]);
  t.teardown(() => c.stop());
  const [fromOurs, fromC] = await Promise.all([replies(ours.port, ADMIN_SCRIPT), replies(c.port, ADMIN_SCRIPT)]);
  t.deepEqual(fromOurs, ADMIN_REPLIES);
  t.deepEqual(fromOurs, fromC);
});

test('XPROXY_* with admin commands off: BAD Unrecognized command for the five, like the C original', async (t) => {
  const [ours, c] = await Promise.all([
    proxyFor(t, { serverPort: dovecot.port }),
    startCImapproxy({ serverPort: dovecot.port, extraConf: 'enable_admin_commands no' }),
  ]);
  t.teardown(() => c.stop());
  const script = ['a XPROXY_VERSION', 'b XPROXY_DUMPICC', 'c XPROXY_TRACE user5', 'd XPROXY_NEWLOG', 'e xproxy_resetcounters', 'f XPROXY_FOO'];
  const expected = [
    'C: a XPROXY_VERSION', 'S: a BAD Unrecognized command',
    'C: b XPROXY_DUMPICC', 'S: b BAD Unrecognized command',
    'C: c XPROXY_TRACE user5', 'S: c BAD Unrecognized command',
    'C: d XPROXY_NEWLOG', 'S: d BAD Unrecognized command',
    'C: e xproxy_resetcounters', 'S: e BAD Unrecognized command',
    'C: f XPROXY_FOO', 'S: f BAD Please login first',
  ];
  const [fromOurs, fromC] = await Promise.all([replies(ours.port, script), replies(c.port, script)]);
  t.deepEqual(fromOurs, expected);
  t.deepEqual(fromC, expected);
  // a reload switches them on
  await writeFile(ours.confFile, `${await readFile(ours.confFile, 'utf8')}enable_admin_commands yes\n`);
  await ctlJson(ours.confFile, 'reload');
  t.deepEqual(await replies(ours.port, ['a XPROXY_VERSION']), ['C: a XPROXY_VERSION', 'S: * XPROXY_VERSION 1.2.8 [SVN]', 'S: a OK Completed']);
});

test('XPROXY_DUMPICC shows Active and Cached connections like the C original (numbers are connection ids)', async (t) => {
  const [ours, c] = await Promise.all([
    proxyFor(t, { serverPort: dovecot.port, extraConf: 'enable_admin_commands yes' }),
    startCImapproxy({ serverPort: dovecot.port }),
  ]);
  t.teardown(() => c.stop());
  const dumps: string[][] = [];
  for (const port of [ours.port, c.port]) {
    const session = await RawClient.connect(port);
    t.deepEqual(await session.command('s1 LOGIN user7 pass7'), ['s1 OK User logged in']);
    const active = await replies(port, ['d1 XPROXY_DUMPICC']);
    await session.command('s2 LOGOUT');
    await session.close();
    const cached = await eventually('Cached', async () => {
      const r = await replies(port, ['d2 XPROXY_DUMPICC']);
      return r.some((l) => l.endsWith(' Cached')) ? r : undefined;
    });
    dumps.push([...active, ...cached].map((l) => l.replace(/XPROXY_DUMPICC \d+ /, 'XPROXY_DUMPICC N ')));
  }
  t.deepEqual(dumps[0], [
    'C: d1 XPROXY_DUMPICC', 'S: * XPROXY_DUMPICC N user7 Active', 'S: d1 OK Completed',
    'C: d2 XPROXY_DUMPICC', 'S: * XPROXY_DUMPICC N user7 Cached', 'S: d2 OK Completed',
  ]);
  t.deepEqual(dumps[0], dumps[1]);
  // our number is the sd [N] of the log lines
  const [login] = await waitForLoginEvents(ours, 'user7', 1);
  t.deepEqual(await replies(ours.port, ['d3 XPROXY_DUMPICC']), ['C: d3 XPROXY_DUMPICC', `S: * XPROXY_DUMPICC ${login!.sd} user7 Cached`, 'S: d3 OK Completed']);
});

test('XPROXY_RESETCOUNTERS resets the same counters in the stats file as the C original', async (t) => {
  const [ours, c] = await Promise.all([
    proxyFor(t, { serverPort: dovecot.port, extraConf: 'enable_admin_commands yes' }),
    startCImapproxy({ serverPort: dovecot.port }),
  ]);
  t.teardown(() => c.stop());
  const fields = ['totalClientConnectionsAccepted', 'totalClientLogins', 'totalServerConnectionsCreated', 'totalServerConnectionsReused',
    'peakClientConnections', 'peakInUseServerConnections', 'peakRetainedServerConnections', 'retainedServerConnections', 'currentClientConnections'] as const;
  const seen: Array<Record<string, number>> = [];
  for (const [port, statFile] of [[ours.port, ours.statFile], [c.port, c.statFile]] as const) {
    const s = await RawClient.connect(port);
    await s.command('a1 LOGIN user8 pass8');
    await s.command('a2 LOGOUT');
    await s.close();
    t.deepEqual(await replies(port, ['r1 XPROXY_RESETCOUNTERS']), ['C: r1 XPROXY_RESETCOUNTERS', 'S: r1 OK Counters reset']);
    // ours writes the file once a second: wait for the reset and the cached connection to show
    const stats = await statsWhen(statFile, (x) => x.totalClientLogins === 0 && x.retainedServerConnections === 1 && x.currentClientConnections === 0)
      .catch(() => readStatsFile(statFile)); // compared in full below
    seen.push(Object.fromEntries(fields.map((f) => [f, stats[f]])));
  }
  t.deepEqual(seen[0], {
    totalClientConnectionsAccepted: 0, totalClientLogins: 0, totalServerConnectionsCreated: 0, totalServerConnectionsReused: 0,
    peakClientConnections: 0, peakInUseServerConnections: 0, peakRetainedServerConnections: 0, retainedServerConnections: 1,
    currentClientConnections: 0,
  });
  t.deepEqual(seen[0], seen[1]);
});

test('an admin command with a literal drops the client, like the C original', async (t) => {
  const [ours, c] = await Promise.all([
    proxyFor(t, { serverPort: dovecot.port, extraConf: 'enable_admin_commands yes' }),
    startCImapproxy({ serverPort: dovecot.port }),
  ]);
  t.teardown(() => c.stop());
  for (const port of [ours.port, c.port]) {
    const client = await RawClient.connect(port);
    await client.send('l1 XPROXY_TRACE {5}');
    t.deepEqual(await client.expectClosed(), [], `port ${port}`);
  }
});
