// The running daemon: start-up in the original's order (SPEC §3: files opened
// and sockets bound as root, then the privilege drop), the control socket,
// signals (SIGHUP reloads, SIGTERM/SIGINT shut down cleanly: SPEC §9.3 had
// neither) and the pid file's removal at exit.

import fs from 'node:fs';
import path from 'node:path';
import { ImapProxyError, StatsFileWriter, StatsRegistry, type LoadedConfig, type ProxyConfig } from '@imapproxy/shared';
import { ControlServer, ControlSocketInUseError } from './admin/control-server.js';
import { logReload, ProxyAdmin } from './admin/proxy-admin.js';
import type { OptionChange } from '@imapproxy/shared';
import { PrivilegedReader } from './admin/privileged-reader.js';
import { ConfigReloader, type ReloadReport } from './admin/reload.js';
import { ProtocolTrace } from './admin/trace.js';
import { JournalSink, stderrIsJournal } from './log/journal-sink.js';
import { Logger, StderrSink, type LogSink } from './log/logger.js';
import { SYSLOG_SOCKET_ENV, SyslogSink } from './log/syslog-sink.js';
import { controlDirWarning } from './config-test.js';
import { dropPrivileges, writableByModeBits, resolveProcessUser, startedAsRoot, type ProcessUser } from './privileges.js';
import { ProxyServer, SHUTDOWN_GRACE_MS } from './server.js';
import { startMetrics } from './metrics/start-metrics.js';
import { VERSION } from './version.js';

const PRIORITY_RANK: Record<string, number> = {
  LOG_EMERG: 0, LOG_ALERT: 1, LOG_CRIT: 2, LOG_ERR: 3, LOG_WARNING: 4, LOG_NOTICE: 5, LOG_INFO: 6, LOG_DEBUG: 7,
};

/** LOG_UPTO(mask); everything when the option is not set. */
export function maxRank(config: Pick<ProxyConfig, 'syslog_prioritymask'>): number {
  return config.syslog_prioritymask ? PRIORITY_RANK[config.syslog_prioritymask]! : 7;
}

export interface DaemonOptions {
  loaded: LoadedConfig;
  /** The pid file the background launcher writes; removed at exit. Null in foreground mode. */
  pidfile: string | null;
}

/** What a failed start needs to log its reason to syslog too. */
interface StartState {
  log?: Logger;
  syslog?: SyslogSink | null;
}

/**
 * Starts the daemon; resolves once it is ready (listening, privileges
 * dropped, the launcher told). A failure before that rejects: the caller
 * prints the message and exits with exitCodeFor(err).
 */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const state: StartState = {};
  try {
    await startDaemon(opts, state);
  } catch (err) {
    // In background mode the log is syslog: the reason goes there too, not only to the launcher's stderr.
    if (state.syslog) {
      state.log?.err(`start-up failed: ${(err as Error).message}`);
      await state.syslog.close().catch(() => {});
    }
    throw err;
  }
}

async function startDaemon({ loaded, pidfile }: DaemonOptions, state: StartState): Promise<void> {
  const config = loaded.config;
  const configFile = path.resolve(loaded.file);
  // Background mode: stderr is the launcher's and may be gone; a write to it must not kill the daemon.
  process.stderr.on('error', () => {});
  // Like the original (SPEC §3 step 1): a SIGHUP during start-up must not kill the daemon.
  const earlyHup = () => {};
  process.on('SIGHUP', earlyHup);
  const user: ProcessUser | undefined = startedAsRoot() ? resolveProcessUser(config) : undefined;

  let syslog: SyslogSink | null = null;
  let sink: LogSink;
  if (config.foreground_mode) {
    sink = stderrIsJournal() ? new JournalSink() : new StderrSink();
  } else {
    syslog = new SyslogSink({
      facility: config.syslog_facility,
      socketPath: process.env[SYSLOG_SOCKET_ENV] || undefined,
      uid: user?.uid,
      gid: user?.gid,
    });
    sink = syslog;
  }
  const log = new Logger(sink, maxRank(config));
  state.log = log;
  state.syslog = syslog;
  log.info(`Using configuration file '${configFile}'`);
  for (const w of loaded.warnings) log.warning(w.message);
  log.info(`Internal admin commands are ${config.enable_admin_commands ? 'enabled' : 'disabled'}`);

  // Everything opened as root and handed to proc_username before the drop.
  const trace = ProtocolTrace.open(config.protocol_log_filename, log);
  if (user && trace.available) trace.chown(user.uid, user.gid);
  if (trace.available) log.info(`Using '${config.protocol_log_filename}' for global protocol logging file.`);
  const stats = new StatsRegistry();
  // A stats file that cannot be created or written costs the counters file,
  // not the service: the daemon runs on without it and says why (it used to
  // stop at start-up; issue 8). Write errors later are logged at most once a
  // minute instead of at every flush.
  let statsWriter: StatsFileWriter | null = null;
  let statsErrorLoggedAt = 0;
  try {
    // /run is a tmpfs: the directory of the default stat file is gone after a reboot.
    // A directory we create belongs to the proxy user, like the control
    // socket's (often the same /run/imapproxy), so files in it can be removed
    // at exit after the privilege drop.
    const createdDir = fs.mkdirSync(path.dirname(config.stat_filename), { recursive: true, mode: 0o755 });
    if (createdDir !== undefined && user) fs.chownSync(path.dirname(config.stat_filename), user.uid, user.gid);
    statsWriter = new StatsFileWriter(stats, config.stat_filename, {
      onError: (err) => {
        if (Date.now() - statsErrorLoggedAt < 60_000) return;
        statsErrorLoggedAt = Date.now();
        log.err(err.message);
      },
    });
    if (user) statsWriter.chown(user.uid, user.gid);
    statsWriter.start();
  } catch (err) {
    log.err(`stats file ${config.stat_filename}: ${(err as Error).message}; running without a stats file (pimpstat will not work)`);
    try {
      statsWriter?.close();
    } catch {
      /* already failing */
    }
    statsWriter = null;
  }

  const server = new ProxyServer(config, log, stats, trace);
  const reloader = new ConfigReloader(configFile, config, (changes) => applyLive(changes));
  const applyLive = (changes: OptionChange[]) => {
    log.setMaxRank(maxRank(config));
    syslog?.setFacility(config.syslog_facility);
    if (changes.some((c) => c.option === 'cache_expiration_time')) server.ctx.pool.rescheduleExpiry();
  };
  // Started as root: a reload after the privilege drop reads the config file and the
  // client certificate and key through a helper that stays root, so they may be
  // readable by root only (admin/privileged-reader.ts). Started before the drop, below.
  let reader: PrivilegedReader | null = null;
  const readForReload = async (file: string): Promise<Buffer | undefined> => (reader?.has(file) ? reader.read(file) : undefined);
  // SIGHUP and imapproxyctl reload do the same: the file, then renewed certificates.
  const reload = async (by: string): Promise<ReloadReport> => {
    let report: ReloadReport;
    try {
      let bytes: Buffer | undefined;
      try {
        bytes = await readForReload(configFile);
      } catch (err) {
        throw new ImapProxyError('IMAPPROXY_ERR_RELOAD', `${(err as Error).message}; the running configuration is unchanged`, { cause: err });
      }
      report = reloader.reload(bytes);
    } finally {
      // Renewed certificates (certbot deploy hooks send SIGHUP), even when the config file did not change.
      await reloadTls();
    }
    logReload(server.ctx, report, by);
    return report;
  };
  const reloadTls = async (): Promise<void> => {
    const files = server.ctx.clientTls?.files;
    if (!files) return;
    let pem: { cert: Buffer; key: Buffer } | undefined;
    try {
      const cert = await readForReload(files.cert);
      const key = await readForReload(files.key);
      if (cert && key) pem = { cert, key };
    } catch (err) {
      log.err(`client TLS certificate not reloaded, keeping the running one: ${(err as Error).message}`);
      return;
    }
    server.reloadTls(pem);
  };
  const admin = new ProxyAdmin({
    ctx: server.ctx,
    configFile,
    reload: () => reload('imapproxyctl reload'),
    clients: () => server.sessions(),
  });
  let control: ControlServer | null = null;
  try {
    control = await ControlServer.listen(config.control_socket, admin.handle, log, { owner: user });
  } catch (err) {
    if (err instanceof ControlSocketInUseError) throw err;
    // The proxy itself works without it; imapproxyctl will say the daemon is not reachable.
    log.err(`${(err as Error).message}; imapproxyctl will not work`);
  }
  if (control && user && !writableByModeBits(user, path.dirname(config.control_socket))) {
    log.warning(controlDirWarning(config, path.dirname(config.control_socket)));
  }

  let address;
  try {
    address = await server.listen();
  } catch (err) {
    await control?.close();
    throw listenError(config, err);
  }
  // Bound as root with the IMAP listener: a port below 1024 works too.
  const metrics = await startMetrics(server.ctx, VERSION, log);
  if (user) {
    const tlsFiles = server.ctx.clientTls?.files;
    reader = PrivilegedReader.start([configFile, tlsFiles?.cert, tlsFiles?.key]);
  }
  dropPrivileges(config, log, user);
  log.info(`imapproxy-ts version ${VERSION} normal server startup on ${address.address}:${address.port}.`);
  process.send?.({ ready: true });
  process.disconnect?.();

  process.on('SIGPIPE', () => {});
  process.on('SIGHUP', () => {
    reload('SIGHUP').catch((err: unknown) => log.err(`SIGHUP: ${(err as Error).message}`));
  });
  process.off('SIGHUP', earlyHup);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal} received: shutting down`);
    // Whatever happens below, the process ends.
    setTimeout(() => {
      log.err('shutdown did not finish in time: exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS + 10_000).unref();
    await control?.close();
    await metrics?.close();
    await server.close();
    try {
      statsWriter?.close();
    } catch (err) {
      log.err((err as Error).message); // the shutdown goes on
    }
    const s = stats.snapshot();
    log.info(
      `final counters: ${s.totalClientConnectionsAccepted} client connections, ${s.totalClientLogins} logins, ` +
        `${s.totalServerConnectionsCreated} server connections created, ${s.totalServerConnectionsReused} reused`,
    );
    await trace.close();
    if (pidfile) removePidfile(pidfile, log);
    log.info('imapproxyd stopped');
    reader?.close();
    await syslog?.close();
    // A moment for the LOGOUTs just written to leave.
    setTimeout(() => process.exit(0), 100);
  };
  const onSignal = (signal: string) => {
    stop(signal).catch((err: unknown) => {
      log.err(`shutdown: ${(err as Error).stack ?? String(err)}`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

/** "listen_port 143 on 127.0.0.1: address already in use (EADDRINUSE)", keeping the errno code for the exit status. */
function listenError(config: ProxyConfig, err: unknown): Error {
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  const reason = e.code === 'EADDRINUSE' ? 'address already in use, is another imapproxyd (or the C original) running?'
    : e.code === 'EACCES' ? 'permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)'
      : e.code === 'EADDRNOTAVAIL' ? 'no such address on this machine'
        : e.message;
  const option = e.port !== undefined && e.port === config.client_tls_listen_port && e.port !== config.listen_port ? 'client_tls_listen_port' : 'listen_port';
  const out = new Error(`cannot listen on ${e.address ?? config.listen_address ?? '*'}:${e.port ?? config.listen_port} (${option}): ${reason} (${e.code ?? 'error'})`, { cause: err });
  (out as NodeJS.ErrnoException).code = e.code;
  return out;
}

/**
 * The original never removed its pid file (SPEC §9.2). Only a file that still
 * holds this process's pid is removed. After the privilege drop that needs
 * the directory to be writable by proc_username (e.g. -p /run/imapproxy/imapproxy.pid);
 * under systemd, PIDFile= is removed by systemd anyway.
 */
function removePidfile(pidfile: string, log: Logger): void {
  try {
    if (fs.readFileSync(pidfile, 'utf8').trim() !== String(process.pid)) return;
    fs.unlinkSync(pidfile);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    log.notice(`cannot remove pid file ${pidfile}: ${(err as Error).message}`);
  }
}
