// Issue 20, a start that tells the truth: a background start that fails before
// the daemon is ready exits with the daemon's message and a documented status
// (it used to exit 0 in a race), leaves no pid file and no process; `-t`
// finds what a start would stop on (user, TLS files, pid file directory) and
// prints every warning a start prints, once.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { getFreePort, LOOPBACK } from './helpers/ports.js';
import { runCtl } from './helpers/ctl.js';
import { IMAPPROXYD, startProxy } from './helpers/proxy.js';
import { onProcessExit, signal, waitForExit } from './helpers/process-tree.js';
import { makeSelfSignedCert } from './helpers/tls-cert.js';
import { RawClient } from './helpers/transcript.js';

const asRoot = process.getuid?.() === 0;
/** How often each failing start is tried: the old launcher got 6 of 6 wrong, but only without strace. */
const TRIES = 8;
/** Tests that need root report a skip, not a pass, without it. */
const rootTest = asRoot ? test : test.skip;

let dovecot: Dovecot;
test.before(async () => {
  dovecot = await startDovecot({ users: 2 });
});
test.after.always(async () => {
  await dovecot?.stop();
});

interface Setup {
  dir: string;
  confFile: string;
  pidFile: string;
  port: number;
}

async function setup(t: ExecutionContext, extraConf: string, opts: { foreground?: boolean } = {}): Promise<Setup> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-start-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await getFreePort();
  const confFile = path.join(dir, 'imapproxy.conf');
  await writeFile(confFile, [
    `server_hostname ${LOOPBACK}`, `server_port ${dovecot.port}`, `listen_address ${LOOPBACK}`, `listen_port ${port}`,
    'connect_retries 0', `foreground_mode ${opts.foreground ? 'yes' : 'no'}`, `stat_filename ${path.join(dir, 'pimpstats')}`,
    `protocol_log_filename ${path.join(dir, 'protocol.log')}`, `control_socket ${path.join(dir, 'run', 'control.sock')}`,
    extraConf, '',
  ].join('\n'));
  return { dir, confFile, pidFile: path.join(dir, 'imapproxyd.pid'), port };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** bin/imapproxyd with these arguments, until it exits and its output is closed. */
function imapproxyd(args: string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [IMAPPROXYD, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, IMAPPROXYD_SYSLOG_SOCKET: '/nonexistent/log.sock' } });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`imapproxyd ${args.join(' ')} did not finish within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Processes whose command line names this config file (a daemon left behind). */
function daemonsOf(confFile: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0').includes(confFile)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** A background start that must fail: TRIES times, each with the status, the message, no pid file, no process. */
async function assertStartFails(t: ExecutionContext, s: Setup, code: number, message: RegExp): Promise<void> {
  for (let i = 0; i < TRIES; i++) {
    const r = await imapproxyd(['-f', s.confFile, '-p', s.pidFile]);
    t.is(r.code, code, `try ${i + 1}: exit status; stderr: ${r.stderr}`);
    t.regex(r.stderr, message, `try ${i + 1}: the daemon's reason`);
    t.regex(r.stderr, new RegExp(`the daemon did not start: it exited with status ${code}`), `try ${i + 1}`);
    t.false(existsSync(s.pidFile), `try ${i + 1}: no pid file`);
    const left = daemonsOf(s.confFile);
    for (const pid of left) signal(pid, 'SIGKILL');
    t.deepEqual(left, [], `try ${i + 1}: no daemon left running`);
  }
}

test('background start, port in use: exit 69 with the reason, no pid file, every time', async (t) => {
  const s = await setup(t, '');
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(s.port, LOOPBACK, resolve));
  t.teardown(() => blocker.close());
  await assertStartFails(t, s, 69, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${s.port} \\(listen_port\\): address already in use`));
});

rootTest('background start, unknown proc_username: exit 78 with the reason, no pid file, every time', async (t) => {
  const s = await setup(t, 'proc_username no-such-user-20\nproc_groupname nogroup');
  await assertStartFails(t, s, 78, /option 'proc_username': no such user 'no-such-user-20'/);
});

test('background start, tls_ca_file missing or unusable: exit 78 with the reason, no pid file, every time', async (t) => {
  const missing = await setup(t, 'server_tls yes\ntls_ca_file /nonexistent/ca.pem');
  await assertStartFails(t, missing, 78, /option 'tls_ca_file': cannot read \/nonexistent\/ca\.pem/);
  const dir = await setup(t, '');
  await writeFile(dir.confFile, `${readFileSync(dir.confFile, 'utf8')}tls_ca_file ${dir.dir}\n`);
  await assertStartFails(t, dir, 78, /option 'tls_ca_file': cannot read/);
});

test('background start that works: exit 0 once listening, the pid file names the daemon, a login goes through', async (t) => {
  const s = await setup(t, '');
  const r = await imapproxyd(['-f', s.confFile, '-p', s.pidFile]);
  const pid = Number(readFileSync(s.pidFile, 'utf8').trim());
  const removeHook = onProcessExit(() => signal(pid, 'SIGKILL'));
  t.teardown(async () => {
    signal(pid, 'SIGTERM');
    await waitForExit([pid], 8000);
    removeHook();
  });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(daemonsOf(s.confFile), [pid]);
  // Ready means listening: no polling needed before the first connection.
  const c = await RawClient.connect(s.port);
  t.regex((await c.command('a1 LOGIN user1 pass1')).at(-1)!, /^a1 OK/);
  await c.command('a2 LOGOUT');
  await c.close();
});

test('background start, pid file directory missing: exit 73 and the daemon is stopped', async (t) => {
  const s = await setup(t, '');
  const pidFile = path.join(s.dir, 'no-such-dir', 'imapproxyd.pid');
  const r = await imapproxyd(['-f', s.confFile, '-p', pidFile]);
  t.is(r.code, 73, r.stderr);
  t.regex(r.stderr, /cannot write pid file .*no-such-dir\/imapproxyd\.pid: .*stopping the daemon/);
  // The daemon got SIGTERM and goes away (its shutdown takes a moment).
  const deadline = Date.now() + 10_000;
  while (daemonsOf(s.confFile).length > 0 && Date.now() < deadline) await new Promise((r2) => setImmediate(r2));
  t.deepEqual(daemonsOf(s.confFile), []);
});

test('a bad command line exits 64 with usage advice', async (t) => {
  const r = await imapproxyd(['--bogus']);
  t.is(r.code, 64);
  t.regex(r.stderr, /Unknown argument: bogus\nTry imapproxyd --help/);
});

// --- imapproxyd -t ---------------------------------------------------------------

async function configTest(t: ExecutionContext, extraConf: string, args: string[] = []): Promise<Run & { s: Setup }> {
  const s = await setup(t, extraConf);
  const r = await imapproxyd(['-t', '-f', s.confFile, '-p', s.pidFile, ...args]);
  return { ...r, s };
}

rootTest('-t: unknown proc_username, proc_username root, unknown group: exit 78, "test failed"', async (t) => {
  for (const [conf, message] of [
    ['proc_username no-such-user-20', /error: option 'proc_username': no such user 'no-such-user-20'/],
    ['proc_username root', /error: option 'proc_username': root has uid 0: refusing to run as root/],
    ['proc_groupname no-such-group-20', /error: option 'proc_groupname': no such group 'no-such-group-20'/],
  ] as const) {
    const r = await configTest(t, conf);
    t.is(r.code, 78, conf);
    t.regex(r.stderr, message);
    t.regex(r.stderr, /test failed\n$/);
    t.notRegex(r.stdout, /test is successful/);
  }
});

test('-t: TLS files: a missing CA file, a file without certificates, a key that does not match its certificate: exit 78', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-start-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = await makeSelfSignedCert(dir, { name: 'a' });
  const b = await makeSelfSignedCert(dir, { name: 'b' });
  await writeFile(path.join(dir, 'empty.pem'), 'nothing here\n');
  for (const [conf, message] of [
    [`server_tls yes\nserver_port 993\ntls_ca_file ${dir}/missing.pem`, /error: option 'tls_ca_file': cannot read .*missing\.pem/],
    [`tls_ca_file ${dir}/empty.pem`, /error: option 'tls_ca_file': no PEM certificate in .*empty\.pem/],
    [`client_tls_cert_file ${a.certFile}\nclient_tls_key_file ${b.keyFile}`, /error: client_tls_cert_file .*a-cert\.pem \/ client_tls_key_file .*b-key\.pem: .*(key values mismatch|mismatch)/i],
    [`tls_cert_file ${a.certFile}\ntls_key_file ${b.keyFile}`, /error: TLS to the server \(tls_\* options\): .*mismatch/i],
  ] as const) {
    const r = await configTest(t, conf);
    t.is(r.code, 78, `${conf}: ${r.stderr}`);
    t.regex(r.stderr, message, conf);
  }
  // The matching pair passes.
  const ok = await configTest(t, `client_tls_cert_file ${a.certFile}\nclient_tls_key_file ${a.keyFile}`);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /test is successful\n$/);
});

test('-t: the pid file directory of a background start must exist: exit 73', async (t) => {
  const s = await setup(t, '');
  const r = await imapproxyd(['-t', '-f', s.confFile, '-p', path.join(s.dir, 'nope', 'x.pid')]);
  t.is(r.code, 73, r.stderr);
  t.regex(r.stderr, /error: pid file .*nope\/x\.pid: directory .*nope does not exist/);
});

test('-t prints every warning a start prints (misspelt option with a suggestion, TLS, chroot), and a start prints each once', async (t) => {
  const conf = 'cache_sise 10\nchroot_directory /var/empty\nserver_port 993';
  const r = await configTest(t, conf);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /warning: .*:\d+: unknown option 'cache_sise' ignored; did you mean 'cache_size'\?/);
  t.regex(r.stderr, /warning: chroot_directory \/var\/empty is not supported/);
  t.regex(r.stderr, /warning: server_port is 993 \(IMAPS\) but server_tls is no/);
  t.regex(r.stdout, /test is successful\n$/);

  // A foreground start logs each of them once (it used to print the misspelt option twice).
  const proxy = await startProxy({ serverPort: dovecot.port, extraConf: 'cache_sise 10' });
  t.teardown(() => proxy.stop());
  await proxy.waitForLog(/normal server startup/);
  t.is(proxy.log().filter((l) => l.includes("unknown option 'cache_sise'")).length, 1, proxy.log().join('\n'));
});

rootTest('-t as root: a control socket directory proc_username cannot write is a warning (the socket would stay behind)', async (t) => {
  const s = await setup(t, '');
  const runDir = path.join(s.dir, 'run');
  await mkdir(runDir, { mode: 0o755 }); // root's, not nobody's
  const r = await imapproxyd(['-t', '-f', s.confFile]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /warning: control_socket .*run\/control\.sock: directory .*run is not writable by nobody: the socket stays behind at exit/);
});

// --- reload with files readable by root only -------------------------------------

// Serial: it runs before this file's other tests, whose many daemons would slow its start.
(asRoot ? test.serial : test.serial.skip)('reload after the privilege drop with a config and TLS key readable by root only (0600): SIGHUP and imapproxyctl reload work', async (t) => {
  const certDir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-start-key-'));
  t.teardown(() => rm(certDir, { recursive: true, force: true }));
  const cert = await makeSelfSignedCert(certDir); // key.pem: 0600 root
  await chmod(cert.certFile, 0o600);
  const proxy = await startProxy({ serverPort: dovecot.port, extraConf: `client_tls_cert_file ${cert.certFile}\nclient_tls_key_file ${cert.keyFile}` });
  t.teardown(() => proxy.stop());
  await proxy.waitForLog(/normal server startup/);
  t.regex(readFileSync(`/proc/${proxy.pid}/status`, 'utf8'), /^Uid:\s+65534\s/m, 'the daemon runs as nobody');
  await chmod(proxy.confFile, 0o600);

  await writeFile(proxy.confFile, `${readFileSync(proxy.confFile, 'utf8')}cache_expiration_time 7\n`);
  process.kill(proxy.pid, 'SIGHUP');
  await proxy.waitForLog(/SIGHUP: cache_expiration_time: 300 -> 7$/);
  await proxy.waitForLog(/client TLS certificate reloaded from /);

  await writeFile(proxy.confFile, `${readFileSync(proxy.confFile, 'utf8')}cache_expiration_time 9\n`);
  const r = await runCtl(['-f', proxy.confFile, 'reload']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /cache_expiration_time: 7 -> 9/);
  t.deepEqual(proxy.log().filter((l) => /cannot read|not reloaded|EACCES|permission denied/i.test(l)), []);
});
