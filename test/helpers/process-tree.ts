// Processes the helpers start, found and ended by pid only (never by name: other
// test files and other engineers run Dovecots and imapproxyds on the same machine).
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { scaled } from './wait.js';

interface ProcStat {
  state: string;
  ppid: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // "pid (comm) state ppid ..." -- comm may contain spaces and parentheses
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0]!, ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

/** Alive and not a zombie. */
export function isAlive(pid: number): boolean {
  const st = readStat(pid);
  return st !== undefined && st.state !== 'Z' && st.state !== 'X';
}

/** All live descendants of `pid` (children, grandchildren, ...), from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st || st.state === 'Z') continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length > 0) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Waits until none of `pids` is alive; returns the ones still alive at the deadline. */
export async function waitForExit(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + scaled(timeoutMs);
  for (;;) {
    const alive = pids.filter(isAlive);
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    await sleep(20);
  }
}

/** SIGKILL a process and everything below it, synchronously (usable in an exit hook). */
export function killTreeNow(pid: number): void {
  const tree = [pid, ...descendants(pid)];
  for (const p of tree) signal(p, 'SIGKILL');
}

// --- exit hook ---------------------------------------------------------------------
// A test file that crashes or forgets stop() must not leave servers behind. 'exit'
// handlers must be synchronous, so cleanups here kill by pid and rmSync.
const exitCleanups = new Set<() => void>();
let hookInstalled = false;

/** Registers a synchronous cleanup for process exit; returns its unregister function. */
export function onProcessExit(cleanup: () => void): () => void {
  if (!hookInstalled) {
    hookInstalled = true;
    process.on('exit', () => {
      for (const fn of exitCleanups) {
        try {
          fn();
        } catch {
          // best effort: the process is exiting
        }
      }
    });
  }
  exitCleanups.add(cleanup);
  return () => exitCleanups.delete(cleanup);
}
