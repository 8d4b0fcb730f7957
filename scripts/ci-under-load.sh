#!/usr/bin/env bash
# The suite under load: two busy processes keep both cores of a 2-core machine
# loaded while `bash .ci/run` runs N times in a row (default 5). Prints each run's
# summary line ("N passed, N failed[, N skipped]") with its time, then a verdict.
# Exit status 0 only if every run passed. The busy loops are ended on exit.
#
#   bash scripts/ci-under-load.sh [N]       logs: $TMPDIR/ci-under-load.<pid>/run-<i>.log
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-5}
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N>=1]" >&2; exit 2; }
logs=$(mktemp -d "${TMPDIR:-/tmp}/ci-under-load.$$.XXXX")

busy=()
stop_busy() {
  for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${busy[@]}"; do wait "$pid" 2>/dev/null; done
  busy=()
}
trap stop_busy EXIT
trap 'exit 130' INT TERM
for _ in 1 2; do
  node -e 'for (;;) {}' &
  busy+=("$!")
done
echo "ci-under-load: $runs run(s) of .ci/run beside 2 busy processes (pids ${busy[*]}); $(nproc) core(s); logs in $logs"

passed=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  bash .ci/run </dev/null >"$logs/run-$i.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  summary=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$logs/run-$i.log" | tail -1)
  printf 'run %d/%d: %s (exit %d, %d s, load %s)\n' "$i" "$runs" "${summary:-no summary line}" "$rc" "$secs" "$(cut -d' ' -f1-3 /proc/loadavg)"
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1))
  else
    grep -E '^not ok' "$logs/run-$i.log" | sed 's/^/    /'
  fi
done

if [ "$passed" = "$runs" ]; then
  echo "verdict: PASS -- all $runs run(s) green under load"
  exit 0
fi
echo "verdict: FAIL -- $((runs - passed)) of $runs run(s) failed under load (logs in $logs)"
exit 1
