// The control socket's protocol, shared by the daemon (./control-server.ts)
// and imapproxyctl (../ctl.ts): one JSON object per line each way, any number
// of requests per connection, answered in order.
//
//   -> {"cmd":"dump"}
//   <- {"ok":true,"connections":[{"id":3,"user":"alice","state":"cached",...}]}
//   -> {"cmd":"flush","user":42}
//   <- {"ok":false,"error":{"code":"IMAPPROXY_ERR_CONTROL_REQUEST","message":"user: expected a string"}}

import type { OptionName } from '../config/schema.js';
import type { ErrorCode } from '../errors.js';
import type { StatsSnapshot } from '../stats/layout.js';

/** One option whose value a reload changed. */
export interface OptionChange {
  option: OptionName;
  from: unknown;
  to: unknown;
}

export type ControlRequest =
  | { cmd: 'version' }
  | { cmd: 'dump' }
  | { cmd: 'stats' }
  | { cmd: 'flush'; user?: string }
  | { cmd: 'reset-counters' }
  | { cmd: 'newlog' }
  /** Trace these users from their next login. */
  | { cmd: 'trace'; users: string[] }
  /** Stop tracing one user, or everyone. */
  | { cmd: 'trace-off'; user?: string }
  | { cmd: 'trace-list' }
  | { cmd: 'reload' }
  /** The servers of server_hostname: health, addresses, connections, logins. */
  | { cmd: 'servers' };

export type ControlCommand = ControlRequest['cmd'];

export const CONTROL_COMMANDS: readonly ControlCommand[] = [
  'version', 'dump', 'stats', 'flush', 'reset-counters', 'newlog', 'trace', 'trace-off', 'trace-list', 'reload', 'servers',
];

export interface ConnectionInfo {
  /** The `sd [N]` of the log lines. */
  id: number;
  user: string;
  state: 'active' | 'cached';
  /** Client using it, or that used it last ("ip:port"). */
  client: string;
  ageSeconds: number;
  idleSeconds: number;
  /** How many logins reused it. */
  reuseCount: number;
  /** Encrypted to the server (STARTTLS or server_tls). */
  tls: boolean;
  /** The server_hostname entry it is connected to ("host:port"). */
  server: string;
}

/** One server of server_hostname (imapproxyctl servers). */
export interface ServerInfo {
  /** "host:port" */
  name: string;
  state: 'up' | 'down';
  /** When the state last changed (the daemon's start when it never did), ISO 8601. */
  since: string;
  sinceSeconds: number;
  /** Addresses of its last DNS lookup (empty before the first connection). */
  addresses: string[];
  lastError: string | null;
  /** Why its last DNS lookup failed (the addresses above are then older), null when it did not. */
  dnsError: string | null;
  /** When its last health check ended, ISO 8601; null before the first (or without health checks). */
  lastCheck: string | null;
  /** Server connections on it now: in use by a client, cached. */
  active: number;
  cached: number;
  /** New server connections opened on it for logins. */
  loginsRouted: number;
  connectFailures: number;
  checks: number;
  checkFailures: number;
}

/** A client connection (logged in or not). */
export interface ClientInfo {
  /** "ip:port" */
  address: string;
  /** Implicit TLS or STARTTLS done. */
  tls: boolean;
  loggedIn: boolean;
}

export interface VersionInfo {
  version: string;
  /** The up-imapproxy version it replaces (what XPROXY_VERSION says). */
  compatVersion: string;
  pid: number;
  node: string;
  configFile: string;
  startedAt: string;
  uptimeSeconds: number;
}

/** What each command answers besides `ok: true`. */
export interface ControlResults {
  version: VersionInfo;
  dump: {
    connections: ConnectionInfo[];
    clients: ClientInfo[];
    /** Names of the servers of server_hostname, in its order. */
    servers?: string[];
  };
  stats: {
    counters: StatsSnapshot;
    pool: { cacheSize: number; active: number; cached: number; total: number };
    clients: number;
    traced: string[];
  };
  flush: { user: string | null; closed: number };
  'reset-counters': Record<string, never>;
  newlog: { file: string };
  trace: { added: string[]; traced: string[] };
  'trace-off': { removed: string[]; traced: string[] };
  'trace-list': { traced: string[] };
  reload: { file: string; applied: OptionChange[]; restartNeeded: OptionChange[]; warnings: string[] };
  servers: {
    servers: ServerInfo[];
    /** Seconds between health checks; 0: none (a single server, or server_health_interval 0). */
    healthInterval: number;
  };
}

export interface ControlErrorBody {
  code: ErrorCode;
  message: string;
}

export type ControlResponse<C extends ControlCommand = ControlCommand> =
  | ({ ok: true } & ControlResults[C])
  | { ok: false; error: ControlErrorBody };

/** Longest request line the daemon reads. */
export const MAX_REQUEST_BYTES = 64 * 1024;
