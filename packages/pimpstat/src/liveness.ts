// Is the daemon still writing the stats file? Our writer rewrites it at least every
// STATS_HEARTBEAT_MS (2 s) even when idle, moving the generation word, so a generation that
// has not moved for STALE_AFTER_MS means the daemon stopped or hangs. A 72-byte file from the
// C daemon has no heartbeat (it writes only when a counter changes, through mmap()), so it is
// never called stale: the dashboard says the check is unavailable instead.
import type { DecodedStats } from '@imapproxy/shared';

export const STALE_AFTER_MS = 5000;

export type Liveness =
  | { state: 'live' }
  | { state: 'stale'; sinceMs: number }
  | { state: 'unknown' };

export class LivenessTracker {
  readonly staleAfterMs: number;
  #generation: number | null = null;
  #startTime: number | null = null;
  #changedAtMs = 0;

  constructor(staleAfterMs: number = STALE_AFTER_MS) {
    this.staleAfterMs = staleAfterMs;
  }

  /** Records a successful read at `nowMs` and says whether the writer is alive. */
  observe(stats: DecodedStats, nowMs: number): Liveness {
    const ext = stats.extension;
    if (ext === null) return { state: 'unknown' };
    if (this.#generation === null) {
      // First look: trust the writer's own time stamp of its last flush (same host, same
      // clock), so a file left behind by a dead daemon is flagged at once.
      this.#changedAtMs = ext.flushedAtMs > 0 ? Math.min(ext.flushedAtMs, nowMs) : nowMs;
    } else if (ext.generation !== this.#generation || stats.startTime !== this.#startTime) {
      this.#changedAtMs = nowMs;
    }
    this.#generation = ext.generation;
    this.#startTime = stats.startTime;
    return this.current(nowMs);
  }

  /** Liveness at `nowMs` without a new read (e.g. while the file cannot be read). */
  current(nowMs: number): Liveness {
    if (this.#generation === null) return { state: 'unknown' };
    const since = nowMs - this.#changedAtMs;
    return since > this.staleAfterMs ? { state: 'stale', sinceMs: since } : { state: 'live' };
  }
}
