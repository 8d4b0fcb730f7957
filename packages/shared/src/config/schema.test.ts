import test from 'ava';
import { parseConfigText } from './load.js';
import { OPTION_NAMES, OPTIONS, defaultConfig, findOption, type OptionSpec, type ProxyConfig } from './schema.js';
import { formatValue } from './value-types.js';

test('every default, as the README and SPEC B6 state them', (t) => {
  const expected: ProxyConfig = {
    server_hostname: 'localhost',
    server_port: 143,
    listen_address: undefined,
    listen_port: 143,
    connect_retries: 10,
    connect_delay: 5,
    cache_size: 3072,
    cache_expiration_time: 300,
    proc_username: 'nobody',
    proc_groupname: 'nogroup',
    stat_filename: '/run/imapproxy/pimpstats',
    protocol_log_filename: '/var/log/imapproxy_protocol.log',
    syslog_facility: 'LOG_MAIL',
    syslog_prioritymask: undefined,
    send_tcp_keepalives: false,
    enable_select_cache: false,
    foreground_mode: false,
    force_tls: false,
    enable_admin_commands: false,
    chroot_directory: undefined,
    preauth_command: undefined,
    auth_sasl_plain_username: undefined,
    auth_sasl_plain_password: undefined,
    auth_shared_secret: undefined,
    tls_ca_file: undefined,
    tls_ca_path: undefined,
    tls_cert_file: undefined,
    tls_key_file: undefined,
    tls_ciphers: undefined,
    tls_verify_server: false,
    tls_no_tlsv1: false,
    'tls_no_tlsv1.1': false,
    'tls_no_tlsv1.2': false,
    ipversion_only: 0,
    dns_rr: false,
    server_tls: false,
    client_tls_cert_file: undefined,
    client_tls_key_file: undefined,
    client_tls_listen_address: undefined,
    client_tls_listen_port: 0,
    client_starttls: true,
    client_require_tls: false,
    listen_backlog: 511,
    connect_timeout: 10,
    server_timeout: 60,
    resync_timeout: 10,
    preauth_idle_timeout: 300,
    login_timeout: 60,
    idle_timeout: 1800,
    max_preauth_line_length: 8192,
    max_preauth_id_length: 65536,
    max_line_length: 65536,
    max_preauth_literal_size: 8192,
    max_pending_commands: 1000,
    max_clients: 10000,
    max_clients_per_ip: 0,
    max_reuse_age: 0,
    max_reuse_count: 0,
    control_socket: '/run/imapproxy/control.sock',
    server_health_interval: 10,
    server_health_timeout: 5,
    listen_proxy_protocol: false,
    client_tls_listen_proxy_protocol: false,
    proxy_protocol_trusted_networks: '127.0.0.0/8 ::1',
    proxy_protocol_timeout: 5,
    send_originating_ip: false,
    cache_key_client_ip: false,
    metrics_listen_address: '127.0.0.1',
    metrics_listen_port: 0,
    strict_config: false,
  };
  t.deepEqual(defaultConfig(), expected);
  t.deepEqual(Object.keys(defaultConfig()), OPTION_NAMES);
});

test('defaultConfig returns a fresh object each time', (t) => {
  const config = defaultConfig();
  config.cache_size = 1;
  t.is(defaultConfig().cache_size, 3072);
});

test('the 1.2.8 keywords are exactly those of SPEC §1.2', (t) => {
  const original = OPTION_NAMES.filter((name) => OPTIONS[name].since === '1.2.8');
  t.deepEqual(original, [
    'server_hostname', 'server_port', 'listen_address', 'listen_port', 'connect_retries', 'connect_delay',
    'cache_size', 'cache_expiration_time', 'proc_username', 'proc_groupname', 'stat_filename',
    'protocol_log_filename', 'syslog_facility', 'syslog_prioritymask', 'send_tcp_keepalives',
    'enable_select_cache', 'foreground_mode', 'force_tls', 'enable_admin_commands', 'chroot_directory',
    'preauth_command', 'auth_sasl_plain_username', 'auth_sasl_plain_password', 'auth_shared_secret',
    'tls_ca_file', 'tls_ca_path', 'tls_cert_file', 'tls_key_file', 'tls_ciphers', 'tls_verify_server',
    'tls_no_tlsv1', 'tls_no_tlsv1.1', 'tls_no_tlsv1.2', 'ipversion_only', 'dns_rr',
  ]);
});

test('keywords can be written in a config file: lowercase, no blanks, no #', (t) => {
  for (const name of OPTION_NAMES) t.regex(name, /^[a-z0-9_.]+$/, name);
});

test('descriptions are one line and end with a full stop', (t) => {
  for (const name of OPTION_NAMES) t.regex(OPTIONS[name].description, /^[^\n|]+\.$/, name);
});

test('every default is accepted by its own option when written to a file', (t) => {
  const lines = OPTION_NAMES.flatMap((name) => {
    const value = (OPTIONS[name] as OptionSpec).default;
    return value === undefined ? [] : [`${name} ${formatValue(value)}`];
  });
  const { config, warnings } = parseConfigText(lines.join('\n'), 'defaults.conf');
  t.deepEqual(config, defaultConfig());
  t.deepEqual(warnings, []);
});

test('findOption knows table keywords only', (t) => {
  t.is(findOption('tls_no_tlsv1.1'), OPTIONS['tls_no_tlsv1.1']);
  t.is(findOption('toString'), undefined);
  t.is(findOption('Server_Port'), undefined);
});

test('ProxyConfig types follow the table', (t) => {
  const config = defaultConfig();
  // Compile-time checks: tsc fails this file if the mapped type drifts.
  const size: number = config.cache_size;
  const tls11: boolean = config['tls_no_tlsv1.1'];
  const host: string = config.server_hostname;
  const facility: 'LOG_MAIL' | string = config.syslog_facility;
  const ip: 0 | 4 | 6 = config.ipversion_only;
  // @ts-expect-error listen_address has no default, so it may be undefined
  const address: string = config.listen_address;
  // @ts-expect-error syslog_prioritymask has no default
  const mask: string = config.syslog_prioritymask;
  t.deepEqual([size, tls11, host, facility, ip, address, mask], [3072, false, 'localhost', 'LOG_MAIL', 0, undefined, undefined]);
});
