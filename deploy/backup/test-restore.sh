#!/usr/bin/env bash
# The point-in-time restore test (deploy/DR.md): a PostgreSQL with WAL archiving to a pgBackRest
# repository, a full backup, a real `kreki serve` acknowledging panics (201 after the commit)
# before and after a chosen instant T, then a restore of the repository to T into a second
# PostgreSQL on another port. Passes when every alert acknowledged before T is there, with the
# timeline event committed with it, and none acknowledged after T is.
#
#   deploy/backup/test-restore.sh [path/to/kreki]   (default $CARGO_TARGET_DIR/debug/kreki)
# Environment: KREKI_PITR_SOURCE_PORT (default 5444) and KREKI_PITR_RESTORE_PORT (default 5445),
# both on 127.0.0.1. Installs Debian's pgbackrest when missing (root, or sudo). Everything else
# (clusters, repository, logs) lives in a temporary directory removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
kreki="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/kreki-target}/debug/kreki}"
kreki="$(realpath "$kreki")"
source_port="${KREKI_PITR_SOURCE_PORT:-5444}"
restore_port="${KREKI_PITR_RESTORE_PORT:-5445}"
before=6 after=6

say() { printf 'restore test: [%ss] %s\n' "$SECONDS" "$*"; }
die() {
  printf 'restore test: FAILED: %s\n' "$*" >&2
  exit 1
}
sudo_if_needed() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }

if ! command -v pgbackrest >/dev/null 2>&1; then
  say "installing pgbackrest (Debian)"
  if ! sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbackrest >/dev/null 2>&1; then
    sudo_if_needed apt-get update -q >/dev/null
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbackrest >/dev/null
  fi
fi
pg_bin=$(find /usr/lib/postgresql -path '*/bin/postgres' | sort -V | tail -n 1 | xargs dirname)
[[ -x $pg_bin/initdb ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"

# The servers run as `postgres` when this runs as root (initdb refuses root), else as this user.
# In memory where there is room (thousands of small files: a busy disk makes this slow).
scratch=/tmp
if [[ -d /dev/shm ]] && (($(df -Pk /dev/shm | awk 'NR == 2 { print $4 }') > 1048576)); then
  scratch=/dev/shm
fi
work=$(mktemp -d "$scratch/kreki-pitr.XXXXXX")
as_pg=()
pg_user=$(id -un)
if ((EUID == 0)); then
  as_pg=(runuser -u postgres --)
  pg_user=postgres
  chown postgres: "$work"
fi
run_pg() { "${as_pg[@]}" "$@"; }
kreki_pid=""
cleanup() {
  [[ -n $kreki_pid ]] && kill "$kreki_pid" 2>/dev/null && wait "$kreki_pid" 2>/dev/null
  for data in "$work/source" "$work/restored"; do
    [[ -f $data/postmaster.pid ]] && run_pg "$pg_bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

for port in "$source_port" "$restore_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is in use (set KREKI_PITR_SOURCE_PORT / KREKI_PITR_RESTORE_PORT)"
  fi
done

config="$work/pgbackrest.conf"
run_pg tee "$config" >/dev/null <<EOF
[global]
repo1-path=$work/repo
repo1-retention-full=2
log-path=$work/log
lock-path=$work/lock
spool-path=$work/spool
compress-type=lz4
process-max=2
start-fast=y
log-level-console=warn
log-level-file=off

[kreki]
pg1-path=$work/source
pg1-port=$source_port
pg1-socket-path=$work
pg1-user=$pg_user
EOF
br() { run_pg pgbackrest --config="$config" --stanza=kreki "$@"; }
psql_at() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U "$pg_user" -d "$2" -c "$3"; }

say "source PostgreSQL on :$source_port with WAL archiving to a pgBackRest repository"
run_pg "$pg_bin/initdb" -D "$work/source" -U "$pg_user" --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
run_pg tee -a "$work/source/postgresql.conf" >/dev/null <<EOF
port = $source_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
wal_level = replica
archive_mode = on
archive_command = 'pgbackrest --config=$config --stanza=kreki archive-push %p'
synchronous_commit = on
fsync = on
EOF
run_pg "$pg_bin/pg_ctl" -D "$work/source" -l "$work/source.log" -w start >/dev/null
br stanza-create
br check
psql_at "$source_port" postgres "create database kreki"
psql_at "$source_port" kreki "create extension postgis"
database_url="postgres://$pg_user@127.0.0.1:$source_port/kreki"
# kreki reads every KREKI_* variable as configuration: start it with only the ones given here.
# One citizen presses a dozen panics within the minute: above the default panic limit (10).
kreki_env() { env -i PATH="$PATH" HOME="$HOME" "$@"; }
kreki_env KREKI_DATABASE__URL="$database_url" "$kreki" migrate >/dev/null

say "full backup"
br --type=full backup

say "a real kreki acknowledges $before panics before the target instant and $after after it"
kreki_env "$kreki" keys generate --out "$work/signing-key.pem" >/dev/null
http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$http_port"
# `env` execs kreki, so $! is kreki's own pid (through the kreki_env function it would be a
# subshell's, and killing that would leave kreki serving after the script).
env -i PATH="$PATH" HOME="$HOME" KREKI_DATABASE__URL="$database_url" \
  KREKI_AUTH__SIGNING_KEY_FILE="$work/signing-key.pem" \
  KREKI_SERVER__LISTEN="127.0.0.1:$http_port" KREKI_LOG__FILTER=warn \
  KREKI_DISPATCH__PANICS_PER_MINUTE=1000 \
  "$kreki" serve >"$work/kreki.log" 2>&1 &
kreki_pid=$!
for _ in $(seq 300); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null || die "kreki did not become ready: $(curl -sS "$base/readyz"; tail -n 5 "$work/kreki.log")"

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
curl -fsS -X POST "$base/v1/auth/register" -H 'content-type: application/json' \
  -d '{"phone":"0813-9999-0101","password":"kata-sandi-aman","name":"Warga Uji"}' >/dev/null
token=$(curl -fsS -X POST "$base/v1/auth/login" -H 'content-type: application/json' \
  -d '{"login":"081399990101","password":"kata-sandi-aman"}' | json_field access_token)

# One panic, answered 201 (committed, synchronous_commit on): its alert id.
panic() {
  local lat=$1 answer status
  answer=$(curl -sS -w '\n%{http_code}' -X POST "$base/v1/alerts" -H "authorization: Bearer $token" \
    -H "idempotency-key: $(python3 -c 'import uuid; print(uuid.uuid4())')" -H 'content-type: application/json' \
    -d "{\"kind\":\"medical\",\"location\":{\"lat\":$lat,\"lng\":106.8272,\"accuracy_m\":10}}")
  status=${answer##*$'\n'}
  [[ $status == 201 ]] || die "panic answered $status: ${answer%$'\n'*}"
  printf '%s' "${answer%$'\n'*}" | json_field id
}

acked_before=()
for i in $(seq "$before"); do
  # 1.1 km apart, so no press counts as a repeat of an open alert nearby.
  acked_before+=("$(panic "$(printf -- '-6.%02d' $((10 + i)))")")
done
sleep 0.5
target=$(date -u '+%Y-%m-%d %H:%M:%S.%6N+00')
sleep 0.5
acked_after=()
for i in $(seq "$after"); do
  acked_after+=("$(panic "$(printf -- '-6.%02d' $((30 + i)))")")
done
kill "$kreki_pid"
wait "$kreki_pid" 2>/dev/null || true
kreki_pid=""
# Close the current WAL segment and wait until it is in the repository.
psql_at "$source_port" postgres "select pg_switch_wal()" >/dev/null
br check
run_pg "$pg_bin/pg_ctl" -D "$work/source" -m fast -w stop >/dev/null

say "restore to $target into a second PostgreSQL on :$restore_port (the source is stopped)"
run_pg mkdir -m 700 "$work/restored"
br --pg1-path="$work/restored" --type=time --target="$target" --target-action=promote restore
# The restored server keeps the source's settings but its own port, and archives nothing.
run_pg tee -a "$work/restored/postgresql.auto.conf" >/dev/null <<EOF
port = $restore_port
archive_mode = off
EOF
run_pg "$pg_bin/pg_ctl" -D "$work/restored" -l "$work/restored.log" -w -t 60 start >/dev/null ||
  die "the restored server did not start: $(tail -n 20 "$work/restored.log")"
for _ in $(seq 100); do
  [[ $(psql_at "$restore_port" kreki "select pg_is_in_recovery()") == f ]] && break
  sleep 0.1
done
[[ $(psql_at "$restore_port" kreki "select pg_is_in_recovery()") == f ]] ||
  die "the restored server is still recovering: $(tail -n 20 "$work/restored.log")"

present() {
  psql_at "$restore_port" kreki "select count(*) from dispatch.alerts a
    where a.id = '$1'
      and exists (select 1 from dispatch.alert_events e where e.alert_id = a.id and e.type = 'created')"
}
for id in "${acked_before[@]}"; do
  [[ $(present "$id") == 1 ]] || die "alert $id, acknowledged before $target, is missing (or lacks its 'created' timeline event)"
done
for id in "${acked_after[@]}"; do
  [[ $(psql_at "$restore_port" kreki "select count(*) from dispatch.alerts where id = '$id'") == 0 ]] ||
    die "alert $id, acknowledged after $target, was restored"
done
total=$(psql_at "$restore_port" kreki "select count(*) from dispatch.alerts")
[[ $total == "$before" ]] || die "the restored database holds $total alerts, expected $before"

# The monitoring views restore too, and pg_monitor reads them but not the tables behind them.
psql_at "$restore_port" kreki "create role kreki_restore_check; grant pg_monitor to kreki_restore_check" >/dev/null
psql_at "$restore_port" kreki "set role kreki_restore_check; select outbox_pending from dispatch.monitoring_backlog" >/dev/null ||
  die "pg_monitor cannot read dispatch.monitoring_backlog"
if psql_at "$restore_port" kreki "set role kreki_restore_check; select count(*) from dispatch.alerts" >/dev/null 2>&1; then
  die "pg_monitor reads dispatch.alerts: the views must be the only way in"
fi
say "ok: all $before alerts acknowledged before $target restored with their timeline, none of the $after after it"
