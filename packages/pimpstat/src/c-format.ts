// Number and time formats of the C pimpstat (SPEC §8.2), reproduced exactly.

/** C `%d` of an `unsigned int` counter: values of 2^31 and above print negative. */
export function cInt(value: number): string {
  return String(value | 0);
}

/** C `%9d`. */
export function cInt9(value: number): string {
  return cInt(value).padStart(9);
}

/**
 * The ratio field of the curses screen: `%9.2f : 1` of
 * `(float)TotalClientLogins / (float)TotalServerConnectionsCreated`, or the C's literal
 * `"          N/A"` (ten spaces) when no server connection was created.
 */
export function cRatio(totalClientLogins: number, totalServerConnectionsCreated: number): string {
  const created = totalServerConnectionsCreated >>> 0;
  if (created === 0) return '          N/A';
  // Single precision like the C `float Ratio`; printf then sees that value exactly.
  const ratio = Math.fround(Math.fround(totalClientLogins >>> 0) / Math.fround(created));
  return `${cFixed2(ratio).padStart(9)} : 1`;
}

/**
 * printf("%.2f") of a single-precision value. Number#toFixed rounds exact ties up where
 * glibc rounds them to even (9/8 = 1.125 prints "1.12" in C); a float times 100 is exact in
 * a double, so ties are recognisable.
 */
export function cFixed2(value: number): string {
  const hundredths = value * 100;
  const floor = Math.floor(hundredths);
  if (hundredths - floor !== 0.5) return value.toFixed(2);
  const even = floor % 2 === 0 ? floor : floor + 1;
  const sign = even < 0 ? '-' : '';
  const abs = Math.abs(even);
  return `${sign}${Math.trunc(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** C `ctime()` in local time without its newline: `Wed Nov 22 01:09:00 2023`, `Sun Nov  5 ...`. */
export function cCtime(seconds: number): string {
  const d = new Date(seconds * 1000);
  const two = (n: number): string => String(n).padStart(2, '0');
  return (
    `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2)} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${d.getFullYear()}`
  );
}
