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
# extra packages a caller needs (bench/run.sh --scale-out: haproxy)
PKGS+=("$@")
ME="install-system-deps.sh"

die() { echo "$ME: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root to install: ${PKGS[*]}"
command -v apt-get >/dev/null || die "apt-get not found (Debian 12 expected)"

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

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
  apt-get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null >>"$LOG" 2>&1
}

# Package lists: update first only when there are none (fresh image), else only
# when the install fails (stale lists).
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  apt-get update </dev/null >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "apt-get update failed (log: $LOG)"; }
fi
if ! apt_install; then
  apt-get update </dev/null >>"$LOG" 2>&1 || true
  apt_install || { tail -n 30 "$LOG" >&2; die "apt-get install ${missing[*]} failed (log: $LOG)"; }
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
rm -f "$LOG"
