// Privilege drop after binding the port and opening files (SPEC §9.1). Node
// has no chroot(2): chroot_directory is refused with advice instead of being
// silently ignored.

import type { ProxyConfig } from '@imapproxy/shared';
import type { Logger } from './log/logger.js';

export function dropPrivileges(config: ProxyConfig, log: Logger): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    log.info('not started as root: keeping the current user');
    return;
  }
  if (config.chroot_directory) {
    log.warning(`chroot_directory ${config.chroot_directory} is not supported by imapproxy-ts; use systemd's RootDirectory= or ProtectSystem= instead`);
  }
  process.setgroups!([]);
  process.setgid!(config.proc_groupname);
  process.setuid!(config.proc_username);
  if (process.getuid() === 0) throw new Error(`proc_username ${config.proc_username} is root: refusing to run as root`);
}
