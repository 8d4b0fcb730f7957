#!/usr/bin/env bash
# Opt-in: headless Chromium (Debian package chromium) logs in to Roundcube in front of
# our proxy, opens a message, deletes another (move to Trash), looks at Trash, logs
# out, with a screenshot of every step; then checks that a message another client had
# flagged \Deleted survived. playwright-core drives the system's Chromium and is
# installed outside the project (bench/results/.browser-deps, git-ignored), so the
# project has no browser dependency.
#
#   bash bench/roundcube-browser.sh [--out DIR]     # default bench/results/roundcube-browser
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x /usr/bin/chromium ] || [ ! -e /usr/share/roundcube/index.php ]; then
  bash scripts/install-system-deps.sh chromium
fi
DEPS=bench/results/.browser-deps
if [ ! -d "$DEPS/node_modules/playwright-core" ]; then
  mkdir -p "$DEPS"
  npm install --prefix "$DEPS" --no-save --no-audit --no-fund playwright-core@1 >/dev/null
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -b
PLAYWRIGHT_CORE_DIR="$PWD/$DEPS/node_modules/playwright-core" exec node test/dist/roundcube/browser-walk.js "$@"
