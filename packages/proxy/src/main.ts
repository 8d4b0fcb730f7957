// imapproxyd: reads the original's config file, listens, proxies.

import fs from 'node:fs';
import path from 'node:path';
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
  StatsFileWriter,
  StatsRegistry,
  type LoadedConfig,
} from '@imapproxy/shared';
import { Logger, StderrSink } from './log/logger.js';
import { dropPrivileges } from './privileges.js';
import { ProxyServer } from './server.js';
import { unsupportedOptions } from './unsupported-options.js';
import { VERSION } from './version.js';

/** Set in the child that a background start spawns. */
const DAEMON_CHILD = 'IMAPPROXYD_DAEMON_CHILD';

const PRIORITY_RANK: Record<string, number> = {
  LOG_EMERG: 0, LOG_ALERT: 1, LOG_CRIT: 2, LOG_ERR: 3, LOG_WARNING: 4, LOG_NOTICE: 5, LOG_INFO: 6, LOG_DEBUG: 7,
};

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

  const mask = config.syslog_prioritymask ? PRIORITY_RANK[config.syslog_prioritymask] : 7;
  const log = new Logger(new StderrSink(), mask);
  const stats = new StatsRegistry();
  // /run is a tmpfs: the directory of the default stat file is gone after a reboot.
  fs.mkdirSync(path.dirname(config.stat_filename), { recursive: true, mode: 0o755 });
  const statsWriter = new StatsFileWriter(stats, config.stat_filename, {
    onError: (err) => log.err(err.message),
  });
  statsWriter.start();
  const server = new ProxyServer(config, log, stats);
  const address = await server.listen();
  dropPrivileges(config, log);
  log.info(`imapproxy-ts version ${VERSION} normal server startup on ${address.address}:${address.port}.`);
  process.send?.({ ready: true });
  process.disconnect?.();

  process.on('SIGPIPE', () => {});
  process.on('SIGHUP', () => log.info('SIGHUP received: configuration reload is not supported yet; ignoring'));
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal} received: shutting down`);
    server
      .close()
      .catch((err: unknown) => log.err(`shutdown: ${(err as Error).message}`))
      .finally(() => {
        statsWriter.close();
        // Give the LOGOUTs to the server a moment to leave.
        setTimeout(() => process.exit(0), 200).unref();
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * Background mode: the daemon runs as a detached child; this process waits
 * until it listens (or fails), writes the pid file and exits.
 */
async function startInBackground(pidfile: string): Promise<void> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [script, ...process.argv.slice(2)], {
    detached: true,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: { ...process.env, [DAEMON_CHILD]: '1' },
  });
  const ok = await new Promise<boolean>((resolve) => {
    child.once('message', () => resolve(true));
    child.once('exit', () => resolve(false));
  });
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
