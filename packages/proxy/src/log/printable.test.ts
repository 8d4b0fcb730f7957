import test from 'ava';
import { hasControlBytes, printable, printableDeep, printableJson } from './printable.js';

test('control characters become \\xHH, the rest is untouched', (t) => {
  t.is(printable('alice'), 'alice');
  t.is(printable('pässwörd DOMAIN\\user'), 'pässwörd DOMAIN\\user');
  t.is(printable("bob\r\nimapproxyd: LOGIN: 'root'"), "bob\\x0d\\x0aimapproxyd: LOGIN: 'root'");
  t.is(printable('x\u001b[2Jy\u0000z\u007f\u009b'), 'x\\x1b[2Jy\\x00z\\x7f\\x9b');
});

test('JSON keeps being JSON, with DEL and C1 escaped', (t) => {
  const json = printableJson(JSON.stringify({ user: 'a\u009b\u007f\n' }));
  t.false(/[\u0000-\u001f\u007f-\u009f]/.test(json));
  t.deepEqual(JSON.parse(json), { user: 'a\u009b\u007f\n' });
});

test('printableDeep reaches every string', (t) => {
  t.deepEqual(printableDeep({ a: ['x\n', 1, null], b: { c: '\u001b' } }), { a: ['x\\x0a', 1, null], b: { c: '\\x1b' } });
});

test('hasControlBytes: C0, DEL and UTF-8 C1; 8-bit letters are fine', (t) => {
  for (const bad of ['a\0b', 'a\rb', 'a\nb', '\u001b[31m', 'a\u007f', 'a\u009bb', 'tab\there']) t.true(hasControlBytes(Buffer.from(bad, 'utf8')), JSON.stringify(bad));
  for (const good of ['user1', 'pässwörd', 'a b', 'DOMAIN\\user', 'ś']) t.false(hasControlBytes(Buffer.from(good, 'utf8')), good);
});
