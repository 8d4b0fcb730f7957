// ImapFlow (a real-world IMAP client library) pointed at a test server or proxy.
// imapflow 2.1.2 ships its own type declarations, so no local `declare module`.
//
// Defaults chosen for proxy tests, all overridable through `options`:
//   plain TCP (secure: false) and no STARTTLS upgrade even if offered (doSTARTTLS: false),
//   no COMPRESS=DEFLATE (disableCompression) -- a proxy has to parse the stream,
//   no background IDLE (disableAutoIdle) -- tests count the commands a server sees.
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import { LOOPBACK } from './ports.js';

export interface ImapClientOptions {
  port: number;
  user: string;
  pass: string;
  host?: string;
  /** Connection + greeting timeout in ms (default 5000). */
  timeoutMs?: number;
  /** Merged last: anything ImapFlow accepts. */
  options?: Partial<ImapFlowOptions>;
}

/** A configured, not yet connected ImapFlow. Socket errors are recorded, not thrown. */
export function createImapClient(opts: ImapClientOptions): ImapFlow & { errors: Error[] } {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const client = new ImapFlow({
    host: opts.host ?? LOOPBACK,
    port: opts.port,
    secure: false,
    doSTARTTLS: false,
    disableCompression: true,
    disableAutoIdle: true,
    auth: { user: opts.user, pass: opts.pass },
    logger: false,
    tls: { rejectUnauthorized: false },
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: Math.max(timeoutMs * 6, 30_000),
    ...opts.options,
  }) as ImapFlow & { errors: Error[] };
  // An 'error' event without a listener would crash the test worker; keep it for asserts.
  client.errors = [];
  client.on('error', (err: Error) => client.errors.push(err));
  return client;
}

/** createImapClient + connect() (greeting + LOGIN). */
export async function connectImapClient(opts: ImapClientOptions): Promise<ImapFlow & { errors: Error[] }> {
  const client = createImapClient(opts);
  await client.connect();
  return client;
}
