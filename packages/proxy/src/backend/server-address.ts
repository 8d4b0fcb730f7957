// Where the server is. Resolved again at most every minute instead of once at
// start-up (SPEC §11 B13), and every address is tried in turn on a connect
// failure; with dns_rr each new connection starts at the next address.
//
// A lookup is a getaddrinfo(3) call on libuv's thread pool (4 threads, shared
// with file I/O), and a resolver that does not answer holds a thread for up to
// resolv.conf's timeout x attempts. So there is at most one lookup per server
// at a time, logins that already know an address never wait for one (the old
// answer serves while a new one is asked for in the background), and a login
// that has no address yet waits only as long as its own deadline allows.

import { lookup } from 'node:dns/promises';

export interface ServerAddress {
  address: string;
  family: number;
}

/** The resolver, replaceable in tests. Resolves to every address of `host`. */
export type AddressLookup = (host: string, family: 0 | 4 | 6) => Promise<ServerAddress[]>;

const systemLookup: AddressLookup = async (host, family) =>
  (await lookup(host, { all: true, family })).map((a) => ({ address: a.address, family: a.family }));

/** How long an answer is used before it is asked for again. */
export const TTL_MS = 60_000;
/** After a failed refresh, the old answer serves this long before the next try. */
export const RETRY_MS = 5_000;

export class ServerAddresses {
  private cached: ServerAddress[] = [];
  private resolvedAt = 0;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | null = null;
  private next = 0;
  /** Why the last lookup failed, null when it succeeded (imapproxyctl servers). */
  lastLookupError: string | null = null;

  constructor(
    private readonly host: string,
    private readonly ipVersion: 0 | 4 | 6,
    private readonly roundRobin: boolean,
    private readonly resolve: AddressLookup = systemLookup,
    private readonly now: () => number = Date.now,
  ) {}

  /** The addresses of the last lookup, without looking up (imapproxyctl servers). */
  get known(): readonly ServerAddress[] {
    return this.cached;
  }

  /**
   * The addresses to try for one new connection, in order. Waits for a lookup
   * only when no address is known yet, and then at most `timeoutMs`.
   */
  async forNewConnection(timeoutMs: number): Promise<ServerAddress[]> {
    if (this.cached.length === 0) {
      await this.waitForLookup(timeoutMs);
    } else {
      const now = this.now();
      if (now - this.resolvedAt > TTL_MS && now - this.attemptedAt > RETRY_MS) {
        // Failure keeps the last good answer; lastLookupError says why.
        this.refresh().catch(() => undefined);
      }
    }
    if (!this.roundRobin || this.cached.length < 2) return this.cached;
    const start = this.next++ % this.cached.length;
    return [...this.cached.slice(start), ...this.cached.slice(0, start)];
  }

  private waitForLookup(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`DNS lookup of ${this.host} timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([this.refresh(), timedOut]).finally(() => clearTimeout(timer));
  }

  /** The lookup under way, or a new one. */
  private refresh(): Promise<void> {
    if (this.inFlight !== null) return this.inFlight;
    this.attemptedAt = this.now();
    const done = (async () => {
      try {
        const found = await this.resolve(this.host, this.ipVersion);
        if (found.length === 0) throw new Error(`DNS lookup of ${this.host}: no address`);
        this.cached = found;
        this.resolvedAt = this.now();
        this.lastLookupError = null;
      } catch (err) {
        this.lastLookupError = (err as Error).message;
        throw err;
      }
    })();
    this.inFlight = done;
    // Cleared whichever way it ends; the waiters see the outcome through `done`.
    done.then(
      () => (this.inFlight = null),
      () => (this.inFlight = null),
    );
    return done;
  }
}
