#!/usr/bin/env bash
# The end-to-end dispatch benchmark of BENCHMARKS.md ("Dispatch end to end (issue 3)"): for each
# run, a scratch database, a real `kreki serve` on it, then `kreki loadtest` against it, its tables,
# and clean-up (the server this script started is stopped, the scratch database dropped).
#
#   scripts/bench-dispatch.sh [steady|surge|both] [kreki loadtest options...]
#   PROFILE=release scripts/bench-dispatch.sh steady --duration-s 60
#   scripts/bench-dispatch.sh surge --volunteers 10000 --panics 5000 --within-s 10
#
# Environment: PROFILE (debug, the default, or release), KREKI_BENCH_DATABASE_URL (an admin URL,
# default postgres://postgres@127.0.0.1:5432/postgres; the scratch database is created next to
# it), REST_S (the server's dispatch.rest_period_s, default 30), KREKI_DATABASE__MAX_CONNECTIONS
# (the server's pool, default 32 here: 16 waves at once), KEEP_LOG=1 (print the server's
# log at the end). Needs PostgreSQL + PostGIS (deploy/local-services.sh) and `ulimit -Hn` above
# the volunteer count plus ~600 (each socket is one open file in the client and one in the server).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-both}
shift || true
case "$mode" in steady | surge | both) ;; *)
  echo "usage: $0 [steady|surge|both] [kreki loadtest options...]" >&2
  exit 2
  ;;
esac
profile=${PROFILE:-debug}
target=${CARGO_TARGET_DIR:-target}
flag=()
[ "$profile" = release ] && flag=(--release)
cargo build -q "${flag[@]}" --bin kreki
kreki="$(pwd)/$target/$profile/kreki"
[ -x "$kreki" ] || kreki="$target/$profile/kreki"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
admin=${KREKI_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
work=$(mktemp -d)
db=""
server_pid=""

stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    timeout 30 tail --pid="$server_pid" -f /dev/null || kill -KILL "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
drop_db() {
  if [ -n "$db" ]; then
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
    db=""
  fi
}
cleanup() {
  stop_server
  drop_db
  [ "${KEEP_LOG:-}" = 1 ] && cat "$work"/server-*.log 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$kreki" keys generate --out "$work/key.pem" >/dev/null

run() {
  local which=$1
  shift
  db="kreki_loadtest_$$_$which"
  psql -q "$admin" -c "CREATE DATABASE $db TEMPLATE template1" >/dev/null
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export KREKI_DATABASE__URL="${admin%/*}/$db"
  export KREKI_AUTH__SIGNING_KEY_FILE="$work/key.pem"
  export KREKI_SERVER__LISTEN="127.0.0.1:$port"
  export KREKI_REALTIME__MAX_CONNECTIONS=20000
  # 32 connections: the dispatcher then runs 16 waves at once (half the pool; see BENCHMARKS.md).
  export KREKI_DATABASE__MAX_CONNECTIONS="${KREKI_DATABASE__MAX_CONNECTIONS:-32}"
  export KREKI_DISPATCH__REST_PERIOD_S="${REST_S:-30}"
  export KREKI_LOG__FILTER=warn
  "$kreki" serve --migrate >"$work/server-$which.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server-$which.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), profile $profile, ulimit -n $(ulimit -n), rest_period_s ${REST_S:-30}"
  local status=0
  "$kreki" loadtest "$which" --server-pid "$server_pid" "$@" || status=$?
  stop_server
  drop_db
  return "$status"
}

status=0
case "$mode" in
  steady | surge) run "$mode" "$@" || status=$? ;;
  both)
    run steady "$@" || status=$?
    run surge "$@" || status=$?
    ;;
esac
exit "$status"
