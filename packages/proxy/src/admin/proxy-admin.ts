// What imapproxyctl can ask the running daemon: one method per control
// command, on top of the parts the server shares (pool, counters, trace).

import { ImapProxyError } from '@imapproxy/shared';
import type { ProxyContext } from '../context.js';
import { COMPAT_VERSION, VERSION } from '../version.js';
import type { ClientInfo, ControlRequest, ControlResults } from '@imapproxy/shared';
import { describeChange, type ReloadReport } from './reload.js';
import { poolKeyMatcher } from './user-match.js';

export interface ProxyAdminOptions {
  ctx: ProxyContext;
  configFile: string;
  /** Re-reads the configuration (as SIGHUP does) and logs what changed; throws IMAPPROXY_ERR_RELOAD. */
  reload: () => ReloadReport | Promise<ReloadReport>;
  /** Client connections now. */
  clients: () => ClientInfo[];
  startedAt?: Date;
}

export class ProxyAdmin {
  private readonly startedAt: Date;

  constructor(private readonly opts: ProxyAdminOptions) {
    this.startedAt = opts.startedAt ?? new Date();
  }

  /** The control socket's handler. */
  readonly handle = async (req: ControlRequest): Promise<object> => {
    switch (req.cmd) {
      case 'version':
        return this.version();
      case 'dump':
        return this.dump();
      case 'stats':
        return this.stats();
      case 'flush':
        return this.flush(req.user);
      case 'reset-counters':
        return this.resetCounters();
      case 'newlog':
        return this.newlog();
      case 'trace':
        return this.trace(req.users);
      case 'trace-off':
        return this.traceOff(req.user);
      case 'trace-list':
        return { traced: this.opts.ctx.trace.tracedUsers() };
      case 'reload':
        return this.reload();
      case 'servers':
        return this.servers();
    }
  };

  version(): ControlResults['version'] {
    return {
      version: VERSION,
      compatVersion: COMPAT_VERSION,
      pid: process.pid,
      node: process.version,
      configFile: this.opts.configFile,
      startedAt: this.startedAt.toISOString(),
      uptimeSeconds: Math.floor((Date.now() - this.startedAt.getTime()) / 1000),
    };
  }

  dump(): ControlResults['dump'] {
    return {
      clients: this.opts.clients(),
      connections: this.opts.ctx.pool.entries().map((e) => ({
        id: e.id,
        user: Buffer.from(e.user, 'latin1').toString('utf8'),
        state: e.state,
        client: e.client,
        ageSeconds: Math.floor(e.ageMs / 1000),
        idleSeconds: Math.floor(e.idleMs / 1000),
        reuseCount: e.reuseCount,
        tls: e.tls,
        server: e.server,
      })),
      servers: this.opts.ctx.servers.servers.map((s) => s.name),
    };
  }

  servers(): ControlResults['servers'] {
    const { ctx } = this.opts;
    const now = Date.now();
    const held = new Map<string, { active: number; cached: number }>();
    for (const e of ctx.pool.entries()) {
      const n = held.get(e.server) ?? { active: 0, cached: 0 };
      n[e.state]++;
      held.set(e.server, n);
    }
    const set = ctx.servers;
    return {
      servers: set.servers.map((s) => ({
        name: s.name,
        state: s.health,
        since: new Date(s.since).toISOString(),
        sinceSeconds: Math.floor((now - s.since) / 1000),
        addresses: s.addresses.known.map((a) => a.address),
        lastError: s.lastError,
        dnsError: s.addresses.lastLookupError,
        lastCheck: s.lastCheckAt === null ? null : new Date(s.lastCheckAt).toISOString(),
        active: held.get(s.name)?.active ?? 0,
        cached: held.get(s.name)?.cached ?? 0,
        loginsRouted: s.loginsRouted,
        connectFailures: s.connectFailures,
        checks: s.checks,
        checkFailures: s.checkFailures,
      })),
      healthInterval: set.single ? 0 : ctx.config.server_health_interval,
    };
  }

  stats(): ControlResults['stats'] {
    const { ctx } = this.opts;
    const cached = ctx.pool.cachedCount;
    return {
      counters: ctx.stats.snapshot(),
      pool: { cacheSize: ctx.config.cache_size, active: ctx.pool.size - cached, cached, total: ctx.pool.size },
      clients: this.opts.clients().length,
      traced: ctx.trace.tracedUsers(),
    };
  }

  flush(user: string | undefined): ControlResults['flush'] {
    const { pool, log, config } = this.opts.ctx;
    // Every spelling the server takes for the same account (user-match.ts).
    const closed = pool.flush(user === undefined ? undefined : poolKeyMatcher(user, config.user_match_exact));
    log.info(`imapproxyctl flush${user === undefined ? '' : ` '${user}'`}: closed ${closed} cached server connection(s)`);
    return { user: user ?? null, closed };
  }

  resetCounters(): ControlResults['reset-counters'] {
    this.opts.ctx.stats.resetCounters();
    this.opts.ctx.log.info('imapproxyctl reset-counters: counters reset');
    return {};
  }

  async newlog(): Promise<ControlResults['newlog']> {
    const { trace, log } = this.opts.ctx;
    await trace.truncate();
    log.info(`imapproxyctl newlog: protocol log ${trace.path} cleared`);
    return { file: trace.path ?? '' };
  }

  trace(users: string[]): ControlResults['trace'] {
    const { trace, log } = this.opts.ctx;
    if (!trace.available) {
      throw new ImapProxyError('IMAPPROXY_ERR_TRACE_FILE', `protocol log file ${trace.path} could not be opened at start: nothing would be written`);
    }
    const added = trace.enable(users);
    for (const u of added) log.info(`imapproxyctl trace: tracing enabled for user '${u}'`);
    return { added, traced: trace.tracedUsers() };
  }

  traceOff(user: string | undefined): ControlResults['trace-off'] {
    const { trace, log, config } = this.opts.ctx;
    const removed = trace.disable(user, config.user_match_exact);
    for (const u of removed) log.info(`imapproxyctl trace --off: tracing disabled for user '${u}'`);
    return { removed, traced: trace.tracedUsers() };
  }

  reload(): ControlResults['reload'] | Promise<ControlResults['reload']> {
    return this.opts.reload();
  }
}

/** The log lines of a reload, for SIGHUP and imapproxyctl alike. */
export function logReload(ctx: Pick<ProxyContext, 'log'>, report: ControlResults['reload'], by: string): void {
  const { log } = ctx;
  for (const w of report.warnings) log.warning(`${by}: ${w}`);
  for (const c of report.applied) log.info(`${by}: ${describeChange(c)}`);
  for (const c of report.restartNeeded) log.warning(`${by}: ${describeChange(c)} needs a restart; still using the old value`);
  log.info(`${by}: configuration ${report.file} reloaded (${report.applied.length} option(s) changed, ${report.restartNeeded.length} need a restart)`);
}
