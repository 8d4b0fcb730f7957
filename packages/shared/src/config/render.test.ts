import test from 'ava';
import { parseConfigText } from './load.js';
import { renderConfigHelp, renderEffectiveConfig, renderOptionTableMarkdown } from './render.js';
import { OPTION_NAMES } from './schema.js';

const FILE = '/etc/imapproxy.conf';

test('--help-config lists every option once, 1.2.8 options first', (t) => {
  const help = renderConfigHelp();
  const lines = help.split('\n');
  const original = lines.indexOf('Options of up-imapproxy 1.2.8 (same keywords and meaning):');
  const added = lines.indexOf('Options added by imapproxy-ts:');
  t.true(original > 0 && added > original);
  for (const name of OPTION_NAMES) {
    const at = lines.filter((line) => line.startsWith(`  ${name} `));
    t.is(at.length, 1, name);
  }
  t.true(lines.indexOf(lines.find((line) => line.startsWith('  dns_rr '))!) < added);
  t.true(lines.indexOf(lines.find((line) => line.startsWith('  strict_config '))!) > added);
  t.true(help.endsWith('\n'));
});

test('--help-config shows type, default and description', (t) => {
  const lines = renderConfigHelp().split('\n');
  const at = lines.findIndex((line) => line.startsWith('  server_port '));
  t.deepEqual(lines.slice(at, at + 2), [
    '  server_port                       port                     default: 143',
    '      Port of the backend IMAP server; 993 needs server_tls yes (without it a warning is logged and plain IMAP is spoken).',
  ]);
  const timeout = lines.findIndex((line) => line.startsWith('  connect_timeout '));
  t.is(lines[timeout], '  connect_timeout                   seconds 1-2147483        default: 10');
  const address = lines.findIndex((line) => line.startsWith('  listen_address '));
  t.is(lines[address], '  listen_address                    string                   default: not set');
});

test('-t shows every option, marks defaults, masks secrets', (t) => {
  const loaded = parseConfigText([
    'server_hostname imap.example.org',
    'auth_sasl_plain_username proxyadmin',
    'auth_sasl_plain_password hunter2;x',
    'auth_shared_secret s3cret',
    'force_tls yes',
  ].join('\n'), FILE);
  const text = renderEffectiveConfig(loaded);
  const lines = text.split('\n');
  t.is(lines[0], `# effective configuration read from ${FILE}`);
  t.is(lines.length, OPTION_NAMES.length + 2); // header, one line per option, final newline
  t.false(text.includes('hunter2'));
  t.false(text.includes('s3cret'));
  const line = (name: string) => lines.find((l) => l.replace(/^# /, '').startsWith(`${name} `))!;
  t.regex(line('server_hostname'), /^server_hostname +imap\.example\.org$/);
  t.regex(line('auth_sasl_plain_username'), /^auth_sasl_plain_username +proxyadmin$/);
  t.regex(line('auth_sasl_plain_password'), /^auth_sasl_plain_password +\*{8}$/);
  t.regex(line('auth_shared_secret'), /^auth_shared_secret +\*{8}$/);
  t.regex(line('force_tls'), /^force_tls +yes$/);
  t.regex(line('server_port'), /^server_port +143 +# default$/);
  t.regex(line('tls_no_tlsv1.1'), /^tls_no_tlsv1\.1 +no +# default$/);
  t.regex(line('listen_address'), /^# listen_address +\(not set\) +# default$/);
});

test('-t output reads back as the same configuration, secrets aside', (t) => {
  const loaded = parseConfigText([
    'server_hostname imap.example.org',
    'listen_port imap',
    'preauth_command ID ("GUID" "1")',
    'syslog_facility log_local3',
    'auth_shared_secret s3cret',
    'tls_no_tlsv1.1 Yessir',
    'max_reuse_age 3600',
  ].join('\n'), FILE);
  const again = parseConfigText(renderEffectiveConfig(loaded), 'effective.conf');
  t.deepEqual(again.config, { ...loaded.config, auth_shared_secret: '********' });
  t.deepEqual(again.warnings, []);
});

test('the README table has one row per option, in table order', (t) => {
  const lines = renderOptionTableMarkdown().split('\n');
  t.deepEqual(lines.slice(0, 2), ['| name | type | default | description |', '|---|---|---|---|']);
  t.is(lines.length, OPTION_NAMES.length + 3); // header, separator, rows, final newline
  t.deepEqual(lines.slice(2, -1).map((row) => /^\| `([^`]+)` \|/.exec(row)?.[1]), OPTION_NAMES);
  t.true(lines.includes('| `server_port` | port | `143` | Port of the backend IMAP server; 993 needs server_tls yes (without it a warning is logged and plain IMAP is spoken). |'));
  t.true(lines.includes('| `tls_no_tlsv1.1` | yes/no | `no` | Do not use TLS 1.1 to the backend (never used anyway: the minimum is TLS 1.2). |'));
  t.true(lines.includes('| `listen_address` | string | not set | Address to listen on; all addresses when not set. |'));
  t.true(lines.includes('| `max_clients` | integer 0-2147483647 | `10000` | Most client connections at once; 0 means unlimited. |'));
});
