// A syslog sink for the C imapproxy, which logs only through syslog(3) to /dev/log.
// Node cannot bind AF_UNIX datagram sockets, so the sink is a few lines of python3
// (port of /work/shared/bench/syslog_catcher.py): it binds SOCKET_PATH and appends
// each message, decoded, as one line to LOG_FILE.
//
// It doubles as a guard: imapproxyd drops root, which clears its parent-death signal,
// so a test process killed with SIGKILL would leave it running. The catcher keeps
// its own --pdeathsig and, when it is terminated, also terminates the pid written
// in GUARD_PID_FILE (if that file still exists).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { waitFor } from './wait.js';
import { isAlive, signal, waitForExit } from './process-tree.js';

const CATCHER_PY = String.raw`
import os, signal, socket, sys, time
FAC = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
       "authpriv", "ftp", "12", "13", "14", "15", "local0", "local1", "local2", "local3",
       "local4", "local5", "local6", "local7"]
SEV = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
path, logfile = sys.argv[1], sys.argv[2]
guard = sys.argv[3] if len(sys.argv) > 3 else ""
def on_term(*_):
    try:
        with open(guard) as f:
            os.kill(int(f.read().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass
    sys.exit(0)
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path + ".tmp")
os.chmod(path + ".tmp", 0o666)  # imapproxyd logs as nobody after dropping privileges
os.rename(path + ".tmp", path)  # appears only once bound and writable
out = open(logfile, "a", buffering=1)
signal.signal(signal.SIGTERM, on_term)
while True:
    data = s.recv(65536)
    msg = data.decode("utf-8", "replace").rstrip("\n\0")
    pri = ""
    if msg.startswith("<") and ">" in msg[:5]:
        p = int(msg[1:msg.index(">")])
        pri = (FAC[p >> 3] if (p >> 3) < len(FAC) else str(p >> 3)) + "." + SEV[p & 7] + " "
        msg = msg[msg.index(">") + 1:]
    # one line per message: imapproxyd logs raw server lines, some with CR LF inside
    msg = msg.replace("\r", "\\r").replace("\n", "\\n")
    out.write(time.strftime("%Y-%m-%d %H:%M:%S ") + pri + msg + "\n")
`;

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const SETPRIV_BIN = '/usr/bin/setpriv';

export interface SyslogCatcher {
  pid: number;
  socketPath: string;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * Starts the catcher and resolves once socketPath accepts datagrams. guardPidFile:
 * see above; remove the file before stop() once the guarded process is gone.
 */
export async function startSyslogCatcher(socketPath: string, logFile: string, guardPidFile = ''): Promise<SyslogCatcher> {
  const args = ['-c', CATCHER_PY, socketPath, logFile, guardPidFile];
  // --pdeathsig: gone with the test process even if exit hooks never run
  const child: ChildProcess = existsSync(SETPRIV_BIN)
    ? spawn(SETPRIV_BIN, ['--pdeathsig', 'TERM', PYTHON, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(PYTHON, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  child.unref();
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  let exited = false;
  child.once('exit', () => { exited = true; });
  child.once('error', (err) => { exited = true; stderr += err.message; });
  await waitFor('the syslog catcher\'s socket', () => (exited || existsSync(socketPath) ? true : undefined), { intervalMs: 10 })
    .catch(() => undefined); // reported below
  if (!existsSync(socketPath)) {
    if (child.pid) signal(child.pid, 'SIGKILL');
    throw new Error(`syslog catcher did not create ${socketPath}: ${stderr.trim() || 'timeout'}`);
  }
  const pid = child.pid!;
  return {
    pid,
    socketPath,
    logFile,
    async stop(): Promise<void> {
      if (!isAlive(pid)) return;
      signal(pid, 'SIGTERM');
      if ((await waitForExit([pid], 2000)).length > 0) signal(pid, 'SIGKILL');
    },
  };
}
