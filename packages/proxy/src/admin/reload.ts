// Configuration reload (SIGHUP, imapproxyctl reload). The original ignored
// SIGHUP (SPEC §9.3). The running daemon shares one ProxyConfig object with
// every part of it, so options whose value is read at each use are changed in
// that object in place and take effect at once; options that are fixed once the
// daemon runs (sockets, files, identity, TLS) are reported as needing a restart
// and keep their running value.

import { ConfigError, findOption, ImapProxyError, loadConfig, OPTION_NAMES, parseConfigText, type OptionChange, type OptionName, type ProxyConfig } from '@imapproxy/shared';
import { unsupportedOptions } from '../unsupported-options.js';

/** Options a reload changes in the running daemon. */
export const LIVE_OPTIONS: ReadonlySet<OptionName> = new Set<OptionName>([
  // pool
  'cache_size', 'cache_expiration_time', 'max_reuse_age', 'max_reuse_count', 'max_server_connections_per_user',
  // server logins
  'connect_retries', 'connect_delay', 'connect_timeout', 'server_timeout', 'login_timeout', 'preauth_command',
  // sessions (new sessions; the relay reads its limits at each use)
  'resync_timeout', 'preauth_idle_timeout', 'idle_timeout', 'send_tcp_keepalives',
  'max_preauth_line_length', 'max_preauth_id_length', 'max_line_length', 'max_preauth_literal_size', 'max_pending_commands',
  'max_clients', 'max_clients_per_ip',
  // logging and administration
  'syslog_facility', 'syslog_prioritymask', 'enable_admin_commands', 'strict_config', 'user_match_exact',
]);


export interface ReloadReport {
  file: string;
  /** Changed in the running daemon. */
  applied: OptionChange[];
  /** Changed in the file, but only a restart applies them. */
  restartNeeded: OptionChange[];
  /** Warnings of the config loader (unknown options, ...) and options a restart would refuse. */
  warnings: string[];
}

export class ConfigReloader {
  constructor(
    readonly file: string,
    /** The object the running daemon uses. */
    private readonly live: ProxyConfig,
    /** Called after options were applied (logger mask, syslog facility, pool timers). */
    private readonly onApplied: (changes: OptionChange[]) => void = () => {},
  ) {}

  /**
   * Reads the file again, or takes its bytes as read by the privileged reader
   * (a file readable by root only, after the privilege drop); throws
   * ImapProxyError (IMAPPROXY_ERR_RELOAD) and changes nothing when it is invalid.
   */
  reload(bytes?: Buffer): ReloadReport {
    let loaded;
    try {
      // TextDecoder drops a byte order mark, as loadConfig does.
      loaded = bytes === undefined ? loadConfig(this.file) : parseConfigText(new TextDecoder().decode(bytes), this.file);
    } catch (err) {
      if (err instanceof ConfigError) throw new ImapProxyError('IMAPPROXY_ERR_RELOAD', `${err.message}; the running configuration is unchanged`, { cause: err });
      throw err;
    }
    const next = loaded.config;
    const applied: OptionChange[] = [];
    const restartNeeded: OptionChange[] = [];
    for (const option of OPTION_NAMES) {
      const from = this.live[option];
      const to = next[option];
      if (from === to) continue;
      // Secrets never reach the log or imapproxyctl.
      const secret = (findOption(option) as { secret?: true } | undefined)?.secret === true;
      const change = secret ? { option, from: from === undefined ? from : '********', to: to === undefined ? to : '********' } : { option, from, to };
      if (LIVE_OPTIONS.has(option)) {
        (this.live as Record<string, unknown>)[option] = to;
        applied.push(change);
      } else {
        restartNeeded.push(change);
      }
    }
    const warnings = [
      ...loaded.warnings.map((w) => w.message),
      ...unsupportedOptions(next).map((m) => `${this.file}: ${m} (a restart would refuse this file)`),
    ];
    if (applied.length > 0) this.onApplied(applied);
    return { file: this.file, applied, restartNeeded, warnings };
  }
}

/** "option: old -> new" for logs and imapproxyctl. */
export function describeChange(c: OptionChange): string {
  const show = (v: unknown) => (v === undefined ? '(not set)' : String(v));
  return `${c.option}: ${show(c.from)} -> ${show(c.to)}`;
}
