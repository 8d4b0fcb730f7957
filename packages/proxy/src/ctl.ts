// imapproxyctl: administration of a running imapproxyd over its control
// socket (control_socket in imapproxy.conf). Exit statuses: see CTL_EXIT.
//   imapproxyctl [-f conf] trace alice bob | trace --off [alice] | trace
//   imapproxyctl [-f conf] dump | flush [user] | reset-counters | newlog
//   imapproxyctl [-f conf] stats | version | reload | servers  (--json: the raw answer)

import fs from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, DEFAULT_CONFIG_PATH, defaultConfig, loadConfig } from '@imapproxy/shared';
import { ControlClientError, CTL_EXIT, sendControlRequest } from '@imapproxy/shared';
import type { ControlRequest, ControlResults } from '@imapproxy/shared';
import { formatDump, formatReload, formatServers, formatStats, formatTraced, formatVersion } from './admin/ctl-output.js';
import { VERSION } from './version.js';
import { printable, printableDeep, printableJson } from './log/printable.js';

interface Parsed {
  config: string;
  socket?: string;
  json: boolean;
  timeout: number;
  request: ControlRequest;
}

async function parse(argv: string[]): Promise<Parsed> {
  let request: ControlRequest | null = null;
  const args = await yargs(argv)
    .scriptName('imapproxyctl')
    .usage('Usage: $0 [-f config] [-s socket] [--json] <command>\n\nAdministration of a running imapproxyd over its control socket.')
    .option('f', {
      alias: 'config',
      type: 'string',
      default: DEFAULT_CONFIG_PATH,
      requiresArg: true,
      describe: 'imapproxy.conf of the daemon (imapproxyctl reads control_socket)',
    })
    .option('s', { alias: 'socket', type: 'string', requiresArg: true, describe: 'control socket path (instead of control_socket of the config)' })
    .option('json', { type: 'boolean', default: false, describe: "print the daemon's answer as JSON" })
    .option('timeout', { type: 'number', default: 10, requiresArg: true, describe: 'seconds to wait for the answer' })
    .command(
      'trace [user..]',
      "trace these users' sessions to protocol_log_filename from their next login; without users: list the traced users; trace --off [user]: stop tracing that user, or everyone",
      (y) =>
        y
          .positional('user', { type: 'string', array: true, describe: 'login names' })
          .option('off', { type: 'boolean', default: false, describe: 'stop tracing the given user, or everyone' })
          .check((a) => {
            if (a.off && (a.user ?? []).length > 1) throw new Error('trace --off takes at most one user');
            return true;
          }),
      (a) => {
        const users = (a.user ?? []).map(String);
        if (a.off) {
          request = { cmd: 'trace-off', user: users[0] };
        } else {
          request = users.length > 0 ? { cmd: 'trace', users } : { cmd: 'trace-list' };
        }
      },
    )
    .command('dump', 'list every server connection: id, user, active/cached, client, age, idle time, reuse count', {}, () => {
      request = { cmd: 'dump' };
    })
    .command(
      'flush [user]',
      "log out of the cached server connections of one user (after a password change), or of all users",
      (y) => y.positional('user', { type: 'string', describe: 'login name' }),
      (a) => {
        request = { cmd: 'flush', user: a.user === undefined ? undefined : String(a.user) };
      },
    )
    .command('reset-counters', 'reset the peaks and totals of the statistics (like XPROXY_RESETCOUNTERS)', {}, () => {
      request = { cmd: 'reset-counters' };
    })
    .command('newlog', 'empty the protocol trace file', {}, () => {
      request = { cmd: 'newlog' };
    })
    .command('stats', 'show the counters (pimpstat -c lines and more)', {}, () => {
      request = { cmd: 'stats' };
    })
    .command('version', 'show the versions of imapproxyctl and of the running daemon', {}, () => {
      request = { cmd: 'version' };
    })
    .command('reload', 're-read the configuration file, like SIGHUP, and show what changed', {}, () => {
      request = { cmd: 'reload' };
    })
    .command('servers', 'list the servers of server_hostname: up/down and since when, addresses, last error, connections, logins', {}, () => {
      request = { cmd: 'servers' };
    })
    .demandCommand(1, 'a command is needed')
    .strict()
    .version(VERSION)
    .help('help')
    .alias('help', 'h')
    .fail((message, err) => {
      process.stderr.write(`imapproxyctl: ${message || err?.message || 'bad arguments'}\nRun imapproxyctl --help for the commands.\n`);
      process.exit(CTL_EXIT.usage);
    })
    .wrap(Math.min(100, process.stdout.columns || 80))
    .parseAsync();
  if (request === null) throw new Error('no command');
  return { config: String(args.f), socket: args.s, json: args.json, timeout: args.timeout, request };
}

function socketPath(p: Parsed): string {
  if (p.socket) return p.socket;
  try {
    return loadConfig(p.config).config.control_socket;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (err.code === 'IMAPPROXY_ERR_CONFIG') {
      // A file with a bad line (being edited, say) still names the socket: the
      // daemon runs with the configuration it read before, and `reload` gets
      // the daemon's own report of what is wrong.
      const socket = controlSocketLine(fs.readFileSync(p.config, 'utf8'));
      process.stderr.write(`imapproxyctl: warning: ${err.message}\n`);
      return socket ?? defaultConfig().control_socket;
    }
    throw new ControlClientError(err.code, err.message, CTL_EXIT.config);
  }
}

/** The value of the last control_socket line (the last one wins, as in the loader). */
function controlSocketLine(text: string): string | undefined {
  let found: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*control_socket\s+([^#\s]+)/i.exec(line);
    if (m) found = m[1];
  }
  return found;
}

function show(req: ControlRequest, answer: Record<string, unknown>): string {
  switch (req.cmd) {
    case 'dump':
      return formatDump(answer as unknown as ControlResults['dump']);
    case 'stats':
      return formatStats(answer as unknown as ControlResults['stats']);
    case 'version':
      return formatVersion(VERSION, answer as unknown as ControlResults['version']);
    case 'reload':
      return formatReload(answer as unknown as ControlResults['reload']);
    case 'servers':
      return formatServers(answer as unknown as ControlResults['servers']);
    case 'trace': {
      const r = answer as unknown as ControlResults['trace'];
      const already = req.users.filter((u) => !r.added.includes(u));
      return (
        (r.added.length > 0 ? `tracing ${r.added.join(', ')} from the next login\n` : '') +
        (already.length > 0 ? `already traced: ${already.join(', ')}\n` : '') +
        formatTraced(r.traced)
      );
    }
    case 'trace-off': {
      const r = answer as unknown as ControlResults['trace-off'];
      const head =
        r.removed.length > 0
          ? `tracing disabled for ${r.removed.join(', ')} (sessions being traced go on until they end)\n`
          : req.user !== undefined
            ? `${req.user} was not traced\n`
            : 'no user was traced\n';
      return head + formatTraced(r.traced);
    }
    case 'trace-list':
      return formatTraced((answer as unknown as ControlResults['trace-list']).traced);
    case 'flush': {
      const r = answer as unknown as ControlResults['flush'];
      return `closed ${r.closed} cached server connection(s)${r.user === null ? '' : ` of ${r.user}`}\n`;
    }
    case 'reset-counters':
      return 'counters reset\n';
    case 'newlog':
      return `protocol log ${(answer as unknown as ControlResults['newlog']).file} cleared\n`;
  }
}

async function main(): Promise<number> {
  const parsed = await parse(hideBin(process.argv));
  try {
    const answer = await sendControlRequest(socketPath(parsed), parsed.request, parsed.timeout * 1000);
    if (!answer.ok) {
      if (parsed.json) process.stdout.write(`${printableJson(JSON.stringify(answer))}\n`);
      process.stderr.write(`imapproxyctl: ${printable(answer.error.message)} (${answer.error.code})\n`);
      return CTL_EXIT.failed;
    }
    const { ok: _ok, ...rest } = answer as { ok: true } & Record<string, unknown>;
    // What the daemon sends holds client-supplied text (login names): shown with its control characters escaped.
    process.stdout.write(parsed.json ? `${printableJson(JSON.stringify(answer, null, 2))}\n` : show(parsed.request, printableDeep(rest)));
    return CTL_EXIT.ok;
  } catch (err) {
    if (err instanceof ControlClientError) {
      process.stderr.write(`imapproxyctl: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`imapproxyctl: ${(err as Error).message}\n`);
    process.exitCode = CTL_EXIT.failed;
  },
);
