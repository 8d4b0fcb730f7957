// Privilege drop after binding the port and opening files (SPEC §9.1). Node
// has no chroot(2): chroot_directory is refused with advice instead of being
// silently ignored. Unlike the original, which could not start without root
// (its setgroups() failed), a daemon started by an ordinary user keeps that
// user.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { ImapProxyError, type ProxyConfig } from '@imapproxy/shared';
import type { Logger } from './log/logger.js';

export interface ProcessUser {
  uid: number;
  gid: number;
}

export function startedAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * proc_username / proc_groupname as numbers, through the system's name
 * service (getent: /etc/passwd, LDAP, ...), for chown() of the files the
 * daemon opens as root. Throws when either is unknown or the user is root.
 */
export function resolveProcessUser(config: Pick<ProxyConfig, 'proc_username' | 'proc_groupname'>): ProcessUser {
  const uid = lookup('passwd', config.proc_username);
  const gid = lookup('group', config.proc_groupname);
  if (uid === 0) throw configError(`option 'proc_username': ${config.proc_username} has uid 0: refusing to run as root; use a user of its own (the Debian package creates imapproxy)`);
  return { uid, gid };
}

function lookup(db: 'passwd' | 'group', name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  let line: string;
  try {
    line = execFileSync('getent', [db, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    throw configError(`option '${db === 'passwd' ? 'proc_username' : 'proc_groupname'}': no such ${db === 'passwd' ? 'user' : 'group'} '${name}'`);
  }
  const id = Number(line.split('\n')[0]!.split(':')[2]);
  if (!Number.isInteger(id)) throw new Error(`getent ${db} ${name}: unexpected answer`);
  return id;
}

/** An unusable user or group is a configuration error (exit status 78). */
function configError(message: string): ImapProxyError {
  return new ImapProxyError('IMAPPROXY_ERR_CONFIG', message);
}

export function dropPrivileges(config: ProxyConfig, log: Logger, user?: ProcessUser): void {
  if (!startedAsRoot()) {
    log.info('not started as root: keeping the current user');
    return;
  }
  if (config.chroot_directory) {
    log.warning(`chroot_directory ${config.chroot_directory} is not supported by imapproxy-ts; use systemd's RootDirectory= or ProtectSystem= instead`);
  }
  const target = user ?? resolveProcessUser(config);
  // Supplementary groups cleared, as the original's setgroups(0); gid before uid.
  process.setgroups!([]);
  process.setgid!(target.gid);
  process.setuid!(target.uid);
  if (process.getuid!() === 0 || process.geteuid!() === 0) throw configError(`option 'proc_username': ${config.proc_username} is root: refusing to run as root`);
  log.info(`Process will run as uid ${target.uid} (${config.proc_username}) and gid ${target.gid} (${config.proc_groupname}).`);
}

/**
 * test(1) run as this user and group without supplementary groups, as the
 * daemon runs after the drop: whether it will be able to read or write there.
 */
export function accessibleAs(user: ProcessUser, flag: '-r' | '-w', file: string): boolean {
  return spawnSync('/usr/bin/test', [flag, file], { uid: user.uid, gid: user.gid, stdio: 'ignore' }).status === 0;
}

/**
 * Whether the mode bits of `dir` let this user write there (ACLs aside). No process is
 * started: cheap enough for every start, where accessibleAs() (-t) is exact.
 */
export function writableByModeBits(user: ProcessUser, dir: string): boolean {
  try {
    const st = fs.statSync(dir);
    if (st.uid === user.uid) return (st.mode & 0o200) !== 0;
    if (st.gid === user.gid) return (st.mode & 0o020) !== 0;
    return (st.mode & 0o002) !== 0;
  } catch {
    return false;
  }
}
