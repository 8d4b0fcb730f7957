// Logins/s and reuses/s over the last minutes, from successive reads of the counters.
import type { DecodedStats } from '@imapproxy/shared';

export interface RatePoint {
  /** When the second read of the pair happened (ms, pimpstat's clock). */
  atMs: number;
  loginsPerSecond: number;
  reusesPerSecond: number;
}

/** Default window of the chart: five minutes of one-second samples. */
export const RATE_WINDOW_MS = 5 * 60 * 1000;

interface Totals {
  startTime: number;
  logins: number;
  reuses: number;
}

function totalsOf(s: DecodedStats): Totals {
  // The 64-bit copies when the file has them: they do not wrap at 2^32.
  return {
    startTime: s.startTime,
    logins: s.extension?.clientLogins ?? s.totalClientLogins,
    reuses: s.extension?.serverConnectionsReused ?? s.totalServerConnectionsReused,
  };
}

/**
 * Increase of a total between two reads. A total that went down was reset
 * (XPROXY_RESETCOUNTERS) or wrapped: what it counts now all happened since.
 */
function increase(before: number, after: number): number {
  return after >= before ? after - before : after;
}

export class RateHistory {
  readonly windowMs: number;
  #points: RatePoint[] = [];
  #last: { atMs: number; totals: Totals } | null = null;

  constructor(windowMs: number = RATE_WINDOW_MS) {
    this.windowMs = windowMs;
  }

  add(stats: DecodedStats, atMs: number): void {
    const totals = totalsOf(stats);
    const last = this.#last;
    this.#last = { atMs, totals };
    if (last === null) return;
    if (last.totals.startTime !== totals.startTime) {
      // The daemon restarted: its counters start again from zero, old rates mean nothing.
      this.#points = [];
      return;
    }
    const seconds = (atMs - last.atMs) / 1000;
    if (seconds <= 0) return;
    this.#points.push({
      atMs,
      loginsPerSecond: increase(last.totals.logins, totals.logins) / seconds,
      reusesPerSecond: increase(last.totals.reuses, totals.reuses) / seconds,
    });
    const oldest = atMs - this.windowMs;
    while (this.#points.length > 0 && this.#points[0]!.atMs <= oldest) this.#points.shift();
  }

  points(): readonly RatePoint[] {
    return this.#points;
  }
}
