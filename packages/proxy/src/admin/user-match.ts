// Which login names `imapproxyctl flush USER`, `imapproxyctl trace USER` and
// XPROXY_TRACE mean. The pool keys connections by the exact bytes a client
// sent, but servers fold case (Dovecot's default auth_username_format is %Lu,
// Cyrus and Courier fold too), so "Alice" and "alice" are one account with one
// password: a flush after a password change that missed "Alice" left the old
// password working through the pool (issue 16, finding 5). By default names
// match ignoring case; `user_match_exact yes` matches byte for byte, for a
// server with case-sensitive names. (Names with NUL or other control bytes,
// the other way servers see two spellings as one, are refused at login.)

/** The name as compared: itself, or folded to lower case. */
export function userMatchKey(name: string, exact: boolean): string {
  return exact ? name : name.toLowerCase();
}

/**
 * A test for pool keys (the login name's bytes as latin1) that `wanted` (as
 * typed by the operator, UTF-8) names.
 */
export function poolKeyMatcher(wanted: string, exact: boolean): (userKey: string) => boolean {
  const key = userMatchKey(wanted, exact);
  return (userKey) => userMatchKey(Buffer.from(userKey, 'latin1').toString('utf8'), exact) === key;
}
