// Rendezvous (highest-random-weight) hashing: which server a user's logins go
// to. Every (server, user) pair gets a pseudo-random weight; the user's
// servers in order are the servers by falling weight. A user keeps its server
// as long as that server is in the list, and when one server leaves only its
// own users move, spread over the others: no table to keep, nothing shared
// between proxies, and two proxies with the same list route alike.

import { createHash } from 'node:crypto';

/** The login name's bytes; a string is the pool's latin1 spelling of them. */
export type UserKey = Buffer | string;

function userBytes(user: UserKey): Buffer {
  return typeof user === 'string' ? Buffer.from(user, 'latin1') : user;
}

/** The weight of one server for one user: the first 8 bytes of SHA-256(name NUL user). */
export function rendezvousWeight(serverName: string, user: UserKey): bigint {
  return createHash('sha256').update(serverName).update('\0').update(userBytes(user)).digest().readBigUInt64BE(0);
}

/**
 * Indexes into `serverNames`, highest weight first. Ties (never seen with
 * SHA-256, but possible in principle) go to the earlier list entry, so the
 * order is a function of the list and the name only.
 */
export function rendezvousOrder(serverNames: readonly string[], user: UserKey): number[] {
  if (serverNames.length < 2) return serverNames.map((_n, i) => i);
  const weights = serverNames.map((n) => rendezvousWeight(n, user));
  return weights
    .map((_w, i) => i)
    .sort((a, b) => (weights[a]! === weights[b]! ? a - b : weights[a]! > weights[b]! ? -1 : 1));
}
