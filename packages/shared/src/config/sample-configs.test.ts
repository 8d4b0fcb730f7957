// Existing configs must keep working unchanged: the upstream sample (scripts/imapproxy.conf) and
// Debian's generated /etc/imapproxy.conf, rebuilt from SPEC §1.2 "Sample configs" with the same
// settings and the same shapes of line (comment blocks, commented-out options, a `# ` line with
// a trailing blank and a line holding a single space, written \x20 so editors keep them).
import test from 'ava';
import { parseConfigText } from './load.js';
import { defaultConfig } from './schema.js';

const UPSTREAM_SAMPLE = `## imapproxy.conf
##
## Global configuration of the IMAP proxy.  Lines starting with a '#' are
## comments; every other line is a keyword and a value, separated by a space.
##

#
## server_hostname
##
## The IMAP server that client connections are proxied to.
#
server_hostname your.imap.server.com


#
## connect_retries, connect_delay
##
## How often, and how many seconds apart, connecting to the server is retried.
#
connect_retries 10
connect_delay 5

#
## cache_size
##
## Number of connection records: cached and active connections together.
#
cache_size 3072


#
## listen_port, listen_address
##
## Where the proxy accepts client connections; all addresses if unset.
#
listen_port 143
#listen_address 127.0.0.1


#
## server_port
##
## The server's plain IMAP port.  STARTTLS is used for encryption, so this
## is not 993.
#\x20
server_port 143

#
## cache_expiration_time
##
## Seconds an unused connection stays cached.
#
cache_expiration_time 300


#
## proc_username, proc_groupname
##
## Who the proxy runs as; never root.
#
proc_username nobody
proc_groupname nobody


#
## stat_filename, protocol_log_filename
#
stat_filename /var/run/pimpstats
protocol_log_filename /var/log/imapproxy_protocol.log


#
## syslog_facility, syslog_prioritymask
#
syslog_facility LOG_MAIL
#syslog_prioritymask LOG_WARNING


#
## Switches
#
send_tcp_keepalives no
enable_select_cache no
foreground_mode no
force_tls no


#
## chroot_directory
#
#chroot_directory /var/empty


#
## preauth_command
##
## Sent to the server before login, for example:
##    preauth_command ID ("GUID" "1")
#
#preauth_command


#
## enable_admin_commands
#
enable_admin_commands no


#
## TLS
#
#tls_ca_file /usr/share/ssl/certs/ca-bundle.crt
#tls_ca_path /usr/share/ssl/certs/
#tls_cert_file /usr/share/ssl/certs/mycert.crt
#tls_key_file /usr/share/ssl/certs/mycert.key
#tls_verify_server no
#tls_ciphers ALL:!aNULL:!eNULL
#tls_no_tlsv1 no
#tls_no_tlsv1.1 no
#tls_no_tlsv1.2 no


#
## SASL PLAIN login with a proxy identity
#
#auth_sasl_plain_username
#auth_sasl_plain_password
#auth_shared_secret


#
## DNS
#
#dns_rr yes
#ipversion_only 6
\x20

`;

// What debian/imapproxy.postinst and the Debian default file change (SPEC §1.2).
const DEBIAN_CONFIG = UPSTREAM_SAMPLE
  .replace('server_hostname your.imap.server.com', 'server_hostname localhost')
  .replace('listen_port 143', 'listen_port 1143')
  .replace('proc_groupname nobody', 'proc_groupname nogroup')
  .replace('#chroot_directory /var/empty', 'chroot_directory /var/lib/imapproxy/chroot');

const UPSTREAM_SET = [
  'server_hostname', 'connect_retries', 'connect_delay', 'cache_size', 'listen_port', 'server_port',
  'cache_expiration_time', 'proc_username', 'proc_groupname', 'stat_filename', 'protocol_log_filename',
  'syslog_facility', 'send_tcp_keepalives', 'enable_select_cache', 'foreground_mode', 'force_tls',
  'enable_admin_commands',
];

test('the upstream sample config loads without warnings', (t) => {
  const { config, warnings, sources } = parseConfigText(UPSTREAM_SAMPLE, '/etc/imapproxy.conf');
  t.deepEqual(warnings, []);
  t.deepEqual(config, {
    ...defaultConfig(),
    server_hostname: 'your.imap.server.com',
    proc_groupname: 'nobody',
    stat_filename: '/var/run/pimpstats',
  });
  t.deepEqual([...sources.keys()].sort(), [...UPSTREAM_SET].sort());
  t.is(sources.get('server_port'), 46);
});

test("Debian's generated config loads without warnings", (t) => {
  const { config, warnings, sources } = parseConfigText(DEBIAN_CONFIG, '/etc/imapproxy.conf');
  t.deepEqual(warnings, []);
  t.deepEqual(config, {
    ...defaultConfig(),
    server_hostname: 'localhost',
    listen_port: 1143,
    stat_filename: '/var/run/pimpstats',
    chroot_directory: '/var/lib/imapproxy/chroot',
  });
  t.deepEqual([...sources.keys()].sort(), [...UPSTREAM_SET, 'chroot_directory'].sort());
});
