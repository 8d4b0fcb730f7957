// Our daemon (bin/imapproxyd, built JavaScript) in front of a test Dovecot, in
// foreground mode with its log on stderr captured for assertions.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getFreePort, LOOPBACK, waitForListening } from './ports.js';
import { onProcessExit, waitForExit } from './process-tree.js';
import { RawClient } from './transcript.js';
import { scaled } from './wait.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const IMAPPROXYD = path.join(REPO, 'bin/imapproxyd');

export interface ProxyOptions {
  serverPort: number;
  /** Extra config lines; later lines win over the defaults below. */
  extraConf?: string;
  /** Listen port (default: a free one). */
  port?: number;
  /**
   * Run the daemon in a private mount namespace where this file is
   * /etc/hosts (name resolution tests, SPEC §11 B13). The machine's
   * /etc/hosts is not touched. Needs root and unshare(1).
   */
  hostsFile?: string;
}

export interface Proxy {
  port: number;
  pid: number;
  dir: string;
  confFile: string;
  statFile: string;
  /** Everything the daemon wrote to stderr so far, one entry per line. */
  log(): string[];
  /** Resolves when a log line matches (rejects after timeoutMs, stretched by the load). */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM and wait; idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, for crash tests. */
  kill(): Promise<void>;
  /** Resolves once the daemon has exited, with its exit code or signal. */
  exitStatus(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startProxy(opts: ProxyOptions): Promise<Proxy> {
  // A free port can be taken by someone else before the daemon binds it: when the
  // port was ours to choose, try again with another one.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startProxyOnce(opts);
    } catch (err) {
      if (opts.port !== undefined || attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

async function startProxyOnce(opts: ProxyOptions): Promise<Proxy> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-ts-'));
  await chmod(dir, 0o755);
  const port = opts.port ?? (await getFreePort());
  const confFile = path.join(dir, 'imapproxy.conf');
  const statFile = path.join(dir, 'pimpstats');
  await writeFile(
    confFile,
    [
      `server_hostname ${LOOPBACK}`,
      `server_port ${opts.serverPort}`,
      `listen_address ${LOOPBACK}`,
      `listen_port ${port}`,
      'cache_size 3072',
      'cache_expiration_time 300',
      'connect_retries 0',
      'connect_delay 1',
      'foreground_mode yes',
      'proc_username nobody',
      'proc_groupname nogroup',
      `stat_filename ${statFile}`,
      `protocol_log_filename ${path.join(dir, 'protocol.log')}`,
      `control_socket ${path.join(dir, 'control.sock')}`,
      opts.extraConf ?? '',
      '',
    ].join('\n'),
  );
  // unshare without --fork, then exec: the pid stays the daemon's
  const child: ChildProcess = opts.hostsFile
    ? spawn('/usr/bin/unshare', ['--mount', 'sh', '-c', 'mount --make-rprivate / && mount --bind "$1" /etc/hosts && exec "$2" "$3" -f "$4"',
      'imapproxy-hosts', opts.hostsFile, process.execPath, IMAPPROXYD, confFile], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(process.execPath, [IMAPPROXYD, '-f', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: string[] = [];
  const watchers: Array<() => void> = [];
  let buf = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    buf += s;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    for (const w of watchers) w();
  });
  const pid = child.pid!;
  let exitReason: string | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      exitReason = `imapproxyd exited (${signal ?? `code ${code}`})`;
      resolve({ code, signal });
    }),
  );
  const removeHook = onProcessExit(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  });
  let stopped = false;
  const stop = async (sig: NodeJS.Signals) => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill(sig);
    } catch {
      /* gone */
    }
    await Promise.race([exited, waitForExit([pid], 5000)]);
    removeHook();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Node's start-up alone can take seconds on a loaded 2-core machine: a generous,
    // load-scaled deadline, and no waiting at all once the daemon has exited.
    await waitForListening([port], { timeoutMs: 30_000, what: `imapproxyd on ${port}`, abortReason: () => exitReason });
  } catch (err) {
    await stop('SIGKILL');
    throw new Error(`${(err as Error).message}\n${lines.join('\n')}`, { cause: err });
  }
  return {
    port,
    pid,
    dir,
    confFile,
    statFile,
    log: () => [...lines],
    waitForLog(re, quietMs = 5000) {
      const timeoutMs = scaled(quietMs);
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find((l) => re.test(l));
          if (hit === undefined) return false;
          watchers.splice(watchers.indexOf(check), 1);
          clearTimeout(timer);
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          watchers.splice(watchers.indexOf(check), 1);
          reject(new Error(`no log line matching ${re} within ${timeoutMs} ms; log:\n${lines.join('\n')}`));
        }, timeoutMs);
        watchers.push(check);
        check();
      });
    },
    stop: () => stop('SIGTERM'),
    kill: () => stop('SIGKILL'),
    exitStatus: () => exited,
  };
}

/** What proxyFor needs of an ava test: somewhere to hang the clean-up. */
export interface Teardown {
  teardown(fn: () => Promise<void>): void;
}

/** A daemon for one test, stopped when the test ends (pass or fail). */
export async function proxyFor(t: Teardown, opts: ProxyOptions): Promise<Proxy> {
  const proxy = await startProxy(opts);
  t.teardown(() => proxy.stop());
  return proxy;
}

/** Our daemon in front of `serverPort` for the duration of `body`, stopped whatever happens. */
export async function withProxy<T>(serverPort: number, extraConf: string, body: (p: Proxy) => Promise<T>): Promise<T> {
  const p = await startProxy({ serverPort, extraConf });
  try {
    return await body(p);
  } finally {
    await p.stop();
  }
}

/** A normal login still works on `p`: LOGIN, NOOP, LOGOUT (user N's password is passN). */
export async function loginWorks(p: Proxy, user: string): Promise<boolean> {
  const c = await RawClient.connect(p.port);
  try {
    const r = await c.command(`z1 LOGIN ${user} ${user.replace('user', 'pass')}`);
    if (r.at(-1) !== 'z1 OK User logged in') return false;
    if (!/^z2 OK/.test((await c.command('z2 NOOP')).at(-1)!)) return false;
    await c.command('z3 LOGOUT');
    return true;
  } finally {
    await c.close();
  }
}
