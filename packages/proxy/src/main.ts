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
import { runDaemon } from './daemon.js';
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
    .option('t', { alias: 'test', type: 'boolean', default: false, describe: 'check the configuration, print the effective values and exit' })
    .option('help-config', { type: 'boolean', default: false, describe: 'list every configuration option and exit' })
    .version(VERSION)
    .help('h')
    .alias('h', 'help')
    .strict()
    .parse();

  if (argv['help-config']) {
    process.stdout.write(renderConfigHelp());
    return;
  }
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
  for (const w of loaded.warnings) process.stderr.write(`imapproxyd: warning: ${w.message}\n`);
  if (argv.t) {
    process.stdout.write(renderEffectiveConfig(loaded));
    process.stdout.write(`imapproxyd: configuration file ${loaded.file} test is successful\n`);
    return;
  }
  const config = loaded.config;
  const unsupported = unsupportedOptions(config);
  if (unsupported.length > 0) {
    for (const m of unsupported) process.stderr.write(`imapproxyd: ${loaded.file}: ${m}\n`);
    process.exit(EX_CONFIG);
  }
  if (!config.foreground_mode && !process.env[DAEMON_CHILD]) {
    await startInBackground(argv.p);
    return;
  }

  await runDaemon({ loaded, pidfile: process.env[DAEMON_CHILD] ? argv.p : null });
}

/**
 * Background mode: the daemon runs as a detached child; this process waits
 * until it listens (or fails), writes the pid file and exits.
 */
async function startInBackground(pidfile: string): Promise<void> {
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
  const ok = await new Promise<boolean>((resolve) => {
    child.once('message', () => resolve(true));
    child.once('exit', () => resolve(false));
  });
  if (!ok) await new Promise((resolve) => child.stderr!.once('close', resolve));
  child.stderr!.unpipe(process.stderr);
  child.stderr!.destroy();
  if (!ok) {
    process.stderr.write('imapproxyd: the daemon did not start (see the messages above)\n');
    process.exit(1);
  }
  fs.writeFileSync(pidfile, `${child.pid}\n`);
  child.unref();
  child.disconnect();
}

main().catch((err: unknown) => {
  process.stderr.write(`imapproxyd: ${(err as Error).message}\n`);
  process.exit(1);
});
