#!/usr/bin/env bash
# Roundcube bench (issue 17): N users clicking through Roundcube 1.6 at once, against
# Dovecot directly, ours and the C original, Roundcube's cache off and on; prints
# one markdown table. Default: 4 users, 15 s per run, 6 runs, about 3 minutes.
#
#   bash bench/roundcube.sh
#   bash bench/roundcube.sh --clients 8 --seconds 30 --cache on --targets ours,c
# Options: --clients N --seconds S --warmup S --rounds N --targets direct,ours,c --cache off|on|both --select-cache on|off
# Root is needed (Dovecot and the proxies start as root and drop privileges).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -e /usr/share/roundcube/index.php ] || [ ! -e /usr/bin/php ] || [ ! -e /usr/bin/sqlite3 ]; then
  bash scripts/install-system-deps.sh
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -b
exec node test/dist/roundcube/bench.js "$@"
