#!/usr/bin/env bash
# The test command (npm test): system packages if missing, node_modules if missing,
# build, then every ava test file -- or only the files given: npm test -- test/dist/x.test.js
# The last line of the output is the summary "N passed, N failed[, N skipped]"; the
# exit status is non-zero if a test failed, the build failed (counted as one failed
# test), lint or the import-cycle check failed (one failed test each), or no test ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

summary_fail() { # summary_fail REASON: fail before ava ran, still ending with a summary line
  printf 'not ok 1 - %s\n' "$1" | node scripts/tap-summary.mjs || true
  exit 1
}

missing=()
# Dovecot, the C original, pimpstat; Cyrus and Courier (the server matrix): their
# server binaries are unpacked into a cache by install-system-deps.sh
debs="${IMAPPROXY_TEST_DEBS:-/var/cache/imapproxy-ts-test}"
for b in /usr/sbin/dovecot /usr/sbin/imapproxyd /usr/sbin/pimpstat \
  /usr/sbin/saslpasswd2 /usr/lib/cyrus/bin/master /usr/sbin/couriertcpd /usr/sbin/makeuserdb \
  "$debs/cyrus-imapd/usr/lib/cyrus/bin/imapd" "$debs/courier-imap/usr/bin/imapd" /usr/bin/lintian; do
  [ -x "$b" ] || missing+=("$b")
done
# Roundcube (test/roundcube.test.ts): PHP CLI, its sqlite driver, sqlite3, roundcube-core
for f in /usr/bin/php /usr/bin/sqlite3 /etc/php/8.2/mods-available/pdo_sqlite.ini /usr/share/roundcube/index.php; do
  [ -e "$f" ] || missing+=("$f")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    bash scripts/install-system-deps.sh || summary_fail "install system packages (scripts/install-system-deps.sh)"
  else
    echo "test.sh: missing ${missing[*]}; the integration tests need the Debian packages" \
      "dovecot-imapd, imapproxy, cyrus, courier and Roundcube. Run as root: bash scripts/install-system-deps.sh" >&2
    summary_fail "system packages missing: ${missing[*]}"
  fi
fi

if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund || summary_fail "npm ci"
fi

# tsc -b still emits JavaScript when there are type errors: run the tests anyway and
# count the build as one failed test, so a type error elsewhere does not hide results.
build_rc=0
npx tsc -b || build_rc=$?

# Lint (eslint.config.js) and import cycles (scripts/import-cycles.mjs): one test each,
# on a whole run (no files given, as in CI) or with LINT=1; a targeted run skips them
# to stay quick. Their output comes first, their verdicts join ava's TAP stream.
checks=()
if [ $# -eq 0 ] || [ "${LINT:-}" = 1 ]; then
  if npx eslint --max-warnings 0 packages test; then checks+=("ok - lint: eslint"); else checks+=("not ok - lint: eslint found problems (above)"); fi
  if node scripts/import-cycles.mjs; then checks+=("ok - import cycles: none"); else checks+=("not ok - import cycles: scripts/import-cycles.mjs found some (above)"); fi
fi

# The whole suite runs on the newest LTS (NEWEST_LTS), installed from npm when missing
# (scripts/node-lts.sh); test/node-versions.test.ts runs the unit tests and a real login on
# the other supported versions (20.19+, 22). A newest LTS that cannot be had is a failed test
# in CI and a note elsewhere (the suite then runs on the Node.js on PATH).
# IMAPPROXY_TEST_NODE=path runs the suite on the Node.js on PATH instead.
NEWEST_LTS=24
node_problem=
if [ "${IMAPPROXY_TEST_NODE:-lts}" = lts ]; then
  if lts_node=$(bash scripts/node-lts.sh "$NEWEST_LTS" 2>/tmp/node-lts.$$.err); then
    export PATH="$(dirname "$lts_node"):$PATH"
  else
    node_problem="Node.js $NEWEST_LTS for the test suite: $(tr '\n' ' ' </tmp/node-lts.$$.err)"
  fi
  rm -f /tmp/node-lts.$$.err
fi
echo "test.sh: running the tests on Node.js $(node --version) ($(command -v node))" >&2
# The other supported versions, for test/node-versions.test.ts (one that cannot be had shows
# there as a skip or, in CI, a failure; 20 is the machine's own when it is 20.19 or later).
for major in 22 "$NEWEST_LTS"; do bash scripts/node-lts.sh "$major" >/dev/null 2>&1 || true; done

# ava's exit status travels in-band as the last TAP line, so tap-summary can fold it
# into its verdict while still printing the summary last; PIPESTATUS checks both.
set +e
{
  rc=0
  if [ -n "$node_problem" ]; then
    if [ "${CI:-}" = true ]; then echo "not ok - $node_problem"; else echo "# note: $node_problem; using $(command -v node)"; fi
  fi
  node node_modules/ava/entrypoints/cli.mjs --tap "$@" || rc=$?
  for c in "${checks[@]}"; do echo "$c"; done
  if [ "$build_rc" != 0 ]; then
    echo "not ok - build: npx tsc -b exited with status $build_rc (type errors above)"
  fi
  echo "# ava-exit-code $rc"
} | node scripts/tap-summary.mjs
status=("${PIPESTATUS[@]}")
set -e
[ "${status[0]}" = 0 ] && [ "${status[1]}" = 0 ] && [ "$build_rc" = 0 ]
