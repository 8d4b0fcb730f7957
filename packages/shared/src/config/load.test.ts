import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, EX_CONFIG } from './config-error.js';
import { DEFAULT_CONFIG_PATH, loadConfig, parseConfigText } from './load.js';
import { defaultConfig } from './schema.js';

const FILE = '/etc/imapproxy.conf';

test('B6: an empty file gives the documented defaults (1.2.8 gave 0, NULL or a crash)', (t) => {
  const { config, warnings, sources, file } = parseConfigText('', FILE);
  t.is(config.connect_retries, 10);
  t.is(config.connect_delay, 5);
  t.is(config.cache_size, 3072);
  t.is(config.server_port, 143);
  t.is(config.listen_port, 143);
  t.is(config.protocol_log_filename, '/var/log/imapproxy_protocol.log');
  t.deepEqual(config, defaultConfig());
  t.deepEqual(warnings, []);
  t.deepEqual(sources, new Map());
  t.is(file, FILE);
});

test('B6: defaults apply to the lines that are missing, not only to an empty file', (t) => {
  const { config } = parseConfigText('server_hostname imap.example.org\nlisten_port 1143\n', FILE);
  t.deepEqual(config, { ...defaultConfig(), server_hostname: 'imap.example.org', listen_port: 1143 });
});

test('B6: an unknown keyword is a warning with file and line (1.2.8 ignored it silently)', (t) => {
  const { config, warnings } = parseConfigText('server_port 143\n\nbogus_keyword whatever\nauth_sasl_mech plain\n', FILE);
  t.deepEqual(warnings, [
    { file: FILE, line: 3, option: 'bogus_keyword', message: `${FILE}:3: unknown option 'bogus_keyword' ignored` },
    { file: FILE, line: 4, option: 'auth_sasl_mech', message: `${FILE}:4: unknown option 'auth_sasl_mech' ignored` },
  ]);
  t.false(Object.hasOwn(config, 'bogus_keyword'));
});

test('an unknown keyword is reported as written, even with no value', (t) => {
  const { warnings } = parseConfigText('[Global]\n', FILE);
  t.deepEqual(warnings, [{ file: FILE, line: 1, option: '[Global]', message: `${FILE}:1: unknown option '[Global]' ignored` }]);
});

test('an ini section header does not nest the options after it', (t) => {
  const { config } = parseConfigText('[global]\nserver_port 1143\n', FILE);
  t.is(config.server_port, 1143);
});

test('strict_config yes turns the first unknown keyword into an error, wherever strict_config is', (t) => {
  const text = 'server_port 143\nbogus_keyword whatever\nother_bogus 1\nstrict_config yes\n';
  const error = t.throws(() => parseConfigText(text, FILE), { instanceOf: ConfigError, code: 'IMAPPROXY_ERR_CONFIG' });
  t.is(error?.message, `${FILE}:2: option 'bogus_keyword': unknown option; expected a known option (see imapproxyd --help-config) or strict_config no`);
  t.is(error?.line, 2);
  t.is(error?.option, 'bogus_keyword');
});

test('strict_config yes with only known keywords loads', (t) => {
  const { config, warnings } = parseConfigText('strict_config yes\nserver_port 143\n', FILE);
  t.true(config.strict_config);
  t.deepEqual(warnings, []);
});

test('the last occurrence wins, and sources names its line', (t) => {
  const { config, sources } = parseConfigText('server_port 143\ncache_size 10\nserver_port 1143\n', FILE);
  t.is(config.server_port, 1143);
  t.deepEqual(sources, new Map([['server_port', 3], ['cache_size', 2]]));
});

test('keywords match in any case and are stored under their canonical name', (t) => {
  const { config, sources } = parseConfigText('Server_Hostname imap.example.org\nTLS_NO_TLSV1.1 yes\n', FILE);
  t.is(config.server_hostname, 'imap.example.org');
  t.is(config['tls_no_tlsv1.1'], true);
  t.is(config['tls_no_tlsv1.2'], false);
  t.deepEqual([...sources.keys()], ['server_hostname', 'tls_no_tlsv1.1']);
});

test('tabs separate keyword and value, and indented comments are fine (B6)', (t) => {
  const { config, warnings } = parseConfigText('  # indented comment\nserver_port\t1143\n\tcache_size\t\t100\t\n   \n', FILE);
  t.is(config.server_port, 1143);
  t.is(config.cache_size, 100);
  t.deepEqual(warnings, []);
});

test('CRLF and a # in mid-line', (t) => {
  const { config, sources } = parseConfigText('server_hostname imap.example.org # our backend\r\nforce_tls yes#really\r\n', FILE);
  t.is(config.server_hostname, 'imap.example.org');
  t.is(config.force_tls, true);
  t.deepEqual(sources, new Map([['server_hostname', 1], ['force_tls', 2]]));
});

test('prototype names are unknown keywords, not object internals', (t) => {
  const { config, warnings } = parseConfigText('__proto__ x\nconstructor y\n', FILE);
  t.deepEqual(warnings.map((warning) => warning.option), ['__proto__', 'constructor']);
  t.deepEqual(config, defaultConfig());
});

test('EX_CONFIG and the default path', (t) => {
  t.is(EX_CONFIG, 78);
  t.is(DEFAULT_CONFIG_PATH, '/etc/imapproxy.conf');
});

test('loadConfig reads a file, dropping a UTF-8 byte order mark', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'imapproxy-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'imapproxy.conf');
  writeFileSync(file, '\uFEFFserver_port 1143\r\nauth_shared_secret sécret\r\n');
  const loaded = loadConfig(file);
  t.is(loaded.file, file);
  t.is(loaded.config.server_port, 1143);
  t.is(loaded.config.auth_shared_secret, 'sécret');
  t.deepEqual(loaded.warnings, []);
});

test('loadConfig reports a bad line with the file name', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'imapproxy-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'imapproxy.conf');
  writeFileSync(file, 'cache_size 3072\nconnect_delay soon\n');
  t.throws(() => loadConfig(file), {
    instanceOf: ConfigError,
    code: 'IMAPPROXY_ERR_CONFIG',
    message: `${file}:2: option 'connect_delay': 'soon' is not a whole number; expected a whole number of seconds 0-2147483`,
  });
});

test('a missing file is IMAPPROXY_ERR_CONFIG_IO with the OS reason', (t) => {
  const file = join(tmpdir(), 'imapproxy-no-such-dir', 'imapproxy.conf');
  const error = t.throws(() => loadConfig(file), {
    instanceOf: ConfigError,
    code: 'IMAPPROXY_ERR_CONFIG_IO',
    message: `${file}: cannot read config file: no such file or directory (ENOENT)`,
  });
  t.is(error?.file, file);
  t.is(error?.line, undefined);
  t.is((error?.cause as NodeJS.ErrnoException | undefined)?.code, 'ENOENT');
});

test('a directory is IMAPPROXY_ERR_CONFIG_IO too', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'imapproxy-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => loadConfig(dir), {
    instanceOf: ConfigError,
    code: 'IMAPPROXY_ERR_CONFIG_IO',
    message: `${dir}: cannot read config file: illegal operation on a directory (EISDIR)`,
  });
});

test('a misspelt option is warned about with the option it most likely meant', (t) => {
  const { warnings } = parseConfigText('cache_sise 10\nproc_usrname imapproxy\nquite_unrelated_words 1\n', FILE);
  t.deepEqual(warnings.map((w) => w.message), [
    `${FILE}:1: unknown option 'cache_sise' ignored; did you mean 'cache_size'?`,
    `${FILE}:2: unknown option 'proc_usrname' ignored; did you mean 'proc_username'?`,
    `${FILE}:3: unknown option 'quite_unrelated_words' ignored`,
  ]);
});
