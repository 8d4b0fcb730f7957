#!/usr/bin/env bash
# npm run bench [-- --quick | --scale | --scale-out | --cpu-prof | --rounds N | --busy N]
#
# Side-by-side benchmark of imapproxy-ts ("ours"), the C original up-imapproxy
# 1.2.8 ("c", /usr/sbin/imapproxyd) and Dovecot itself ("direct"), all on
# 127.0.0.1 on this machine, in the same run (issue 7). See bench/README.md.
#
#   default   3 rounds of: webmail at 8/32/128 clients x {direct, c, ours} x
#             {normal client, --quickack client}, then bulk FETCH of a 5 MiB message
#             at 1 and 4 clients x {direct, c, ours}. About 16 minutes on 2 cores,
#             at most ~25 when other work on the machine forces waits and re-runs.
#   --quick   1 round, short windows (about 3 minutes).
#   --scale   instead of the matrix: 10,000 idle client connections to ours
#             (8,000 pre-auth + 2,000 logged in), memory reported.
#   --scale-out instead of the matrix: two instances of ours behind HAProxy (PROXY
#             protocol v2), round robin and source hashing, against one instance
#             behind the same HAProxy: rate, latency and reuse share (issue 10).
#   --cpu-prof  run ours under `node --cpu-prof`; the .cpuprofile lands in the
#             results directory (written when ours exits at the end).
#   --busy N  N processes that spin on the CPU for the whole run (a webmail host's
#             PHP workers), started with the servers; every row runs beside them.
#             They are the bench's own: not counted as "other" processes.
#
# After the matrix, ours' RSS is sampled for 60 s with no load (does it give memory
# back?), and its high-water mark over the whole run is reported (issue 19).
#
# Starts exactly one Dovecot, one C imapproxyd and one of ours, each in its own
# state directory under /tmp/imapproxy-bench.XXXXXX, on free loopback ports; all
# of them (and the syslog catcher) are stopped by pid on exit. Every wait is
# bounded. Results: bench/results/<timestamp>/ (git-ignored): one JSON + text
# per load-generator run, summary.json and summary.md (the table printed last).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
ME="bench/run.sh"

MODE=matrix
QUICK=0
CPU_PROF=0
ROUNDS=""
BUSY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --scale) MODE=scale ;;
    --scale-out) MODE=scaleout ;;
    --cpu-prof) CPU_PROF=1 ;;
    --rounds) ROUNDS="$2"; shift ;;
    --busy) BUSY="$2"; [[ $BUSY =~ ^[0-9]+$ ]] || { echo "$ME: --busy takes a number" >&2; exit 2; }; shift ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "$ME: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$QUICK" = 1 ]; then
  ROUNDS="${ROUNDS:-1}"; WEB_D="${BENCH_WEB_DURATION:-4}"; WEB_W="${BENCH_WEB_WARMUP:-1}"
  THR_D="${BENCH_THR_DURATION:-3}"; THR_W=1; PAUSE=1
else
  ROUNDS="${ROUNDS:-3}"; WEB_D="${BENCH_WEB_DURATION:-8}"; WEB_W="${BENCH_WEB_WARMUP:-2}"
  THR_D="${BENCH_THR_DURATION:-6}"; THR_W=1; PAUSE=1
fi
# Narrowing knobs (for profiling one configuration); an empty list skips that part.
CONCURRENCIES="${BENCH_CONCURRENCIES-8 32 128}"
THR_CONCURRENCIES="${BENCH_THR_CONCURRENCIES-1 4}"
CLIENTS="${BENCH_CLIENTS-normal quickack}"
TARGET_NAMES="${BENCH_TARGETS-direct c ours}"
# The machine may be shared: before each run, wait (bounded) until the processes that
# are not ours use less than QUIET_PCT % of one core; the wait is logged, and every
# row reports the "other" CPU during its window.
QUIET_PCT="${BENCH_QUIET_PCT:-25}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-15}"          # seconds per run at most
QUIET_BUDGET="${BENCH_QUIET_BUDGET:-240}"     # seconds per bench at most
# A run during which those other processes used more than MAX_OTHER % of one core is
# run again (the disturbed result is kept as runs/<name>.disturbedN.json), at most
# RETRIES times per run and for RETRY_BUDGET seconds per bench; rows still
# disturbed are marked in the report.
MAX_OTHER="${BENCH_MAX_OTHER:-35}"
RETRIES="${BENCH_RETRIES:-2}"
RETRY_BUDGET="${BENCH_RETRY_BUDGET:-300}"
LOAD_USERS=50          # the load generator picks user1..user50
# scale-out: more users than the matrix and a short cache expiry, so that a user's next
# page view often comes after the expiry -- the regime where where it lands matters
SO_USERS="${BENCH_SO_USERS:-400}"
SO_EXPIRY="${BENCH_SO_EXPIRY:-2}"
SO_CLIENTS="${BENCH_SO_CLIENTS:-32}"
SO_SOURCES="${BENCH_SO_SOURCES:-8}"
[ "$MODE" = scaleout ] && LOAD_USERS="$SO_USERS"
SCALE_CONNECTIONS="${BENCH_SCALE_CONNECTIONS:-10000}"
SCALE_LOGGED_IN="${BENCH_SCALE_LOGGED_IN:-2000}"
SCALE_HOLD="${BENCH_SCALE_HOLD:-10}"

log() { printf '[%s %s] %s\n' "$ME" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (Dovecot and both proxies start as root and drop privileges)"
PYTHON="$(command -v python3 || true)"

# --- what it needs -------------------------------------------------------------------
EXTRA_PKGS=()
[ "$MODE" = scaleout ] && EXTRA_PKGS+=(haproxy)
bash "$REPO/scripts/install-system-deps.sh" ${EXTRA_PKGS[@]+"${EXTRA_PKGS[@]}"} || die "scripts/install-system-deps.sh failed"
PYTHON="${PYTHON:-$(command -v python3)}"
[ -n "$PYTHON" ] || die "python3 not found"
if [ ! -d "$REPO/node_modules" ]; then
  log "node_modules missing: npm ci"
  (cd "$REPO" && npm ci --no-audit --no-fund) || die "npm ci failed"
fi
log "building (npx tsc -b)"
# Like scripts/test.sh: tsc -b still emits JavaScript when there are type errors
# (the tree may be mid-edit); the bench then runs what was emitted, with a warning.
(cd "$REPO" && npx tsc -b) || log "WARNING: npx tsc -b reported errors; benchmarking the JavaScript it emitted"
[ -f "$REPO/packages/proxy/dist/main.js" ] || die "packages/proxy/dist/main.js missing after the build"

# 10,000 client + 2,000 server connections in one process, plus the generator's side.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# (ours needs one fd per client + one per logged-in client; so does the generator)
NEED_FDS=$((SCALE_CONNECTIONS + SCALE_LOGGED_IN + 1000))
[ "$(ulimit -n)" -ge "$NEED_FDS" ] || [ "$MODE" != scale ] || die "ulimit -n is $(ulimit -n) and cannot be raised; the scale mode needs $NEED_FDS"

# --- state, ports, cleanup -------------------------------------------------------------
STATE="$(mktemp -d /tmp/imapproxy-bench.XXXXXX)"
chmod 755 "$STATE"
TS="$(date +%Y%m%d-%H%M%S)"
OUT="$BENCH_DIR/results/$TS${BENCH_TAG:+-$BENCH_TAG}"
[ "$MODE" = scale ] && OUT="$OUT-scale"
[ "$MODE" = scaleout ] && OUT="$OUT-scale-out"
mkdir -p "$OUT/runs"

DPID=""; CPID=""; OPID=""; O2PID=""; HPID=""; CATCHER_PID=""; BUSY_PID=""

alive() { [ -n "$1" ] && [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
descendants() { # pids below $1, deepest last
  local kids k
  kids="$(ps -o pid= --ppid "$1" 2>/dev/null || true)"
  for k in $kids; do echo "$k"; descendants "$k"; done
}
stop_pid() { # stop_pid PID NAME [tree]: TERM (the tree, if asked), wait <= 6 s, then KILL
  local pid="$1" name="$2" tree="${3:-}" all i
  alive "$pid" || return 0
  all="$pid"
  [ -n "$tree" ] && all="$pid $(descendants "$pid" | tr '\n' ' ')"
  kill -TERM $all 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do alive "$pid" || break; sleep 0.1; done
  for p in $all; do
    if alive "$p"; then log "$name: pid $p still alive after TERM: KILL"; kill -KILL "$p" 2>/dev/null || true; fi
  done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  # proxies first (they hold cached connections to Dovecot), then Dovecot
  stop_pid "$HPID" haproxy
  stop_pid "$OPID" ours
  stop_pid "$O2PID" ours2
  stop_pid "$CPID" c-imapproxyd
  stop_pid "$CATCHER_PID" syslog-catcher
  stop_pid "$BUSY_PID" busy tree
  stop_pid "$DPID" dovecot tree
  if [ -d "$STATE" ]; then
    [ -s "$STATE/ours/stderr.log" ] && tail -n 200 "$STATE/ours/stderr.log" > "$OUT/ours-log-tail.txt" 2>/dev/null || true
    if [ "${BENCH_KEEP_STATE:-0}" = 1 ]; then log "state kept in $STATE"; else rm -rf "$STATE"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

read -r DPORT DTLSPORT CPORT OPORT O2PORT HONEPORT HRRPORT HSRCPORT < <("$PYTHON" - <<'EOF'
import socket
socks = []
for _ in range(8):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)

listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
wait_port() { # wait_port PORT SECONDS PID NAME
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    listening "$1" && return 0
    alive "$3" || die "$4 exited during startup (see $5)"
    sleep 0.1
  done
  die "$4 did not listen on 127.0.0.1:$1 within $2 s (see $5)"
}

# --- Dovecot (ported from /work/shared/bench/start-dovecot.sh) ----------------------------
MAIL_USER=imapproxy-test   # the unprivileged maildir owner the integration tests use too
id -u "$MAIL_USER" >/dev/null 2>&1 ||
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$MAIL_USER" ||
  id -u "$MAIL_USER" >/dev/null 2>&1 || die "cannot create system user $MAIL_USER"
MUID="$(id -u "$MAIL_USER")"; MGID="$(id -g "$MAIL_USER")"
D="$STATE/dovecot"
mkdir -p "$D/run" "$D/lib" "$D/mail" "$D/ssl"
chmod 755 "$D" "$D/run" "$D/lib" "$D/mail"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$D/ssl/key.pem" -out "$D/ssl/cert.pem" >/dev/null 2>&1 || die "openssl req failed"
chmod 600 "$D/ssl/key.pem"
: > "$D/users.passwd"
for ((i = 1; i <= LOAD_USERS; i++)); do
  echo "user$i:{PLAIN}pass$i:$MUID:$MGID::$D/mail/user$i::" >> "$D/users.passwd"
done
chown "root:$(getent group dovecot >/dev/null && echo dovecot || echo root)" "$D/users.passwd"
chmod 640 "$D/users.passwd"
"$PYTHON" "$BENCH_DIR/seed_maildir.py" --mail-root "$D/mail" --template-dir "$D/mail/.templates" \
  --users "$LOAD_USERS" --uid "$MUID" --gid "$MGID" 2>>"$OUT/setup.log" || die "seeding maildirs failed"
chown "$MUID:$MGID" "$D/mail/.templates"; chmod 700 "$D/mail/.templates"
DH_LINE=""
[ -r /usr/share/dovecot/dh.pem ] && DH_LINE="ssl_dh = </usr/share/dovecot/dh.pem"
cat > "$D/dovecot.conf" <<EOF
# Generated by bench/run.sh (port of /work/shared/bench/start-dovecot.sh); /etc/dovecot is not read.
instance_name = imapproxy-bench-${STATE##*.}
base_dir = $D/run
state_dir = $D/lib
protocols = imap
listen = 127.0.0.1
log_path = $D/dovecot.log
info_log_path = $D/dovecot.log
log_timestamp = "%Y-%m-%d %H:%M:%S "
disable_plaintext_auth = no
auth_mechanisms = plain login
# no per-IP auth penalty building up on loopback
login_trusted_networks = 127.0.0.0/8
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/users.passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $D/users.passwd
}
first_valid_uid = $((MUID < 100 ? MUID : 100))
mail_location = maildir:~/Maildir
mail_max_userip_connections = 1000
namespace inbox {
  inbox = yes
  separator = /
}
ssl = yes
ssl_cert = <$D/ssl/cert.pem
ssl_key = <$D/ssl/key.pem
$DH_LINE
# room for the scale mode: 2,000 logged-in sessions = 2,000 imap processes
default_process_limit = 3000
default_client_limit = 15000
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DPORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $DTLSPORT
    ssl = yes
  }
  # Dovecot's default "high-security" mode: one imap-login process per connection
  service_count = 1
}
service imap {
  process_limit = 3000
}
service auth {
  client_limit = 15000
}
EOF
doveconf -c "$D/dovecot.conf" -n > "$D/doveconf-n.txt" 2>>"$OUT/setup.log" || die "invalid dovecot config (see $OUT/setup.log)"
log "starting dovecot on 127.0.0.1:$DPORT"
setpriv --pdeathsig TERM /usr/sbin/dovecot -F -c "$D/dovecot.conf" > "$D/stderr.log" 2>&1 < /dev/null &
DPID=$!
wait_port "$DPORT" 15 "$DPID" dovecot "$D/dovecot.log"

# --- the C original (port of /work/shared/bench/start-imapproxy.sh) -------------------------
start_c() {
  local S="$STATE/c"
  mkdir -p "$S/dev"
  chown nobody:nogroup "$S"; chmod 755 "$S" "$S/dev"
  cat > "$S/imapproxy.conf" <<EOF
# Generated by bench/run.sh
server_hostname 127.0.0.1
server_port $DPORT
listen_address 127.0.0.1
listen_port $CPORT
connect_retries 3
connect_delay 1
cache_size 3072
cache_expiration_time 300
proc_username nobody
proc_groupname nogroup
stat_filename $S/pimpstats
protocol_log_filename $S/protocol.log
syslog_facility LOG_MAIL
send_tcp_keepalives no
enable_select_cache no
foreground_mode yes
force_tls no
enable_admin_commands yes
EOF
  # imapproxyd logs only via syslog(3): give it a private /dev whose "log" is our catcher
  # (as the shared bench does), so its logging costs what it costs in production.
  local launch='set -e
mount --make-rprivate /
for n in null zero full random urandom; do mount --bind "/dev/$n" "$1/$n"; done
mount --rbind "$1" /dev
exec /usr/sbin/imapproxyd -f "$2"'
  if unshare --mount sh -c 'mount --make-rprivate / && mount --bind /dev/null /dev/null' 2>/dev/null; then
    for n in null zero full random urandom; do : > "$S/dev/$n"; done
    "$PYTHON" "$BENCH_DIR/syslog_catcher.py" "$S/dev/log" "$S/imapproxy.log" > "$S/catcher.out" 2>&1 < /dev/null &
    CATCHER_PID=$!
    for ((i = 0; i < 50; i++)); do [ -S "$S/dev/log" ] && break; sleep 0.1; done
    [ -S "$S/dev/log" ] || die "syslog catcher did not start"
    unshare --mount sh -c "$launch" c-launch "$S/dev" "$S/imapproxy.conf" > "$S/stderr.log" 2>&1 < /dev/null &
  else
    log "no private mount namespace: the C imapproxyd runs without a log"
    /usr/sbin/imapproxyd -f "$S/imapproxy.conf" > "$S/stderr.log" 2>&1 < /dev/null &
  fi
  CPID=$!   # unshare and sh exec: this is imapproxyd's pid
  # it probes the server before it listens
  wait_port "$CPORT" 20 "$CPID" c-imapproxyd "$S/imapproxy.log"
  grep -q '^imapproxyd$' "/proc/$CPID/comm" || die "pid $CPID is not imapproxyd"
}

# --- ours ------------------------------------------------------------------------------------
start_ours() { # start_ours [NAME PORT]: sets OPID (ours) or O2PID (ours2)
  local name="${1:-ours}" port="${2:-$OPORT}"
  local S="$STATE/$name" node_opts=() pid
  mkdir -p "$S"; chmod 755 "$S"
  cat > "$S/imapproxy.conf" <<EOF
# Generated by bench/run.sh: the same settings as the C original's where both have them
server_hostname 127.0.0.1
server_port $DPORT
listen_address 127.0.0.1
listen_port $port
connect_retries 3
connect_delay 1
cache_size 3072
cache_expiration_time $([ "$MODE" = scaleout ] && echo "$SO_EXPIRY" || echo 300)
proc_username nobody
proc_groupname nogroup
stat_filename $S/pimpstats
protocol_log_filename $S/protocol.log
control_socket $S/control.sock
syslog_facility LOG_MAIL
send_tcp_keepalives no
enable_select_cache no
foreground_mode yes
force_tls no
enable_admin_commands yes
$([ "$MODE" = scale ] && echo "max_clients $((SCALE_CONNECTIONS + 1000))")
$([ "$MODE" = scaleout ] && printf 'listen_proxy_protocol yes\nproxy_protocol_trusted_networks 127.0.0.1\n')
EOF
  if [ "$CPU_PROF" = 1 ]; then
    mkdir -p "$OUT/cpu-prof"; chmod 777 "$OUT/cpu-prof"
    node_opts+=(--cpu-prof --cpu-prof-dir "$OUT/cpu-prof")
  fi
  # extra node flags for ours, e.g. BENCH_OURS_NODE_OPTS=--perf-basic-prof (for perf record)
  [ -n "${BENCH_OURS_NODE_OPTS:-}" ] && node_opts+=(${BENCH_OURS_NODE_OPTS})
  # scale mode: V8 prints one line per GC; the last one gives the JS heap in use
  [ "$MODE" = scale ] && node_opts+=(--trace-gc)
  (cd "$REPO" && exec setpriv --pdeathsig TERM node ${node_opts[@]+"${node_opts[@]}"} bin/imapproxyd -f "$S/imapproxy.conf" \
    > "$S/stdout.log" 2> "$S/stderr.log" < /dev/null) &
  pid=$!
  if [ "$name" = ours ]; then OPID=$pid; else O2PID=$pid; fi
  wait_port "$port" 15 "$pid" "$name" "$S/stderr.log"
  grep -q '^node$' "/proc/$pid/comm" || die "pid $pid is not node"
}

# --- HAProxy in front of two of ours (scale-out mode) -----------------------------------------
start_haproxy() {
  local S="$STATE/haproxy"
  mkdir -p "$S"
  # Three frontends on the same HAProxy, so every row pays the same extra hop: one instance
  # only, round robin over two, and source hashing over two. PROXY protocol v2 carries the
  # client address to ours. One thread: the machine has two cores for everything.
  cat > "$S/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend one
  bind 127.0.0.1:$HONEPORT
  default_backend one
backend one
  server ours 127.0.0.1:$OPORT send-proxy-v2
frontend roundrobin
  bind 127.0.0.1:$HRRPORT
  default_backend roundrobin
backend roundrobin
  balance roundrobin
  server ours 127.0.0.1:$OPORT send-proxy-v2
  server ours2 127.0.0.1:$O2PORT send-proxy-v2
frontend source
  bind 127.0.0.1:$HSRCPORT
  default_backend source
backend source
  balance source
  hash-type consistent
  server ours 127.0.0.1:$OPORT send-proxy-v2
  server ours2 127.0.0.1:$O2PORT send-proxy-v2
EOF
  haproxy -c -f "$S/haproxy.cfg" > "$S/check.log" 2>&1 || die "invalid haproxy config (see $S/check.log)"
  setpriv --pdeathsig TERM haproxy -db -f "$S/haproxy.cfg" > "$S/stderr.log" 2>&1 < /dev/null &
  HPID=$!
  wait_port "$HSRCPORT" 15 "$HPID" haproxy "$S/stderr.log"
}

[ "$MODE" = matrix ] && start_c
start_ours
if [ "$BUSY" -gt 0 ]; then
  # One parent with N spinning children, so that one --watch covers them all. Plain
  # shell loops at normal priority: they compete for the cores as PHP workers would.
  setpriv --pdeathsig TERM bash -c 'for ((i = 0; i < $1; i++)); do (while :; do :; done) & done; wait' busy "$BUSY" < /dev/null &
  BUSY_PID=$!
fi
if [ "$MODE" = scaleout ]; then
  start_ours ours2 "$O2PORT"
  start_haproxy
fi

{
  echo "date: $(date -Is)"
  echo "host: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)"
  echo "node $(node --version), $("$PYTHON" --version 2>&1), dovecot $(dovecot --version | cut -d' ' -f1), imapproxy $(dpkg-query -W -f='${Version}' imapproxy 2>/dev/null)"
  echo "repo: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO" && [ -n "$(git status --porcelain -- packages 2>/dev/null)" ] && echo ' + uncommitted changes in packages/')"
  if [ "$MODE" = scaleout ]; then
    echo "mode: scale-out, $SO_CLIENTS clients, $SO_USERS users from $SO_SOURCES source addresses, cache_expiration_time $SO_EXPIRY, rounds=$ROUNDS webmail ${WEB_W}s+${WEB_D}s"
    echo "haproxy $(haproxy -v 2>/dev/null | head -1 | cut -d' ' -f3), pids: ours2 $O2PID (port $O2PORT) haproxy $HPID (one $HONEPORT, roundrobin $HRRPORT, source $HSRCPORT)"
  elif [ "$MODE" = scale ]; then
    echo "mode: scale, $SCALE_CONNECTIONS connections ($SCALE_LOGGED_IN logged in), held ${SCALE_HOLD}s, ulimit -n $(ulimit -n)"
  else
    echo "mode: matrix quick=$QUICK rounds=$ROUNDS webmail ${WEB_W}s+${WEB_D}s bulk ${THR_W}s+${THR_D}s cpu-prof=$CPU_PROF busy=$BUSY$([ "$BUSY" -gt 0 ] && echo " (processes spinning beside the bench)")"
  fi
  echo "pids: dovecot $DPID (port $DPORT) c-imapproxyd ${CPID:--} (port $CPORT) ours $OPID (port $OPORT)"
  echo "loadavg before: $(cat /proc/loadavg)"
} | tee "$OUT/env.txt" >&2

LOADGEN=("$PYTHON" "$BENCH_DIR/loadgen.py" --users "$LOAD_USERS")

# --- scale mode --------------------------------------------------------------------------------
if [ "$MODE" = scale ]; then
  log "scale: $SCALE_CONNECTIONS connections to ours ($SCALE_LOGGED_IN logged in), held ${SCALE_HOLD}s"
  rc=0
  timeout --kill-after=10 900 "${LOADGEN[@]}" --mode idle --port "$OPORT" --connections "$SCALE_CONNECTIONS" \
    --logged-in "$SCALE_LOGGED_IN" --hold "$SCALE_HOLD" --watch "ours=$OPID" \
    --gc-log "$STATE/ours/stdout.log" --label scale --json "$OUT/runs/scale.json" 2>&1 | tee "$OUT/runs/scale.txt" >&2 || rc=$?
  [ "$rc" = 0 ] || log "warning: the scale run exited with status $rc"
  cp "$STATE/ours/stdout.log" "$OUT/ours-trace-gc.txt" 2>/dev/null || true
  "$PYTHON" "$BENCH_DIR/report.py" scale "$OUT" | tee "$OUT/summary.md"
  log "results in $OUT"
  exit "$rc"
fi

# --- scale-out mode ------------------------------------------------------------------------------
if [ "$MODE" = scaleout ]; then
  SO_WATCH=(--watch "dovecot=$DPID" --watch "ours=$OPID" --watch "ours2=$O2PID" --watch "haproxy=$HPID")
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in "one=$HONEPORT" "roundrobin=$HRRPORT" "source=$HSRCPORT"; do
      name="so_${t%%=*}_r$r"
      # start each row from empty pools, so no row inherits the previous one's cache
      for c in "$STATE/ours/imapproxy.conf" "$STATE/ours2/imapproxy.conf"; do
        node "$REPO/bin/imapproxyctl" -f "$c" flush > /dev/null 2>&1 || log "flush of $c failed"
      done
      rc=0
      timeout --kill-after=10 $((WEB_W + WEB_D + 40)) "${LOADGEN[@]}" --port "${t#*=}" -c "$SO_CLIENTS" \
        -d "$WEB_D" --warmup "$WEB_W" --source-ips "$SO_SOURCES" "${SO_WATCH[@]}" --label "$name" \
        --json "$OUT/runs/$name.json" > "$OUT/runs/$name.txt" 2>&1 || rc=$?
      log "$name: $(sed -n 2p "$OUT/runs/$name.txt" | sed 's/^ *//')$([ "$rc" = 0 ] || echo " (exit $rc)")"
      for p in "$OPID" "$O2PID" "$HPID" "$DPID"; do alive "$p" || die "pid $p died during $name"; done
      sleep "$PAUSE"
    done
  done
  "$PYTHON" "$BENCH_DIR/report.py" scaleout "$OUT" | tee "$OUT/summary.md"
  log "results in $OUT"
  exit 0
fi

# --- smoke check: every target completes a webmail iteration --------------------------------------
for t in "direct=$DPORT" "c=$CPORT" "ours=$OPORT"; do
  timeout --kill-after=5 60 "${LOADGEN[@]}" --port "${t#*=}" -c 1 -d 1 --label "smoke-${t%%=*}" \
    > "$OUT/smoke-${t%%=*}.txt" 2>&1 || { cat "$OUT/smoke-${t%%=*}.txt" >&2; die "smoke check against ${t%%=*} failed"; }
done

# --- the matrix -------------------------------------------------------------------------------------
WATCH=(--watch "dovecot=$DPID" --watch "c=$CPID" --watch "ours=$OPID")
[ -n "$BUSY_PID" ] && WATCH+=(--watch "busy=$BUSY_PID")
TARGETS=()
for t in "direct=$DPORT" "c=$CPORT" "ours=$OPORT"; do
  case " $TARGET_NAMES " in *" ${t%%=*} "*) TARGETS+=("$t") ;; esac
done
[ ${#TARGETS[@]} -gt 0 ] || die "BENCH_TARGETS selects no target"
QUIET_SPENT=0
wait_quiet() { # bounded: until processes outside this bench use < QUIET_PCT % for 1 s
  local limit=$QUIET_WAIT waited
  [ $((QUIET_BUDGET - QUIET_SPENT)) -lt "$limit" ] && limit=$((QUIET_BUDGET - QUIET_SPENT))
  [ "$limit" -gt 0 ] || return 0
  waited="$("$PYTHON" "$BENCH_DIR/quiet.py" "$QUIET_PCT" "$limit" "$DPID" "$CPID" "$OPID" "$CATCHER_PID" "$BUSY_PID")" || return 0
  set -- $waited
  QUIET_SPENT=$((QUIET_SPENT + $1))
  [ "$1" -gt 0 ] && log "waited $1 s for other processes to calm down (now ${2} % of a core)"
  return 0
}
rotated() { # targets in an order that rotates with the round, so no target always runs first
  local r=$1 n=${#TARGETS[@]} i
  for ((i = 0; i < n; i++)); do echo "${TARGETS[$(((i + r) % n))]}"; done
}
RETRY_SPENT=0
run_one() { # run_one NAME ARGS...
  local name="$1" rc attempt=0 other t0; shift
  local limit=$((WEB_W + WEB_D + 40))
  while :; do
    wait_quiet
    rc=0; t0=$SECONDS
    timeout --kill-after=10 "$limit" "${LOADGEN[@]}" "$@" "${WATCH[@]}" --label "$name" --json "$OUT/runs/$name.json" \
      > "$OUT/runs/$name.txt" 2>&1 || rc=$?
    alive "$OPID" || die "ours (pid $OPID) died during $name; log tail: $(tail -n 5 "$STATE/ours/stderr.log")"
    alive "$CPID" || die "c-imapproxyd (pid $CPID) died during $name"
    alive "$DPID" || die "dovecot (pid $DPID) died during $name"
    other="$("$PYTHON" -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["resources"]["other_procs_cpu_pct"]))' \
      "$OUT/runs/$name.json" 2>/dev/null || echo 0)"
    log "$name: $(sed -n 2p "$OUT/runs/$name.txt" | sed 's/^ *//')$([ "$rc" = 0 ] || echo " (exit $rc)"); other processes ${other} %"
    sleep "$PAUSE"
    [ "$other" -gt "$MAX_OTHER" ] && [ "$attempt" -lt "$RETRIES" ] && [ "$RETRY_SPENT" -lt "$RETRY_BUDGET" ] || break
    attempt=$((attempt + 1))
    RETRY_SPENT=$((RETRY_SPENT + SECONDS - t0))
    mv "$OUT/runs/$name.json" "$OUT/runs/$name.disturbed$attempt.json"
    mv "$OUT/runs/$name.txt" "$OUT/runs/$name.disturbed$attempt.txt"
    log "$name: disturbed by other processes (${other} % of a core > ${MAX_OTHER} %): running it again"
  done
}

for ((r = 1; r <= ROUNDS; r++)); do
  for c in $CONCURRENCIES; do
    for client in $CLIENTS; do
      qa=(); [ "$client" = quickack ] && qa=(--quickack)
      while read -r t; do
        run_one "web_c${c}_${client}_${t%%=*}_r$r" --port "${t#*=}" -c "$c" -d "$WEB_D" --warmup "$WEB_W" ${qa[@]+"${qa[@]}"}
      done < <(rotated "$r")
    done
  done
  for c in $THR_CONCURRENCIES; do
    while read -r t; do
      run_one "bulk_c${c}_normal_${t%%=*}_r$r" --mode throughput --port "${t#*=}" -c "$c" -d "$THR_D" --warmup "$THR_W"
    done < <(rotated "$r")
  done
done

echo "loadavg after: $(cat /proc/loadavg)" | tee -a "$OUT/env.txt" >&2
echo "ours after the run: $(grep -E '^(VmRSS|VmHWM)' "/proc/$OPID/status" | tr -s ' \t\n' ' ')" | tee -a "$OUT/env.txt" >&2
# Memory given back after the load (issue 19: under 80 MB within a minute): VmRSS once a
# second for 60 s with no client connected. The busy processes stop first: they are load too.
stop_pid "$BUSY_PID" busy tree; BUSY_PID=""
log "sampling ours' RSS for 60 s after the load"
"$PYTHON" "$BENCH_DIR/after_load.py" "$OPID" 60 > "$OUT/after-load.json"
echo "ours after the load: $("$PYTHON" "$BENCH_DIR/after_load.py" --describe "$OUT/after-load.json")" | tee -a "$OUT/env.txt" >&2
"$PYTHON" "$BENCH_DIR/report.py" matrix "$OUT" > "$OUT/summary.md"
cat "$OUT/summary.md"
log "results in $OUT"
