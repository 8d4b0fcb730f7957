// The unprivileged owner of the test maildirs (Dovecot refuses to run mail
// processes as root, and the C imapproxy drops to nobody).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const MAIL_USER = 'imapproxy-test';

export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
}

async function lookup(name: string): Promise<SystemUser | undefined> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) return { name, uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

/** Looks up a system user; creates it (useradd --system) if missing. */
export async function ensureSystemUser(name: string = MAIL_USER): Promise<SystemUser> {
  // Several test processes may race to create it; useradd then fails on the
  // passwd lock or "already exists", and the next lookup finds the winner's user.
  let lastError: unknown;
  for (let attempt = 0; attempt < 20; attempt++) {
    const found = await lookup(name);
    if (found) return found;
    try {
      await run('useradd', [
        '--system', '--user-group', '--no-create-home',
        '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name,
      ]);
    } catch (err) {
      lastError = err;
      await sleep(50 + Math.random() * 100); // a random back-off between racing useradd calls, not a synchronisation
    }
  }
  throw new Error(`cannot create system user ${name} (are we root?): ${String(lastError)}`);
}

export async function lookupGroupId(name: string): Promise<number | undefined> {
  const group = await readFile('/etc/group', 'utf8');
  for (const line of group.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 3) return Number(f[2]);
  }
  return undefined;
}

export async function lookupUser(name: string): Promise<SystemUser | undefined> {
  return lookup(name);
}
