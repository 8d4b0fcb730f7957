import test from 'ava';
import { renderAsciiChart } from './ascii-chart.js';

test('ascii chart: axis, scale, both series, newest at the right', (t) => {
  const lines = renderAsciiChart({ logins: [0, 5, 10], reuses: [0, 0, 5], maxY: 10 }, 16, 4);
  t.deepEqual(lines, [
    ' 10|           *',
    '   |          *o',
    '  0|         #o ',
    '   +------------',
  ]);
  t.true(lines.every((l) => l.length === 16 && /^[\x20-\x7e]*$/.test(l)));
});

test('ascii chart: more points than columns are averaged into buckets', (t) => {
  const logins = [2, 2, 0, 0, 2, 2, 0, 0, 2, 2, 0, 0, 2, 2, 0, 0];
  const lines = renderAsciiChart({ logins, reuses: logins.map(() => 0), maxY: 2 }, 12, 3);
  t.deepEqual(lines, ['  2|* * * * ', '  0|o#o#o#o#', '   +--------']);
});
