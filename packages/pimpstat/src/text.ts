// `pimpstat -c` (the original's twelve lines) and `pimpstat --json`.
import type { DecodedStats } from '@imapproxy/shared';
import { cInt } from './c-format.js';

/**
 * The C pimpstat's `-c` output, byte for byte: a space, `%d`, a space, the label. Note the
 * original's order: reused before created, and no TotalSelectCommands.
 */
export function formatCText(s: DecodedStats): string {
  const lines: Array<[number, string]> = [
    [s.currentClientConnections, 'Current Client Connections'],
    [s.peakClientConnections, 'Peak Client Connections'],
    [s.inUseServerConnections, 'In Use Connections'],
    [s.peakInUseServerConnections, 'Peak In Use Connections'],
    [s.retainedServerConnections, 'Retained Server Connections'],
    [s.peakRetainedServerConnections, 'Peak Retained Server Connections'],
    [s.totalClientConnectionsAccepted, 'Total Client Connections'],
    [s.totalClientLogins, 'Total Client Logins'],
    [s.totalServerConnectionsReused, 'Total Reused Connections'],
    [s.totalServerConnectionsCreated, 'Total Created Connections'],
    [s.selectCacheHits, 'Cache Hits'],
    [s.selectCacheMisses, 'Cache Misses'],
  ];
  return lines.map(([value, label]) => ` ${cInt(value)} ${label}\n`).join('');
}

export interface JsonReport extends DecodedStats {
  statFile: string;
}

/**
 * Every field of the file as one JSON object: the C struct's fields (unsigned, as stored),
 * `layoutVersion` (null for a 72-byte file from the C daemon) and `extension` (null likewise).
 */
export function formatJson(statFile: string, s: DecodedStats): string {
  const { layoutVersion, ...fields } = s;
  const report: JsonReport = { statFile, layoutVersion, ...fields };
  return `${JSON.stringify(report, null, 2)}\n`;
}
