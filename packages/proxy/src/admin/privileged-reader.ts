// Reading files readable by root only after the privilege drop (issue 20):
// the configuration file (mode 0600 is usual once it holds
// auth_sasl_plain_password) and the client TLS certificate and key (certbot's
// keys are root's), which a reload (SIGHUP, imapproxyctl reload) reads again.
//
// Before the drop the daemon starts a tiny helper that stays root: a shell
// loop that reads a number on stdin and answers with that file, base64 on
// one line. The files are fixed at start and passed in its environment
// (visible to root only); the unprivileged daemon can ask for nothing else.
// It ends when its stdin closes, i.e. with the daemon, however that ends.
// A shell (about 1 MB) rather than a second Node process (about 40 MB).

import { spawn, type ChildProcess } from 'node:child_process';
import { ImapProxyError } from '@imapproxy/shared';

const SCRIPT = `
while IFS= read -r i; do
  case "$i" in
    ''|*[!0-9]*) echo '-bad request'; continue ;;
  esac
  eval "f=\\\${IMAPPROXY_READ_$i:-}"
  if [ -z "$f" ]; then echo '-bad request'; continue; fi
  if out=$(base64 -w0 -- "$f" 2>&1); then echo "+$out"; else echo "-$out"; fi
done
`;

export class PrivilegedReader {
  private buffered = '';
  private readonly waiting: Array<(line: string | null) => void> = [];
  /** One request at a time: answers come back in order, but a reload is rare and this keeps it simple. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly files: readonly string[],
  ) {
    child.stdout!.setEncoding('latin1');
    child.stdout!.on('data', (chunk: string) => {
      this.buffered += chunk;
      let nl;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        this.waiting.shift()?.(line);
      }
    });
    const gone = () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w(null);
    };
    child.once('exit', gone);
    child.once('error', gone);
    child.stdin!.on('error', () => {});
  }

  /** Starts the helper (call as root, before the drop) for these files; undefined entries are skipped. */
  static start(files: ReadonlyArray<string | undefined>): PrivilegedReader {
    const list = files.filter((f): f is string => f !== undefined);
    const env: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin', LC_ALL: 'C' };
    list.forEach((f, i) => (env[`IMAPPROXY_READ_${i}`] = f));
    const child = spawn('/bin/sh', ['-c', SCRIPT, 'imapproxyd-reader'], { stdio: ['pipe', 'pipe', 'ignore'], env });
    // It must not keep the daemon's event loop alive at shutdown.
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    return new PrivilegedReader(child, list);
  }

  /** Whether this helper was given the file. */
  has(file: string | undefined): boolean {
    return file !== undefined && this.files.includes(file);
  }

  /** The file's bytes, read as root. Rejects with IMAPPROXY_ERR_RELOAD naming the file and the reason. */
  read(file: string): Promise<Buffer> {
    const index = this.files.indexOf(file);
    const result = this.queue.then(() => this.ask(index, file));
    this.queue = result.catch(() => {});
    return result;
  }

  private ask(index: number, file: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (index < 0) return reject(new ImapProxyError('IMAPPROXY_ERR_RELOAD', `${file}: not one of the files read as root`));
      if (this.closed) return reject(new ImapProxyError('IMAPPROXY_ERR_RELOAD', `${file}: the privileged reader is gone; restart the daemon`));
      this.waiting.push((line) => {
        if (line === null) reject(new ImapProxyError('IMAPPROXY_ERR_RELOAD', `${file}: the privileged reader is gone; restart the daemon`));
        else if (line.startsWith('+')) resolve(Buffer.from(line.slice(1), 'base64'));
        else reject(new ImapProxyError('IMAPPROXY_ERR_RELOAD', `cannot read ${file}: ${line.slice(1).replace(/^base64: /, '')}`));
      });
      this.child.stdin!.write(`${index}\n`);
    });
  }

  close(): void {
    this.closed = true;
    this.child.stdin!.end();
  }
}
