// `imapproxyd -t`: everything a start would find wrong, without starting
// (like `nginx -t`). It runs the start's own code where it can (the TLS
// contexts, the user lookup, the option checks) so the two cannot disagree,
// and checks the files and directories the daemon will open, as root where
// the daemon opens them as root and as proc_username where it uses them after
// the privilege drop. It does not bind the ports: the usual use is
// `imapproxyd -t && systemctl reload ...` while the daemon holds them.

import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { LoadedConfig, ProxyConfig } from '@imapproxy/shared';
import { EX_CANTCREAT, EX_CONFIG, exitCodeFor } from './exit-codes.js';
import { Logger, MemorySink } from './log/logger.js';
import { accessibleAs, resolveProcessUser, startedAsRoot, type ProcessUser } from './privileges.js';
import { ClientTls } from './tls/client-tls.js';
import { ServerTls } from './tls/server-tls.js';
import { tlsConfigWarnings } from './tls/tls-config-check.js';
import { unsupportedOptions } from './unsupported-options.js';

export interface Finding {
  level: 'error' | 'warning';
  message: string;
  /** For errors: the exit status a start would have. */
  exitCode?: number;
}

export interface ConfigTestOptions {
  /** The pid file of a background start (-p); null in foreground mode. */
  pidfile: string | null;
}

/** Every start-time error and warning of this configuration, errors first in the order a start meets them. */
export function testConfig(loaded: LoadedConfig, opts: ConfigTestOptions): Finding[] {
  const { config } = loaded;
  const out: Finding[] = [];
  const error = (message: string, exitCode = EX_CONFIG) => out.push({ level: 'error', message, exitCode });
  const warning = (message: string) => out.push({ level: 'warning', message });

  for (const w of loaded.warnings) warning(w.message);
  for (const m of unsupportedOptions(config)) error(`${loaded.file}: ${m}`);
  for (const w of tlsConfigWarnings(config)) warning(w);
  if (config.chroot_directory) {
    warning(`chroot_directory ${config.chroot_directory} is not supported by imapproxy-ts; use systemd's RootDirectory= or ProtectSystem= instead`);
  }

  // The user and group: a start as root looks them up before opening anything.
  let user: ProcessUser | undefined;
  try {
    user = resolveProcessUser(config);
  } catch (err) {
    if (startedAsRoot()) error((err as Error).message);
    else warning(`${(err as Error).message} (ignored when not started as root, fatal when started as root)`);
  }
  if (!startedAsRoot()) {
    warning(`not run as root: the daemon would keep uid ${process.getuid?.()} and ignore proc_username/proc_groupname; run -t as the user that starts the daemon`);
    user = undefined;
  }

  // Certificates, keys and CA files: read and loaded exactly as the start does
  // (a key that does not match its certificate fails here, as it fails there).
  const tlsLog = new Logger(new MemorySink());
  try {
    new ServerTls(config, tlsLog);
  } catch (err) {
    error((err as Error).message, exitCodeFor(err));
  }
  try {
    ClientTls.fromConfig(config, tlsLog);
  } catch (err) {
    error((err as Error).message, exitCodeFor(err));
  }
  for (const option of ['client_tls_cert_file', 'tls_cert_file'] as const) {
    const file = config[option];
    if (file !== undefined) certificateDates(option, file, warning);
  }
  // Files the daemon opens as root at start; a failure there costs a feature, not the start.
  const statsProblem = creatable(config.stat_filename);
  if (statsProblem) warning(`stat_filename ${config.stat_filename}: ${statsProblem}; the daemon would run without a stats file (pimpstat will not work)`);
  const traceProblem = creatable(config.protocol_log_filename);
  if (traceProblem) warning(`protocol_log_filename ${config.protocol_log_filename}: ${traceProblem}; protocol tracing would be unavailable`);
  const controlProblem = creatable(config.control_socket);
  if (controlProblem) {
    warning(`control_socket ${config.control_socket}: ${controlProblem}; imapproxyctl would not work`);
  } else if (user) {
    // The socket is removed at exit, after the drop: its directory must let proc_username do that.
    const dir = path.dirname(config.control_socket);
    if (fs.existsSync(dir) && !accessibleAs(user, '-w', dir)) {
      warning(controlDirWarning(config, dir));
    }
  }
  if (opts.pidfile !== null) {
    // The launcher writes it without creating directories.
    const pidDir = path.dirname(path.resolve(opts.pidfile));
    const pidProblem = fs.existsSync(pidDir) ? creatable(opts.pidfile) : `directory ${pidDir} does not exist`;
    if (pidProblem) error(`pid file ${opts.pidfile}: ${pidProblem}`, EX_CANTCREAT);
  }
  // Errors first: they decide the exit status.
  return [...out.filter((f) => f.level === 'error'), ...out.filter((f) => f.level === 'warning')];
}

/** Why `file` cannot be created or opened for writing by this process, or null. */
function creatable(file: string): string | null {
  const dir = path.dirname(path.resolve(file));
  // The daemon creates missing directories (mkdir -p): the nearest existing one must be writable.
  let existing = dir;
  while (!fs.existsSync(existing)) existing = path.dirname(existing);
  try {
    if (!fs.statSync(existing).isDirectory()) return `${existing} is not a directory`;
    if (existing !== dir) {
      fs.accessSync(existing, fs.constants.W_OK | fs.constants.X_OK);
      return null;
    }
    if (fs.existsSync(file)) {
      if (fs.statSync(file).isDirectory()) return 'is a directory';
      fs.accessSync(file, fs.constants.W_OK);
    }
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `${e.path ?? existing}: ${e.code === 'EACCES' ? 'permission denied' : e.code === 'EROFS' ? 'read-only file system' : e.message}`;
  }
}


/** Expired or not yet valid certificates: the start accepts them, clients or servers will not. */
function certificateDates(option: keyof ProxyConfig, file: string, warning: (m: string) => void): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(fs.readFileSync(file));
  } catch {
    return; // reported by the TLS checks above
  }
  const now = Date.now();
  if (Date.parse(cert.validTo) < now) warning(`option '${option}': the certificate in ${file} expired on ${cert.validTo}`);
  else if (Date.parse(cert.validTo) < now + 14 * 86_400_000) warning(`option '${option}': the certificate in ${file} expires on ${cert.validTo}`);
  if (Date.parse(cert.validFrom) > now) warning(`option '${option}': the certificate in ${file} is not valid before ${cert.validFrom}`);
}

/** The control socket is removed at exit, after the privilege drop: its directory must let proc_username do that. */
export function controlDirWarning(config: Pick<ProxyConfig, 'control_socket' | 'proc_username'>, dir: string): string {
  return `control_socket ${config.control_socket}: directory ${dir} is not writable by ${config.proc_username}: the socket stays behind at exit (the next start replaces it); use a directory of its own such as /run/imapproxy`;
}
