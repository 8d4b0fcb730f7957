// How the extensions a server connection has switched on (ENABLE, RFC 5161;
// CONDSTORE implicitly, RFC 7162 §3.1) came to be on. They cannot be switched
// off, so such a connection may only serve a later session that switches on
// the same ones in the same way as its first command (client/enabled-reuse.ts):
// after that command both are in the state a fresh login would be in.

export type EnabledOrigin =
  /**
   * One ENABLE on a connection with nothing on: what it asked for (upper
   * case, sorted, space-separated) and the server's answer, which the proxy
   * gives the later session's identical ENABLE (the server would now answer
   * that nothing new was enabled).
   */
  | { kind: 'enable'; requested: string; untagged: Buffer; ok: string }
  /** CONDSTORE and nothing else, switched on by a command that uses it. */
  | { kind: 'implicit' }
  /** Anything else: the connection is not cached. */
  | { kind: 'mixed' };

/** The ENABLE arguments as a key: upper case, no repeats, sorted. */
export function requestedKey(extensions: readonly string[]): string {
  return [...new Set(extensions.map((e) => e.toUpperCase()))].sort().join(' ');
}
