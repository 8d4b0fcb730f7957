// Where the server is. Resolved again at most every minute instead of once at
// start-up (SPEC §11 B13), and every address is tried in turn on a connect
// failure; with dns_rr each new connection starts at the next address.

import { lookup } from 'node:dns/promises';

export interface ServerAddress {
  address: string;
  family: number;
}

const TTL_MS = 60_000;

export class ServerAddresses {
  private cached: ServerAddress[] = [];
  private resolvedAt = 0;
  private next = 0;

  constructor(
    private readonly host: string,
    private readonly ipVersion: 0 | 4 | 6,
    private readonly roundRobin: boolean,
  ) {}

  /** The addresses of the last lookup, without looking up (imapproxyctl servers). */
  get known(): readonly ServerAddress[] {
    return this.cached;
  }

  /** The addresses to try for one new connection, in order. */
  async forNewConnection(): Promise<ServerAddress[]> {
    if (this.cached.length === 0 || Date.now() - this.resolvedAt > TTL_MS) {
      try {
        const found = await lookup(this.host, { all: true, family: this.ipVersion });
        this.cached = found.map((a) => ({ address: a.address, family: a.family }));
        this.resolvedAt = Date.now();
      } catch (err) {
        // Keep using the last good answer while DNS is failing.
        if (this.cached.length === 0) throw err;
      }
    }
    if (!this.roundRobin || this.cached.length < 2) return this.cached;
    const start = this.next++ % this.cached.length;
    return [...this.cached.slice(start), ...this.cached.slice(0, start)];
  }
}
