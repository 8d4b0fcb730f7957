// imapproxyd: reads the original's config file, listens, proxies.

import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import {
  ConfigError,
  DEFAULT_CONFIG_PATH,
  EX_CONFIG,
  loadConfig,
  renderConfigHelp,
  renderEffectiveConfig,
  type LoadedConfig,
} from '@imapproxy/shared';
import { testConfig } from './config-test.js';
import { runDaemon } from './daemon.js';
import { EX_CANTCREAT, EX_FAILURE, EX_OK, EX_USAGE, exitCodeFor } from './exit-codes.js';
import { unsupportedOptions } from './unsupported-options.js';
import { VERSION } from './version.js';

/** Set in the child that a background start spawns. */
const DAEMON_CHILD = 'IMAPPROXYD_DAEMON_CHILD';

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('imapproxyd')
    .usage('Usage: imapproxyd [-f config filename] [-p pidfile] [-t]')
    .option('f', { alias: 'config', type: 'string', default: DEFAULT_CONFIG_PATH, describe: 'configuration file' })
    .option('p', { alias: 'pidfile', type: 'string', default: '/run/imapproxy.pid', describe: 'pid file (background mode only)' })
    .option('t', { alias: 'test', type: 'boolean', default: false, describe: 'check the configuration and everything a start needs (users, files, certificates), print the effective values and every warning, exit 0 or with the status a start would have' })
    .option('help-config', { type: 'boolean', default: false, describe: 'list every configuration option and exit' })
    .version(VERSION)
    .help('h')
    .alias('h', 'help')
    .strict()
    .fail((message, err) => {
      process.stderr.write(`imapproxyd: ${err?.message ?? message}\nTry imapproxyd --help\n`);
      process.exit(EX_USAGE);
    })
    .epilogue('Exit status: 0 ok, 64 bad command line, 69 port or control socket in use, 73 pid file not writable, 77 permission denied, 78 configuration error, 1 other. See imapproxyd(8).')
    .parse();

  if (argv['help-config']) {
    process.stdout.write(renderConfigHelp());
    return;
  }
  const child = process.env[DAEMON_CHILD] !== undefined;
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig(argv.f);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`imapproxyd: ${err.message}\n`);
      process.exit(EX_CONFIG);
    }
    throw err;
  }
  if (argv.t) {
    process.exit(runConfigTest(loaded, argv.p));
  }
  const config = loaded.config;
  // Warnings once each: the daemon's log has them (stderr in foreground mode);
  // in background mode the launcher shows them on the terminal too, since the
  // log goes to syslog. The background child leaves it to the launcher.
  if (!config.foreground_mode && !child) {
    for (const w of loaded.warnings) process.stderr.write(`imapproxyd: warning: ${w.message}\n`);
  }
  const unsupported = unsupportedOptions(config);
  if (unsupported.length > 0) {
    for (const m of unsupported) process.stderr.write(`imapproxyd: ${loaded.file}: ${m}\n`);
    process.exit(EX_CONFIG);
  }
  if (!config.foreground_mode && !child) {
    process.exit(await startInBackground(argv.p));
  }

  try {
    await runDaemon({ loaded, pidfile: child ? argv.p : null });
  } catch (err) {
    // Before the daemon is ready: the message goes to stderr (the launcher's,
    // in background mode) and the status says what kind of failure it was.
    process.stderr.write(`imapproxyd: ${(err as Error).message}\n`);
    process.exit(exitCodeFor(err));
  }
}

/** -t: the effective configuration on stdout, every error and warning on stderr; the status a start would have. */
function runConfigTest(loaded: LoadedConfig, pidfile: string): number {
  const findings = testConfig(loaded, { pidfile: loaded.config.foreground_mode ? null : pidfile });
  process.stdout.write(renderEffectiveConfig(loaded));
  for (const f of findings) process.stderr.write(`imapproxyd: ${f.level === 'error' ? 'error' : 'warning'}: ${f.message}\n`);
  const firstError = findings.find((f) => f.level === 'error');
  if (firstError) {
    process.stderr.write(`imapproxyd: configuration file ${loaded.file} test failed\n`);
    return firstError.exitCode ?? EX_CONFIG;
  }
  process.stdout.write(`imapproxyd: configuration file ${loaded.file} test is successful\n`);
  return EX_OK;
}

/**
 * Background mode: the daemon runs as a detached child; this process waits
 * until it listens (or fails), writes the pid file and exits with 0, or with
 * the child's status and message when it failed before it was ready.
 */
async function startInBackground(pidfile: string): Promise<number> {
  const script = fileURLToPath(import.meta.url);
  // The child's stderr is relayed only until it is ready: then this process
  // exits and the daemon holds no descriptor of the terminal or of whoever
  // started it (like the original's redirection of fds 0-2 to /dev/null), so
  // `$(imapproxyd ...)` or a supervisor reading the output does not hang.
  const child = spawn(process.execPath, [script, ...process.argv.slice(2)], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { ...process.env, [DAEMON_CHILD]: '1' },
  });
  child.stderr!.pipe(process.stderr, { end: false });
  // 'close' (not 'exit') comes after the child's stderr is drained, so its
  // last message is out before this process exits. Until one of the two
  // events, the child's handles keep this process alive: no state in which
  // the event loop is empty and Node exits 0 by itself (the old race: the
  // stderr 'close' had been missed, and the launcher exited 0 after a failure).
  const outcome = await new Promise<{ ready: true } | { ready: false; code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('message', () => resolve({ ready: true }));
    child.once('close', (code, signal) => resolve({ ready: false, code, signal }));
  });
  if (!outcome.ready) {
    const why = outcome.signal ? `was killed by ${outcome.signal}` : `exited with status ${outcome.code}`;
    process.stderr.write(`imapproxyd: the daemon did not start: it ${why} (see the message above)\n`);
    return outcome.code !== null && outcome.code !== 0 ? outcome.code : EX_FAILURE;
  }
  child.stderr!.unpipe(process.stderr);
  child.stderr!.destroy();
  try {
    fs.writeFileSync(pidfile, `${child.pid}\n`);
  } catch (err) {
    // A daemon without its pid file cannot be stopped by the init script: it does not stay.
    process.stderr.write(`imapproxyd: cannot write pid file ${pidfile}: ${(err as Error).message}; stopping the daemon\n`);
    child.kill('SIGTERM');
    return EX_CANTCREAT;
  }
  child.unref();
  child.disconnect();
  return EX_OK;
}

main().catch((err: unknown) => {
  process.stderr.write(`imapproxyd: ${(err as Error).message}\n`);
  process.exit(exitCodeFor(err));
});
