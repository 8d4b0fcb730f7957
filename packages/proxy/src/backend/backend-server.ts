// One entry of server_hostname: where it is and whether it is usable. Its
// state changes on health checks and on logins whose connect to it failed;
// only the changes are logged, not every check.

import net from 'node:net';
import { ServerAddresses } from './server-address.js';
import type { Logger } from '../log/logger.js';

export type ServerHealth = 'up' | 'down';

export class BackendServer {
  /** "host:port" ("[v6]:port"): log lines, imapproxyctl, BackendConnection.server. */
  readonly name: string;
  readonly addresses: ServerAddresses;
  /** Up until something says otherwise: a server not checked yet gets logins. */
  health: ServerHealth = 'up';
  /** When `health` last changed (start-up for a server that never changed). */
  since = Date.now();
  lastError: string | null = null;
  /** When the last health check ended, or null before the first. */
  lastCheckAt: number | null = null;
  /** New server connections opened on it for logins. */
  loginsRouted = 0;
  /** Connects (or greetings, TLS handshakes) of logins that failed on it. */
  connectFailures = 0;
  checks = 0;
  checkFailures = 0;

  constructor(
    readonly host: string,
    readonly port: number,
    ipVersion: 0 | 4 | 6,
    roundRobin: boolean,
    /** null: state changes are not logged (a single server, whose logins log their failures already). */
    private readonly log: Logger | null,
  ) {
    this.name = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    this.addresses = new ServerAddresses(host, ipVersion, roundRobin);
  }

  get up(): boolean {
    return this.health === 'up';
  }

  /** Marks it down; true (and one log line) when it was up. */
  markDown(reason: string): boolean {
    this.lastError = reason;
    if (this.health === 'down') return false;
    this.health = 'down';
    this.since = Date.now();
    this.log?.warning(`server ${this.name} is down: ${reason}`);
    return true;
  }

  /** Marks it up; true (and one log line) when it was down. */
  markUp(): boolean {
    if (this.health === 'up') return false;
    this.health = 'up';
    this.since = Date.now();
    this.log?.notice(`server ${this.name} is up again`);
    return true;
  }
}
