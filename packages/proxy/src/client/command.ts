// The shape of one pre-login command (one file each under commands/, the
// wildduck habit): a name and a handler that answers through the session.

import type { Arg } from '@imapproxy/shared';
import type { Credentials } from '../backend/connector.js';
import type { ProxyContext } from '../context.js';
import type { ClientTlsView } from '../tls/client-tls.js';

export type LoginKind = 'LOGIN' | 'AUTHENTICATE';

/**
 * What a pre-login command may do with its session. ClientSession implements
 * it; the commands know only this (no import cycle session → commands → session).
 */
export interface PreauthSession {
  readonly ctx: ProxyContext;
  readonly address: string;
  readonly ids: string[];
  readonly tlsView: ClientTlsView;
  send(text: string): void;
  end(text: string): void;
  readLine(): Promise<Buffer>;
  login(tag: string, creds: Credentials, kind: LoginKind): Promise<void>;
  startTls(tag: string): Promise<void>;
  refusesPlaintextAuth(tag: string): boolean;
}

export interface PreauthCommand {
  readonly name: string;
  /** An XPROXY_* admin command (SPEC §6): a literal on its line drops the client. */
  readonly admin?: true;
  handle(session: PreauthSession, tag: string, args: Arg[]): Promise<void> | void;
}
