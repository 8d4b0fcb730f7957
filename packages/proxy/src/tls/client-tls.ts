// TLS for clients (the original had none: users put stunnel in front, SPEC
// §10): the certificate and key of client_tls_cert_file/client_tls_key_file,
// used by the implicit-TLS listener and by STARTTLS on the plain one. The
// files are read at start-up (as root) and again on SIGHUP; a reload that
// cannot read them keeps the running certificate.

import type net from 'node:net';
import tls from 'node:tls';
import { ImapProxyError, type ProxyConfig } from '@imapproxy/shared';
import type { Logger } from '../log/logger.js';
import { readPemFile } from './tls-files.js';

export type ClientTlsConfig = Pick<
  ProxyConfig,
  'client_tls_cert_file' | 'client_tls_key_file' | 'client_starttls' | 'client_require_tls' | 'client_tls_listen_port'
>;

/** What a client is offered before login, depending on whether its connection is encrypted yet. */
export interface ClientTlsView {
  /** STARTTLS is advertised (and accepted). */
  startTls: boolean;
  /** LOGIN and AUTHENTICATE are refused: LOGINDISABLED is advertised, no AUTH= mechanism. */
  loginDisabled: boolean;
}

export const PLAIN_VIEW: ClientTlsView = { startTls: false, loginDisabled: false };

/** The pre-login capability list (already rewritten for the proxy) as this client should see it. */
export function capabilitiesForClient(tokens: string[], view: ClientTlsView): string[] {
  let out = tokens;
  // RFC 9051 §6.2.3: no plaintext mechanism is advertised while LOGIN is disabled.
  if (view.loginDisabled) out = out.filter((t) => !/^(AUTH=|SASL-IR$)/i.test(t));
  const extra = [...(view.startTls ? ['STARTTLS'] : []), ...(view.loginDisabled ? ['LOGINDISABLED'] : [])];
  if (extra.length === 0) return out;
  // Before XIMAPPROXY, which stays last as in the original.
  const last = out.length > 0 && out[out.length - 1] === 'XIMAPPROXY' ? 1 : 0;
  return [...out.slice(0, out.length - last), ...extra, ...out.slice(out.length - last)];
}

export class ClientTls {
  private context: tls.SecureContext;

  private constructor(
    private readonly config: ClientTlsConfig & { client_tls_cert_file: string },
    private readonly log: Logger,
  ) {
    this.context = this.load();
  }

  /** Null when no certificate is configured: clients get no TLS at all. */
  static fromConfig(config: ClientTlsConfig, log: Logger): ClientTls | null {
    const certFile = config.client_tls_cert_file;
    if (certFile === undefined) return null;
    return new ClientTls({ ...config, client_tls_cert_file: certFile }, log);
  }

  /** STARTTLS is offered on the plain listener. */
  get startTls(): boolean {
    return this.config.client_starttls;
  }

  /**
   * Reads the certificate and key again (SIGHUP): new handshakes use them,
   * established sessions keep theirs. On failure the running ones stay and
   * the reason is logged; returns whether the new files are in use.
   */
  reload(pem?: { cert: Buffer; key: Buffer }): boolean {
    try {
      this.context = this.load(pem);
      this.log.info(`client TLS certificate reloaded from ${this.config.client_tls_cert_file}`);
      return true;
    } catch (err) {
      this.log.err(`client TLS certificate not reloaded, keeping the running one: ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * The server side of a TLS handshake on a connected socket (the implicit-TLS
   * listener, or after `OK Begin TLS negotiation now`). Rejects on failure or
   * after `timeoutMs`; the socket is then destroyed.
   */
  accept(socket: net.Socket, timeoutMs: number): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      let settled = false;
      socket.on('error', () => {});
      const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: this.context });
      const fail = (reason: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        secure.destroy();
        socket.destroy();
        reject(new ImapProxyError('IMAPPROXY_ERR_TLS', `TLS handshake with the client failed: ${reason}`));
      };
      const timer = setTimeout(() => fail(`no handshake within ${timeoutMs / 1000} s`), timeoutMs);
      secure.once('error', (err) => fail(err.message));
      secure.once('close', () => fail('connection closed during the handshake'));
      secure.once('secure', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        secure.on('error', () => {});
        resolve(secure);
      });
    });
  }

  /** The files' paths: a reload after the privilege drop may get their bytes read as root (admin/privileged-reader.ts). */
  get files(): { cert: string; key: string } {
    return { cert: this.config.client_tls_cert_file, key: this.config.client_tls_key_file ?? this.config.client_tls_cert_file };
  }

  private load(pem?: { cert: Buffer; key: Buffer }): tls.SecureContext {
    const certFile = this.config.client_tls_cert_file;
    const keyFile = this.config.client_tls_key_file;
    const cert = pem?.cert ?? readPemFile('client_tls_cert_file', certFile);
    const key = pem?.key ?? (keyFile !== undefined ? readPemFile('client_tls_key_file', keyFile) : cert);
    try {
      return tls.createSecureContext({ cert, key });
    } catch (err) {
      throw new ImapProxyError('IMAPPROXY_ERR_TLS_FILE', `client_tls_cert_file ${certFile} / client_tls_key_file ${keyFile ?? certFile}: ${(err as Error).message}`, { cause: err });
    }
  }
}
