#!/usr/bin/env bash
# Make sure the services KREKI needs for local development and tests run on this machine:
#   PostgreSQL with PostGIS on 127.0.0.1:5432 (database "kreki"), Redis on 127.0.0.1:6379,
#   Mosquitto (MQTT) on 127.0.0.1:1883.
# Installs missing Debian packages, starts what is stopped, creates what is missing.
# Safe to run again and again; when everything already runs it changes nothing and uses no apt.
#
# Usage: deploy/local-services.sh [--check]
#   --check   only report; exit 1 if something is missing or not running, change nothing.
# Environment:
#   KREKI_PG_PORT    PostgreSQL port on 127.0.0.1 (default 5432)
#   KREKI_DB_NAME    database to create, with PostGIS (default kreki)
#   KREKI_WAIT_SECS  how long to wait for each service to answer (default 30)
set -euo pipefail

readonly HOST=127.0.0.1
readonly PG_PORT="${KREKI_PG_PORT:-5432}"
readonly DB_NAME="${KREKI_DB_NAME:-kreki}"
readonly WAIT_SECS="${KREKI_WAIT_SECS:-30}"
readonly REDIS_PORT=6379
readonly MQTT_PORT=1883
readonly MOSQUITTO_CONF=/etc/mosquitto/mosquitto.conf
readonly HBA_MARK="added by KREKI deploy/local-services.sh"

CHECK=0
FAILED=0
APT_UPDATED=0
SUDO=()

usage() { sed -n '2,13s/^# \{0,1\}//p' "$0"; }

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Mark a problem in --check mode.
missing() {
  printf '%s\n' "$*"
  FAILED=1
}

# Decide how to run privileged commands; explain and stop if there is no way.
need_root() {
  if ((EUID == 0)); then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    die "$1 needs root: run this script as root, or install sudo"
  fi
}

as_root() {
  need_root "'$*'"
  "${SUDO[@]}" "$@"
}

# apt-get install, with apt-get update once per run and only when something is installed.
apt_install() {
  local log
  need_root "apt: installing $*"
  log=$(mktemp /tmp/kreki-apt.XXXXXX)
  if ((!APT_UPDATED)); then
    echo "apt: updating package lists"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      die "apt-get update failed (full output in $log)"
    fi
    APT_UPDATED=1
  fi
  echo "apt: installing $*"
  if ! as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "apt-get install $* failed (full output in $log)"
  fi
  rm -f "$log"
}

# Poll a probe function until it succeeds or WAIT_SECS pass.
wait_for() {
  local probe=$1 deadline=$((SECONDS + WAIT_SECS))
  until "$probe"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.3
  done
}

# ---------------------------------------------------------------- PostgreSQL + PostGIS

PG_ERR=""

# Run SQL as postgres over TCP; prints the rows (unaligned, tuples only).
pg_sql() {
  PGCONNECT_TIMEOUT=3 psql -X -w -q -A -t -v ON_ERROR_STOP=1 \
    -h "$HOST" -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}

# Succeeds when the server accepts postgres over TCP; otherwise leaves the error in PG_ERR.
pg_answers() {
  local out
  command -v psql >/dev/null 2>&1 || {
    PG_ERR="psql not installed"
    return 1
  }
  if out=$(pg_sql postgres 'select 1' 2>&1); then
    PG_ERR=""
    return 0
  fi
  PG_ERR=$out
  return 1
}

pg_auth_error() {
  [[ $PG_ERR == *"password authentication failed"* || $PG_ERR == *"no pg_hba.conf entry"* ||
    $PG_ERR == *"no password supplied"* || $PG_ERR == *"authentication failed"* ]]
}

# Stop waiting early when the server is up but refuses us: that will not fix itself.
pg_ready_or_refused() { pg_answers || pg_auth_error; }

pg_server_binaries() {
  local f
  for f in /usr/lib/postgresql/*/bin/postgres; do
    [[ -x $f ]] && return 0
  done
  return 1
}

newest_pg_version() {
  local d
  for d in /usr/lib/postgresql/*/bin/postgres; do
    d=${d#/usr/lib/postgresql/}
    echo "${d%%/*}"
  done | sort -V | tail -n 1
}

# "version name status" of the Debian cluster on PG_PORT, empty if none.
pg_cluster_on_port() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 0
  pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1, $2, $4; exit }'
}

tcp_open() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Put loopback trust for postgres at the top of pg_hba.conf (the first matching line wins).
pg_trust_loopback() {
  local ver=$1 name=$2 hba tmp
  hba=/etc/postgresql/$ver/$name/pg_hba.conf
  [[ -f $hba ]] || die "postgres: refuses postgres over TCP ($PG_ERR) and $hba is not there to fix"
  if as_root grep -qF "$HBA_MARK" "$hba"; then
    die "postgres: still refuses postgres from $HOST ($PG_ERR) although $hba has our trust lines; look at that file"
  fi
  tmp=$(mktemp)
  {
    echo "# Loopback TCP as postgres without password, for KREKI development and tests ($HBA_MARK)"
    echo "host    all    postgres    127.0.0.1/32    trust"
    echo "host    all    postgres    ::1/128         trust"
    echo
    as_root cat "$hba"
  } >"$tmp"
  as_root cp -p "$hba" "$hba.before-kreki"
  as_root tee "$hba" <"$tmp" >/dev/null
  rm -f "$tmp"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload
  echo "postgres: $hba did not let postgres in from $HOST without a password;" \
    "added loopback trust lines at its top (old file: $hba.before-kreki) and reloaded"
}

# Bring the server up on HOST:PG_PORT; appends what it did to PG_DONE.
pg_ensure_running() {
  local ver name status out
  if pg_answers; then
    return 0
  fi
  need_root "postgres: bringing up PostgreSQL on $HOST:$PG_PORT"
  if ! pg_server_binaries || ! command -v psql >/dev/null 2>&1 ||
    ! command -v pg_lsclusters >/dev/null 2>&1; then
    apt_install postgresql
    PG_DONE+=("installed postgresql")
  fi

  read -r ver name status <<<"$(pg_cluster_on_port)" || true
  if [[ -z ${ver:-} ]]; then
    if pg_auth_error; then
      die "postgres: the server on $HOST:$PG_PORT refuses postgres without a password (${PG_ERR%%$'\n'*})" \
        "and is not a Debian cluster of this machine; allow it in that server's pg_hba.conf or set KREKI_PG_PORT"
    fi
    if tcp_open "$HOST" "$PG_PORT"; then
      die "postgres: something listens on $HOST:$PG_PORT but does not answer as PostgreSQL" \
        "(${PG_ERR%%$'\n'*}); free the port or set KREKI_PG_PORT"
    fi
    ver=$(newest_pg_version)
    name=main
    if [[ -d /etc/postgresql/$ver/main ]]; then
      name="kreki_$PG_PORT"
    fi
    if ! out=$(as_root pg_createcluster --port "$PG_PORT" "$ver" "$name" 2>&1); then
      printf '%s\n' "$out" >&2
      die "postgres: pg_createcluster $ver $name failed"
    fi
    PG_DONE+=("created cluster $ver/$name")
    status=down
  fi
  if [[ $status == *binaries_missing* ]]; then
    apt_install "postgresql-$ver"
    PG_DONE+=("installed postgresql-$ver")
    status=down
  fi
  if [[ $status != online* ]]; then
    if ! out=$(as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start 2>&1); then
      printf '%s\n' "$out" >&2
      die "postgres: could not start cluster $ver/$name; see /var/log/postgresql/postgresql-$ver-$name.log"
    fi
    PG_DONE+=("started cluster $ver/$name")
  fi

  if ! wait_for pg_ready_or_refused; then
    die "postgres: cluster $ver/$name does not answer on $HOST:$PG_PORT after ${WAIT_SECS}s ($PG_ERR);" \
      "check listen_addresses and port in /etc/postgresql/$ver/$name/postgresql.conf and" \
      "/var/log/postgresql/postgresql-$ver-$name.log"
  fi
  if pg_auth_error; then
    pg_trust_loopback "$ver" "$name"
    PG_DONE+=("trusted loopback in pg_hba.conf")
    wait_for pg_answers ||
      die "postgres: still refuses postgres from $HOST after reload ($PG_ERR)"
  fi
}

# Version of the postgis extension installed in a database, empty if none.
postgis_in() {
  pg_sql "$1" "select extversion from pg_extension where extname = 'postgis'"
}

postgres_step() {
  PG_DONE=()
  local info vnum vstr major avail db_exists tmpl_ext db_ext
  if ((CHECK)); then
    if ! pg_answers; then
      if pg_auth_error; then
        missing "postgres: running, but refuses postgres from $HOST without a password (${PG_ERR%%$'\n'*})"
      else
        local ver name status
        read -r ver name status <<<"$(pg_cluster_on_port)" || true
        missing "postgres: NOT answering on $HOST:$PG_PORT${ver:+ (cluster $ver/$name is $status)}"
      fi
      return 0
    fi
  else
    pg_ensure_running
  fi

  info=$(pg_sql postgres "select current_setting('server_version_num'),
      split_part(current_setting('server_version'), ' ', 1),
      coalesce((select default_version from pg_available_extensions where name = 'postgis'), ''),
      exists (select 1 from pg_database where datname = '$DB_NAME')")
  IFS='|' read -r vnum vstr avail db_exists <<<"$info"
  major=$((vnum / 10000))

  if [[ -z $avail ]]; then
    if ((CHECK)); then
      missing "postgres: running ($vstr), but PostGIS is NOT installed (package postgresql-$major-postgis-3)"
      return 0
    fi
    [[ -x /usr/lib/postgresql/$major/bin/postgres ]] ||
      die "postgres: the server on $HOST:$PG_PORT ($vstr) lacks PostGIS and is not a local install" \
        "of PostgreSQL $major, so this script cannot add it"
    apt_install "postgresql-$major-postgis-3"
    PG_DONE+=("installed postgresql-$major-postgis-3")
    avail=$(pg_sql postgres "select default_version from pg_available_extensions where name = 'postgis'")
    [[ -n $avail ]] || die "postgres: postgresql-$major-postgis-3 is installed but the server does not see PostGIS"
  fi

  tmpl_ext=$(postgis_in template1)
  if [[ -z $tmpl_ext ]]; then
    if ((CHECK)); then
      missing "postgres: running ($vstr), but extension postgis is NOT in template1"
    else
      pg_sql template1 'create extension if not exists postgis'
      tmpl_ext=$(postgis_in template1)
      PG_DONE+=("created extension postgis in template1")
    fi
  fi

  if [[ $db_exists != t ]]; then
    if ((CHECK)); then
      missing "postgres: running ($vstr), but database $DB_NAME does NOT exist"
      return 0
    fi
    pg_sql postgres "create database \"$DB_NAME\" owner postgres"
    PG_DONE+=("created database $DB_NAME")
  fi

  db_ext=$(postgis_in "$DB_NAME")
  if [[ -z $db_ext ]]; then
    if ((CHECK)); then
      missing "postgres: running ($vstr), but extension postgis is NOT in database $DB_NAME"
      return 0
    fi
    pg_sql "$DB_NAME" 'create extension if not exists postgis'
    db_ext=$(postgis_in "$DB_NAME")
    PG_DONE+=("created extension postgis in $DB_NAME")
  fi

  ((FAILED)) && return 0
  local did=""
  if ((${#PG_DONE[@]})); then
    did=$(printf '%s, ' "${PG_DONE[@]}")
    did=" (this run: ${did%, })"
  fi
  echo "postgres: running ($vstr), postgis $db_ext ok in template1 and $DB_NAME$did"
}

# ---------------------------------------------------------------- Redis

REDIS_REPLY=""

# PING over plain TCP (no redis-cli needed); up on +PONG, or on -NOAUTH (up, but wants a password).
redis_answers() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  REDIS_REPLY=$(timeout 2 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "PING\r\n" >&3
    IFS= read -r line <&3
    printf "%s" "$line"' _ "$HOST" "$REDIS_PORT" 2>/dev/null) || true
  REDIS_REPLY=${REDIS_REPLY%$'\r'}
  [[ $REDIS_REPLY == "+PONG" || $REDIS_REPLY == -NOAUTH* ]]
}

redis_step() {
  local state=running
  if ! redis_answers; then
    if ((CHECK)); then
      missing "redis: NOT answering on $HOST:$REDIS_PORT"
      return 0
    fi
    need_root "redis: starting redis-server"
    state=started
    if ! command -v redis-server >/dev/null 2>&1; then
      apt_install redis-server
      state="installed and started"
    fi
    if tcp_open "$HOST" "$REDIS_PORT"; then
      die "redis: something listens on $HOST:$REDIS_PORT but does not answer PING (${REDIS_REPLY:-no reply}); free the port"
    fi
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null ||
      die "redis: redis-server would not start; see /var/log/redis/ci.log"
    wait_for redis_answers ||
      die "redis: started but does not answer PING on $HOST:$REDIS_PORT after ${WAIT_SECS}s; see /var/log/redis/ci.log"
  fi
  if [[ $REDIS_REPLY == -NOAUTH* ]]; then
    echo "redis: $state, but it asks for a password (requirepass): redis://127.0.0.1:$REDIS_PORT will need one"
  else
    echo "redis: $state"
  fi
}

# ---------------------------------------------------------------- Mosquitto

MQTT_RC=""

# MQTT 3.1.1 CONNECT / CONNACK handshake over plain TCP; sets MQTT_RC to the CONNACK return code.
mqtt_answers() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  MQTT_RC=$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "\x10\x17\x00\x04MQTT\x04\x02\x00\x3c\x00\x0bkreki-probe" >&3
    reply=$(head -c 4 <&3 | od -An -tx1 | tr -d " \n")
    printf "\xe0\x00" >&3 2>/dev/null || true
    [[ $reply == 2002* ]] && printf "%d" "0x${reply:6:2}"' _ "$HOST" "$MQTT_PORT" 2>/dev/null) || true
  [[ -n $MQTT_RC ]]
}

mosquitto_step() {
  local state=running
  if ! mqtt_answers; then
    if ((CHECK)); then
      missing "mosquitto: NOT answering MQTT on $HOST:$MQTT_PORT"
      return 0
    fi
    need_root "mosquitto: starting mosquitto"
    state=started
    if ! command -v mosquitto >/dev/null 2>&1; then
      apt_install mosquitto mosquitto-clients
      state="installed and started"
    fi
    if tcp_open "$HOST" "$MQTT_PORT"; then
      die "mosquitto: something listens on $HOST:$MQTT_PORT but does not speak MQTT; free the port"
    fi
    [[ -f $MOSQUITTO_CONF ]] || die "mosquitto: $MOSQUITTO_CONF is missing; reinstall the mosquitto package"
    if id mosquitto >/dev/null 2>&1; then
      as_root install -d -o mosquitto -g mosquitto /run/mosquitto /var/lib/mosquitto /var/log/mosquitto
    fi
    as_root mosquitto -d -c "$MOSQUITTO_CONF" ||
      die "mosquitto: would not start; see /var/log/mosquitto/mosquitto.log"
    wait_for mqtt_answers ||
      die "mosquitto: started but does not answer MQTT on $HOST:$MQTT_PORT after ${WAIT_SECS}s;" \
        "see /var/log/mosquitto/mosquitto.log and the listener lines of $MOSQUITTO_CONF"
  fi
  if [[ $MQTT_RC != 0 ]]; then
    echo "mosquitto: $state, but it refuses anonymous clients (CONNACK code $MQTT_RC)"
  else
    echo "mosquitto: $state"
  fi
}

# ---------------------------------------------------------------- main

for arg in "$@"; do
  case $arg in
  --check) CHECK=1 ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    printf 'unknown option: %s\n\n' "$arg" >&2
    usage >&2
    exit 2
    ;;
  esac
done

if ! [[ $PG_PORT =~ ^[1-9][0-9]{0,4}$ ]] || ((PG_PORT > 65535)); then
  die "KREKI_PG_PORT must be a port number, not '$PG_PORT'"
fi
[[ $DB_NAME =~ ^[a-z_][a-z0-9_]{0,62}$ ]] ||
  die "KREKI_DB_NAME must be a lower-case SQL name (letters, digits, _), not '$DB_NAME'"
[[ $WAIT_SECS =~ ^[0-9]+$ ]] || die "KREKI_WAIT_SECS must be a number of seconds, not '$WAIT_SECS'"

postgres_step
redis_step
mosquitto_step

if ((FAILED)); then
  echo "not ready: run deploy/local-services.sh (without --check) to install and start what is missing" >&2
  exit 1
fi
echo "postgres://postgres@$HOST:$PG_PORT/$DB_NAME"
echo "redis://$HOST:$REDIS_PORT"
echo "mqtt://$HOST:$MQTT_PORT"
