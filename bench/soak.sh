#!/usr/bin/env bash
# Soak (issue 8): many concurrent clients of many users doing random commands,
# pipelining, IDLE and drops through imapproxyd in front of a real Dovecot; every
# client checks that every reply belongs to it. The CI form is test/soak-short.test.ts.
#
#   bash bench/soak.sh                                   # 200 clients, 50 users, 300 s
#   bash bench/soak.sh --clients 100 --users 20 --seconds 60 --seed 7
# Options: --clients N --users N --seconds S --seed N --drop-rate R --pipeline N --select-cache 0|1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
npx tsc -b
exec node test/dist/soak/driver.js "$@"
