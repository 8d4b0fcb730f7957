// Issue 5, the process: background mode with its pid file, syslog to a test
// socket (IMAPPROXYD_SYSLOG_SOCKET) in the original's line format, the
// privilege drop, SIGHUP reloads, SIGTERM logs out of every server connection
// and exits 0, the journal's priority prefix in foreground mode, and a control
// socket that another daemon still answers on.
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, chown, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { openSync, closeSync, fstatSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readStatsFile } from '@imapproxy/shared';
import { startCImapproxy } from './helpers/c-imapproxy.js';
import { runCtl } from './helpers/ctl.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { getFreePort, LOOPBACK } from './helpers/ports.js';
import { IMAPPROXYD, proxyFor } from './helpers/proxy.js';
import { eventually, waitForCached, waitForLoginEvents } from './helpers/proxy-log.js';
import { isAlive, onProcessExit, signal, waitForExit } from './helpers/process-tree.js';
import { startSyslogCatcher } from './helpers/syslog-catcher.js';
import { lookupGroupId, lookupUser } from './helpers/system-user.js';
import { RawClient } from './helpers/transcript.js';
import { scaled, settled } from './helpers/wait.js';

let dovecot: Dovecot;
const asRoot = process.getuid?.() === 0;
const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';

test.before(async () => {
  dovecot = await startDovecot({ users: 12 });
});

test.after.always(async () => {
  await dovecot?.stop();
});

// --- a daemon in background mode ----------------------------------------------

interface Background {
  pid: number;
  port: number;
  dir: string;
  confFile: string;
  pidFile: string;
  controlSocket: string;
  /** The catcher's lines: "2026-01-01 12:00:00 local3.info Jan  1 12:00:00 in.imapproxyd[123]: ...". */
  syslog(): Promise<string[]>;
  waitForSyslog(re: RegExp, timeoutMs?: number): Promise<string>;
}

async function startBackground(t: ExecutionContext, extraConf: string): Promise<Background> {
  // the catcher's socket path must fit in 108 bytes
  const dir = await mkdtemp(path.join(os.tmpdir().length <= 60 ? os.tmpdir() : '/tmp', 'imapproxy-bg-'));
  await chmod(dir, 0o755);
  const nobody = await lookupUser('nobody');
  const nogroup = await lookupGroupId('nogroup');
  // the daemon's user may remove its pid file and control socket at exit
  if (asRoot && nobody && nogroup !== undefined) await chown(dir, nobody.uid, nogroup);
  const logFile = path.join(dir, 'syslog.txt');
  const catcher = await startSyslogCatcher(path.join(dir, 'log.sock'), logFile);
  let port = 0;
  const confFile = path.join(dir, 'imapproxy.conf');
  const pidFile = path.join(dir, 'run', 'imapproxyd.pid');
  const controlSocket = path.join(dir, 'run', 'control.sock');
  const writeConf = () => writeFile(confFile, [
    `server_hostname ${LOOPBACK}`, `server_port ${dovecot.port}`, `listen_address ${LOOPBACK}`, `listen_port ${port}`,
    'connect_retries 0', 'foreground_mode no', `stat_filename ${path.join(dir, 'pimpstats')}`,
    `protocol_log_filename ${path.join(dir, 'protocol.log')}`, `control_socket ${controlSocket}`, extraConf, '',
  ].join('\n'));
  let pid = 0;
  const removeHook = onProcessExit(() => {
    if (pid) signal(pid, 'SIGKILL');
  });
  t.teardown(async () => {
    if (pid && isAlive(pid)) {
      signal(pid, 'SIGTERM');
      if ((await waitForExit([pid], 8000)).length > 0) signal(pid, 'SIGKILL');
    }
    removeHook();
    await catcher.stop();
    await rm(dir, { recursive: true, force: true });
  });
  // The launcher returns once the daemon listens; `close` (not just `exit`) proves the
  // daemon does not hold the launcher's stdout/stderr open.
  const launch = async (): Promise<{ code: number | null; output: string }> => {
    const launcher = spawn(process.execPath, [IMAPPROXYD, '-f', confFile, '-p', pidFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, IMAPPROXYD_SYSLOG_SOCKET: catcher.socketPath },
    });
    let output = '';
    launcher.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    launcher.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      const limit = scaled(15_000);
      const timer = setTimeout(() => reject(new Error(`imapproxyd launcher did not return within ${limit} ms: ${output}`)), limit);
      launcher.once('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    return { code, output };
  };
  // A free port can be taken by someone else before the daemon binds it: retry with
  // another one (and a clean syslog file, which the tests read from the start).
  let code: number | null;
  let output: string;
  for (let attempt = 1; ; attempt++) {
    port = await getFreePort();
    await writeConf();
    ({ code, output } = await launch());
    if (code === 0 || !/EADDRINUSE/.test(output) || attempt >= 3) break;
    await writeFile(logFile, '');
  }
  if (code !== 0) throw new Error(`imapproxyd launcher exited ${code}: ${output}`);
  pid = Number((await readFile(pidFile, 'utf8')).trim());
  // The catcher writes a datagram a moment after the daemon sent it: read until the file is quiet.
  const syslog = () => settled('the syslog file to be quiet', async () =>
    (await readFile(logFile, 'utf8').catch(() => '')).split('\n').filter((l) => l !== ''), { quietMs: 50 });
  return {
    pid, port, dir, confFile, pidFile, controlSocket, syslog,
    async waitForSyslog(re, timeoutMs = 5000) {
      return eventually(`syslog line ${re}`, async () => (await readFile(logFile, 'utf8').catch(() => '')).split('\n').find((l) => re.test(l)), timeoutMs,
        () => readFileSync(logFile, 'utf8'));
    },
  };
}

const SYSLOG_LINE = (facility: string, pid: number, message: string) =>
  new RegExp(String.raw`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ${facility} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d in\.imapproxyd\[${pid}\]: ${message}$`);

async function loginLogout(port: number, user: string, pass: string): Promise<string[]> {
  const c = await RawClient.connect(port);
  const lines = await c.command(`a1 LOGIN ${user} ${pass}`);
  await c.command('a2 LOGOUT');
  await c.close();
  return lines;
}

function loggerProcessesOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of spawnSync('ls', ['/proc']).stdout.toString().split('\n')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0');
      if (cmd.includes(`--id=${pid}`) && cmd.some((a) => a.endsWith('logger'))) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

test('background mode: pid file, syslog on the socket given, uid nobody; SIGTERM removes pid file and socket', async (t) => {
  const bg = await startBackground(t, 'syslog_facility LOG_LOCAL3');
  t.is(await readFile(bg.pidFile, 'utf8'), `${bg.pid}\n`);
  t.true(isAlive(bg.pid));
  if (asRoot) {
    const nobody = (await lookupUser('nobody'))!;
    const nogroup = (await lookupGroupId('nogroup'))!;
    const status = await readFile(`/proc/${bg.pid}/status`, 'utf8');
    t.regex(status, new RegExp(`^Uid:\\t${nobody.uid}\\t${nobody.uid}\\t${nobody.uid}\\t${nobody.uid}$`, 'm'));
    t.regex(status, new RegExp(`^Gid:\\t${nogroup}\\t${nogroup}\\t${nogroup}\\t${nogroup}$`, 'm'));
    t.regex(status, /^Groups:[\t ]*$/m);
    // the syslog helper runs as that user too
    for (const p of loggerProcessesOf(bg.pid)) t.regex(readFileSync(`/proc/${p}/status`, 'utf8'), new RegExp(`^Uid:\\t${nobody.uid}\\t`, 'm'));
    t.is(loggerProcessesOf(bg.pid).length, 1);
  }
  await bg.waitForSyslog(SYSLOG_LINE('local3.info', bg.pid, String.raw`imapproxy-ts version 0\.1\.0 normal server startup on 127\.0\.0\.1:${bg.port}\.`));
  t.deepEqual(await loginLogout(bg.port, 'user1', 'pass1'), ['a1 OK User logged in']);
  await bg.waitForSyslog(SYSLOG_LINE('local3.info', bg.pid, String.raw`LOGIN: 'user1' \(127\.0\.0\.1:\d+\) on new sd \[\d+\]`));
  await bg.waitForSyslog(SYSLOG_LINE('local3.info', bg.pid, String.raw`LOGOUT: 'user1' from server sd \[\d+\]`));
  const version = await runCtl(['-f', bg.confFile, '--json', 'version']);
  t.is(JSON.parse(version.stdout).pid, bg.pid);

  signal(bg.pid, 'SIGTERM');
  t.deepEqual(await waitForExit([bg.pid], 8000), []);
  await t.throwsAsync(stat(bg.pidFile), { code: 'ENOENT' });
  await t.throwsAsync(stat(bg.controlSocket), { code: 'ENOENT' });
  const lines = await bg.syslog();
  t.regex(lines.at(-1)!, SYSLOG_LINE('local3.info', bg.pid, 'imapproxyd stopped'));
  t.true(lines.some((l) => SYSLOG_LINE('local3.info', bg.pid, 'SIGTERM received: shutting down').test(l)));
  t.deepEqual(loggerProcessesOf(bg.pid), [], 'the logger process ended with the daemon');
});

test('syslog_prioritymask and syslog_facility follow SIGHUP', async (t) => {
  const bg = await startBackground(t, 'syslog_facility LOG_DAEMON\nsyslog_prioritymask LOG_NOTICE');
  t.deepEqual(await loginLogout(bg.port, 'user2', 'pass2'), ['a1 OK User logged in']);
  // a warning (a change that needs a restart) comes through; the info lines before it did not
  const conf = await readFile(bg.confFile, 'utf8');
  await writeFile(bg.confFile, `${conf}listen_port 1\n`);
  signal(bg.pid, 'SIGHUP');
  await bg.waitForSyslog(SYSLOG_LINE('daemon.warning', bg.pid, String.raw`SIGHUP: listen_port: ${bg.port} -> 1 needs a restart; still using the old value`));
  const before = await bg.syslog();
  t.false(before.some((l) => / (LOGIN|LOGOUT): /.test(l) || /\.info /.test(l)), before.join('\n'));

  await writeFile(bg.confFile, conf.replace('syslog_facility LOG_DAEMON\nsyslog_prioritymask LOG_NOTICE', 'syslog_facility LOG_LOCAL5'));
  signal(bg.pid, 'SIGHUP');
  await bg.waitForSyslog(SYSLOG_LINE('local5.info', bg.pid, String.raw`SIGHUP: syslog_prioritymask: LOG_NOTICE -> \(not set\)`));
  t.deepEqual(await loginLogout(bg.port, 'user2', 'pass2'), [REUSE, 'a1 OK User logged in']);
  await bg.waitForSyslog(SYSLOG_LINE('local5.info', bg.pid, String.raw`LOGIN: 'user2' \(127\.0\.0\.1:\d+\) on existing sd \[\d+\]`));
});

test('syslog lines have the C original\'s form (ident, pid, facility, priority, message)', async (t) => {
  const c = await startCImapproxy({ serverPort: dovecot.port });
  t.teardown(() => c.stop());
  if (!c.logging) {
    t.log('no private /dev/log for the C original here (mount namespaces unavailable): comparing with the expected form only');
  }
  const bg = await startBackground(t, 'syslog_facility LOG_MAIL');
  await loginLogout(bg.port, 'user3', 'pass3');
  await loginLogout(c.port, 'user3', 'pass3');
  const shape = (lines: string[]) =>
    lines
      .filter((l) => /: LOG(IN|OUT): 'user3'/.test(l))
      .map((l) =>
        l
          .replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /, '')
          .replace(/^(\S+) [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d /, '$1 TIME ')
          .replace(/\[\d+\]/g, '[N]')
          .replace(/127\.0\.0\.1:\d+/, 'CLIENT'),
      );
  const expected = [
    "mail.info TIME in.imapproxyd[N]: LOGIN: 'user3' (CLIENT) no previous connection: creating a new one",
    "mail.info TIME in.imapproxyd[N]: LOGIN: 'user3' (CLIENT) on new sd [N]",
    "mail.info TIME in.imapproxyd[N]: LOGOUT: 'user3' from server sd [N]",
  ];
  const ours = await eventually('our LOGOUT line', async () => {
    const s = shape(await bg.syslog());
    return s.length >= 3 ? s : undefined;
  });
  t.deepEqual(ours, expected);
  if (c.logging) {
    const theirs = await eventually('their LOGOUT line', async () => {
      const s = shape(await c.logLines());
      return s.length >= 3 ? s : undefined;
    });
    t.deepEqual(ours, theirs);
  }
});

// --- signals in foreground mode ----------------------------------------------------

test('SIGHUP changes cache_expiration_time, for connections already cached too', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  t.deepEqual(await loginLogout(proxy.port, 'user4', 'pass4'), ['a1 OK User logged in']);
  const [first] = await waitForLoginEvents(proxy, 'user4', 1);
  await waitForCached(proxy, 'user4');
  const conf = await readFile(proxy.confFile, 'utf8');
  await writeFile(proxy.confFile, conf.replace('cache_expiration_time 300', 'cache_expiration_time 2'));
  const hupAt = Date.now();
  signal(proxy.pid, 'SIGHUP');
  await proxy.waitForLog(/info: SIGHUP: cache_expiration_time: 300 -> 2$/);
  await proxy.waitForLog(/info: SIGHUP: configuration .* reloaded \(1 option\(s\) changed, 0 need a restart\)$/);
  await proxy.waitForLog(new RegExp(`info: Expiring server sd \\[${first!.sd}\\]$`), 5000);
  // 2 s instead of 300 s; the margin is stretched by the load (the log reaches us late)
  t.true(Date.now() - hupAt < scaled(4000), `expired ${Date.now() - hupAt} ms after SIGHUP`);

  // a connection cached now lives 2 s
  const before = Date.now(); // before it was cached: `lived` below cannot come out short
  t.deepEqual(await loginLogout(proxy.port, 'user4', 'pass4'), ['a1 OK User logged in']);
  t.is(await dovecot.loginCount('user4'), 2);
  const [, second] = await waitForLoginEvents(proxy, 'user4', 2);
  await waitForCached(proxy, 'user4', 2);
  await proxy.waitForLog(new RegExp(`info: Expiring server sd \\[${second!.sd}\\]$`), 5000);
  const lived = Date.now() - before;
  // Wide margins, the upper one stretched by the load (it includes the login and the
  // log's way to us): the point is 2 s instead of 300 s, not a timing measurement.
  t.true(lived > 800 && lived < scaled(6000), `lived ${lived} ms`);
  // the server saw LOGOUTs
  await eventually('Dovecot logged both out', async () => {
    const log = await readFile(dovecot.logFile, 'utf8');
    return (log.match(/imap\(user4\)<[^\n]*Disconnected: Logged out/g) ?? []).length === 2 ? true : undefined;
  });
});

test('SIGTERM: cached and active server connections are logged out, final counters written, exit 0', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  t.deepEqual(await loginLogout(proxy.port, 'user5', 'pass5'), ['a1 OK User logged in']);
  await waitForCached(proxy, 'user5');
  const active = await RawClient.connect(proxy.port, { timeoutMs: 10_000 });
  t.deepEqual(await active.command('b1 LOGIN user6 pass6'), ['b1 OK User logged in']);
  await active.command('b2 SELECT INBOX');
  const who = async () => (await dovecot.doveadm('who')).split('\n').filter((l) => /^user[56] /.test(l));
  t.is((await who()).length, 2);

  const termAt = Date.now();
  signal(proxy.pid, 'SIGTERM');
  // the session that stays logged in gets its grace time, then a BYE
  t.deepEqual(await active.expectClosed(), ['* BYE Server shutting down']);
  const waited = Date.now() - termAt;
  t.true(waited >= 2500 && waited < 6000, `${waited} ms`);
  t.deepEqual(await proxy.exitStatus(), { code: 0, signal: null });
  await eventually('no IMAP session left at the server', async () => ((await who()).length === 0 ? true : undefined), 5000);
  const log = await readFile(dovecot.logFile, 'utf8');
  for (const user of ['user5', 'user6']) {
    t.regex(log, new RegExp(`imap\\(${user}\\)<[^\\n]*Disconnected: Logged out`), `${user} got a LOGOUT`);
    t.notRegex(log, new RegExp(`imap\\(${user}\\)<[^\\n]*Disconnected: Connection closed`), `${user} was not just dropped`);
  }
  const stats = readStatsFile(proxy.statFile);
  t.like(stats, { totalClientLogins: 2, totalServerConnectionsCreated: 2, inUseServerConnections: 0, retainedServerConnections: 0 });
  t.truthy(proxy.log().find((l) => l.endsWith('info: final counters: 2 client connections, 2 logins, 2 server connections created, 0 reused')));
  t.regex(proxy.log().at(-1)!, /info: imapproxyd stopped$/);
});

// Not root: there is nothing to drop, and the test is reported as skipped.
(asRoot ? test : test.skip)('started as root: the daemon runs as proc_username and its files belong to it', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  const nobody = (await lookupUser('nobody'))!;
  const nogroup = (await lookupGroupId('nogroup'))!;
  // the daemon listens before it drops privileges (SPEC §3): wait for the drop
  await proxy.waitForLog(new RegExp(`info: Process will run as uid ${nobody.uid} \\(nobody\\) and gid ${nogroup} \\(nogroup\\)\\.$`));
  const status = await readFile(`/proc/${proxy.pid}/status`, 'utf8');
  t.regex(status, new RegExp(`^Uid:\\t${nobody.uid}\\t${nobody.uid}\\t${nobody.uid}\\t${nobody.uid}$`, 'm'));
  t.regex(status, new RegExp(`^Gid:\\t${nogroup}\\t${nogroup}\\t${nogroup}\\t${nogroup}$`, 'm'));
  for (const f of ['control.sock', 'pimpstats', 'protocol.log']) {
    const st = await stat(path.join(proxy.dir, f));
    t.deepEqual([st.uid, st.gid, st.mode & 0o777], [nobody.uid, nogroup, 0o600], f);
  }
});

test('a control socket another daemon answers on stops the start; a stale one is replaced', async (t) => {
  const proxy = await proxyFor(t, { serverPort: dovecot.port });
  const conf = (await readFile(proxy.confFile, 'utf8')).replace(`listen_port ${proxy.port}`, `listen_port ${await getFreePort()}`);
  const second = path.join(proxy.dir, 'second.conf');
  await writeFile(second, conf);
  const r = spawnSync(process.execPath, [IMAPPROXYD, '-f', second], { encoding: 'utf8', timeout: scaled(15_000) });
  t.is(r.status, 69, 'EX_UNAVAILABLE: the control socket is in use');
  t.regex(r.stderr, new RegExp(`imapproxyd: control_socket ${path.join(proxy.dir, 'control.sock').replace(/\./g, '\\.')} is in use: is another imapproxyd running with this configuration\\?\\n$`));

  // a socket file left by a killed daemon
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-stale-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const stale = path.join(dir, 'control.sock');
  t.is(spawnSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]).status, 0);
  const p2 = await proxyFor(t, { serverPort: dovecot.port, extraConf: `control_socket ${stale}` });
  const v = await runCtl(['-f', p2.confFile, '--json', 'version']);
  t.is(JSON.parse(v.stdout).pid, p2.pid);
});

test('foreground under systemd: stderr lines carry the journal priority prefix', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-journal-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await getFreePort();
  const confFile = path.join(dir, 'imapproxy.conf');
  await writeFile(confFile, [
    `server_hostname ${LOOPBACK}`, `server_port ${dovecot.port}`, `listen_address ${LOOPBACK}`, `listen_port ${port}`,
    'foreground_mode yes', `stat_filename ${path.join(dir, 'pimpstats')}`, `protocol_log_filename ${path.join(dir, 'trace')}`,
    `control_socket ${path.join(dir, 'control.sock')}`, '',
  ].join('\n'));
  const errFile = path.join(dir, 'stderr');
  const fd = openSync(errFile, 'w');
  const st = fstatSync(fd);
  const child = spawn(process.execPath, [IMAPPROXYD, '-f', confFile], {
    stdio: ['ignore', 'ignore', fd],
    env: { ...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` },
  });
  closeSync(fd);
  const removeHook = onProcessExit(() => signal(child.pid!, 'SIGKILL'));
  t.teardown(async () => {
    signal(child.pid!, 'SIGKILL');
    await waitForExit([child.pid!], 3000);
    removeHook();
  });
  const started = await eventually('start-up line', async () => {
    const text = await readFile(errFile, 'utf8');
    return text.includes('normal server startup') ? text : undefined;
  }, 10_000);
  t.regex(started, /^<6>Using configuration file '.*imapproxy\.conf'\n/);
  t.regex(started, new RegExp(`^<6>imapproxy-ts version 0\\.1\\.0 normal server startup on 127\\.0\\.0\\.1:${port}\\.$`, 'm'));
  // a login failure at the server is logged at LOG_INFO, like the original; an unreachable server at LOG_ERR
  await writeFile(confFile, (await readFile(confFile, 'utf8')).replace(`server_port ${dovecot.port}`, 'server_port 1'));
  signal(child.pid!, 'SIGHUP');
  const reloaded = await eventually('reload warning', async () => {
    const text = await readFile(errFile, 'utf8');
    return text.includes('needs a restart') ? text : undefined;
  });
  t.regex(reloaded, new RegExp(`^<4>SIGHUP: server_port: ${dovecot.port} -> 1 needs a restart; still using the old value$`, 'm'));
  t.deepEqual((await readdir(dir)).includes('control.sock'), true);
});
