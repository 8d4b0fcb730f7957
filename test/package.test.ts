// Issue 20, the install paths: `npm run deb` builds a Debian package whose
// control fields, contents, man pages and lintian verdict are checked, and
// whose commands run from a tree unpacked with dpkg -x: the unit's ExecStart
// line, by hand, with a login through it against the test Dovecot. The
// package is never installed here (Conflicts: imapproxy would remove Debian's
// package, which the differential tests need). `npm pack` + `npm install -g`
// into a temporary prefix gives working commands too.
import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { getFreePort, LOOPBACK } from './helpers/ports.js';
import { isAlive, onProcessExit, signal, waitForExit } from './helpers/process-tree.js';
import { eventually } from './helpers/proxy-log.js';
import { RawClient } from './helpers/transcript.js';

const run = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';
const haveTools = existsSync('/usr/bin/dpkg-deb') && existsSync('/usr/bin/lintian');
const debTest = haveTools ? test.serial : test.serial.skip;

let dovecot: Dovecot;
let work: string;
/** The built .deb (built once, by the first test that needs it). */
let deb: Promise<string> | undefined;

test.before(async () => {
  dovecot = await startDovecot({ users: 2 });
  work = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-package-'));
  await chmod(work, 0o755);
});
test.after.always(async () => {
  await dovecot?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function buildDeb(): Promise<string> {
  deb ??= run('bash', [path.join(REPO, 'packaging/deb/build.sh'), path.join(work, 'out')], { cwd: REPO, maxBuffer: 64 << 20 })
    .then(({ stdout }) => stdout.trim().split('\n').at(-1)!);
  return deb;
}

async function field(debFile: string, name: string): Promise<string> {
  return (await run('dpkg-deb', ['-f', debFile, name])).stdout.trim();
}

/** A config for the test Dovecot in the packaged config's form (background mode, its own files). */
async function writeConf(dir: string, port: number): Promise<string> {
  const confFile = path.join(dir, 'imapproxy.conf');
  await mkdir(path.join(dir, 'run'), { recursive: true });
  await writeFile(confFile, [
    `server_hostname ${LOOPBACK}`, `server_port ${dovecot.port}`, `listen_address ${LOOPBACK}`, `listen_port ${port}`,
    'connect_retries 0', 'foreground_mode no', `stat_filename ${path.join(dir, 'run', 'pimpstats')}`,
    `protocol_log_filename ${path.join(dir, 'protocol.log')}`, `control_socket ${path.join(dir, 'run', 'control.sock')}`, '',
  ].join('\n'));
  return confFile;
}

/** Two logins of user1 through the proxy: the second one reuses the server connection. */
async function twoLogins(t: ExecutionContext, port: number): Promise<void> {
  for (const round of [1, 2]) {
    const c = await RawClient.connect(port);
    const lines = await c.command('a1 LOGIN user1 pass1');
    t.regex(lines.at(-1)!, /^a1 OK/, `login ${round}`);
    if (round === 2) t.true(lines.includes(REUSE), `the second login reuses the connection: ${lines.join(' | ')}`);
    const selected = await c.command('a2 SELECT INBOX');
    t.regex(selected.at(-1)!, /^a2 OK/);
    await c.command('a3 LOGOUT');
    await c.close();
  }
}

/** Runs a command line (split on blanks, as systemd does for this unit) and waits for it and its output. */
function runLine(argv: string[], timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, IMAPPROXYD_SYSLOG_SOCKET: '/nonexistent/log.sock' } });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')}: no exit within ${timeoutMs} ms: ${out}`)), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** pimpstat -c's output once it matches (the daemon writes its stats file about once a second). */
async function pimpstatWhen(pimpstat: string, confFile: string, re: RegExp): Promise<string> {
  let last = '';
  return eventually(`pimpstat -c matching ${re}`, async () => {
    const r = await runLine([pimpstat, '-c', '-f', confFile]);
    last = r.out;
    return r.code === 0 && re.test(r.out) ? r.out : undefined;
  }, 10_000, () => last);
}

debTest('npm run deb: control fields, contents, conffile, man pages', async (t) => {
  t.timeout(300_000);
  const debFile = await buildDeb();
  t.regex(path.basename(debFile), /^imapproxy-ts_\d+\.\d+\.\d+_all\.deb$/);
  t.is(await field(debFile, 'Package'), 'imapproxy-ts');
  t.is(await field(debFile, 'Architecture'), 'all');
  t.regex(await field(debFile, 'Depends'), /(^|, )nodejs \(>= 20\.19\)(,|$)/);
  t.regex(await field(debFile, 'Depends'), /adduser/);
  for (const f of ['Conflicts', 'Replaces', 'Provides']) t.is(await field(debFile, f), 'imapproxy', f);

  const listing = (await run('dpkg-deb', ['-c', debFile], { maxBuffer: 64 << 20 })).stdout;
  const files = new Map(listing.split('\n').filter(Boolean).map((l) => {
    const cols = l.split(/\s+/);
    return [cols.slice(5).join(' ').replace(/^\.\//, '/').replace(/ -> .*/, ''), cols[0]!] as const;
  }));
  for (const cmd of ['/usr/sbin/imapproxyd', '/usr/sbin/pimpstat', '/usr/sbin/imapproxyctl']) {
    t.is(files.get(cmd), '-rwxr-xr-x', cmd);
  }
  for (const f of [
    '/etc/imapproxy.conf', '/lib/systemd/system/imapproxy.service', '/usr/lib/imapproxy-ts/packages/proxy/dist/main.js',
    '/usr/lib/imapproxy-ts/node_modules/yargs/package.json', '/usr/lib/imapproxy-ts/node_modules/prom-client/package.json',
    '/usr/lib/imapproxy-ts/node_modules/blessed/package.json', '/usr/share/doc/imapproxy-ts/copyright',
    '/usr/share/man/man8/imapproxyd.8.gz', '/usr/share/man/man8/pimpstat.8.gz', '/usr/share/man/man8/imapproxyctl.8.gz',
    '/usr/share/man/man5/imapproxy.conf.5.gz',
  ]) t.true(files.has(f), f);
  t.deepEqual([...files.keys()].filter((f) => /\.test\.js$|\/dist\/.*\.d\.ts$|\/(typescript|ava|imapflow)\//.test(f)), [], 'no tests, declarations or dev dependencies');

  const control = path.join(work, 'control');
  await run('dpkg-deb', ['-e', debFile, control]);
  t.is(readFileSync(path.join(control, 'conffiles'), 'utf8'), '/etc/imapproxy.conf\n');
  const postinst = readFileSync(path.join(control, 'postinst'), 'utf8');
  t.regex(postinst, /adduser --system --group .* imapproxy/, 'a system user of its own');

  // The unpacked tree, for the man pages and the next test.
  const root = path.join(work, 'root');
  await run('dpkg-deb', ['-x', debFile, root]);
  const conf = readFileSync(path.join(root, 'etc/imapproxy.conf'), 'utf8');
  t.regex(conf, /^proc_username imapproxy$/m);
  t.regex(conf, /^foreground_mode no$/m);
  for (const page of ['man8/imapproxyd.8.gz', 'man8/pimpstat.8.gz', 'man8/imapproxyctl.8.gz', 'man5/imapproxy.conf.5.gz']) {
    const r = await run('man', ['--warnings', '-l', path.join(root, 'usr/share/man', page)], { env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat' } });
    t.is(r.stderr, '', `${page}: groff warnings`);
    t.regex(r.stdout, /NAME/, page);
  }
  // imapproxy.conf(5) lists every option of the schema, with its default.
  const confPage = (await run('man', ['-l', path.join(root, 'usr/share/man/man5/imapproxy.conf.5.gz')], { env: { ...process.env, MANWIDTH: '200', MANPAGER: 'cat' } })).stdout;
  const help = (await run(process.execPath, [path.join(REPO, 'bin/imapproxyd'), '--help-config'])).stdout;
  const names = [...help.matchAll(/^ {2}([a-z_.0-9]+) /gm)].map((m) => m[1]!);
  t.true(names.length > 40);
  for (const name of names) t.regex(confPage, new RegExp(`^ {7}${name.replaceAll('.', '\\.')} `, 'm'), `${name} in imapproxy.conf(5)`);
});

debTest('lintian: no errors and no warnings (justified overrides only)', async (t) => {
  t.timeout(300_000);
  const debFile = await buildDeb();
  const r = await run('lintian', ['--tag-display-limit', '0', '--fail-on', 'error,warning', debFile], { maxBuffer: 64 << 20 }).catch((err: { code: number; stdout: string; stderr: string }) => err);
  const tags = `${r.stdout}`.split('\n').filter((l) => /^[EW]: /.test(l));
  t.deepEqual(tags, []);
  t.is((r as { code?: number }).code ?? 0, 0, `${r.stdout}${r.stderr}`);
});

debTest('the unit\'s ExecStart, run by hand from the unpacked package: ready when it returns, a login and a reuse through it, pimpstat and imapproxyctl work', async (t) => {
  t.timeout(300_000);
  await buildDeb();
  const root = path.join(work, 'root');
  if (!existsSync(root)) await run('dpkg-deb', ['-x', await buildDeb(), root]);
  const unit = readFileSync(path.join(root, 'lib/systemd/system/imapproxy.service'), 'utf8');
  t.regex(unit, /^Type=forking$/m);
  const execStart = /^ExecStart=(.*)$/m.exec(unit)![1]!;
  const pidInUnit = /^PIDFile=(.*)$/m.exec(unit)![1]!;
  t.true(execStart.includes(`-p ${pidInUnit}`), 'the pid file the unit waits for is the one the daemon writes');

  // The same command line, from the unpacked tree, with a config for the test Dovecot.
  const dir = path.join(work, 'unit-run');
  const port = await getFreePort();
  const confFile = await writeConf(dir, port);
  const pidFile = path.join(dir, 'run', 'imapproxy.pid');
  const argv = execStart.split(/\s+/).map((a) => (a === '/etc/imapproxy.conf' ? confFile : a === pidInUnit ? pidFile : a.startsWith('/usr/') ? path.join(root, a) : a));
  t.log(`ExecStart: ${execStart}\nrun as: ${argv.join(' ')}`);
  const started = await runLine(argv);
  t.is(started.code, 0, started.out);
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const removeHook = onProcessExit(() => signal(pid, 'SIGKILL'));
  t.teardown(async () => {
    if (isAlive(pid)) {
      signal(pid, 'SIGTERM');
      await waitForExit([pid], 8000);
    }
    removeHook();
  });
  t.true(readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(path.join(root, 'usr/lib/imapproxy-ts')), 'the daemon runs from the package');
  await twoLogins(t, port);

  // The stats file is written about once a second.
  const pimpstat = await pimpstatWhen(path.join(root, 'usr/sbin/pimpstat'), confFile, /^\s*1 Total Reused Connections$/m);
  t.regex(pimpstat, /^\s*2 Total Client Logins$/m);
  const ctl = await runLine([path.join(root, 'usr/sbin/imapproxyctl'), '-f', confFile, 'dump']);
  t.is(ctl.code, 0, ctl.out);
  t.regex(ctl.out, /user1/);

  signal(pid, 'SIGTERM');
  t.deepEqual(await waitForExit([pid], 10_000), [], 'SIGTERM stops it');
  // The pid file stays: its directory is root's (like systemd's RuntimeDirectory=, and
  // systemd removes PIDFile= itself), and the daemon runs as nobody by then.
});

test.serial('npm pack + npm install -g into a prefix: the three commands work, a login goes through', async (t) => {
  t.timeout(300_000);
  const packDir = path.join(work, 'pack');
  await mkdir(packDir, { recursive: true });
  const packed = await run('npm', ['pack', '--pack-destination', packDir], { cwd: REPO, maxBuffer: 64 << 20, env: { ...process.env, npm_config_loglevel: 'error' } });
  const tarball = path.join(packDir, packed.stdout.trim().split('\n').at(-1)!);
  const prefix = path.join(work, 'prefix');
  // --offline: everything the commands need is in the tarball (bundled).
  await run('npm', ['install', '-g', '--offline', '--no-audit', '--no-fund', '--prefix', prefix, tarball], { maxBuffer: 64 << 20 });
  const bin = path.join(prefix, 'bin');
  for (const cmd of ['imapproxyd', 'imapproxyctl', 'pimpstat']) {
    const r = await runLine([path.join(bin, cmd), '--version']);
    t.is(r.code, 0, `${cmd}: ${r.out}`);
    t.regex(r.out, /^\d+\.\d+\.\d+/, cmd);
  }
  const dir = path.join(work, 'npm-run');
  const port = await getFreePort();
  const confFile = await writeConf(dir, port);
  const pidFile = path.join(dir, 'run', 'imapproxyd.pid');
  const started = await runLine([path.join(bin, 'imapproxyd'), '-f', confFile, '-p', pidFile]);
  t.is(started.code, 0, started.out);
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const removeHook = onProcessExit(() => signal(pid, 'SIGKILL'));
  t.teardown(async () => {
    if (isAlive(pid)) {
      signal(pid, 'SIGTERM');
      await waitForExit([pid], 8000);
    }
    removeHook();
  });
  await twoLogins(t, port);
  t.regex(await pimpstatWhen(path.join(bin, 'pimpstat'), confFile, /^\s*1 Total Reused Connections$/m), /^\s*2 Total Client Logins$/m);
});
