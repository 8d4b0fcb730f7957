// The rate chart for terminals that are not UTF-8, where blessed-contrib's braille line chart
// would turn into question marks. Plain characters: '*' logins/s, 'o' reuses/s, '#' both.

export interface AsciiChartInput {
  logins: readonly number[];
  reuses: readonly number[];
  maxY: number;
}

/** Renders into exactly `height` lines of exactly `width` characters. */
export function renderAsciiChart(input: AsciiChartInput, width: number, height: number): string[] {
  if (width < 12 || height < 3) return Array.from({ length: Math.max(0, height) }, () => ''.padEnd(width));
  const axisWidth = Math.max(String(input.maxY).length, 3) + 1; // "  5|"
  const plotWidth = width - axisWidth;
  const plotHeight = height - 1; // last line is the x axis
  const grid: string[][] = Array.from({ length: plotHeight }, () => Array<string>(plotWidth).fill(' '));
  const logins = bucket(input.logins, plotWidth);
  const reuses = bucket(input.reuses, plotWidth);
  const rowOf = (v: number): number =>
    plotHeight - 1 - Math.min(plotHeight - 1, Math.round((v / input.maxY) * (plotHeight - 1)));
  // Right-aligned: the newest point is at the right edge, like the braille chart.
  const offset = plotWidth - logins.length;
  logins.forEach((v, i) => {
    grid[rowOf(v)]![offset + i] = '*';
  });
  reuses.forEach((v, i) => {
    const row = grid[rowOf(v)]!;
    row[offset + i] = row[offset + i] === '*' ? '#' : 'o';
  });
  const lines = grid.map((cells, r) => {
    const label = r === 0 ? String(input.maxY) : r === plotHeight - 1 ? '0' : '';
    return `${label.padStart(axisWidth - 1)}|${cells.join('')}`;
  });
  lines.push(`${''.padStart(axisWidth - 1)}+${'-'.repeat(plotWidth)}`);
  return lines;
}

/** Averages the series down to at most `columns` values (newest last). */
function bucket(values: readonly number[], columns: number): number[] {
  if (values.length <= columns) return [...values];
  const out: number[] = [];
  const per = values.length / columns;
  for (let c = 0; c < columns; c++) {
    const from = Math.floor(c * per);
    const to = Math.max(from + 1, Math.floor((c + 1) * per));
    let sum = 0;
    for (let i = from; i < to; i++) sum += values[i]!;
    out.push(sum / (to - from));
  }
  return out;
}
