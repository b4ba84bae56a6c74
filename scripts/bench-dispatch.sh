#!/usr/bin/env bash
# The end-to-end dispatch benchmark of BENCHMARKS.md ("Dispatch end to end"): for each run, a
# scratch database, a real `kreki serve` on it, then `kreki loadtest` against it, its tables, and
# clean-up (the server this script started is stopped, the scratch database dropped).
#
#   scripts/bench-dispatch.sh [steady|surge|throughput|both|all] [kreki loadtest options...]
#   scripts/bench-dispatch.sh ab <old-commit> [steady|surge|throughput|both|all] [options...]
#
#   PROFILE=release scripts/bench-dispatch.sh steady --rate 100 --duration-s 30
#   scripts/bench-dispatch.sh surge --volunteers 10000 --panics 5000 --within-s 10
#   scripts/bench-dispatch.sh throughput --from-rate 100 --step-rate 100 --to-rate 2000 --step-s 5
#   scripts/bench-dispatch.sh ab 5b8a837 steady --volunteers 10000 --rate 100 --duration-s 30
#
# `both` is steady then surge; `all` is steady, throughput, then surge. The options go to every
# run of the mode(s) named, so give only the ones they share when naming several.
#
# `ab <old-commit>` is the A/B: it builds the old commit's `kreki` in a temporary `git worktree`
# (same CARGO_TARGET_DIR, so dependencies are compiled once) and this checkout's `kreki`, then for
# each run serves the old build (A) and the new build (B) one after the other, each on its own
# fresh scratch database seeded the same way (same options, same seed); it prints both reports,
# then a side-by-side table of the two. The load generator is this checkout's, except against an
# old build whose own `kreki loadtest` exists (before the generator moved to the sim crate): the
# new generator seeds today's schema (offer policies, roles), which an old server's database does
# not have, so each build is driven by the generator of its own commit. The profile defaults to
# release here, for figures.
#
# Each report names the server build's commit and the machine's load average. Environment:
# PROFILE (debug, the default, or release; release for `ab`), KREKI_BENCH_DATABASE_URL (an admin
# URL, default postgres://postgres@127.0.0.1:5432/postgres; the scratch databases are created next
# to it), REST_S (the server's dispatch.rest_period_s, default 30), KREKI_DATABASE__MAX_CONNECTIONS
# (the server's pool, default 32 here: 16 waves at once), KEEP_LOG=1 (print the servers' logs at
# the end), KREKI_BIN (a release `kreki` of this checkout built already: not rebuilt), KREKI_OLD_BIN
# (the same for the old commit of `ab`). Needs PostgreSQL + PostGIS (deploy/local-services.sh) and `ulimit -Hn` above the
# volunteer count plus ~600 (each socket is one open file in the client and one in the server).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: $0 [ab <old-commit>] [steady|surge|throughput|both|all] [kreki loadtest options...]" >&2
  exit 2
}

old=""
if [ "${1:-}" = ab ]; then
  [ $# -ge 2 ] || usage
  old=$2
  shift 2
  git rev-parse --verify -q "$old^{commit}" >/dev/null || {
    echo "$0: $old is not a commit of this repository" >&2
    exit 2
  }
fi
mode=${1:-both}
shift || true
case "$mode" in
  steady | surge | throughput) modes=("$mode") ;;
  both) modes=(steady surge) ;;
  all) modes=(steady throughput surge) ;;
  *) usage ;;
esac
default_profile=debug
[ -n "$old" ] && default_profile=release
profile=${PROFILE:-$default_profile}
case "$profile" in debug | release) ;; *)
  echo "$0: PROFILE must be debug or release" >&2
  exit 2
  ;;
esac
flag=()
[ "$profile" = release ] && flag=(--release)
# Absolute, so the old commit's worktree builds into the same directory.
CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export CARGO_TARGET_DIR
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
admin=${KREKI_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
prebuilt=${KREKI_BIN:-}
prebuilt_old=${KREKI_OLD_BIN:-}
# Every KREKI_* variable is configuration to `kreki`, which refuses keys it does not know.
unset KREKI_BENCH_DATABASE_URL KREKI_BIN KREKI_OLD_BIN
work=$(mktemp -d)
old_tree=""
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
  [ -n "$old_tree" ] && git worktree remove --force "$old_tree" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# build <checkout> <copy-to>: `kreki` of that checkout, copied out of the shared target directory.
# Cargo names a workspace crate's artifacts after its path inside the workspace, so every checkout
# of this repository (the old commit's worktree, other engineers' worktrees) writes the same files
# in a shared CARGO_TARGET_DIR, and one checkout's older sources can look fresh against another's
# newer build. Touching this checkout's sources first makes cargo rebuild its own crates (the
# dependencies stay compiled once).
build() {
  (cd "$1" && git ls-files -z -- '*.rs' | xargs -0 touch && cargo build -q "${flag[@]}" --bin kreki)
  cp "$CARGO_TARGET_DIR/$profile/kreki" "$2"
}

new_commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- . 2>/dev/null || new_commit="$new_commit-dirty"
if [ -n "$old" ]; then
  old_commit=$(git rev-parse --short "$old^{commit}")
  old_tree="$work/old-checkout"
  git worktree add -q --detach "$old_tree" "$old"
  echo "# building A (old, $old_commit) and B (new, $new_commit), profile $profile" >&2
  if [ -n "$prebuilt_old" ]; then
    # A build of the old commit made already (KREKI_OLD_BIN=path): used as it is.
    cp "$prebuilt_old" "$work/kreki-old"
  else
    build "$old_tree" "$work/kreki-old"
  fi
fi
if [ -n "$prebuilt" ]; then
  # A build of this checkout made already (KREKI_BIN=path): used as it is.
  cp "$prebuilt" "$work/kreki"
else
  build . "$work/kreki"
fi
# The load generator is always this checkout's.
kreki="$work/kreki"
"$kreki" keys generate --out "$work/key.pem" >/dev/null

# run <server binary> <server commit> <mode> <report file> [options...]: one run on a scratch
# database; its report goes to standard output and to the report file. The generator is
# $generator (this checkout's `kreki` unless set).
run() {
  local server=$1 commit=$2 which=$3 out=$4
  local generator=${generator:-$kreki}
  shift 4
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
  local log="$work/server-$which-$commit.log"
  "$server" serve --migrate >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || {
      cat "$log" >&2
      exit 1
    }
    sleep 0.1
  done
  local generated_by=$new_commit
  [ "$generator" != "$kreki" ] && generated_by="$commit (its own)"
  echo "# $(date -u +%FT%TZ) server commit $commit, load generator $generated_by, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), profile $profile, ulimit -n $(ulimit -n), rest_period_s ${REST_S:-30}"
  local status=0
  local loadtest=(loadtest "$which" --server-pid "$server_pid" --commit "$commit")
  if [ "$generator" != "$kreki" ]; then
    # An old build's own generator: the mode first, then its options; it has no --commit (its
    # report names the build itself).
    loadtest=(loadtest "$which" --server-pid "$server_pid")
  fi
  "$generator" "${loadtest[@]}" "$@" | tee "$out" ||
    status=$?
  stop_server
  drop_db
  return "$status"
}

# side_by_side <A report> <B report> <A label> <B label>: every table row of both reports, joined
# on its first cell, A's values beside B's.
side_by_side() {
  python3 - "$@" <<'PY'
import sys

def tables(path):
    rows, header, notes = {}, None, []
    order = []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.startswith("|"):
            header = None
            if line.startswith(("Highest sustained", "No step", "Checks", "Server commit", "- ")):
                notes.append(line)
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if set(line) <= set("|-"):
            continue
        if header is None:
            header = cells
            key = ("header", " / ".join(cells))
        else:
            key = (header[0], cells[0])
        if key not in rows:
            order.append(key)
        rows[key] = (header, cells)
    return rows, order, notes

a_path, b_path, a_label, b_label = sys.argv[1:5]
a, a_order, a_notes = tables(a_path)
b, b_order, b_notes = tables(b_path)
order = a_order + [key for key in b_order if key not in a]
print(f"| measure | A: {a_label} | B: {b_label} |")
print("|---|---|---|")
for key in order:
    if key[0] == "header":
        header = (a.get(key) or b.get(key))[0]
        if len(header) > 2:
            print(f"| **{header[0]}** ({' / '.join(header[1:])}) | | |")
        continue
    values = lambda rows: " / ".join(rows[key][1][1:]) if key in rows else "-"
    print(f"| {key[1]} | {values(a)} | {values(b)} |")
print()
for label, notes in ((a_label, a_notes), (b_label, b_notes)):
    for note in notes:
        print(f"{label}: {note}")
PY
}

status=0
for which in "${modes[@]}"; do
  if [ -n "$old" ]; then
    echo "## A: old build $old_commit, $which"
    old_generator="$kreki"
    if "$work/kreki-old" loadtest --help >/dev/null 2>&1; then
      old_generator="$work/kreki-old"
    fi
    if [ "$old_generator" != "$kreki" ] && ! "$old_generator" loadtest "$which" --help >/dev/null 2>&1; then
      echo "A: the old build's load generator has no \`$which\` mode: not measured" | tee "$work/a-$which.md"
    else
      generator="$old_generator" run "$work/kreki-old" "$old_commit" "$which" "$work/a-$which.md" "$@" || status=$?
    fi
    echo "## B: new build $new_commit, $which"
    run "$kreki" "$new_commit" "$which" "$work/b-$which.md" "$@" || status=$?
    echo "## $which side by side: A = $old_commit (old), B = $new_commit (new)"
    echo
    side_by_side "$work/a-$which.md" "$work/b-$which.md" "$old_commit" "$new_commit"
    echo
  else
    run "$kreki" "$new_commit" "$which" "$work/$which.md" "$@" || status=$?
  fi
done
exit "$status"
