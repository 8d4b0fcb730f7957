// Where the Cyrus and Courier IMAP binaries of the tests live. Their Debian
// packages (cyrus-imapd, courier-imap) conflict with dovecot-imapd, which the
// other tests need, so they are never installed: scripts/install-system-deps.sh
// fetches them with `apt-get download` and unpacks them with `dpkg -x` into
// this cache; their dependencies (cyrus-common, sasl2-bin, courier-base,
// courier-authdaemon, courier-authlib-userdb) are installed normally.
import { existsSync } from 'node:fs';
import path from 'node:path';

/** IMAPPROXY_TEST_DEBS overrides it (a directory holding cyrus-imapd/ and courier-imap/). */
export const SERVER_DEBS_DIR = process.env.IMAPPROXY_TEST_DEBS ?? '/var/cache/imapproxy-ts-test';

export const CYRUS_IMAPD = path.join(SERVER_DEBS_DIR, 'cyrus-imapd/usr/lib/cyrus/bin/imapd');
export const CYRUS_IDLED = path.join(SERVER_DEBS_DIR, 'cyrus-imapd/usr/lib/cyrus/bin/idled');
export const CYRUS_MASTER = '/usr/lib/cyrus/bin/master';
export const SASLPASSWD2 = '/usr/sbin/saslpasswd2';

export const COURIER_IMAPLOGIN = path.join(SERVER_DEBS_DIR, 'courier-imap/usr/lib/courier/courier/imaplogin');
export const COURIER_IMAPD = path.join(SERVER_DEBS_DIR, 'courier-imap/usr/bin/imapd');
export const COURIER_TCPD = '/usr/sbin/couriertcpd';
export const COURIER_AUTHDAEMOND = '/usr/lib/courier/courier-authlib/authdaemond';
export const COURIER_MAKEUSERDB = '/usr/sbin/makeuserdb';
export const COURIER_TLS = '/usr/bin/couriertls';
export const UNSHARE = '/usr/bin/unshare';

function missing(files: string[]): string | null {
  const absent = files.filter((f) => !existsSync(f));
  return absent.length === 0 ? null : `missing ${absent.join(', ')} (run scripts/install-system-deps.sh as root)`;
}

/** Why Cyrus cannot run here, or null. */
export function cyrusMissing(): string | null {
  return missing([CYRUS_IMAPD, CYRUS_IDLED, CYRUS_MASTER, SASLPASSWD2]);
}

/** Why Courier cannot run here, or null. */
export function courierMissing(): string | null {
  if (process.getuid?.() !== 0) return 'Courier needs root (a private mount namespace for /etc/courier)';
  return missing([COURIER_IMAPLOGIN, COURIER_IMAPD, COURIER_TCPD, COURIER_AUTHDAEMOND, COURIER_MAKEUSERDB, UNSHARE]);
}
