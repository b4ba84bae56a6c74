#!/usr/bin/env bash
# The WebSocket benchmarks of realtime/BENCHMARKS.md, side by side in one run:
#   1. idle connections held, server memory per connection: KREKI's hub vs the Node `ws` relay;
#   2. fan-out latency: KREKI publish on instance A -> Redis -> sockets on instance B, and the
#      Node relay (one sender socket -> relay -> sockets), same client code.
#
#   realtime/benches/run.sh [COUNT...]        # default: 10000 50000
#   LAT_USERS=1000 LAT_MESSAGES=100 PROFILE=debug|release realtime/benches/run.sh 10000
#   BASE_BENCH=/path/to/older/ws_bench PROFILE=release realtime/benches/run.sh none
#
# `none` skips the idle-connection part. WS_BENCH: use this ws_bench instead of building one. BASE_BENCH: a ws_bench built from older code (e.g.
# `git archive <commit>` built with `cargo build --release -p kreki-realtime --example ws_bench`),
# measured in the same run as `base` for the same latency benchmark.
#
# Loopback only. Each count needs that many open files in the server and in the client process:
# a count above `ulimit -n` (raised to the hard limit here) is reported as skipped, not run.
# Every phase is bounded in time by the client (ws_bench) and by `timeout` here.
set -euo pipefail
cd "$(dirname "$0")/../.."
counts=("$@")
[ ${#counts[@]} -eq 0 ] && counts=(10000 50000)
profile=${PROFILE:-debug}
lat_users=${LAT_USERS:-1000}
lat_messages=${LAT_MESSAGES:-100}
target=${CARGO_TARGET_DIR:-target}

flag=()
[ "$profile" = release ] && flag=(--release)
if [ -n "${WS_BENCH:-}" ]; then
  bench=$WS_BENCH # built already
else
  cargo build -q "${flag[@]}" -p kreki-realtime --example ws_bench
  bench="$target/$profile/examples/ws_bench"
fi
(cd realtime/benches/node-ws && npm ci --no-audit --no-fund --silent)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)

work=$(mktemp -d)
cleanup() {
  exec 3>&- 2>/dev/null || true
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$bench" keygen "$work/key.pem"

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg), profile $profile, ulimit -n $limit"
echo "# node $(node --version), ws $(node -p "require('./realtime/benches/node-ws/node_modules/ws/package.json').version"), $(redis-server --version | cut -d' ' -f1-3)"

# Starts "$@" with its stdin on fd 3 (closing fd 3 stops it); sets server_pid and server_out.
start_server() {
  rm -f "$work/in" && mkfifo "$work/in"
  server_out="$work/out.$RANDOM"
  "$@" <"$work/in" >"$server_out" &
  server_pid=$!
  exec 3>"$work/in"
  for _ in $(seq 100); do
    grep -q '^listening ' "$server_out" && return 0
    sleep 0.1
  done
  echo "server did not start: $*" >&2
  return 1
}
stop_server() {
  exec 3>&-
  timeout 20 tail --pid="$server_pid" -f /dev/null || kill "$server_pid"
}

for count in "${counts[@]}"; do
  [ "$count" = none ] && continue
  if [ $((count + 64)) -gt "$limit" ]; then
    echo "hold count=$count skipped: needs $((count + 64)) open files per process, ulimit -n is $limit (hard limit)"
    continue
  fi
  start_server "$bench" serve "$work/key.pem"
  addr=$(sed -n 's/^listening //p' "$server_out")
  printf 'kreki  '
  timeout 300 "$bench" hold "ws://$addr/v1/ws" "$server_pid" "$count" "$work/key.pem"
  stop_server
  start_server node realtime/benches/node-ws/relay.js 0
  port=$(sed -n 's/^listening //p' "$server_out")
  printf 'nodews '
  timeout 300 "$bench" hold "ws://127.0.0.1:$port/" "$server_pid" "$count"
  stop_server
done

# A Redis of this run's own, so other users of the machine's Redis do not share its queue.
redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
redis_pid=$!
sleep 0.5
echo "# redis round trip now (redis-cli --latency, 3 s): $(timeout 4 redis-cli -p "$redis_port" --latency -i 3 --raw 2>/dev/null | tail -1) (min max avg samples, ms)"
printf 'kreki  '
timeout 300 "$bench" latency "$work/key.pem" "redis://127.0.0.1:$redis_port" "$lat_users" "$lat_messages"
if [ -n "${BASE_BENCH:-}" ]; then
  printf 'base   '
  timeout 300 "$BASE_BENCH" latency "$work/key.pem" "redis://127.0.0.1:$redis_port" "$lat_users" "$lat_messages"
fi
start_server node realtime/benches/node-ws/relay.js 0
port=$(sed -n 's/^listening //p' "$server_out")
printf 'nodews '
timeout 300 "$bench" relay-latency "ws://127.0.0.1:$port/" "$lat_users" "$lat_messages"
stop_server
