#!/usr/bin/env bash
# The long run of the differential reuse test (test/reuse-differential.test.ts):
# N random first sessions per proxy (select cache off and on), each followed by
# the probe through the proxy and on a fresh direct login. Prints the number of
# scripts, how many probes ran on a reused connection and the differences (0
# is the only acceptable figure).
#   bash bench/reuse-differential.sh [N=1000] [SEED=7]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${1:-1000}"
seed="${2:-7}"
npx tsc -b
REUSE_DIFF_SCRIPTS="$n" REUSE_DIFF_SEED="$seed" npx ava --timeout=120m --tap test/dist/reuse-differential.test.js \
  | grep -E '^(ok|not ok)|^#   |seed ' | cut -c1-400
