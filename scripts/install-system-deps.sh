#!/usr/bin/env bash
# Installs the Debian packages the integration tests drive (a real Dovecot, the C
# imapproxy and pimpstat, openssl for test certificates, lintian for the .deb, python3 for the syslog
# catcher, iproute2, util-linux for unshare/setpriv). Idempotent and quiet: prints
# nothing unless something fails. Debian 12, root, no stdin needed.
#
# The packages' maintainer scripts are not allowed to start their system daemons
# (a temporary /usr/sbin/policy-rc.d answers 101); the tests start their own
# Dovecot/imapproxyd on 127.0.0.1 with private configs. If a system daemon was
# started anyway, it is stopped again (by pid, only if it was not running before).
set -euo pipefail

PKGS=(dovecot-imapd openssl imapproxy python3 iproute2 util-linux lintian)
# Cyrus and Courier for the server matrix (test/helpers/cyrus.ts, courier.ts): what
# their servers need besides the server packages themselves (below)
PKGS+=(cyrus-common sasl2-bin cyrus-clients courier-base courier-authdaemon courier-authlib-userdb)
# Roundcube 1.6 for test/roundcube.test.ts and bench/roundcube.sh, run by PHP's
# built-in server (php8.2-cgi satisfies its web-server dependency: no Apache)
ROUNDCUBE_PKGS=(roundcube-core roundcube-sqlite3 php8.2-cgi php-cli php-sqlite3 sqlite3)
PKGS+=("${ROUNDCUBE_PKGS[@]}")
# extra packages a caller needs (bench/run.sh --scale-out: haproxy)
PKGS+=("$@")
ME="install-system-deps.sh"

die() { echo "$ME: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root to install: ${PKGS[*]}"
command -v apt-get >/dev/null || die "apt-get not found (Debian 12 expected)"

# cyrus-imapd and courier-imap conflict with dovecot-imapd: never installed, only
# downloaded and unpacked (dpkg -x) into this cache, where the test helpers run
# their binaries from (test/helpers/server-debs.ts).
DEBS_DIR="${IMAPPROXY_TEST_DEBS:-/var/cache/imapproxy-ts-test}"
UNPACKED=(cyrus-imapd:usr/lib/cyrus/bin/imapd courier-imap:usr/bin/imapd)

unpack_servers() {
  local entry pkg file tmp deb
  for entry in "${UNPACKED[@]}"; do
    pkg="${entry%%:*}"; file="${entry#*:}"
    [ -x "$DEBS_DIR/$pkg/$file" ] && continue
    mkdir -p "$DEBS_DIR"
    tmp="$(mktemp -d "$DEBS_DIR/.download.XXXXXX")"
    chmod 755 "$tmp"   # apt's download user must be able to write here
    (cd "$tmp" && apt-get download "$pkg" </dev/null >>"${LOG:-/dev/null}" 2>&1) \
      || { apt-get update </dev/null >/dev/null 2>&1 || true; (cd "$tmp" && apt-get download "$pkg" </dev/null >>"${LOG:-/dev/null}" 2>&1); } \
      || { rm -rf "$tmp"; die "apt-get download $pkg failed"; }
    deb="$(ls "$tmp"/*.deb)"
    rm -rf "$DEBS_DIR/$pkg.new"
    dpkg -x "$deb" "$DEBS_DIR/$pkg.new" || { rm -rf "$tmp"; die "dpkg -x $deb failed"; }
    rm -rf "$DEBS_DIR/$pkg" "$tmp"
    mv "$DEBS_DIR/$pkg.new" "$DEBS_DIR/$pkg"
  done
}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  unpack_servers
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
LOG="$(mktemp /tmp/install-system-deps.XXXXXX.log)"

# pids of system (non-test) daemons: dovecot/imapproxyd not started with a private
# config (tests run "dovecot -F -c /tmp/..." and "imapproxyd -f /tmp/...").
system_daemon_pids() {
  local d comm args
  for d in /proc/[0-9]*; do
    comm="$(cat "$d/comm" 2>/dev/null)" || continue
    case "$comm" in dovecot | imapproxyd | haproxy) ;; *) continue ;; esac
    args="$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)" || continue
    case "$args" in
      *" -c /etc/"* | *" -f /etc/"*) ;;
      *" -c "* | *" -f "*) continue ;;
    esac
    echo "${d#/proc/}"
  done
}

made_policy=0
cleanup() {
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# temporary, from %s: do not start daemons during package installation\nexit 101\n' "$ME" \
    > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  made_policy=1
fi

before=" $(system_daemon_pids | tr '\n' ' ') "

apt_install() {
  apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null >>"$LOG" 2>&1
}

# roundcube-core's own database setup (dbconfig-common) cannot work without a
# database server and stdin; the tests give every Roundcube its own sqlite file.
if printf '%s\n' "${missing[@]}" | grep -qx roundcube-core; then
  echo 'roundcube-core roundcube/dbconfig-install boolean false' | debconf-set-selections >>"$LOG" 2>&1 || true
fi

# Package lists: update first only when there are none (fresh image), else only
# when the install fails (stale lists).
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  apt-get update </dev/null >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "apt-get update failed (log: $LOG)"; }
fi
if ! apt_install; then
  apt-get update </dev/null >>"$LOG" 2>&1 || true
  if ! apt_install; then
    # Roundcube is for its own test file only (which then reports a skip): do not
    # let its packages stop the rest from installing.
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | grep -vxF -f <(printf '%s\n' "${ROUNDCUBE_PKGS[@]}") || true)
    dpkg --configure -a </dev/null >>"$LOG" 2>&1 || true
    if [ ${#missing[@]} -gt 0 ] && ! apt_install; then
      tail -n 30 "$LOG" >&2
      die "apt-get install ${missing[*]} failed (log: $LOG)"
    fi
    echo "$ME: Roundcube packages failed to install; its tests will be skipped (log: $LOG)" >&2
    keep_log=1
  fi
fi

# Stop daemons the installation started despite policy-rc.d (e.g. a pre-existing
# policy-rc.d that allows starts).
for pid in $(system_daemon_pids); do
  case "$before" in *" $pid "*) continue ;; esac
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
done

for b in /usr/sbin/dovecot /usr/sbin/imapproxyd /usr/sbin/pimpstat; do
  [ -x "$b" ] || die "$b is still missing after installing ${missing[*]} (log: $LOG)"
done
unpack_servers
[ "${keep_log:-0}" = 1 ] || rm -f "$LOG"
