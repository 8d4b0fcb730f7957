// Waiting in tests: poll for the condition itself, with a deadline that grows with
// the machine's load. A test that passes on a quiet laptop must also pass on a
// 2-core CI box where other builds run: a deadline is an upper bound (the wait ends
// as soon as the condition holds), so a generous one costs nothing when all is well.
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/** Never stretch a deadline beyond this factor: ava gives up on a silent test after 120 s. */
const MAX_SCALE = 4;

/**
 * How much slower than a quiet machine this one is right now: the 1-minute load
 * average per core (at least 1, at most MAX_SCALE), or TEST_TIME_SCALE when set.
 * Read at each call, so a wait started when the load rose gets the larger deadline.
 */
export function timeScale(): number {
  const forced = Number(process.env.TEST_TIME_SCALE);
  if (forced > 0) return Math.min(forced, MAX_SCALE * 4);
  const perCore = os.loadavg()[0]! / Math.max(1, os.availableParallelism());
  return Math.min(MAX_SCALE, Math.max(1, perCore));
}

/** A deadline of `ms` on a quiet machine, scaled by the load (see timeScale). */
export function scaled(ms: number): number {
  return Math.round(ms * timeScale());
}

export interface PollOptions {
  /** Deadline on a quiet machine; stretched by timeScale(). Default 5000. */
  timeoutMs?: number;
  /** Pause between probes. Default 20 ms. */
  intervalMs?: number;
  /** Extra text for the timeout error (e.g. a log). */
  detail?: () => string;
}

/**
 * Polls `probe` until it returns something other than undefined and returns that;
 * rejects after the (load-scaled) deadline, naming `what` it waited for.
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, opts: PollOptions = {}): Promise<T> {
  const timeoutMs = scaled(opts.timeoutMs ?? 5000);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${opts.detail ? `\n${opts.detail()}` : ''}`);
    }
    await sleep(opts.intervalMs ?? 20);
  }
}

/** Like waitFor, for a condition: resolves once `cond()` is true. */
export async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, opts: PollOptions = {}): Promise<void> {
  await waitFor(what, async () => ((await cond()) ? true : undefined), opts);
}

/**
 * Resolves with the value of `read()` once it has not changed for `quietMs`
 * (polled every `intervalMs`): for things that have no "done" event of their own,
 * such as a log another process appends to, or a process's open file count while a
 * connection it started is being closed.
 */
export async function settled<T>(what: string, read: () => T | Promise<T>, opts: PollOptions & { quietMs?: number } = {}): Promise<T> {
  const interval = opts.intervalMs ?? 50;
  const quiet = opts.quietMs ?? 150;
  let last = JSON.stringify(await read());
  let value: T | undefined;
  let since = Date.now();
  return waitFor(what, async () => {
    value = await read();
    const now = JSON.stringify(value);
    if (now !== last) {
      last = now;
      since = Date.now();
      return undefined;
    }
    return Date.now() - since >= quiet ? value : undefined;
  }, { ...opts, intervalMs: interval });
}
