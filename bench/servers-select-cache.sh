#!/usr/bin/env bash
# The select cache behind Dovecot, Cyrus and Courier with the bench's webmail
# page view (test/servers/select-cache-bench.ts): hits and misses per server.
#   USERS=4 PAGES=25 bash bench/servers-select-cache.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
npx tsc -b
node test/dist/servers/select-cache-bench.js
