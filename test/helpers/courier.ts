// A real Courier-IMAP 5 for integration tests, like dovecot.ts: its state in a
// fresh temp dir (userdb, authdaemon socket, Maildirs seeded by
// maildir-seed.ts), one loopback port (plain + STARTTLS).
//
// Courier reads /etc/courier/* and talks to /run/courier/authdaemon/socket at
// compiled-in paths. authdaemond and couriertcpd run in a private mount
// namespace (`unshare -m --propagation private`) where this instance's own
// etc/ and run/ directories are bind-mounted on those two paths: nothing on
// the machine changes, and several instances can run at once. imaplogin and
// imapd come from the unpacked courier-imap package (server-debs.ts).
//
//   const courier = await startCourier();
//   ... connect to courier.port
//   await courier.stop();
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SPECIAL_USERS, type TestUser } from './dovecot.js';
import { seedMaildirs } from './maildir-seed.js';
import { getFreePort, LOOPBACK } from './ports.js';
import { onProcessExit } from './process-tree.js';
import {
  COURIER_AUTHDAEMOND, COURIER_IMAPD, COURIER_IMAPLOGIN, COURIER_MAKEUSERDB, COURIER_TCPD, COURIER_TLS, courierMissing, UNSHARE,
} from './server-debs.js';
import { launchDaemon, type Daemon } from './server-process.js';
import { ensureSystemUser, lookupUser } from './system-user.js';
import { makeSelfSignedCert } from './tls-cert.js';

export { courierMissing };

const run = promisify(execFile);

/** What Debian's /etc/courier/imapd advertises (without the CRAM mechanisms, which need clear-text passwords). */
const CAPABILITY = 'IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE';

export interface CourierOptions {
  /** user1..userN with password passN (default 5), besides SPECIAL_USERS. */
  users?: number;
  /** STARTTLS with a self-signed certificate (default true). */
  starttls?: boolean;
  /** IMAP_TLS_REQUIRED=1: LOGINDISABLED until STARTTLS. */
  tlsRequired?: boolean;
  /** Extra environment for imapd (IMAP_* settings), e.g. { IMAP_CAPABILITY: '...' }. */
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

export interface Courier {
  kind: 'courier';
  host: '127.0.0.1';
  /** Plain IMAP (+ STARTTLS unless starttls: false). */
  port: number;
  /** Self-signed, CN=localhost (STARTTLS). */
  certFile: string;
  dir: string;
  users: TestUser[];
  /** The seeded second mailbox as a user names it (Courier puts folders under INBOX.). */
  archive: string;
  /** couriertcpd's pid (authdaemond and the imapd processes are below it). */
  pid: number;
  /** Successful logins in couriertcpd's log ("INFO: LOGIN, user=..."). */
  loginCount(user?: string): Promise<number>;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export async function startCourier(opts: CourierOptions = {}): Promise<Courier> {
  const why = courierMissing();
  if (why) throw new Error(`courier: ${why}`);
  const mailUser = await ensureSystemUser();
  const tmpRoot = os.tmpdir().length <= 40 ? os.tmpdir() : '/tmp';
  const dir = await mkdtemp(path.join(tmpRoot, 'imapproxy-courier-'));
  const unregisterDir = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  let daemon: Daemon | undefined;
  try {
    await chmod(dir, 0o755);
    const etc = path.join(dir, 'etc');
    const runDir = path.join(dir, 'run');
    await mkdir(etc, { mode: 0o755 });
    await mkdir(path.join(runDir, 'authdaemon'), { recursive: true, mode: 0o750 });
    await mkdir(path.join(dir, 'mail'), { mode: 0o755 });

    const users: TestUser[] = [];
    for (let i = 1; i <= (opts.users ?? 5); i++) users.push({ user: `user${i}`, pass: `pass${i}` });
    users.push(...SPECIAL_USERS);

    // authdaemond: the userdb module only
    const authdaemonrc = (await readFile('/etc/courier/authdaemonrc', 'utf8').catch(() => ''))
      .replace(/^authmodulelist=.*$/m, '');
    await writeFile(path.join(etc, 'authdaemonrc'),
      `${authdaemonrc}\nauthmodulelist="authuserdb"\ndaemons=2\nauthdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\n`, { mode: 0o640 });

    const mailRoot = path.join(dir, 'mail');
    seedMaildirs({ mailRoot, users: users.map((u) => u.user), uid: mailUser.uid, gid: mailUser.gid });
    // userdb: one line per user, the password as an MD5 crypt (openssl passwd -1)
    const lines: string[] = [];
    for (const u of users) {
      const hash = await cryptPassword(u.pass);
      const home = path.join(mailRoot, u.user);
      lines.push(`${u.user}\tuid=${mailUser.uid}|gid=${mailUser.gid}|home=${home}|mail=${home}/Maildir|systempw=${hash}`);
    }
    const userdb = path.join(etc, 'userdb');
    await writeFile(userdb, `${lines.join('\n')}\n`, { mode: 0o600 });
    await run(COURIER_MAKEUSERDB, ['-f', userdb]);

    const { certFile, keyFile } = await makeSelfSignedCert(dir);
    const pem = path.join(etc, 'imapd.pem');
    await writeFile(pem, Buffer.concat([await readFile(keyFile), await readFile(certFile)]), { mode: 0o600 });
    // couriertls (GnuTLS) will not start without its DH parameters
    await copyFile('/etc/courier/dhparams.pem', path.join(etc, 'dhparams.pem')).catch(() => {});
    // imaplogin runs as "courier" by the time it starts couriertls
    const courierUser = await lookupUser('courier');
    if (courierUser) {
      for (const f of [pem, path.join(etc, 'dhparams.pem')]) await chown(f, courierUser.uid, courierUser.gid).catch(() => {});
    }
    // Debian's shared-folder index path, so imapd does not complain
    await mkdir(path.join(etc, 'shared'), { mode: 0o755 });
    await copyFile('/dev/null', path.join(etc, 'shared', 'index')).catch(() => {});

    const port = await getFreePort();
    const starttls = opts.starttls ?? true;
    const env: Record<string, string> = {
      PATH: '/usr/bin:/bin:/usr/sbin:/sbin',
      IMAP_CAPABILITY: CAPABILITY,
      IMAP_CAPABILITY_TLS: `${CAPABILITY} AUTH=PLAIN`,
      // IDLE notices new mail within a second (default 60)
      IMAP_IDLE_TIMEOUT: '1',
      IMAP_ACL: '1',
      IMAP_KEYWORDS: '1',
      IMAP_UMASK: '022',
      IMAP_USELOCKS: '1',
      IMAP_MAILBOX_SANITY_CHECK: '1',
      IMAP_TRASHFOLDERNAME: 'Trash',
      IMAP_SHAREDINDEXFILE: '/etc/courier/shared/index',
      IMAP_ENHANCEDIDLE: '0',
      MAILDIRPATH: 'Maildir',
      ...(starttls ? { IMAP_STARTTLS: 'YES', TLS_CERTFILE: '/etc/courier/imapd.pem', COURIERTLS: COURIER_TLS, TLS_VERIFYPEER: 'NONE', TLS_DHPARAMS: '/etc/courier/dhparams.pem' } : {}),
      ...(opts.tlsRequired ? { IMAP_TLS_REQUIRED: '1' } : {}),
      ...opts.env,
    };
    // Inside the namespace: this instance's etc/ and run/ where Courier looks,
    // authdaemond in the background, couriertcpd in the foreground (our child
    // through unshare and sh's exec, so stop() and pdeathsig reach it).
    const script = [
      'set -e',
      'mkdir -p /etc/courier /run/courier',
      `mount --bind ${shellQuote(etc)} /etc/courier`,
      `mount --bind ${shellQuote(runDir)} /run/courier`,
      `setpriv --pdeathsig TERM ${COURIER_AUTHDAEMOND} &`,
      // authdaemond's socket must exist before the first login
      'for i in $(seq 200); do [ -S /run/courier/authdaemon/socket ] && break; sleep 0.01; done',
      `exec ${COURIER_TCPD} -address=${LOOPBACK} -maxprocs=200 -maxperip=200 -nodnslookup -noidentlookup ` +
        `${port} ${COURIER_IMAPLOGIN} ${COURIER_IMAPD} Maildir`,
    ].join('\n');
    const logFile = path.join(dir, 'courier.log');
    daemon = await launchDaemon({
      what: 'courier', command: UNSHARE, args: ['-m', '--propagation', 'private', 'sh', '-c', script],
      env, logFile, ports: [port], timeoutMs: opts.startTimeoutMs,
    });

    const countLogins = async (user?: string): Promise<number> => {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      let n = 0;
      for (const m of text.matchAll(/INFO: LOGIN, user=([^,]*),/g)) if (user === undefined || m[1] === user) n++;
      return n;
    };
    const d = daemon;
    return {
      kind: 'courier', host: LOOPBACK, port, certFile, dir, users, archive: 'INBOX.Archive', pid: d.pid,
      async loginCount(user?: string): Promise<number> {
        // the log line can trail the client's OK by a few ms: read until two reads agree
        let n = await countLogins(user);
        for (let i = 0; i < 40; i++) {
          await new Promise((r) => setTimeout(r, 50));
          const again = await countLogins(user);
          if (again === n) return n;
          n = again;
        }
        return n;
      },
      async stop(): Promise<void> {
        await d.stop();
        unregisterDir();
        await rm(dir, { recursive: true, force: true });
      },
      kill: () => d.kill(),
    };
  } catch (err) {
    await daemon?.kill();
    unregisterDir();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** An MD5 crypt hash (`$1$...`) of a password given as UTF-8 bytes. */
async function cryptPassword(pass: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', ['passwd', '-1', '-stdin'], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
    child.stdin!.end(`${pass}\n`);
  });
}
