// Why a server login did not happen. The client's answer depends on it: the
// server's own NO/BAD text is relayed (SPEC §4.8), anything else is ours.

import { ImapProxyError } from '@imapproxy/shared';

/** The server answered LOGIN with NO or BAD: relay its words. */
export class LoginRefusedError extends ImapProxyError {
  constructor(readonly status: 'NO' | 'BAD', readonly serverText: string) {
    super('IMAPPROXY_ERR_SERVER_REFUSED', `non-OK server response to LOGIN command: ${status} ${serverText}`);
  }
}

/** The server could not be reached or did not behave: `NO [UNAVAILABLE]`. */
export class ServerUnavailableError extends ImapProxyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('IMAPPROXY_ERR_SERVER_UNAVAILABLE', message, options);
  }
}

/**
 * The user already holds max_server_connections_per_user server connections,
 * all in use or being opened (issue 16, finding 7: one user could fill
 * cache_size and lock everybody else out).
 */
export class UserLimitError extends ImapProxyError {
  constructor(readonly limit: number) {
    super('IMAPPROXY_ERR_LIMIT', `max_server_connections_per_user ${limit} reached`);
  }
}

/** Every server connection allowed by cache_size is in use by a client. */
export class PoolFullError extends ImapProxyError {
  constructor() {
    super('IMAPPROXY_ERR_POOL_FULL', 'Out of free ICC structs.');
  }
}
