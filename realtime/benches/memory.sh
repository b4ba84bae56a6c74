#!/usr/bin/env bash
# Resident memory of a real `kreki serve` (BENCHMARKS.md, "Real time under overload"), for each
# binary given, one after the other in the same run, against the same load generator:
#   1. `steady`: 2,000 volunteer sockets and panics at 400/s for 30 s (`kreki loadtest steady` of
#      the first binary), then the server's RSS right after the run and 15 s later (what it keeps);
#   2. `idle`: 10,000 idle sockets (`ws_bench hold`, one user each), RSS before and after.
#
#   realtime/benches/memory.sh KREKI_BINARY [KREKI_BINARY...]
#   WS_BENCH=path/to/ws_bench RATE=400 VOLUNTEERS=2000 DURATION_S=30 IDLE=10000 realtime/benches/memory.sh ...
#
# Environment: REPORTS_DIR (keep each load test's report there), BENCH_DATABASE_URL (an admin URL,
# default postgres://postgres@127.0.0.1:5432/postgres; a scratch database is created next to it per
# run and dropped after), WS_BENCH (default: the release build of realtime/examples/ws_bench.rs,
# built here). Needs PostgreSQL + PostGIS (deploy/local-services.sh) and `ulimit -Hn` above IDLE
# plus a few hundred.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 KREKI_BINARY [KREKI_BINARY...]" >&2; exit 2; }
binaries=("$@")
rate=${RATE:-400}
volunteers=${VOLUNTEERS:-2000}
duration_s=${DURATION_S:-30}
idle=${IDLE:-10000}
admin=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# `kreki` reads every KREKI_* variable as configuration and refuses unknown ones.
unset KREKI_BENCH_DATABASE_URL KREKI_PG_PORT KREKI_BROWSER_PG
target=${CARGO_TARGET_DIR:-target}
if [ -z "${WS_BENCH:-}" ]; then
  cargo build -q --release -p kreki-realtime --example ws_bench
  WS_BENCH="$target/release/examples/ws_bench"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
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
  rm -rf "$work"
}
trap cleanup EXIT

"${binaries[0]}" keys generate --out "$work/key.pem" >/dev/null
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# Starts "$1" serve on a scratch database; sets server_pid and port.
start() {
  local kreki=$1 name=$2
  db="kreki_memory_$$_$name"
  psql -q "$admin" -c "CREATE DATABASE $db TEMPLATE template1" >/dev/null
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export KREKI_DATABASE__URL="${admin%/*}/$db"
  export KREKI_AUTH__SIGNING_KEY_FILE="$work/key.pem"
  export KREKI_SERVER__LISTEN="127.0.0.1:$port"
  export KREKI_REALTIME__MAX_CONNECTIONS=20000
  export KREKI_DATABASE__MAX_CONNECTIONS="${KREKI_DATABASE__MAX_CONNECTIONS:-32}"
  export KREKI_DISPATCH__REST_PERIOD_S="${REST_S:-30}"
  export KREKI_LOG__FILTER=error
  "$kreki" serve --migrate >"$work/server-$name.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server-$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "kreki did not get ready" >&2
  exit 1
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg), ulimit -n $(ulimit -n)"
for index in "${!binaries[@]}"; do
  kreki=${binaries[$index]}
  label="$index:$(basename "$kreki")"
  start "$kreki" "steady$index"
  before=$(rss_kib "$server_pid")
  "${binaries[0]}" loadtest steady --url "http://127.0.0.1:$port" --server-pid "$server_pid" \
    --volunteers "$volunteers" --rate "$rate" --duration-s "$duration_s" --settle-s 60 \
    >"$work/loadtest-$index.txt" 2>&1 || true
  after=$(rss_kib "$server_pid")
  peak=$(hwm_kib "$server_pid")
  sleep 15
  kept=$(rss_kib "$server_pid")
  offers=$(grep -E 'first .offer. frame|Checks FAILED|panics not acknowledged' "$work/loadtest-$index.txt" | head -3 | tr -s ' ' | tr '\n' ';')
  [ -n "${REPORTS_DIR:-}" ] && cp "$work/loadtest-$index.txt" "$REPORTS_DIR/loadtest-$index.txt"
  echo "steady binary=$label volunteers=$volunteers rate=$rate duration_s=$duration_s rss_start_mib=$((before / 1024)) rss_after_run_mib=$((after / 1024)) rss_15s_later_mib=$((kept / 1024)) peak_mib=$((peak / 1024)) load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" loadtest: $offers"
  stop_server
  drop_db

  start "$kreki" "idle$index"
  printf 'idle   binary=%s ' "$label"
  timeout 300 "$WS_BENCH" hold "ws://127.0.0.1:$port/v1/ws" "$server_pid" "$idle" "$work/key.pem"
  stop_server
  drop_db
done
