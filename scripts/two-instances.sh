#!/usr/bin/env bash
# Two `kreki` instances and a Mosquitto on this machine, sharing PostgreSQL and Redis (issue 7).
#
#   scripts/two-instances.sh up      build kreki; start Mosquitto on 127.0.0.1:18830 (per-device
#                                    credentials and ACLs), instance A on :8081 (runs the MQTT
#                                    consumer) and instance B on :8082
#   scripts/two-instances.sh offer   a panic button presses over MQTT; A ingests and dispatches it;
#                                    the volunteer's WebSocket on B gets the offer; the button gets
#                                    its ack with the alert id (then the alert is cancelled again)
#   scripts/two-instances.sh status  what runs, and each instance's /readyz
#   scripts/two-instances.sh down    stop what `up` started
#
# Everything of it lives in .kreki/two/ (signing key, broker files, logs a.log b.log mosquitto.log,
# pids); the database is `kreki_two` on the local PostgreSQL, Redis keys are under `kreki:two:`.
# Ports: KREKI_TWO_A_PORT (8081), KREKI_TWO_B_PORT (8082), KREKI_TWO_MQTT_PORT (18830).
# Needs what deploy/local-services.sh sets up, plus python3, curl and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kreki-target}"
readonly KREKI="$CARGO_TARGET_DIR/debug/kreki"
readonly STATE=.kreki/two
readonly A_PORT="${KREKI_TWO_A_PORT:-8081}"
readonly B_PORT="${KREKI_TWO_B_PORT:-8082}"
readonly MQTT_PORT="${KREKI_TWO_MQTT_PORT:-18830}"
readonly A="http://127.0.0.1:$A_PORT"
readonly B="http://127.0.0.1:$B_PORT"
readonly DB=kreki_two
readonly PASSWORD=kata-sandi-aman
readonly CITIZEN=081355500001
readonly VOLUNTEER=081355500002

# Settings both instances share (any other KREKI_* in the environment applies too).
export KREKI_DATABASE__URL="postgres://postgres@127.0.0.1:5432/$DB"
export KREKI_AUTH__SIGNING_KEY_FILE="$STATE/signing-key.pem"
export KREKI_REALTIME__REDIS__URL="${KREKI_REALTIME__REDIS__URL:-redis://127.0.0.1:6379}"
export KREKI_REALTIME__REDIS__KEY_PREFIX=kreki:two:
export KREKI_MQTT__HOST=127.0.0.1
export KREKI_MQTT__PORT="$MQTT_PORT"
export KREKI_LOG__FORMAT="${KREKI_LOG__FORMAT:-pretty}"

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

running() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

wait_ready() {
  local url=$1 name=$2
  for _ in $(seq 1 150); do
    if curl -fsS "$url/readyz" >/dev/null 2>&1; then
      echo "    $name ready at $url"
      return 0
    fi
    running "$name" || die "$name exited; see $STATE/$name.log"
    sleep 0.2
  done
  die "$name not ready after 30 s; see $STATE/$name.log"
}

mqtt_password() {
  [[ -f "$STATE/mqtt-password" ]] || head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$STATE/mqtt-password"
  cat "$STATE/mqtt-password"
}

# Writes the broker's passwd and acl from the database and makes a running broker reload them.
sync_credentials() {
  KREKI_MQTT__PASSWORD="$(mqtt_password)" \
    bash deploy/mosquitto/sync-credentials.sh "$STATE/mosquitto" "$STATE/mosquitto.pid" "$KREKI" >/dev/null
}

up() {
  bash deploy/local-services.sh
  echo "==> building kreki"
  cargo build --bin kreki
  mkdir -p "$STATE/mosquitto"
  for name in mosquitto a b; do
    running "$name" && die "$name runs already (scripts/two-instances.sh down first)"
  done
  for port in "$A_PORT" "$B_PORT" "$MQTT_PORT"; do
    if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port is taken (set KREKI_TWO_A_PORT, KREKI_TWO_B_PORT or KREKI_TWO_MQTT_PORT)"
    fi
  done
  if [[ -z "$(psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]]; then
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB"
  fi
  [[ -f "$KREKI_AUTH__SIGNING_KEY_FILE" ]] || "$KREKI" keys generate --out "$KREKI_AUTH__SIGNING_KEY_FILE"
  "$KREKI" migrate

  echo "==> Mosquitto on 127.0.0.1:$MQTT_PORT (no anonymous clients; per-device passwords and ACLs)"
  sync_credentials
  local dir
  dir="$(pwd)/$STATE/mosquitto"
  sed -e "s|^listener .*|listener $MQTT_PORT 127.0.0.1|" \
    -e "s|^persistence .*|persistence false|" \
    -e "s|/etc/mosquitto/kreki|$dir|g" \
    deploy/mosquitto/mosquitto.conf >"$STATE/mosquitto.conf"
  # As root, Mosquitto would switch to the `mosquitto` user, who may not read this checkout.
  [[ $EUID -eq 0 ]] && echo "user root" >>"$STATE/mosquitto.conf"
  mosquitto -c "$STATE/mosquitto.conf" >"$STATE/mosquitto.log" 2>&1 &
  echo $! >"$STATE/mosquitto.pid"

  echo "==> instance B on $B (HTTP and WebSockets)"
  KREKI_SERVER__LISTEN="127.0.0.1:$B_PORT" KREKI_MQTT__PASSWORD="$(mqtt_password)" \
    "$KREKI" serve >"$STATE/b.log" 2>&1 &
  echo $! >"$STATE/b.pid"
  echo "==> instance A on $A (also the MQTT consumer)"
  KREKI_SERVER__LISTEN="127.0.0.1:$A_PORT" KREKI_MQTT__ENABLED=true KREKI_MQTT__CLIENT_ID=kreki-a \
    KREKI_MQTT__PASSWORD="$(mqtt_password)" "$KREKI" serve >"$STATE/a.log" 2>&1 &
  echo $! >"$STATE/a.pid"
  wait_ready "$B" b
  wait_ready "$A" a
  echo "==> up; try: scripts/two-instances.sh offer"
}

login() {
  curl -fsS "$B/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"login\": \"$1\", \"password\": \"$PASSWORD\"}" | jq -r .access_token
}

# Creates the account with the CLI unless it can log in already.
account() {
  local phone=$1 name=$2
  shift 2
  if ! curl -fsS "$B/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"login\": \"$phone\", \"password\": \"$PASSWORD\"}" >/dev/null 2>&1; then
    "$KREKI" user create --phone "$phone" --password "$PASSWORD" --name "$name" "$@" >/dev/null
  fi
}

offer() {
  running a && running b && running mosquitto || die "not up (scripts/two-instances.sh up)"
  account "$CITIZEN" "Sari (warga)"
  account "$VOLUNTEER" "Budi (relawan)" --role volunteer
  local citizen volunteer device button secret
  citizen="$(login "$CITIZEN")"
  volunteer="$(login "$VOLUNTEER")"

  echo "==> the volunteer goes on duty 300 m north of Monas, through B"
  curl -fsS -X PUT "$B/v1/volunteers/me/duty" -H "authorization: Bearer $volunteer" \
    -H 'content-type: application/json' -d '{"on_duty": true}' >/dev/null
  curl -fsS "$B/v1/volunteers/me/location" -H "authorization: Bearer $volunteer" \
    -H 'content-type: application/json' -d '{"lat": -6.172679, "lng": 106.827153, "accuracy_m": 5}' >/dev/null

  echo "==> the citizen registers a panic button (through B); the broker learns its password"
  device="$(curl -fsS "$B/v1/mqtt/devices" -H "authorization: Bearer $citizen" \
    -H 'content-type: application/json' -d '{"kind": "panic", "label": "two-instances"}')"
  button="$(jq -r .mqtt.username <<<"$device")"
  secret="$(jq -r .mqtt.password <<<"$device")"
  sync_credentials
  sleep 0.5

  echo "==> the volunteer's WebSocket on B listens"
  python3 scripts/ws_listen.py "ws://127.0.0.1:$B_PORT/v1/ws?access_token=$volunteer" 12 >"$STATE/ws.out" &
  local listener=$!
  mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -u "$button" -P "$secret" -q 1 -C 1 -W 12 \
    -t "kreki/v1/panic/$button/ack" >"$STATE/ack.out" &
  local acks=$!
  sleep 1

  echo "==> the button presses: kreki/v1/panic/$button on the broker, consumed by A"
  mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -u "$button" -P "$secret" -q 1 \
    -t "kreki/v1/panic/$button" \
    -m "{\"lat\": -6.175392, \"lng\": 106.827153, \"kind\": \"security\", \"msg_id\": \"$(date +%s%N)\"}"
  wait "$acks" || die "no ack on kreki/v1/panic/$button/ack within 12 s; see $STATE/a.log"
  local alert
  alert="$(jq -r .alert_id "$STATE/ack.out")"
  echo "    the button's ack: $(cat "$STATE/ack.out")"
  for _ in $(seq 1 50); do
    grep -q '"type":"offer"' "$STATE/ws.out" && break
    sleep 0.2
  done
  kill "$listener" 2>/dev/null || true
  local got
  got="$(grep '"type":"offer"' "$STATE/ws.out" | head -1 || true)"
  [[ -n "$got" ]] || die "no offer on B's WebSocket; frames: $(cat "$STATE/ws.out")"
  echo "    the offer on B's WebSocket: $got"
  [[ "$(jq -r .offer.alert.id <<<"$got")" == "$alert" ]] || die "the offer is for another alert"
  echo "==> the alert $alert was ingested by A and offered on B: it crossed over"

  # So that the next run is a new alert rather than a repeat press of this one.
  curl -fsS "$B/v1/alerts/$alert/cancel" -H "authorization: Bearer $citizen" \
    -H 'content-type: application/json' -d '{"reason": "two-instances demo"}' >/dev/null
  curl -fsS -X DELETE "$B/v1/mqtt/devices/$(jq -r .device.id <<<"$device")" \
    -H "authorization: Bearer $citizen" >/dev/null
}

status() {
  for name in mosquitto a b; do
    if running "$name"; then echo "$name: running (pid $(cat "$STATE/$name.pid"))"; else echo "$name: stopped"; fi
  done
  for url in "$A" "$B"; do
    printf '%s/readyz: ' "$url"
    curl -sS "$url/readyz" || true
    echo
  done
}

down() {
  for name in a b mosquitto; do
    if running "$name"; then
      kill "$(cat "$STATE/$name.pid")"
      echo "stopped $name"
    fi
    rm -f "$STATE/$name.pid"
  done
}

case "${1:-}" in
  up) up ;;
  offer) offer ;;
  status) status ;;
  down) down ;;
  *) sed -n '2,16s/^# \{0,1\}//p' "$0" && exit 2 ;;
esac
