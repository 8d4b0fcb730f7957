// The README's option table is generated from the schema: it must never drift.
import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderOptionTableMarkdown } from '@imapproxy/shared';

const README = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../README.md');

test('README option table matches the config schema', (t) => {
  const text = readFileSync(README, 'utf8');
  const m = /<!-- options:begin -->\n([\s\S]*?)<!-- options:end -->/.exec(text);
  t.truthy(m, 'README has the options markers');
  t.is(m![1], renderOptionTableMarkdown(), 'regenerate the table with renderOptionTableMarkdown()');
});
