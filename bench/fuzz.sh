#!/usr/bin/env bash
# Fuzz the daemon (issue 8): >= 1,000,000 mutated client inputs, before and after
# login, to imapproxyd in front of a real Dovecot (both started on 127.0.0.1 by
# the driver, as root like the tests). Bounded in time by --max-seconds.
# Prints inputs tried, crashes, peak RSS; exit 0 only if the daemon survived
# with bounded RSS and a normal login still worked.
#
#   bash bench/fuzz.sh                          # 1,000,000 inputs, at most 900 s
#   bash bench/fuzz.sh --inputs 200000 --max-seconds 120 --seed 42
# Options: --inputs N --max-seconds S --connections C --batch B --seed N --rss-limit-mb M --progress S
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
npx tsc -b
exec node test/dist/fuzz/driver.js "$@"
