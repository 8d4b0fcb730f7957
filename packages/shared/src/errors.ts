// Every failure the programs report has a stable code; callers and tests compare
// codes, never message strings (the undici habit, see ../shared/STYLE.md).
export type ErrorCode =
  | 'IMAPPROXY_ERR_CONFIG'
  | 'IMAPPROXY_ERR_CONFIG_IO'
  | 'IMAPPROXY_ERR_STATS_FILE'
  | 'IMAPPROXY_ERR_STATS_LAYOUT'
  | 'IMAPPROXY_ERR_PROTOCOL'
  | 'IMAPPROXY_ERR_LIMIT'
  | 'IMAPPROXY_ERR_TIMEOUT'
  | 'IMAPPROXY_ERR_SERVER_UNAVAILABLE'
  | 'IMAPPROXY_ERR_SERVER_REFUSED'
  | 'IMAPPROXY_ERR_SERVER_CLOSED'
  | 'IMAPPROXY_ERR_POOL_FULL'
  | 'IMAPPROXY_ERR_CONTROL'
  // imapproxyctl and the control socket (packages/proxy/src/admin)
  | 'IMAPPROXY_ERR_CONTROL_REQUEST'
  | 'IMAPPROXY_ERR_NOT_RUNNING'
  | 'IMAPPROXY_ERR_ACCESS'
  | 'IMAPPROXY_ERR_TRACE_FILE'
  | 'IMAPPROXY_ERR_RELOAD'
  // TLS (packages/proxy/src/tls): a handshake or certificate check failed; a certificate, key or CA file is unusable
  | 'IMAPPROXY_ERR_TLS'
  | 'IMAPPROXY_ERR_TLS_FILE'
  // an invalid, missing or refused PROXY protocol header (packages/proxy/src/client/proxy-protocol.ts)
  | 'IMAPPROXY_ERR_PROXY_PROTOCOL';

export class ImapProxyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A peer sent bytes that break the protocol (bad framing, oversized line or literal). */
export class ProtocolError extends ImapProxyError {
  constructor(message: string, code: ErrorCode = 'IMAPPROXY_ERR_PROTOCOL') {
    super(code, message);
  }
}

/** A peer did not answer within the configured time. */
export class TimeoutError extends ImapProxyError {
  constructor(message: string) {
    super('IMAPPROXY_ERR_TIMEOUT', message);
  }
}
