// The value rules, through the public parser so that messages are checked exactly as users see them.
import test from 'ava';
import { ConfigError } from './config-error.js';
import { parseConfigText } from './load.js';

const FILE = '/etc/imapproxy.conf';

function read(text: string) {
  return parseConfigText(text, FILE);
}

function rejects(t: import('ava').ExecutionContext, text: string, message: string): void {
  const error = t.throws(() => read(text), { instanceOf: ConfigError, code: 'IMAPPROXY_ERR_CONFIG', message });
  t.is(error?.file, FILE);
}

test('booleans: yes/no, true/false, y/n, on/off in any case', (t) => {
  const { config, warnings } = read([
    'foreground_mode YES', 'force_tls True', 'dns_rr y', 'send_tcp_keepalives On',
    'enable_select_cache No', 'tls_verify_server FALSE', 'tls_no_tlsv1 n', 'tls_no_tlsv1.1 off',
  ].join('\n'));
  t.deepEqual(
    [config.foreground_mode, config.force_tls, config.dns_rr, config.send_tcp_keepalives],
    [true, true, true, true],
  );
  t.deepEqual(
    [config.enable_select_cache, config.tls_verify_server, config.tls_no_tlsv1, config['tls_no_tlsv1.1']],
    [false, false, false, false],
  );
  t.deepEqual(warnings, []);
});

test('booleans: words starting with yes or no are read as 1.2.8 read them, with a warning', (t) => {
  const { config, warnings } = read('foreground_mode Yessir\nforce_tls NONE\ndns_rr nope\n');
  t.is(config.foreground_mode, true);
  t.is(config.force_tls, false);
  t.is(config.dns_rr, false);
  t.deepEqual(warnings, [
    { file: FILE, line: 1, option: 'foreground_mode', message: `${FILE}:1: option 'foreground_mode': 'Yessir' read as yes, as imapproxy 1.2.8 did; write yes` },
    { file: FILE, line: 2, option: 'force_tls', message: `${FILE}:2: option 'force_tls': 'NONE' read as no, as imapproxy 1.2.8 did; write no` },
    { file: FILE, line: 3, option: 'dns_rr', message: `${FILE}:3: option 'dns_rr': 'nope' read as no, as imapproxy 1.2.8 did; write no` },
  ]);
});

test('booleans: anything else is an error (1.2.8 silently used no)', (t) => {
  rejects(t, 'force_tls maybe', `${FILE}:1: option 'force_tls': 'maybe' is not a boolean; expected yes or no`);
  rejects(t, 'force_tls 1', `${FILE}:1: option 'force_tls': '1' is not a boolean; expected yes or no`);
});

test('numbers must be whole decimal numbers (1.2.8 read 10abc as 10 and abc as 0)', (t) => {
  t.is(read('connect_retries 0\n').config.connect_retries, 0);
  t.is(read('cache_size 007\n').config.cache_size, 7);
  rejects(t, 'connect_retries 10abc', `${FILE}:1: option 'connect_retries': '10abc' is not a whole number; expected a whole number 0-2147483647`);
  rejects(t, 'connect_retries abc', `${FILE}:1: option 'connect_retries': 'abc' is not a whole number; expected a whole number 0-2147483647`);
  rejects(t, 'cache_size 1.5', `${FILE}:1: option 'cache_size': '1.5' is not a whole number; expected a whole number 1-2147483647`);
  rejects(t, 'cache_size +5', `${FILE}:1: option 'cache_size': '+5' is not a whole number; expected a whole number 1-2147483647`);
});

test('numbers must be in range', (t) => {
  rejects(t, 'cache_size 0', `${FILE}:1: option 'cache_size': '0' is out of range; expected a whole number 1-2147483647`);
  rejects(t, 'max_clients -1', `${FILE}:1: option 'max_clients': '-1' is out of range; expected a whole number 0-2147483647`);
  rejects(t, 'cache_size 2147483648', `${FILE}:1: option 'cache_size': '2147483648' is out of range; expected a whole number 1-2147483647`);
  rejects(t, 'max_preauth_line_length 100', `${FILE}:1: option 'max_preauth_line_length': '100' is out of range; expected a whole number 1024-2147483647`);
  t.is(read('cache_size 2147483647\n').config.cache_size, 2147483647);
});

test('seconds: 0 allowed where it means "none", not for timeouts; capped at what setTimeout can wait', (t) => {
  t.is(read('cache_expiration_time 0\n').config.cache_expiration_time, 0);
  t.is(read('idle_timeout 2147483\n').config.idle_timeout, 2147483);
  rejects(t, 'connect_timeout 0', `${FILE}:1: option 'connect_timeout': '0' is out of range; expected a whole number of seconds 1-2147483`);
  rejects(t, 'idle_timeout 2147484', `${FILE}:1: option 'idle_timeout': '2147484' is out of range; expected a whole number of seconds 1-2147483`);
  rejects(t, 'connect_delay 5s', `${FILE}:1: option 'connect_delay': '5s' is not a whole number; expected a whole number of seconds 0-2147483`);
});

test('ports: numbers 1-65535 or service names', (t) => {
  const { config } = read('server_port imap\nlisten_port IMAPS\n');
  t.is(config.server_port, 143);
  t.is(config.listen_port, 993);
  t.is(read('server_port 65535\n').config.server_port, 65535);
  rejects(t, 'server_port abc', `${FILE}:1: option 'server_port': 'abc' is not a port; expected a number 1-65535 or a service name`);
  rejects(t, 'listen_port 0', `${FILE}:1: option 'listen_port': '0' is not a port; expected a number 1-65535 or a service name`);
  rejects(t, 'listen_port 65536', `${FILE}:1: option 'listen_port': '65536' is not a port; expected a number 1-65535 or a service name`);
});

test('syslog facility: the C macro names, any case, stored upper-case', (t) => {
  t.is(read('syslog_facility LOG_LOCAL1\n').config.syslog_facility, 'LOG_LOCAL1');
  // 1.2.8 rejected this spelling and fell back to LOG_MAIL.
  t.is(read('syslog_facility log_local1\n').config.syslog_facility, 'LOG_LOCAL1');
  rejects(t, 'syslog_facility LOG_KERN', `${FILE}:1: option 'syslog_facility': 'LOG_KERN' is not a syslog facility; expected one of LOG_USER, LOG_MAIL, LOG_DAEMON, LOG_AUTH, LOG_LPR, LOG_NEWS, LOG_UUCP, LOG_CRON, LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7`);
  rejects(t, 'syslog_facility mail', `${FILE}:1: option 'syslog_facility': 'mail' is not a syslog facility; expected one of LOG_USER, LOG_MAIL, LOG_DAEMON, LOG_AUTH, LOG_LPR, LOG_NEWS, LOG_UUCP, LOG_CRON, LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7`);
});

test('syslog priority mask: LOG_EMERG to LOG_DEBUG', (t) => {
  t.is(read('syslog_prioritymask LOG_WARNING\n').config.syslog_prioritymask, 'LOG_WARNING');
  t.is(read('syslog_prioritymask log_notice\n').config.syslog_prioritymask, 'LOG_NOTICE');
  rejects(t, 'syslog_prioritymask LOG_WARN', `${FILE}:1: option 'syslog_prioritymask': 'LOG_WARN' is not a syslog priority; expected one of LOG_EMERG, LOG_ALERT, LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG`);
});

test('ipversion_only: 0, 4 or 6 (1.2.8 read anything else as 0)', (t) => {
  t.is(read('ipversion_only 6\n').config.ipversion_only, 6);
  t.is(read('ipversion_only 4\n').config.ipversion_only, 4);
  rejects(t, 'ipversion_only 5', `${FILE}:1: option 'ipversion_only': '5' is not an IP version; expected 0 (IPv4 and IPv6), 4 or 6`);
});

test('strings and paths are kept byte for byte: quotes, semicolons, backslashes, = and true', (t) => {
  const { config } = read([
    'preauth_command "x"',
    "auth_sasl_plain_username 'admin'",
    'auth_sasl_plain_password pa;ss;word',
    'auth_shared_secret a\\;b\\\\c=d',
    'tls_ciphers true',
    'chroot_directory /var/lib/imapproxy/chroot;x',
  ].join('\n'));
  t.is(config.preauth_command, '"x"');
  t.is(config.auth_sasl_plain_username, "'admin'");
  t.is(config.auth_sasl_plain_password, 'pa;ss;word');
  t.is(config.auth_shared_secret, 'a\\;b\\\\c=d');
  t.is(config.tls_ciphers, 'true');
  t.is(config.chroot_directory, '/var/lib/imapproxy/chroot;x');
});

test('preauth_command keeps an IMAP command with inner spaces and quotes', (t) => {
  t.is(read('preauth_command ID ("GUID" "1")\n').config.preauth_command, 'ID ("GUID" "1")');
});

test('a known keyword with no value is an error', (t) => {
  rejects(t, 'cache_size 3072\nserver_port\n', `${FILE}:2: option 'server_port': no value; expected a number 1-65535 or a service name`);
  rejects(t, 'preauth_command   # commented value\n', `${FILE}:1: option 'preauth_command': no value; expected a string`);
  rejects(t, 'chroot_directory\n', `${FILE}:1: option 'chroot_directory': no value; expected a path`);
});

test('the error names file, line, option and expected form in fields too', (t) => {
  const error = t.throws(() => read('\n\n# x\nSERVER_PORT abc\n'), { instanceOf: ConfigError });
  t.is(error?.code, 'IMAPPROXY_ERR_CONFIG');
  t.is(error?.name, 'ConfigError');
  t.is(error?.file, FILE);
  t.is(error?.line, 4);
  t.is(error?.option, 'server_port');
  t.is(error?.expected, 'a number 1-65535 or a service name');
  t.is(error?.message, `${FILE}:4: option 'server_port': 'abc' is not a port; expected a number 1-65535 or a service name`);
});

test('every occurrence is checked, even one a later line overrides', (t) => {
  rejects(t, 'server_port abc\nserver_port 143\n', `${FILE}:1: option 'server_port': 'abc' is not a port; expected a number 1-65535 or a service name`);
});
