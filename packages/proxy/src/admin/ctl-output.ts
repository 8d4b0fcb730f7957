// How imapproxyctl shows the daemon's answers to people (--json shows them as
// they came).

import type { ConnectionInfo, ControlResults } from '@imapproxy/shared';
import { describeChange } from './reload.js';

/** 42s, 5m07s, 3h05m, 2d04h. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function formatDump(r: ControlResults['dump']): string {
  // The SERVER column only when there is a choice of servers (several in server_hostname).
  const byServer = (r.servers ?? []).length > 1;
  const rows = r.connections.map((c: ConnectionInfo) => [
    String(c.id), c.user, c.state, ...(byServer ? [c.server || '-'] : []), c.client || '-',
    formatDuration(c.ageSeconds), formatDuration(c.idleSeconds), String(c.reuseCount), c.tls ? 'TLS' : 'plain',
  ]);
  const header = ['ID', 'USER', 'STATE', ...(byServer ? ['SERVER'] : []), 'CLIENT', 'AGE', 'IDLE', 'REUSED', 'TRANSPORT'];
  const servers = rows.length === 0 ? 'no server connections\n' : table(header, rows);
  const clients = (r.clients ?? []).map((c) => [c.address, c.loggedIn ? 'logged in' : 'not logged in', c.tls ? 'TLS' : 'plain']);
  return `${servers}\n${clients.length === 0 ? 'no client connections\n' : table(['CLIENT', 'STATE', 'TRANSPORT'], clients)}`;
}

export function formatServers(r: ControlResults['servers']): string {
  const rows = r.servers.map((s) => [
    s.name, s.state, formatDuration(s.sinceSeconds), s.addresses.length > 0 ? s.addresses.join(',') : '-',
    String(s.active), String(s.cached), String(s.loginsRouted),
    [s.lastError, s.dnsError === null ? null : `DNS: ${s.dnsError}`].filter((e) => e !== null).join('; ') || '-',
  ]);
  const checks = r.healthInterval > 0 ? `health checks every ${r.healthInterval} s\n` : 'no health checks\n';
  return table(['SERVER', 'STATE', 'FOR', 'ADDRESSES', 'ACTIVE', 'CACHED', 'LOGINS', 'LAST ERROR'], rows) + checks;
}

export function formatStats(r: ControlResults['stats']): string {
  const c = r.counters;
  const e = c.extension;
  const lines: Array<[number | string, string]> = [
    // The first twelve are pimpstat -c's lines, in its order.
    [c.currentClientConnections, 'Current Client Connections'],
    [c.peakClientConnections, 'Peak Client Connections'],
    [c.inUseServerConnections, 'In Use Connections'],
    [c.peakInUseServerConnections, 'Peak In Use Connections'],
    [c.retainedServerConnections, 'Retained Server Connections'],
    [c.peakRetainedServerConnections, 'Peak Retained Server Connections'],
    [c.totalClientConnectionsAccepted, 'Total Client Connections'],
    [c.totalClientLogins, 'Total Client Logins'],
    [c.totalServerConnectionsReused, 'Total Reused Connections'],
    [c.totalServerConnectionsCreated, 'Total Created Connections'],
    [c.selectCacheHits, 'Cache Hits'],
    [c.selectCacheMisses, 'Cache Misses'],
    [e?.loginFailures ?? 0, 'Login Failures'],
    [e?.serverConnectFailures ?? 0, 'Server Connect Failures'],
    [e?.evictions ?? 0, 'Evictions'],
    [e?.expirations ?? 0, 'Expirations'],
    [e?.invalidations ?? 0, 'Invalidations'],
    [`${r.pool.total}/${r.pool.cacheSize}`, 'Server Connections / cache_size'],
  ];
  const out = lines.map(([v, label]) => ` ${v} ${label}\n`);
  out.push(` counting since ${new Date(c.countTime * 1000).toISOString()}, started ${new Date(c.startTime * 1000).toISOString()}\n`);
  out.push(r.traced.length > 0 ? ` tracing: ${r.traced.join(', ')}\n` : ' tracing: no user\n');
  return out.join('');
}

export function formatVersion(ctlVersion: string, r: ControlResults['version']): string {
  return (
    `imapproxyctl ${ctlVersion}\n` +
    `imapproxyd ${r.version} (up-imapproxy ${r.compatVersion} compatible), pid ${r.pid}, Node.js ${r.node}, ` +
    `up ${formatDuration(r.uptimeSeconds)}, config ${r.configFile}\n`
  );
}

export function formatReload(r: ControlResults['reload']): string {
  const out = [`configuration ${r.file} reloaded\n`];
  for (const c of r.applied) out.push(`  changed: ${describeChange(c)}\n`);
  for (const c of r.restartNeeded) out.push(`  needs a restart: ${describeChange(c)}\n`);
  for (const w of r.warnings) out.push(`  warning: ${w}\n`);
  if (r.applied.length === 0 && r.restartNeeded.length === 0) out.push('  no option changed\n');
  return out.join('');
}

export function formatTraced(traced: string[]): string {
  return traced.length === 0 ? 'no user is traced\n' : `traced: ${traced.join(', ')}\n`;
}
