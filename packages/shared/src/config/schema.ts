// The one table of configuration options. The parser, the defaults, `imapproxyd --help-config`,
// `imapproxyd -t` and the README option table are all generated from it, so an option is added
// or changed here and nowhere else.

/** syslog facilities, spelled as the C macros the original accepts (SPEC §1.2). */
export const FACILITIES = [
  'LOG_USER', 'LOG_MAIL', 'LOG_DAEMON', 'LOG_AUTH', 'LOG_LPR', 'LOG_NEWS', 'LOG_UUCP', 'LOG_CRON',
  'LOG_LOCAL0', 'LOG_LOCAL1', 'LOG_LOCAL2', 'LOG_LOCAL3',
  'LOG_LOCAL4', 'LOG_LOCAL5', 'LOG_LOCAL6', 'LOG_LOCAL7',
] as const;
export type Facility = (typeof FACILITIES)[number];

/** syslog priorities from most to least severe; a mask keeps a priority and all above it. */
export const PRIORITIES = [
  'LOG_EMERG', 'LOG_ALERT', 'LOG_CRIT', 'LOG_ERR', 'LOG_WARNING', 'LOG_NOTICE', 'LOG_INFO', 'LOG_DEBUG',
] as const;
export type Priority = (typeof PRIORITIES)[number];

/** `ipversion_only`: 0 means both address families. */
export type IpVersion = 0 | 4 | 6;

/** Where an option comes from: the original's keyword set, or added by this rewrite. */
export type OptionOrigin = '1.2.8' | 'imapproxy-ts';

/** The TypeScript type each option type yields once read. */
interface OptionValueTypes {
  string: string;
  path: string;
  port: number;
  integer: number;
  seconds: number;
  boolean: boolean;
  facility: Facility;
  priority: Priority;
  ipversion: IpVersion;
  /** Kept as written; split with parseHostList(). */
  hostlist: string;
  /** Kept as written; split with parseNetworkList() / networkBlockList(). */
  networks: string;
}

interface OptionBase {
  /** One line, shown by --help-config and in the README table. */
  readonly description: string;
  readonly since: OptionOrigin;
}

// `default` is left out (not set to undefined) when an option has no default; ProxyConfig
// turns exactly those options into `T | undefined`.
export type OptionSpec = OptionBase & (
  | { readonly type: 'string' | 'path'; readonly default?: string; readonly secret?: true }
  | { readonly type: 'port'; readonly default: number }
  | { readonly type: 'integer'; readonly default: number; readonly min: number; readonly max: number }
  // Seconds end up in setTimeout(), which cannot wait longer than 2^31-1 ms, hence the fixed
  // maximum in value-types.ts; `min` is 1 for timeouts because every read must have one.
  | { readonly type: 'seconds'; readonly default: number; readonly min: 0 | 1 }
  | { readonly type: 'boolean'; readonly default: boolean }
  | { readonly type: 'facility'; readonly default: Facility }
  | { readonly type: 'priority'; readonly default?: Priority }
  | { readonly type: 'ipversion'; readonly default: IpVersion }
  | { readonly type: 'hostlist'; readonly default: string }
  | { readonly type: 'networks'; readonly default: string }
);

/** The largest C `int`: the original read every number into one. */
const INT_MAX = 2147483647;

// Order matters: help text, `-t` output and the README list options in this order.
// Defaults of the 1.2.8 options are the documented ones, which the original never applied
// because it zeroed its config struct after setting them (SPEC §11 B6).
export const OPTIONS = {
  // --- up-imapproxy 1.2.8 ---
  server_hostname: {
    type: 'hostlist', default: 'localhost', since: '1.2.8',
    description: 'Backend IMAP server: a host name or address; several (host or host:port, separated by commas or blanks) for health-checked failover with users kept on one server.',
  },
  server_port: {
    type: 'port', default: 143, since: '1.2.8',
    description: 'Port of the backend IMAP server; 993 needs server_tls yes (without it a warning is logged and plain IMAP is spoken).',
  },
  listen_address: {
    type: 'string', since: '1.2.8',
    description: 'Address to listen on; all addresses when not set.',
  },
  listen_port: {
    type: 'port', default: 143, since: '1.2.8',
    description: 'Port to listen on for IMAP clients.',
  },
  connect_retries: {
    type: 'integer', default: 10, min: 0, max: INT_MAX, since: '1.2.8',
    description: 'Extra connect attempts to the backend for one login (bounded by login_timeout).',
  },
  connect_delay: {
    type: 'seconds', default: 5, min: 0, since: '1.2.8',
    description: 'Seconds to wait between those connect attempts.',
  },
  cache_size: {
    type: 'integer', default: 3072, min: 1, max: INT_MAX, since: '1.2.8',
    description: 'Most backend connections held at once, in use and cached together.',
  },
  cache_expiration_time: {
    type: 'seconds', default: 300, min: 0, since: '1.2.8',
    description: 'Seconds an idle backend connection is kept after its client logs out.',
  },
  proc_username: {
    type: 'string', default: 'nobody', since: '1.2.8',
    description: 'User the daemon runs as after start-up; must not be root.',
  },
  proc_groupname: {
    type: 'string', default: 'nogroup', since: '1.2.8',
    description: 'Group the daemon runs as after start-up.',
  },
  stat_filename: {
    type: 'path', default: '/run/imapproxy/pimpstats', since: '1.2.8',
    description: 'Statistics file shared with pimpstat.',
  },
  protocol_log_filename: {
    type: 'path', default: '/var/log/imapproxy_protocol.log', since: '1.2.8',
    description: 'Protocol trace file written by XPROXY_TRACE; truncated at start.',
  },
  syslog_facility: {
    type: 'facility', default: 'LOG_MAIL', since: '1.2.8',
    description: 'syslog facility for all log messages.',
  },
  syslog_prioritymask: {
    type: 'priority', since: '1.2.8',
    description: 'Log only this priority and more severe ones; everything when not set.',
  },
  send_tcp_keepalives: {
    type: 'boolean', default: false, since: '1.2.8',
    description: 'Turn on TCP keepalives on client and backend sockets.',
  },
  enable_select_cache: {
    type: 'boolean', default: false, since: '1.2.8',
    description: 'Answer a repeated SELECT of the mailbox still selected on the server connection from its last reply when a NOOP shows nothing changed.',
  },
  foreground_mode: {
    type: 'boolean', default: false, since: '1.2.8',
    description: 'Stay in the foreground instead of detaching.',
  },
  force_tls: {
    type: 'boolean', default: false, since: '1.2.8',
    description: 'Use STARTTLS on every backend connection even when the server does not advertise LOGINDISABLED.',
  },
  enable_admin_commands: {
    type: 'boolean', default: false, since: '1.2.8',
    description: 'Accept the XPROXY_* admin commands from clients.',
  },
  chroot_directory: {
    type: 'path', since: '1.2.8',
    description: 'Directory to chroot into after start-up; no chroot when not set.',
  },
  preauth_command: {
    type: 'string', since: '1.2.8',
    description: 'Command sent verbatim to every new backend connection before login.',
  },
  auth_sasl_plain_username: {
    type: 'string', since: '1.2.8',
    description: 'Proxy identity for SASL PLAIN login to the backend (with the next two options).',
  },
  auth_sasl_plain_password: {
    type: 'string', secret: true, since: '1.2.8',
    description: 'Password of that proxy identity.',
  },
  auth_shared_secret: {
    type: 'string', secret: true, since: '1.2.8',
    description: 'Password clients must send when SASL PLAIN proxy login is used.',
  },
  tls_ca_file: {
    type: 'path', since: '1.2.8',
    description: 'CA certificates (PEM) to verify the backend certificate; Node.js built-in CA list when neither this nor tls_ca_path is set.',
  },
  tls_ca_path: {
    type: 'path', since: '1.2.8',
    description: 'Directory of CA certificates: every PEM certificate in its files is trusted (with tls_ca_file).',
  },
  tls_cert_file: {
    type: 'path', since: '1.2.8',
    description: 'Client certificate (PEM) presented to the backend.',
  },
  tls_key_file: {
    type: 'path', since: '1.2.8',
    description: 'Private key (PEM) of that certificate; the certificate file when not set.',
  },
  tls_ciphers: {
    type: 'string', since: '1.2.8',
    description: 'OpenSSL cipher list for TLS 1.2 to the backend (TLS 1.3 suites keep their default unless TLS_* names are listed).',
  },
  tls_verify_server: {
    type: 'boolean', default: false, since: '1.2.8',
    description: 'Verify the backend certificate: chain to a trusted CA and server_hostname in the certificate.',
  },
  tls_no_tlsv1: {
    type: 'boolean', default: false, since: '1.2.8',
    description: 'Do not use TLS 1.0 to the backend (never used anyway: the minimum is TLS 1.2).',
  },
  'tls_no_tlsv1.1': {
    type: 'boolean', default: false, since: '1.2.8',
    description: 'Do not use TLS 1.1 to the backend (never used anyway: the minimum is TLS 1.2).',
  },
  'tls_no_tlsv1.2': {
    type: 'boolean', default: false, since: '1.2.8',
    description: 'Do not use TLS 1.2 to the backend: TLS 1.3 only.',
  },
  ipversion_only: {
    type: 'ipversion', default: 0, since: '1.2.8',
    description: 'Look up the backend as IPv4 only (4), IPv6 only (6) or both (0).',
  },
  dns_rr: {
    type: 'boolean', default: false, since: '1.2.8',
    description: 'Rotate new backend connections over all addresses of server_hostname.',
  },

  // --- added by imapproxy-ts: TLS to the server and for clients (SPEC §10) ---
  server_tls: {
    type: 'boolean', default: false, since: 'imapproxy-ts',
    description: 'Speak implicit TLS to the backend (IMAPS, usually server_port 993) instead of plain IMAP with STARTTLS.',
  },
  client_tls_cert_file: {
    type: 'path', since: 'imapproxy-ts',
    description: 'Certificate chain (PEM) the proxy presents to clients; no TLS for clients when not set.',
  },
  client_tls_key_file: {
    type: 'path', since: 'imapproxy-ts',
    description: 'Private key (PEM) of client_tls_cert_file; that file itself when not set.',
  },
  client_tls_listen_address: {
    type: 'string', since: 'imapproxy-ts',
    description: 'Address of the implicit-TLS listener; listen_address when not set.',
  },
  client_tls_listen_port: {
    type: 'integer', default: 0, min: 0, max: 65535, since: 'imapproxy-ts',
    description: 'Port of an implicit-TLS (IMAPS) listener for clients, e.g. 993; 0 means none.',
  },
  client_starttls: {
    type: 'boolean', default: true, since: 'imapproxy-ts',
    description: 'Offer STARTTLS to clients on listen_port (only when client_tls_cert_file is set).',
  },
  client_require_tls: {
    type: 'boolean', default: false, since: 'imapproxy-ts',
    description: 'Refuse LOGIN and AUTHENTICATE from clients before TLS and advertise LOGINDISABLED (like Dovecot disable_plaintext_auth).',
  },

  // --- added by imapproxy-ts: every wait and every size is bounded (SPEC §11 B10) ---
  listen_backlog: {
    type: 'integer', default: 511, min: 1, max: INT_MAX, since: 'imapproxy-ts',
    description: 'Length of the queue of connections not yet accepted.',
  },
  connect_timeout: {
    type: 'seconds', default: 10, min: 1, since: 'imapproxy-ts',
    description: 'Seconds allowed to open a backend connection: the first DNS lookup of its name, TCP and TLS.',
  },
  server_timeout: {
    type: 'seconds', default: 60, min: 1, since: 'imapproxy-ts',
    description: 'Seconds allowed for any single read from the backend during login or resync.',
  },
  resync_timeout: {
    type: 'seconds', default: 10, min: 1, since: 'imapproxy-ts',
    description: 'Seconds allowed to bring a backend connection back to a clean state for caching.',
  },
  preauth_idle_timeout: {
    type: 'seconds', default: 300, min: 1, since: 'imapproxy-ts',
    description: 'Seconds a client may go without completing a command before logging in (a line sent a byte at a time does not count).',
  },
  login_timeout: {
    type: 'seconds', default: 60, min: 1, since: 'imapproxy-ts',
    description: 'Seconds one login may take at the backend, connect attempts included.',
  },
  idle_timeout: {
    type: 'seconds', default: 1800, min: 1, since: 'imapproxy-ts',
    description: 'Seconds a logged-in session may stay silent (fixed at 30 minutes in 1.2.8).',
  },
  max_preauth_line_length: {
    type: 'integer', default: 8192, min: 1024, max: INT_MAX, since: 'imapproxy-ts',
    description: 'Longest client line before login, in bytes.',
  },
  max_preauth_id_length: {
    type: 'integer', default: 65536, min: 1024, max: INT_MAX, since: 'imapproxy-ts',
    description: 'Longest ID command line before login, in bytes (Dovecot takes 64 KiB lines; imaptest sends a 32 KB ID).',
  },
  max_line_length: {
    type: 'integer', default: 65536, min: 1024, max: INT_MAX, since: 'imapproxy-ts',
    description: 'Longest client command line after login, in bytes (server lines are not limited).',
  },
  max_preauth_literal_size: {
    type: 'integer', default: 8192, min: 0, max: INT_MAX, since: 'imapproxy-ts',
    description: 'Largest literal a client may send before login, in bytes.',
  },
  max_pending_commands: {
    type: 'integer', default: 1000, min: 1, max: INT_MAX, since: 'imapproxy-ts',
    description: 'Most commands of one client awaiting their tagged reply.',
  },
  max_clients: {
    type: 'integer', default: 10000, min: 0, max: INT_MAX, since: 'imapproxy-ts',
    description: 'Most client connections at once; 0 means unlimited.',
  },
  max_clients_per_ip: {
    type: 'integer', default: 0, min: 0, max: INT_MAX, since: 'imapproxy-ts',
    description: 'Most client connections at once from one address; 0 means unlimited.',
  },
  user_match_exact: {
    type: 'boolean', default: false, since: 'imapproxy-ts',
    description: 'imapproxyctl flush/trace and XPROXY_TRACE match login names byte for byte instead of ignoring case as servers do.',
  },
  max_server_connections_per_user: {
    type: 'integer', default: 50, min: 0, max: INT_MAX, since: 'imapproxy-ts',
    description: 'Most backend connections of one user at once, in use and cached together (names differing only in case count as one unless user_match_exact); 0 means unlimited.',
  },
  max_reuse_age: {
    type: 'seconds', default: 0, min: 0, since: 'imapproxy-ts',
    description: 'Seconds after which a backend connection is no longer reused; 0 means unlimited.',
  },
  max_reuse_count: {
    type: 'integer', default: 0, min: 0, max: INT_MAX, since: 'imapproxy-ts',
    description: 'Logins after which a backend connection is no longer reused; 0 means unlimited.',
  },
  control_socket: {
    type: 'path', default: '/run/imapproxy/control.sock', since: 'imapproxy-ts',
    description: 'Unix socket imapproxyctl talks to.',
  },
  // --- added by imapproxy-ts: several servers, PROXY protocol, client address, metrics ---
  server_health_interval: {
    type: 'seconds', default: 10, min: 0, since: 'imapproxy-ts',
    description: 'Seconds between health checks (connect + greeting) of each backend server; 0 turns them off.',
  },
  server_health_timeout: {
    type: 'seconds', default: 5, min: 1, since: 'imapproxy-ts',
    description: 'Seconds a health check may take before the server counts as down.',
  },
  listen_proxy_protocol: {
    type: 'boolean', default: false, since: 'imapproxy-ts',
    description: 'Expect a PROXY protocol v1 or v2 header on listen_port connections (from proxy_protocol_trusted_networks only).',
  },
  client_tls_listen_proxy_protocol: {
    type: 'boolean', default: false, since: 'imapproxy-ts',
    description: 'Expect a PROXY protocol v1 or v2 header on client_tls_listen_port connections, before the TLS handshake.',
  },
  proxy_protocol_trusted_networks: {
    type: 'networks', default: '127.0.0.0/8 ::1', since: 'imapproxy-ts',
    description: 'Peers allowed to send a PROXY protocol header; a connection from anywhere else is refused.',
  },
  proxy_protocol_timeout: {
    type: 'seconds', default: 5, min: 1, since: 'imapproxy-ts',
    description: 'Seconds allowed for the PROXY protocol header to arrive.',
  },
  send_originating_ip: {
    type: 'boolean', default: false, since: 'imapproxy-ts',
    description: 'Send ID ("x-originating-ip" ... "x-originating-port" ...) with the client address before LOGIN on a new backend connection (Dovecot honours it from login_trusted_networks).',
  },
  cache_key_client_ip: {
    type: 'boolean', default: false, since: 'imapproxy-ts',
    description: 'Reuse a cached backend connection only for a login from the same client address (exact per-login addresses at the backend, fewer reuses).',
  },
  metrics_listen_address: {
    type: 'string', default: '127.0.0.1', since: 'imapproxy-ts',
    description: 'Address of the Prometheus metrics HTTP listener.',
  },
  metrics_listen_port: {
    type: 'integer', default: 0, min: 0, max: 65535, since: 'imapproxy-ts',
    description: 'Port of the Prometheus metrics HTTP listener (GET /metrics); 0 means none.',
  },
  strict_config: {
    type: 'boolean', default: false, since: 'imapproxy-ts',
    description: 'Treat unknown options in this file as errors instead of warnings.',
  },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

type ValueOf<S extends OptionSpec> =
  S extends { readonly default: unknown } ? OptionValueTypes[S['type']] : OptionValueTypes[S['type']] | undefined;

/** The configuration as the programs use it: one property per keyword. */
export type ProxyConfig = { -readonly [N in OptionName]: ValueOf<(typeof OPTIONS)[N]> };

/** Every keyword, in table order. */
export const OPTION_NAMES = Object.keys(OPTIONS) as OptionName[];

/** The spec of a keyword (already lowercased), or undefined when there is no such option. */
export function findOption(name: string): OptionSpec | undefined {
  return Object.hasOwn(OPTIONS, name) ? OPTIONS[name as OptionName] : undefined;
}

/** A fresh configuration holding every default; unset options are present as undefined. */
export function defaultConfig(): ProxyConfig {
  const entries = OPTION_NAMES.map((name) => [name, (OPTIONS[name] as OptionSpec).default]);
  return Object.fromEntries(entries) as ProxyConfig;
}
