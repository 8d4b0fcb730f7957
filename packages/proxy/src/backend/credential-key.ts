// What the pool remembers of a password: an HMAC-SHA256 under a key that lives
// only in this process's memory, never the password and never an unsalted MD5
// (SPEC §11 B5). Compared in constant time. With cache_key_client_ip it also
// carries the client address the login came from: a connection is reused only
// within the same scope.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const processKey = randomBytes(32);

export class CredentialKey {
  private constructor(
    private readonly digest: Buffer,
    /** '' (any client) or the client IP (cache_key_client_ip). */
    readonly scope: string,
  ) {}

  static of(password: Buffer, scope = ''): CredentialKey {
    return new CredentialKey(createHmac('sha256', processKey).update(password).digest(), scope);
  }

  /** A connection cached under `this` may serve a login keyed `other` (apart from the password). */
  sameScope(other: CredentialKey): boolean {
    return this.scope === other.scope;
  }

  matches(other: CredentialKey): boolean {
    return timingSafeEqual(this.digest, other.digest);
  }
}
