// The SASL PLAIN login with a proxy identity (SPEC §4.10): with
// auth_sasl_plain_username, auth_sasl_plain_password and auth_shared_secret
// set, clients log in with the shared secret as their password, and the proxy
// logs in to the server as itself on their behalf: authzid = the client's
// user, authcid = auth_sasl_plain_username (Dovecot master users, Cyrus
// proxyservers). Unlike 1.2.8 the secret is compared in constant time, the
// server's SASL-IR is looked at instead of assumed, and the pool keeps these
// connections apart from ordinary logins.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { ProxyConfig } from '@imapproxy/shared';

export type SaslProxyConfig = Pick<ProxyConfig, 'auth_sasl_plain_username' | 'auth_sasl_plain_password' | 'auth_shared_secret'>;

const digest = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

export class SaslProxyIdentity {
  private readonly secretDigest: Buffer;

  private constructor(
    private readonly authcid: Buffer,
    private readonly password: Buffer,
    secret: Buffer,
  ) {
    this.secretDigest = digest(secret);
  }

  /** Null unless all three options are set (unsupported-options.ts refuses a partial set at start). */
  static fromConfig(config: SaslProxyConfig): SaslProxyIdentity | null {
    const { auth_sasl_plain_username: user, auth_sasl_plain_password: pass, auth_shared_secret: secret } = config;
    if (!user || pass === undefined || secret === undefined) return null;
    return new SaslProxyIdentity(Buffer.from(user, 'utf8'), Buffer.from(pass, 'utf8'), Buffer.from(secret, 'utf8'));
  }

  /**
   * The client's password is the shared secret. Both sides are hashed first,
   * so the comparison takes the same time whatever the lengths.
   */
  checkSecret(password: Buffer): boolean {
    return timingSafeEqual(digest(password), this.secretDigest);
  }

  /** The PLAIN message (RFC 4616), base64: authzid NUL authcid NUL password. */
  plainResponse(user: Buffer): string {
    return Buffer.concat([user, Buffer.of(0), this.authcid, Buffer.of(0), this.password]).toString('base64');
  }

  /** Part of the pool key's scope: connections of this login mode serve only this mode. */
  static readonly SCOPE = 'sasl-proxy';
}

/** Why the three options cannot be used as set, or null. */
export function saslProxyProblem(config: SaslProxyConfig): string | null {
  const set = (['auth_sasl_plain_username', 'auth_sasl_plain_password', 'auth_shared_secret'] as const).filter((o) => config[o] !== undefined);
  if (set.length === 0 || set.length === 3) return null;
  const missing = (['auth_sasl_plain_username', 'auth_sasl_plain_password', 'auth_shared_secret'] as const).filter((o) => config[o] === undefined);
  return `option '${set[0]}': SASL PLAIN proxy login needs auth_sasl_plain_username, auth_sasl_plain_password and auth_shared_secret together; missing ${missing.join(', ')}`;
}
