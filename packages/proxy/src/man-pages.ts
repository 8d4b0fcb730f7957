// The manual pages of the Debian package: imapproxyd(8), imapproxyctl(8),
// pimpstat(8) and imapproxy.conf(5). The option list of imapproxy.conf(5) is
// generated from the option table (packages/shared/src/config/schema.ts), like
// --help-config and the README table, so the three cannot drift apart.
// `node packages/proxy/dist/man-pages.js DIR` writes the four files into DIR.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CTL_EXIT, OPTION_NAMES, OPTIONS, formatValue, typeLabel, type OptionSpec } from '@imapproxy/shared';
import { EX_CANTCREAT, EX_CONFIG, EX_FAILURE, EX_NOPERM, EX_OK, EX_UNAVAILABLE, EX_USAGE } from './exit-codes.js';
import { VERSION } from './version.js';

/** Text for roff: backslashes, hyphens of options and a leading dot or quote made literal. */
export function roff(text: string): string {
  return text
    .replaceAll('\\', '\\e')
    .replaceAll('-', '\\-')
    .split('\n')
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join('\n');
}

const SOURCE = `imapproxy\\-ts ${roff(VERSION)}`;

function header(name: string, section: number, title: string): string {
  // .nh: option names must not be hyphenated at line ends.
  return `.TH ${name.toUpperCase()} ${section} "" "${SOURCE}" "${title}"\n.nh\n`;
}

/** `.TP` entries: a bold term, then its text. */
function items(entries: Array<[string, string]>): string {
  return entries.map(([term, text]) => `.TP\n.B ${roff(term)}\n${roff(text)}\n`).join('');
}

const EXIT_STATUSES: Array<[number, string]> = [
  [EX_OK, 'started (the daemon listens and the pid file is written), or -t found nothing that stops a start'],
  [EX_FAILURE, 'an unexpected failure'],
  [EX_USAGE, 'bad command line'],
  [EX_UNAVAILABLE, 'the listen port, the TLS listen port or the control socket is in use'],
  [EX_CANTCREAT, 'the pid file cannot be written (the daemon is stopped again)'],
  [EX_NOPERM, 'the operating system refused, e.g. a port below 1024 without root'],
  [EX_CONFIG, 'configuration error: syntax, a value, an option not supported, an unknown proc_username or proc_groupname, proc_username root, a TLS certificate, key or CA file that is missing, unreadable or does not load, a key that does not match its certificate'],
];

export function imapproxydPage(): string {
  return header('imapproxyd', 8, 'System Manager\'s Manual') + `.SH NAME
imapproxyd \\- caching IMAP proxy for webmail (up\\-imapproxy compatible)
.SH SYNOPSIS
.B imapproxyd
.RB [ \\-f
.IR config ]
.RB [ \\-p
.IR pidfile ]
.RB [ \\-t ]
.br
.B imapproxyd \\-\\-help\\-config
.SH DESCRIPTION
${roff(`imapproxyd accepts IMAP connections from webmail applications and keeps the server connection of a user open after LOGOUT, so that the next login of the same user with the same password reuses it instead of logging in to the server again. It reads the configuration file of up-imapproxy 1.2.8 (see imapproxy.conf(5)).`)}
.PP
${roff(`Started as root, it opens its files and binds its ports, then runs as proc_username and proc_groupname. With foreground_mode no (the default of the Debian configuration) it starts in the background: the command returns once the daemon listens and the pid file is written, or exits with the daemon's message and one of the statuses below when it could not start. Started by another user it keeps that user.`)}
.SH OPTIONS
${items([
    ['-f, --config config', 'The configuration file; default /etc/imapproxy.conf.'],
    ['-p, --pidfile pidfile', 'The pid file written in background mode, once the daemon is ready; default /run/imapproxy.pid. Its directory must exist.'],
    ['-t, --test', 'Check the configuration and everything a start needs without starting: syntax and values, proc_username and proc_groupname, the TLS certificates, keys (they load and match) and CA files, the files and directories the daemon opens (as proc_username where it uses them after the privilege drop), the pid file directory. Prints the effective configuration on standard output and every warning a start would log on standard error; exits 0 or with the status a start would have. Run it as root, like the start.'],
    ['--help-config', 'List every configuration option with its type, default and description.'],
    ['--version', 'Print the version.'],
    ['-h, --help', 'Print the usage.'],
  ])}.SH SIGNALS
${items([
    ['SIGHUP', 'Read the configuration again (like imapproxyctl reload): options that can change do at once, the others are logged as needing a restart; the client TLS certificate and key are read again. The file is read by the daemon\'s privileged helper, so a configuration readable by root only works.'],
    ['SIGTERM, SIGINT', 'Log out of every server connection, write the final counters, remove the pid file and the control socket, exit 0.'],
  ])}.SH EXIT STATUS
${items(EXIT_STATUSES.map(([code, text]) => [String(code), text]))}.SH FILES
${items([
    ['/etc/imapproxy.conf', 'The configuration.'],
    ['/run/imapproxy/', 'Pid file, statistics file (stat_filename) and control socket (control_socket) of the Debian configuration.'],
    ['/var/log/imapproxy_protocol.log', 'Protocol traces (protocol_log_filename).'],
  ])}.SH SEE ALSO
.BR imapproxy.conf (5),
.BR imapproxyctl (8),
.BR pimpstat (8),
.BR systemctl (1)
`;
}

export function imapproxyctlPage(): string {
  const statuses: Array<[number, string]> = [
    [CTL_EXIT.ok, 'done'],
    [CTL_EXIT.failed, 'the daemon answered with an error'],
    [CTL_EXIT.usage, 'bad command line'],
    [CTL_EXIT.notRunning, 'no daemon: the socket does not exist or nobody listens on it'],
    [CTL_EXIT.timeout, 'no answer in time'],
    [CTL_EXIT.protocol, 'the answer was not understood'],
    [CTL_EXIT.noPermission, 'this user may not use the socket (it is root\'s and proc_username\'s only)'],
    [CTL_EXIT.config, 'the configuration file could not be read'],
  ];
  return header('imapproxyctl', 8, 'System Manager\'s Manual') + `.SH NAME
imapproxyctl \\- administration of a running imapproxyd
.SH SYNOPSIS
.B imapproxyctl
.RB [ \\-f
.IR config ]
.RB [ \\-s
.IR socket ]
.RB [ \\-\\-json ]
.RB [ \\-\\-timeout
.IR seconds ]
.I command
.SH DESCRIPTION
${roff('imapproxyctl talks to imapproxyd over its control socket (control_socket in the configuration, mode 0600, owned by proc_username): only root and the daemon\'s own user can use it.')}
.SH COMMANDS
${items([
    ['stats', 'The counters (pimpstat -c lines and more), and who is being traced.'],
    ['dump', 'Every server connection: id, user, active or cached, client, age, idle time, reuse count.'],
    ['flush [user]', 'Log out of the cached server connections of one user (after a password change), or of all.'],
    ['trace user...', 'Trace these users\' sessions to protocol_log_filename from their next login.'],
    ['trace --off [user]', 'Stop tracing this user, or everyone.'],
    ['trace', 'List the traced users.'],
    ['reload', 'Read the configuration again (like SIGHUP) and show what changed and what needs a restart.'],
    ['servers', 'The servers of server_hostname: up or down and since when, addresses, last error, connections, logins.'],
    ['reset-counters', 'Reset the peaks and totals of the statistics.'],
    ['newlog', 'Empty the protocol trace file.'],
    ['version', 'The versions of imapproxyctl and of the running daemon.'],
  ])}.SH OPTIONS
${items([
    ['-f, --config config', 'The daemon\'s configuration file (for control_socket); default /etc/imapproxy.conf.'],
    ['-s, --socket socket', 'The control socket, instead of control_socket of the configuration.'],
    ['--json', 'Print the daemon\'s answer as JSON.'],
    ['--timeout seconds', 'How long to wait for the answer; default 10.'],
  ])}.SH EXIT STATUS
${items(statuses.map(([code, text]) => [String(code), text]))}.SH SEE ALSO
.BR imapproxyd (8),
.BR pimpstat (8),
.BR imapproxy.conf (5)
`;
}

export function pimpstatPage(): string {
  return header('pimpstat', 8, 'System Manager\'s Manual') + `.SH NAME
pimpstat \\- statistics of a running imapproxyd
.SH SYNOPSIS
.B pimpstat
.RB [ \\-f
.IR config ]
.RB [ \\-c " | " \\-\\-json ]
.RB [ \\-\\-ascii ]
.SH DESCRIPTION
${roff('pimpstat reads the statistics file of imapproxyd (stat_filename of its configuration) and shows a dashboard that refreshes every second: connections, logins, reuse rate, select cache, with a chart of the last minutes. q quits. The file is the C original\'s, so the original pimpstat can read it too.')}
.SH OPTIONS
${items([
    ['-f, --config config', 'The daemon\'s configuration file; default /etc/imapproxy.conf.'],
    ['-c', 'Print the original pimpstat\'s twelve lines once and exit.'],
    ['--json', 'Print every counter as JSON and exit.'],
    ['--ascii', 'ASCII borders and chart (automatic when the locale is not UTF-8).'],
  ])}.SH SEE ALSO
.BR imapproxyd (8),
.BR imapproxyctl (8),
.BR imapproxy.conf (5)
`;
}

function defaultText(option: OptionSpec): string {
  return option.default === undefined ? 'not set' : formatValue(option.default);
}

export function imapproxyConfPage(): string {
  const groups: Array<[string, string]> = [
    ['1.2.8', 'OPTIONS OF UP\\-IMAPPROXY 1.2.8'],
    ['imapproxy-ts', 'OPTIONS ADDED BY IMAPPROXY\\-TS'],
  ];
  const sections = groups.map(([origin, title]) => {
    const names = OPTION_NAMES.filter((name) => OPTIONS[name].since === origin);
    const entries = names.map((name) => {
      const option: OptionSpec = OPTIONS[name];
      return `.TP\n.BI "${roff(name)} " "${roff(typeLabel(option)).replaceAll('"', '\\(dq')}"\n${roff(option.description)}\nDefault: ${roff(defaultText(option))}.\n`;
    });
    return `.SH ${title}\n${entries.join('')}`;
  });
  return header('imapproxy.conf', 5, 'File Formats Manual') + `.SH NAME
imapproxy.conf \\- configuration file of imapproxyd
.SH SYNOPSIS
/etc/imapproxy.conf
.SH DESCRIPTION
${roff('One option per line: a keyword, blanks, then the value. Keywords are case-insensitive, a # starts a comment, and the last occurrence of an option wins. An option not in the file has its default. An unknown keyword is a warning (an error with strict_config yes); a bad value stops the start with a message naming the file, the line and the option. The file of up-imapproxy 1.2.8 is read as it is.')}
.PP
${roff('The daemon reads the file as root at start and, for a reload (SIGHUP, imapproxyctl reload), through its privileged helper: it may be readable by root only (mode 0600), as it should be when it holds auth_sasl_plain_password. imapproxyd -t checks it; imapproxyd --help-config lists the options.')}
${sections.join('')}.SH SEE ALSO
.BR imapproxyd (8),
.BR imapproxyctl (8),
.BR pimpstat (8)
`;
}

/** File name (section included) -> page. */
export function manPages(): Record<string, string> {
  return {
    'imapproxyd.8': imapproxydPage(),
    'imapproxyctl.8': imapproxyctlPage(),
    'pimpstat.8': pimpstatPage(),
    'imapproxy.conf.5': imapproxyConfPage(),
  };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (dir === undefined) {
    process.stderr.write('usage: node man-pages.js DIR\n');
    process.exit(64);
  }
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(manPages())) fs.writeFileSync(path.join(dir, name), text);
}
