// The three IMAP servers of the server matrix behind one interface, for test
// files that run the same checks against Dovecot, Cyrus and Courier
// (test/servers-*.test.ts). What differs between them is named here once.
import { startCourier, courierMissing } from './courier.js';
import { startCyrus, cyrusMissing } from './cyrus.js';
import { DOVECOT_BIN, startDovecot, type TestUser } from './dovecot.js';
import { existsSync } from 'node:fs';

export type ServerKind = 'dovecot' | 'cyrus' | 'courier';
export const SERVER_KINDS: readonly ServerKind[] = ['dovecot', 'cyrus', 'courier'];

export interface ServerQuirks {
  /** The tagged OK to LOGIN carries [CAPABILITY ...] (Dovecot, Cyrus; not Courier). */
  capabilityInLoginReply: boolean;
  unselect: boolean;
  id: boolean;
  literalPlus: boolean;
  /** Implicit TLS port (Courier here: STARTTLS only). */
  implicitTls: boolean;
  /** Hierarchy separator of the seeded mailboxes. */
  separator: string;
}

export interface ImapServer {
  kind: ServerKind;
  port: number;
  tlsPort: number | null;
  /** user1..userN / pass1..passN, then spacey and utf8user (8-bit password). */
  users: TestUser[];
  /** The seeded second mailbox as a user names it. */
  archive: string;
  /** Messages in the seeded INBOX (Cyrus is seeded without the 3 MiB message). */
  inboxCount: number;
  quirks: ServerQuirks;
  stop(): Promise<void>;
}

export interface StartOptions {
  users?: number;
  /** Cyrus only: a message of the day, sent as `* OK [ALERT]` at each login. */
  motd?: string;
  /** Cyrus only: users allowed to log in for others (proxyservers). */
  proxyServers?: TestUser[];
  /** Dovecot only: appended to dovecot.conf. */
  dovecotConf?: string;
}

/** Why `kind` cannot run on this machine, or null. */
export function serverMissing(kind: ServerKind): string | null {
  if (kind === 'cyrus') return cyrusMissing();
  if (kind === 'courier') return courierMissing();
  return existsSync(DOVECOT_BIN) ? null : `missing ${DOVECOT_BIN}`;
}

export async function startImapServer(kind: ServerKind, opts: StartOptions = {}): Promise<ImapServer> {
  if (kind === 'dovecot') {
    const d = await startDovecot({ users: opts.users, extraConf: opts.dovecotConf });
    return {
      kind, port: d.port, tlsPort: d.tlsPort, users: d.users, archive: 'Archive', inboxCount: 21,
      quirks: { capabilityInLoginReply: true, unselect: true, id: true, literalPlus: true, implicitTls: true, separator: '/' },
      stop: () => d.stop(),
    };
  }
  if (kind === 'cyrus') {
    const c = await startCyrus({ users: opts.users, motd: opts.motd, proxyServers: opts.proxyServers });
    return {
      kind, port: c.port, tlsPort: c.tlsPort, users: c.users, archive: c.archive, inboxCount: 20,
      quirks: { capabilityInLoginReply: true, unselect: true, id: true, literalPlus: true, implicitTls: true, separator: '.' },
      stop: () => c.stop(),
    };
  }
  const c = await startCourier({ users: opts.users });
  return {
    kind, port: c.port, tlsPort: null, users: c.users, archive: c.archive, inboxCount: 21,
    quirks: { capabilityInLoginReply: false, unselect: false, id: false, literalPlus: false, implicitTls: false, separator: '.' },
    stop: () => c.stop(),
  };
}
