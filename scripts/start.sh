#!/usr/bin/env bash
# npm start: the daemon in the foreground from a checkout, as any user. Its state
# (stats file, control socket, protocol trace) goes under var/ in the checkout,
# not /run and /var/log: var/imapproxy.conf is imapproxy.conf (edit that one)
# with those paths appended (the last occurrence of an option wins).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f packages/proxy/dist/main.js ] || npx tsc -b
mkdir -p var
state=$PWD/var
{
  cat imapproxy.conf
  echo
  echo "# --- appended by npm start (scripts/start.sh): state under the checkout ---"
  echo "foreground_mode yes"
  echo "stat_filename $state/pimpstats"
  echo "protocol_log_filename $state/protocol.log"
  echo "control_socket $state/control.sock"
} > var/imapproxy.conf
cat >&2 <<MSG
npm start: config var/imapproxy.conf (imapproxy.conf + state under var/); Ctrl-C stops.
  in another terminal:  node bin/pimpstat -f var/imapproxy.conf
                        node bin/imapproxyctl -f var/imapproxy.conf stats
  no IMAP server at hand?  npm run demo (as root) starts a throwaway Dovecot with the proxy in front
MSG
exec node bin/imapproxyd -f var/imapproxy.conf "$@"
