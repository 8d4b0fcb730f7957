// Starting and stopping one IMAP server process tree for a test (Cyrus's
// master, Courier's couriertcpd): our child, under `setpriv --pdeathsig` so a
// SIGKILLed test process still takes it down, waited for on its ports, and
// stopped by pid (the process and all its descendants), never by name.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { waitForListening } from './ports.js';
import { descendants, killTreeNow, onProcessExit, signal, waitForExit } from './process-tree.js';

const SETPRIV_BIN = '/usr/bin/setpriv';

export interface DaemonSpec {
  what: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr go here (appended). */
  logFile: string;
  ports: number[];
  timeoutMs?: number;
}

export interface Daemon {
  pid: number;
  /** SIGTERM to the whole tree, SIGKILL to what is left after 3 s. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL to the whole tree at once (a crash). */
  kill(): Promise<void>;
}

async function tail(file: string, lines = 25): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '';
  }
}

export async function launchDaemon(spec: DaemonSpec): Promise<Daemon> {
  const out = openSync(spec.logFile, 'a');
  // detached: a process group of its own. couriertcpd signals its whole group
  // when it stops, which took the test process down with it.
  const options = { stdio: ['ignore', out, out] as ['ignore', number, number], env: spec.env, detached: true };
  const child = existsSync(SETPRIV_BIN)
    ? spawn(SETPRIV_BIN, ['--pdeathsig', 'TERM', spec.command, ...spec.args], options)
    : spawn(spec.command, spec.args, options);
  closeSync(out);
  let exited: string | undefined;
  child.once('exit', (code, sig) => { exited = `${spec.what} exited (${sig ?? `code ${code}`})`; });
  child.once('error', (err) => { exited = `cannot run ${spec.what}: ${err.message}`; });
  child.unref();
  const pid = child.pid ?? 0;
  const unregister = onProcessExit(() => { if (pid) killTreeNow(pid); });
  let running = pid > 0;
  const shutdown = async (sig: NodeJS.Signals): Promise<void> => {
    if (!running) return;
    running = false;
    unregister();
    const tree = [pid, ...descendants(pid)];
    for (const p of tree) signal(p, sig);
    let alive = await waitForExit(tree, sig === 'SIGKILL' ? 2000 : 3000);
    if (alive.length > 0) {
      for (const p of alive) signal(p, 'SIGKILL');
      alive = await waitForExit(alive, 2000);
      if (alive.length > 0) throw new Error(`${spec.what} processes ${alive.join(', ')} did not exit`);
    }
  };
  try {
    await waitForListening(spec.ports, { what: spec.what, timeoutMs: spec.timeoutMs ?? 10_000, abortReason: () => exited });
  } catch (err) {
    await shutdown('SIGKILL');
    throw new Error(`${(err as Error).message}\n--- ${spec.what} output (${spec.logFile}) ---\n${await tail(spec.logFile)}`, { cause: err });
  }
  return { pid, stop: () => shutdown('SIGTERM'), kill: () => shutdown('SIGKILL') };
}
