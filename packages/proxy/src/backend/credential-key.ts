// What the pool remembers of a password: an HMAC-SHA256 under a key that lives
// only in this process's memory, never the password and never an unsalted MD5
// (SPEC §11 B5). Compared in constant time.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const processKey = randomBytes(32);

export class CredentialKey {
  private constructor(private readonly digest: Buffer) {}

  static of(password: Buffer): CredentialKey {
    return new CredentialKey(createHmac('sha256', processKey).update(password).digest());
  }

  matches(other: CredentialKey): boolean {
    return timingSafeEqual(this.digest, other.digest);
  }
}
