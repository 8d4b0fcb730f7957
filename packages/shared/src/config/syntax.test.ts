import test from 'ava';
import { splitConfigLines } from './syntax.js';

test('keyword and value are split at the first run of spaces or tabs', (t) => {
  t.deepEqual(splitConfigLines('server_port 143\nlisten_port\t1143\ncache_size \t  3072\n'), [
    { line: 1, keyword: 'server_port', value: '143' },
    { line: 2, keyword: 'listen_port', value: '1143' },
    { line: 3, keyword: 'cache_size', value: '3072' },
  ]);
});

test('a value keeps its inner blanks and loses the trailing ones', (t) => {
  t.deepEqual(splitConfigLines('preauth_command ID ("GUID" "1") \t \n'), [
    { line: 1, keyword: 'preauth_command', value: 'ID ("GUID" "1")' },
  ]);
});

test('# starts a comment anywhere on the line, as in 1.2.8', (t) => {
  t.deepEqual(splitConfigLines('server_port 143 # the backend\nauth_shared_secret ab#cd\n#listen_address 127.0.0.1\n'), [
    { line: 1, keyword: 'server_port', value: '143' },
    { line: 2, keyword: 'auth_shared_secret', value: 'ab' },
  ]);
});

test('CRLF files read like LF files, and a line ends at its first CR', (t) => {
  t.deepEqual(splitConfigLines('server_hostname imap.example.org\r\n\r\nserver_port 143\r\nlisten_port 1143\rjunk\n'), [
    { line: 1, keyword: 'server_hostname', value: 'imap.example.org' },
    { line: 3, keyword: 'server_port', value: '143' },
    { line: 4, keyword: 'listen_port', value: '1143' },
  ]);
});

test('indented comments, blank lines and indented options are fine (fatal in 1.2.8, SPEC B6)', (t) => {
  const text = ['   # an indented comment', '', ' ', '\t\t', '\t# tab-indented', '  server_port 143', '\tlisten_port 1143', ''].join('\n');
  t.deepEqual(splitConfigLines(text), [
    { line: 6, keyword: 'server_port', value: '143' },
    { line: 7, keyword: 'listen_port', value: '1143' },
  ]);
});

test('a keyword alone has an empty value, with or without trailing blanks', (t) => {
  t.deepEqual(splitConfigLines('preauth_command\nauth_shared_secret \t\n'), [
    { line: 1, keyword: 'preauth_command', value: '' },
    { line: 2, keyword: 'auth_shared_secret', value: '' },
  ]);
});

test('keywords keep their dots and their case', (t) => {
  t.deepEqual(splitConfigLines('TLS_No_TLSv1.1 yes\n'), [{ line: 1, keyword: 'TLS_No_TLSv1.1', value: 'yes' }]);
});

test('ini syntax means nothing: ; [ ] = and quotes are ordinary characters', (t) => {
  t.deepEqual(splitConfigLines('[global]\n; note\nauth_shared_secret "a;b"=c\n'), [
    { line: 1, keyword: '[global]', value: '' },
    { line: 2, keyword: ';', value: 'note' },
    { line: 3, keyword: 'auth_shared_secret', value: '"a;b"=c' },
  ]);
});
