#!/usr/bin/env bash
# Writes Mosquitto's password and ACL files from KREKI's MQTT device registry, then makes the
# running broker reload them (SIGHUP). Run after devices are registered or revoked (a cron job or
# a systemd timer every minute is enough: a revoked device's panics are refused by KREKI at once,
# the broker refuses its login from the next sync).
#
#   KREKI_MQTT__PASSWORD=... deploy/mosquitto/sync-credentials.sh [DIR] [PIDFILE] [KREKI]
#
# DIR (default /etc/mosquitto/kreki) gets `passwd` and `acl`, as deploy/mosquitto/mosquitto.conf
# expects; PIDFILE (default /run/mosquitto/mosquitto.pid) names the broker to reload; KREKI is the
# binary (default `kreki` on PATH; not an environment variable: `KREKI_*` ones are configuration). The files
# hold only Mosquitto `$7$` hashes; they are made readable by the `mosquitto` group when it exists.
# EMQX: import the same `username:hash` lines into its built-in database (PBKDF2, SHA-512, 101
# iterations) and express the ACL rules as its authorization rules.
set -euo pipefail
dir="${1:-/etc/mosquitto/kreki}"
pidfile="${2:-/run/mosquitto/mosquitto.pid}"
kreki="${3:-kreki}"

mkdir -p "$dir"
"$kreki" mqtt sync-credentials --password-file "$dir/passwd" --acl-file "$dir/acl"
if getent group mosquitto >/dev/null; then
  chgrp mosquitto "$dir/passwd" "$dir/acl"
fi
if [[ -s "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill -HUP "$(cat "$pidfile")"
  echo "reloaded the broker (pid $(cat "$pidfile"))"
else
  echo "no running broker at $pidfile: start it with mosquitto -c deploy/mosquitto/mosquitto.conf"
fi
