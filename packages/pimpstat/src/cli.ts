// pimpstat's command line: statistics of a running imapproxyd, from the stats file named in
// its config. main.ts runs it; tests call main() directly or run bin/pimpstat.
//   pimpstat [-f conf]          live dashboard (the original's curses screen, and more)
//   pimpstat -c [-f conf]       the original's twelve lines, for scripts
//   pimpstat --json [-f conf]   every counter as JSON, for monitoring
import fs from 'node:fs';
import yargs from 'yargs';
import { DEFAULT_CONFIG_PATH, readStatsFile } from '@imapproxy/shared';
import { describeFailure, EX_USAGE } from './failure.js';
import { loadSettings, type PimpstatSettings } from './settings.js';
import { formatCText, formatJson } from './text.js';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

interface CliArgs {
  config: string;
  c: boolean;
  json: boolean;
  ascii: boolean;
}

function parseArgs(argv: string[]): CliArgs {
  const parsed = yargs(argv)
    .scriptName('pimpstat')
    .usage('Usage: $0 [-f config] [-c | --json] [--ascii]\n\nStatistics of a running imapproxyd, read from the stat_filename of its config.')
    .option('f', {
      alias: 'config',
      type: 'string',
      default: DEFAULT_CONFIG_PATH,
      describe: 'imapproxy.conf of the daemon (pimpstat reads stat_filename, enable_select_cache, cache_size)',
      requiresArg: true,
    })
    .option('c', {
      type: 'boolean',
      describe: "print the original pimpstat's twelve lines once and exit",
    })
    .option('json', {
      type: 'boolean',
      describe: 'print every counter (extension block included) as JSON and exit',
    })
    .option('ascii', {
      type: 'boolean',
      default: false,
      describe: 'dashboard with ASCII borders and chart (automatic when the locale is not UTF-8)',
    })
    .conflicts('c', 'json')
    .help('help')
    .alias('help', 'h')
    .version('version', 'show the version', packageVersion())
    .strict()
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .exitProcess(false)
    .fail((message, err) => {
      throw new UsageError(message || (err?.message ?? 'bad arguments'));
    })
    .wrap(Math.min(100, process.stdout.columns || 80))
    .parseSync();
  return {
    config: String(parsed.f),
    c: Boolean(parsed.c),
    json: Boolean(parsed.json),
    ascii: Boolean(parsed.ascii),
  };
}

export class UsageError extends Error {}

/** Runs pimpstat; resolves with the exit status. Never throws. */
export async function main(argv: string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`pimpstat: ${message} (see pimpstat --help)\n`);
    return EX_USAGE;
  }
  // --help and --version printed already; yargs does not exit with exitProcess(false).
  if (argv.some((a) => a === '--help' || a === '-h' || a === '--version')) return 0;

  let settings: PimpstatSettings | undefined;
  try {
    settings = loadSettings(args.config);
    const stats = readStatsFile(settings.statFile);
    if (args.c) {
      process.stdout.write(formatCText(stats));
      return 0;
    }
    if (args.json) {
      process.stdout.write(formatJson(settings.statFile, stats));
      return 0;
    }
    if (!process.stdout.isTTY || !process.stdin.isTTY) {
      throw new UsageError('the dashboard needs a terminal; use -c or --json for output to a pipe or file');
    }
    const { isUtf8Locale, runTui } = await import('./tui.js');
    return await runTui({
      settings,
      initial: stats,
      ascii: args.ascii || !isUtf8Locale(),
      input: process.stdin,
      output: process.stdout,
    });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`pimpstat: ${err.message}\n`);
      return EX_USAGE;
    }
    const failure = describeFailure(err, settings, configGiven(argv));
    process.stderr.write(`pimpstat: ${failure.message}\n`);
    return failure.exitCode;
  }
}

/** Whether the command line names a config (-f, --config), so that advice to pass one is pointless. */
function configGiven(argv: string[]): boolean {
  return argv.some((a) => a === '-f' || a === '--config' || a.startsWith('--config=') || /^-[^-]*f/.test(a));
}
