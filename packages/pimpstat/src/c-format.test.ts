import test from 'ava';
import { cCtime, cFixed2, cInt, cInt9, cRatio } from './c-format.js';

test('%d of an unsigned counter: wrapped values print negative, like the C', (t) => {
  t.is(cInt(0), '0');
  t.is(cInt(2147483647), '2147483647');
  t.is(cInt(0x80000000), '-2147483648');
  t.is(cInt(0xffffffff), '-1');
  t.is(cInt9(42), '       42');
  t.is(cInt9(0xffffffff), '       -1');
});

// Expected strings printed by glibc: printf("%9.2f : 1", (float)a / (float)b).
test('login ratio: %9.2f of a float, ties to even, N/A without server logins', (t) => {
  const cases: Array<[number, number, string]> = [
    [19, 5, '     3.80 : 1'],
    [9, 8, '     1.12 : 1'], // 1.125: toFixed would say 1.13
    [21, 8, '     2.62 : 1'], // 2.625: toFixed would say 2.63
    [11, 8, '     1.38 : 1'],
    [1, 3, '     0.33 : 1'],
    [2, 3, '     0.67 : 1'],
    [1000000, 3, '333333.34 : 1'], // float precision, not double's 333333.33
    [4294967295, 1, '4294967296.00 : 1'],
    [7, 16, '     0.44 : 1'],
    [1, 200, '     0.00 : 1'],
    [5, 0, '          N/A'],
    [0, 0, '          N/A'],
  ];
  for (const [logins, created, expected] of cases) {
    t.is(cRatio(logins, created), expected, `${logins}/${created}`);
  }
});

test('cFixed2 rounds exact ties to even and everything else to nearest', (t) => {
  t.is(cFixed2(0.125), '0.12');
  t.is(cFixed2(0.375), '0.38');
  t.is(cFixed2(2.5), '2.50');
  t.is(cFixed2(Math.fround(0.1)), '0.10');
});

test('ctime without its newline, day of month padded with a space', (t) => {
  const tz = process.env.TZ;
  process.env.TZ = 'UTC';
  try {
    t.is(cCtime(1700000000), 'Tue Nov 14 22:13:20 2023');
    t.is(cCtime(1699142400), 'Sun Nov  5 00:00:00 2023');
    t.is(cCtime(0), 'Thu Jan  1 00:00:00 1970');
  } finally {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  }
});
