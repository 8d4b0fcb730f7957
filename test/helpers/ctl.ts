// imapproxyctl (bin/imapproxyctl, built JavaScript) as a child process: exit
// status, stdout and stderr, for the tests of the control socket.

import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scaled } from './wait.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const IMAPPROXYCTL = path.join(REPO, 'bin/imapproxyctl');

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CtlOptions {
  /** Run as this user (setpriv --reuid/--regid), e.g. to test permissions. */
  asUid?: number;
  asGid?: number;
  timeoutMs?: number;
}

/** Runs `imapproxyctl ...args`; never rejects on a non-zero exit. */
export function runCtl(args: string[], opts: CtlOptions = {}): Promise<CtlResult> {
  const [file, argv] =
    opts.asUid === undefined
      ? [process.execPath, [IMAPPROXYCTL, ...args]]
      : ['/usr/bin/setpriv', [`--reuid=${opts.asUid}`, `--regid=${opts.asGid ?? opts.asUid}`, '--clear-groups', process.execPath, IMAPPROXYCTL, ...args]];
  return new Promise((resolve) => {
    execFile(file, argv, { timeout: scaled(opts.timeoutMs ?? 20_000), encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `imapproxyctl -f conf --json ...args`, parsed; throws when the exit status is not 0. */
export async function ctlJson<T = Record<string, unknown>>(confFile: string, ...args: string[]): Promise<T> {
  const r = await runCtl(['-f', confFile, '--json', ...args]);
  if (r.code !== 0) throw new Error(`imapproxyctl ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}
