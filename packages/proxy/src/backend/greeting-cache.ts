// The greeting and pre-login capabilities clients see, built from the
// server's own (SPEC §4.1–§4.2). Fetched lazily and refreshed, never required
// at start-up: the daemon accepts clients while the server is down (Debian
// #405704, #517331) and a LOGIN then gets NO [UNAVAILABLE]. When the proxy
// talks TLS to the server, the fetch does too (the connector decides), so the
// capabilities are the ones the server shows over TLS (SPEC §4.2, last
// paragraph). What the client's own connection allows (STARTTLS,
// LOGINDISABLED) is added per client.

import { capabilityTokens, readCapabilities, rewriteCapabilities, rewriteGreeting, type ServerCapabilities } from '@imapproxy/shared';
import type { Connector } from './connector.js';
import { nextTag } from './tags.js';
import type { Logger } from '../log/logger.js';
import { capabilitiesForClient, PLAIN_VIEW, type ClientTlsView } from '../tls/client-tls.js';

const REFRESH_MS = 10 * 60_000;
const RETRY_MS = 5_000;
/** Longest a client waits for its greeting while the server's text is being fetched. */
const FIRST_WAIT_MS = 2_000;

/** Used until the server has answered once. */
const FALLBACK_TOKENS = ['IMAP4rev1', 'LITERAL+', 'ID', 'ENABLE'];

export class GreetingCache {
  private greeting: string | null = null;
  private tokens: string[] | null = null;
  private fetchedAt = 0;
  private failedAt = 0;
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly connector: Connector,
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {}

  /** The server's capabilities as last seen (null before the first contact). */
  get server(): ServerCapabilities | null {
    return this.tokens ? readCapabilities(this.tokens) : null;
  }

  /** Greeting line for a new client, fetching or refreshing first when due. */
  async clientGreeting(view: ClientTlsView = PLAIN_VIEW): Promise<string> {
    const now = Date.now();
    const stale = this.greeting === null || now - this.fetchedAt > REFRESH_MS;
    if (stale && now - this.failedAt > RETRY_MS) {
      const pending = (this.inFlight ??= this.fetch().finally(() => (this.inFlight = null)));
      // Only clients that have no text yet wait, and not for long: a server that
      // accepts but does not answer would otherwise hold every new client's
      // greeting for server_timeout (60 s) after each retry (found by
      // test/proxy-pool.test.ts). They get the fallback text instead.
      if (this.greeting === null) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([pending, new Promise<void>((resolve) => (timer = setTimeout(resolve, FIRST_WAIT_MS)))]);
        clearTimeout(timer);
      }
    }
    if (this.greeting !== null) {
      return rewriteGreeting(this.greeting).replace(/\[CAPABILITY ([^\]]*)\]/i, (_m, list: string) =>
        `[CAPABILITY ${capabilitiesForClient(list.split(' ').filter(Boolean), view).join(' ')}]`);
    }
    return `* OK [CAPABILITY ${capabilitiesForClient(rewriteCapabilities(FALLBACK_TOKENS), view).join(' ')}] IMAP proxy ready, server not reachable yet.`;
  }

  /** The `* CAPABILITY` line for a pre-login CAPABILITY command. */
  capabilityLine(view: ClientTlsView = PLAIN_VIEW): string {
    return `* CAPABILITY ${capabilitiesForClient(rewriteCapabilities(this.tokens ?? FALLBACK_TOKENS), view).join(' ')}`;
  }

  private async fetch(): Promise<void> {
    try {
      const { conn, greeting } = await this.connector.open(Date.now() + this.timeoutMs, 0);
      try {
        const tag = nextTag();
        conn.write(`${tag} CAPABILITY\r\n`);
        let tokens: string[] | null = capabilityTokens(greeting);
        await conn.reader.untilTagged(tag, this.timeoutMs, 'the reply to CAPABILITY', (line) => {
          tokens = capabilityTokens(line) ?? tokens;
        });
        this.greeting = greeting;
        this.tokens = tokens ?? [];
        // A greeting without capabilities is often a transient one (Dovecot's
        // "Waiting for authentication process to respond.."): look again soon
        // instead of serving it for the whole refresh period.
        this.fetchedAt = capabilityTokens(greeting) ? Date.now() : Date.now() - REFRESH_MS + RETRY_MS;
      } finally {
        conn.logoutAndClose(nextTag());
      }
    } catch (err) {
      this.failedAt = Date.now();
      this.log.err(`Unable to read the IMAP server's greeting and capabilities: ${(err as Error).message}`);
    }
  }
}
