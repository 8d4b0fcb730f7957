// The live dashboard: blessed for the layout, blessed-contrib for the rate chart and the pool
// gauge. Everything shown comes from buildView() (./view.ts); this file only places it.
import blessed from 'blessed';
import contrib from 'blessed-contrib';
import { readStatsFile, sendControlRequest, type DecodedStats } from '@imapproxy/shared';
import { renderAsciiChart } from './ascii-chart.js';
import { LivenessTracker } from './liveness.js';
import { RateHistory } from './rates.js';
import type { PimpstatSettings } from './settings.js';
import { buildView, COUNTERS_WIDTH, type DashboardView } from './view.js';

type Screen = blessed.Widgets.Screen;
type Box = blessed.Widgets.BoxElement;

// The layout is designed for 80 x 24 and larger; smaller terminals still work, cropped.

/** The locale decides whether box-drawing characters can be shown (LC_ALL > LC_CTYPE > LANG). */
export function isUtf8Locale(env: NodeJS.ProcessEnv = process.env): boolean {
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || '';
  return /utf-?8/i.test(locale);
}

export interface ScreenOptions {
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
  /** Plain ASCII output: borders of + - |, no braille chart. */
  ascii: boolean;
  terminal?: string;
}

export function createScreen(options: ScreenOptions): Screen {
  const screen = blessed.screen({
    input: options.input as never,
    output: options.output as never,
    terminal: options.terminal,
    smartCSR: true,
    forceUnicode: !options.ascii,
    fullUnicode: false,
    warnings: false,
    autoPadding: true,
    dockBorders: false,
    title: 'pimpstat',
  });
  // blessed draws box lines through the terminal's ACS (alternate character set) when the
  // terminfo entry has one, which tmux/screen and some consoles render as "lqqk". Declaring ACS
  // "broken" makes it write the characters themselves: UTF-8 box drawing, or (unicode off)
  // its ASCII table, + - |.
  const tput = (screen as unknown as { tput: { brokenACS: boolean; unicode: boolean } }).tput;
  tput.brokenACS = true;
  tput.unicode = !options.ascii;
  return screen;
}

const HELP_TEXT = [
  '{bold}pimpstat{/bold}: live statistics of imapproxyd',
  '',
  ' q, Ctrl-C   quit',
  ' r           reset the counters (through the control socket)',
  ' ?, Esc      show / hide this help',
  '',
  ' current / peak  now, and highest since the last reset',
  ' active          backend connections serving a client',
  ' cached          idle backend connections kept for reuse',
  ' login ratio     client logins per backend login',
  ' reuse hit rate  reuses / (created + reused)',
  ' pool            active + cached, against cache_size',
  ' SELECT CACHE    shown if the config read by pimpstat',
  '                 enables enable_select_cache',
  '',
  ' A warning line appears when the stats file has not',
  ' been rewritten for 5 s (imapproxyd stopped or hung).',
].join('\n');

interface Geometry {
  width: number;
  height: number;
  banner: boolean;
}

/** Places the view on a screen; call show() with each new view, the layout follows resizes. */
export class Dashboard {
  readonly screen: Screen;
  readonly ascii: boolean;
  readonly #header: Box;
  readonly #banner: Box;
  readonly #counters: Box;
  readonly #events: Box;
  readonly #footer: Box;
  readonly #help: Box;
  #chart: contrib.LineElement | Box | null = null;
  readonly #gauge: blessed.Widgets.ProgressBarElement;
  #view: DashboardView | null = null;
  #geometry: Geometry | null = null;
  // blessed re-renders the screen on a resize before telling the elements: lay out first
  // (prepended on the program's event), so nothing is drawn at the old size into the new buffer
  // (blessed's progress bar would even crash on a row that no longer exists).
  readonly #onProgramResize = (): void => this.#relayout();
  readonly #onResize = (): void => this.#refresh();

  constructor(screen: Screen, options: { ascii: boolean }) {
    this.screen = screen;
    this.ascii = options.ascii;
    const border = { type: 'line' as const };
    this.#header = blessed.box({
      parent: screen,
      top: 0,
      left: 0,
      height: 1,
      width: '100%',
      tags: false,
      style: { fg: 'black', bg: 'cyan', bold: true },
    });
    this.#banner = blessed.box({
      parent: screen,
      top: 1,
      left: 0,
      height: 1,
      width: '100%',
      hidden: true,
      style: { fg: 'white', bg: 'red', bold: true },
    });
    this.#counters = blessed.box({
      parent: screen,
      label: ' imapproxy counters ',
      border,
      padding: { left: 1, right: 0 },
      style: { border: { fg: 'cyan' }, label: { bold: true } },
    });
    this.#events = blessed.box({
      parent: screen,
      label: ' pool events since start ',
      border,
      style: { border: { fg: 'cyan' } },
    });
    // blessed's own progress bar rather than contrib's gauge: contrib's needs six rows to show
    // its percentage at all, and reads values up to 1.001 as fractions (1% would show 100%).
    this.#gauge = blessed.progressbar({
      parent: screen,
      border,
      height: 3,
      orientation: 'horizontal',
      pch: this.ascii ? '#' : ' ',
      filled: 0,
      style: { bar: { bg: 'green', fg: 'black' }, border: { fg: 'cyan' } },
    });
    this.#footer = blessed.box({
      parent: screen,
      bottom: 0,
      left: 0,
      height: 1,
      width: '100%',
      style: { fg: 'black', bg: 'white' },
    });
    this.#help = blessed.box({
      parent: screen,
      top: 'center',
      left: 'center',
      width: 60,
      height: 18,
      border,
      label: ' help ',
      tags: true,
      hidden: true,
      padding: { left: 1 },
      content: HELP_TEXT,
      style: { border: { fg: 'yellow' }, bg: 'black' },
    });
    screen.program.prependListener('resize', this.#onProgramResize);
    screen.on('resize', this.#onResize);
  }

  show(view: DashboardView): void {
    this.#view = view;
    this.#refresh();
  }

  get helpVisible(): boolean {
    return !this.#help.hidden;
  }

  toggleHelp(visible: boolean = this.#help.hidden): void {
    if (visible) {
      this.#help.show();
      this.#help.setFront();
    } else {
      this.#help.hide();
    }
    this.screen.render();
  }

  destroy(): void {
    this.screen.program.removeListener('resize', this.#onProgramResize);
    this.screen.removeListener('resize', this.#onResize);
    this.#chart?.destroy();
  }

  #refresh(): void {
    const view = this.#view;
    if (view === null) return;
    this.#relayout();
    this.#fill(view);
    this.screen.render();
  }

  /** Lays the elements out again if the size or the banner changed; draws nothing. */
  #relayout(): void {
    const view = this.#view;
    if (view === null) return;
    const geometry: Geometry = {
      width: Number(this.screen.width),
      height: Number(this.screen.height),
      banner: view.banner !== null,
    };
    const old = this.#geometry;
    if (
      old !== null &&
      old.width === geometry.width &&
      old.height === geometry.height &&
      old.banner === geometry.banner
    ) {
      return;
    }
    this.#geometry = geometry;
    this.#layout(geometry, view);
    // A new chart needs its data before the next render.
    this.#fill(view);
  }

  #layout(g: Geometry, view: DashboardView): void {
    const bodyTop = g.banner ? 2 : 1;
    const bodyHeight = Math.max(3, g.height - bodyTop - 1);
    // Counters text + border + left padding; the rest of the width is the right column.
    const wantLeft = COUNTERS_WIDTH + 3;
    const rightWidth = g.width - wantLeft;
    const twoColumns = rightWidth >= 30;
    const leftWidth = twoColumns ? wantLeft : g.width;

    place(this.#counters, { top: bodyTop, left: 0, width: leftWidth, height: bodyHeight });
    this.#help.width = Math.min(60, g.width - 2);
    this.#help.height = Math.min(18, g.height - 2);

    this.#chart?.destroy();
    this.#chart = null;
    if (!twoColumns) {
      this.#events.hide();
      this.#gauge.hide();
      return;
    }
    this.#events.show();
    this.#gauge.show();
    const eventsHeight = Math.min(view.events.length + 2, Math.max(3, bodyHeight - 11));
    const gaugeHeight = 3;
    const chartHeight = Math.max(3, bodyHeight - eventsHeight - gaugeHeight);
    const left = leftWidth;
    place(this.#events, {
      top: bodyTop + chartHeight + gaugeHeight,
      left,
      width: rightWidth,
      height: eventsHeight,
    });
    const chartBox = { top: bodyTop, left, width: rightWidth, height: chartHeight };
    if (this.ascii) {
      this.#chart = blessed.box({
        parent: this.screen,
        ...chartBox,
        border: { type: 'line' },
        style: { border: { fg: 'cyan' } },
      });
    } else {
      const chart = contrib.line({
        screen: this.screen,
        ...chartBox,
        border: { type: 'line' },
        label: ' rates ',
        showLegend: rightWidth >= 50,
        legend: { width: 12 },
        minY: 0,
        maxY: 1,
        xPadding: 3,
        xLabelPadding: 3,
        numYLabels: 5,
        style: { line: 'yellow', text: 'white', baseline: 'white', border: { fg: 'cyan' } },
      });
      this.screen.append(chart);
      this.#chart = chart;
    }
    place(this.#gauge, { top: bodyTop + chartHeight, left, width: rightWidth, height: gaugeHeight });
    this.#help.setFront();
  }

  #fill(view: DashboardView): void {
    const width = Number(this.screen.width);
    this.#header.setContent(fit(view.header, width));
    this.#footer.setContent(fit(view.footer, width));
    if (view.banner === null) {
      this.#banner.hide();
    } else {
      this.#banner.setContent(fit(view.banner, width));
      this.#banner.show();
    }
    const innerHeight = Number(this.#counters.height) - 2;
    const counters = view.counters.length > innerHeight ? view.counters.filter((l) => l !== '') : view.counters;
    this.#counters.setContent(counters.join('\n'));
    this.#events.setContent(view.events.map((l) => ` ${l}`).join('\n'));

    const rightInner = Number(this.#gauge.width) - 2;
    this.#gauge.setLabel(` ${fit(view.gauge.label, rightInner - 2)} `);
    // The bar's text is drawn over its first row, on the bar's colours.
    this.#gauge.setContent(fit(` ${view.gauge.detail}`, rightInner));
    this.#gauge.setProgress(Math.round(100 * Math.min(1, Math.max(0, view.gauge.fraction))));
    const chart = this.#chart;
    if (chart === null) return;
    const data = view.chart;
    const room = Number(chart.width) - 4;
    const title = data.title.length + data.window.length + 3 <= room ? `${data.title} (${data.window})` : data.title;
    chart.setLabel(` ${fit(title, room)} `);
    if (this.ascii || !('setData' in chart)) {
      const lines = renderAsciiChart(
        { logins: data.logins, reuses: data.reuses, maxY: data.maxY },
        Number(chart.width) - 2,
        Number(chart.height) - 2,
      );
      lines[0] = overlay(lines[0] ?? '', '* logins/s  o reuses/s', Number(chart.width) - 2);
      chart.setContent(lines.join('\n'));
      return;
    }
    // contrib's line chart needs two points to draw a line and divides by maxY - minY.
    const pad = data.logins.length >= 2 ? 0 : 2 - data.logins.length;
    const labels = [...Array<string>(pad).fill(''), ...data.labels];
    const logins = [...Array<number>(pad).fill(0), ...data.logins];
    const reuses = [...Array<number>(pad).fill(0), ...data.reuses];
    chart.options.maxY = data.maxY;
    chart.setData([
      { title: 'logins/s', x: labels, y: logins, style: { line: 'yellow' } },
      { title: 'reuses/s', x: labels, y: reuses, style: { line: 'cyan' } },
    ]);
  }
}

function place(el: Box, at: { top: number; left: number; width: number; height: number }): void {
  el.top = at.top;
  el.left = at.left;
  el.width = at.width;
  el.height = at.height;
}

function fit(text: string, width: number): string {
  return text.length > width ? text.slice(0, Math.max(0, width)) : text;
}

/** Writes `text` right-aligned over the end of `line` (for a legend in the first chart row). */
function overlay(line: string, text: string, width: number): string {
  if (text.length + 6 > width) return line;
  return line.slice(0, width - text.length - 1) + text + ' ';
}

/** What the screen currently holds, as text rows (for tests and for `capture`). */
export function screenText(screen: Screen): string[] {
  const lines = (screen as unknown as { lines: Array<Array<[number, string]>> }).lines;
  return lines.map((row) => row.map((cell) => cell[1]).join(''));
}

export interface RunTuiOptions extends ScreenOptions {
  settings: PimpstatSettings;
  /** The read main.ts did before opening the screen (so errors show before the screen). */
  initial: DecodedStats;
  intervalMs?: number;
  now?: () => number;
  /** Resets the daemon's counters; resolves with the message to show (default: the control socket). */
  resetCounters?: () => Promise<string>;
}

/** XPROXY_RESETCOUNTERS through the control socket, as imapproxyctl reset-counters does. */
async function resetThroughControlSocket(socketPath: string): Promise<string> {
  try {
    const answer = await sendControlRequest(socketPath, { cmd: 'reset-counters' }, 5000);
    return answer.ok ? 'counters reset' : `reset failed: ${answer.error.message}`;
  } catch (err) {
    return `reset failed: ${(err as Error).message}`;
  }
}

/** Runs until q / Ctrl-C; resolves with the exit status. */
export function runTui(options: RunTuiOptions): Promise<number> {
  const now = options.now ?? Date.now;
  const screen = createScreen(options);
  const dashboard = new Dashboard(screen, { ascii: options.ascii });
  const rates = new RateHistory();
  const liveness = new LivenessTracker();
  let stats = options.initial;
  rates.add(stats, now());
  let alive = liveness.observe(stats, now());
  let readError: string | null = null;
  let notice: { text: string; untilMs: number } | null = null;

  const render = (): void => {
    if (notice && now() > notice.untilMs) notice = null;
    dashboard.show(
      buildView({
        settings: options.settings,
        stats,
        nowMs: now(),
        liveness: alive,
        readError,
        rates: rates.points(),
        rateWindowMs: rates.windowMs,
        notice: notice?.text ?? null,
      }),
    );
  };
  const tick = (): void => {
    const at = now();
    try {
      stats = readStatsFile(options.settings.statFile);
      readError = null;
      rates.add(stats, at);
      alive = liveness.observe(stats, at);
    } catch (err) {
      readError = err instanceof Error ? err.message : String(err);
      alive = liveness.current(at);
    }
    render();
  };

  render();
  const timer = setInterval(tick, options.intervalMs ?? 1000);

  return new Promise((resolve) => {
    let finished = false;
    const finish = (status: number): void => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      dashboard.destroy();
      screen.destroy();
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      process.removeListener('SIGHUP', onSignal);
      resolve(status);
    };
    const onSignal = (): void => finish(0);
    // Ctrl-C arrives as a key in raw mode; these come from kill(1) and a closed terminal.
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    process.once('SIGHUP', onSignal);
    screen.key(['q', 'C-c'], () => finish(0));
    screen.key(['r'], () => {
      const reset = options.resetCounters ?? (() => resetThroughControlSocket(options.settings.controlSocket));
      notice = { text: 'resetting counters...', untilMs: now() + 5000 };
      render();
      void reset().then((text) => {
        notice = { text, untilMs: now() + 5000 };
        tick();
      });
    });
    screen.key(['?'], () => dashboard.toggleHelp());
    screen.key(['escape'], () => dashboard.toggleHelp(false));
  });
}
