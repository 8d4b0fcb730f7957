// TLS to the IMAP server (SPEC §10, improved). The original did STARTTLS only,
// checked no host name and sent no SNI, and skipped STARTTLS per login after
// its start-up probe (B2). Here:
// - one SecureContext built at start-up from the tls_* options (a bad file or
//   cipher list stops the daemon, as in the original);
// - SNI is always sent when the server's host (its server_hostname entry) is
//   a name (RFC 6066 forbids an address there);
// - tls_verify_server checks the chain AND that this host is in the
//   certificate (a resumed session was only kept after the same check);
// - the last TLS session of each server address is kept and offered on the
//   next connection (resumption saves a full handshake per login). Only the
//   session of a connection that passed verification is kept.

import net from 'node:net';
import tls from 'node:tls';
import { ImapProxyError, type ProxyConfig } from '@imapproxy/shared';
import type { Logger } from '../log/logger.js';
import { readCaDirectory, readCaFile, readPemFile } from './tls-files.js';

export type ServerTlsConfig = Pick<
  ProxyConfig,
  | 'server_tls' | 'force_tls' | 'tls_ca_file' | 'tls_ca_path' | 'tls_cert_file' | 'tls_key_file'
  | 'tls_ciphers' | 'tls_verify_server' | 'tls_no_tlsv1' | 'tls_no_tlsv1.1' | 'tls_no_tlsv1.2'
>;

/** A TLS handshake with the server failed or its certificate was refused: the client gets NO [UNAVAILABLE]. */
export class ServerTlsError extends ImapProxyError {
  constructor(
    message: string,
    /** The certificate was refused (not a network failure): trying again cannot help. */
    readonly certificateRefused: boolean,
    options?: { cause?: unknown },
  ) {
    super('IMAPPROXY_ERR_TLS', message, options);
  }
}

/**
 * The lowest protocol version offered. Node 20 (OpenSSL 3) never offers
 * SSLv3, TLS 1.0 or TLS 1.1 (tls.DEFAULT_MIN_VERSION is TLSv1.2; OpenSSL 3
 * would also need security level 0 for them), so tls_no_tlsv1 and
 * tls_no_tlsv1.1 change nothing; tls_no_tlsv1.2 leaves TLS 1.3 only.
 */
export function serverMinVersion(config: Pick<ProxyConfig, 'tls_no_tlsv1.2'>): tls.SecureVersion {
  return config['tls_no_tlsv1.2'] ? 'TLSv1.3' : 'TLSv1.2';
}

/** OpenSSL's words for the verification codes Node reports. */
const VERIFY_TEXT: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed certificate in certificate chain',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unable to get local issuer certificate',
  UNABLE_TO_GET_ISSUER_CERT: 'unable to get issuer certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unable to verify the first certificate',
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  CERT_REVOKED: 'certificate revoked',
  CERT_SIGNATURE_FAILURE: 'certificate signature failure',
  INVALID_PURPOSE: 'unsupported certificate purpose',
};

export class ServerTls {
  private readonly context: tls.SecureContext;
  /** Last TLS session per "address:port". */
  private readonly sessions = new Map<string, Buffer>();
  private warnedUnverified = false;

  constructor(
    private readonly config: ServerTlsConfig,
    private readonly log: Logger,
  ) {
    const options: tls.SecureContextOptions = { minVersion: serverMinVersion(config) };
    if (config.tls_ca_file !== undefined || config.tls_ca_path !== undefined) {
      options.ca = [
        ...(config.tls_ca_file !== undefined ? readCaFile('tls_ca_file', config.tls_ca_file) : []),
        ...(config.tls_ca_path !== undefined ? readCaDirectory('tls_ca_path', config.tls_ca_path) : []),
      ];
    }
    if (config.tls_cert_file !== undefined) {
      options.cert = readPemFile('tls_cert_file', config.tls_cert_file);
      options.key = config.tls_key_file !== undefined ? readPemFile('tls_key_file', config.tls_key_file) : options.cert;
    }
    if (config.tls_ciphers !== undefined) options.ciphers = config.tls_ciphers;
    try {
      this.context = tls.createSecureContext(options);
    } catch (err) {
      throw new ImapProxyError('IMAPPROXY_ERR_TLS_FILE', `TLS to the server (tls_* options): ${(err as Error).message}`, { cause: err });
    }
  }

  /** Implicit TLS right after connecting (server_tls yes). */
  get implicit(): boolean {
    return this.config.server_tls;
  }

  /** STARTTLS on every connection, whatever the server advertises (force_tls yes). */
  get forced(): boolean {
    return this.config.force_tls;
  }

  /**
   * The TLS handshake over a connected socket (right after connecting, or after
   * the server's OK to STARTTLS), verification included. `host` is the
   * server's server_hostname entry: SNI and the certificate's name. Rejects
   * with ServerTlsError; the socket is then destroyed.
   */
  handshake(socket: net.Socket, address: string, port: number, timeoutMs: number, host: string): Promise<tls.TLSSocket> {
    const key = `${net.isIPv6(address) ? `[${address}]` : address}:${port}`;
    return new Promise((resolve, reject) => {
      let settled = false;
      let verified = false;
      let pendingSession: Buffer | null = null;
      // Errors of the plain socket surface on the TLS socket; this keeps a late one from crashing the daemon.
      socket.on('error', () => {});
      const secure = tls.connect({
        socket,
        secureContext: this.context,
        servername: net.isIP(host) ? undefined : host,
        session: this.sessions.get(key),
        // Checked below, with the reason in the log; nothing is sent before.
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
      });
      const fail = (reason: string, cause?: unknown, certificateRefused = false) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.sessions.delete(key);
        secure.destroy();
        reject(new ServerTlsError(`TLS to the IMAP server ${key} failed: ${reason}`, certificateRefused, { cause }));
      };
      const timer = setTimeout(() => fail(`no TLS handshake within ${timeoutMs} ms`), timeoutMs);
      secure.once('error', (err) => fail(err.message, err));
      secure.once('close', () => fail('connection closed during the TLS handshake'));
      secure.on('session', (session: Buffer) => {
        if (verified) this.sessions.set(key, session);
        else pendingSession = session;
      });
      secure.once('secureConnect', () => {
        const problem = this.verificationProblem(secure, host);
        if (problem !== null) {
          if (this.config.tls_verify_server) {
            fail(`certificate verification failed: ${problem}`, undefined, true);
            return;
          }
          if (!this.warnedUnverified) {
            this.warnedUnverified = true;
            this.log.notice(`TLS to the IMAP server ${key}: certificate not verified (tls_verify_server no); it would fail: ${problem}`);
          }
        }
        settled = true;
        clearTimeout(timer);
        verified = true;
        if (pendingSession) this.sessions.set(key, pendingSession);
        secure.on('error', () => {});
        const cipher = secure.getCipher();
        this.log.debug(`TLS to the IMAP server ${key}: ${secure.getProtocol()} ${cipher.name}${secure.isSessionReused() ? ', session resumed' : ''}`);
        resolve(secure);
      });
    });
  }

  /** Why the server's certificate is not acceptable, or null: the chain first, then the host name. */
  private verificationProblem(secure: tls.TLSSocket, host: string): string | null {
    const code = secure.authorizationError as unknown as string | Error | null;
    if (code) {
      const c = typeof code === 'string' ? code : code.message;
      return VERIFY_TEXT[c] ? `${VERIFY_TEXT[c]} (${c})` : c;
    }
    // OpenSSL keeps no peer certificate in a resumed TLS 1.3 session (the
    // chain's result above is kept). Only sessions of connections that passed
    // this same check are offered again, so the name was checked then.
    if (secure.isSessionReused()) return null;
    const cert = secure.getPeerCertificate();
    if (!cert || Object.keys(cert).length === 0) return 'the server sent no certificate';
    const mismatch = tls.checkServerIdentity(host, cert);
    return mismatch ? `${mismatch.message} (configured server_hostname: ${host})` : null;
  }
}
