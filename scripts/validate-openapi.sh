#!/usr/bin/env bash
# Validates KREKI's public contract the way a client generator reads it: the `/openapi.json` the
# built `kreki` serves (printed by `kreki openapi`, the same document, no database needed) is checked
# by openapi-spec-validator (OpenAPI 3.1 schema, unique operationIds, resolvable references).
# The validator comes from PyPI, pinned in scripts/openapi/requirements.txt, into a virtualenv under
# ~/.cache. Called by scripts/test.sh; the insta snapshot in tests/e2e/openapi.rs is the other check.
#
# Then a Python client is generated from the same document with openapi-python-client (PyPI, pinned
# in scripts/openapi/client-requirements.txt, its own virtualenv), compiled, and used against a real
# `kreki serve` on a scratch database next to KREKI_TEST_DATABASE_URL's (register, sign in, a panic
# with its idempotency key, a cancel, a refused registration's problem+json):
# scripts/openapi/client_check.py. Needs PostgreSQL + PostGIS (deploy/local-services.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kreki-target}"

venv="$HOME/.cache/kreki-openapi-venv"
stamp="$venv/.requirements"
if ! cmp -s "$here/openapi/requirements.txt" "$stamp" 2>/dev/null; then
  echo "==> installing openapi-spec-validator into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/openapi/requirements.txt"
  cp "$here/openapi/requirements.txt" "$stamp"
fi

work="$(mktemp -d)"
spec="$work/openapi.json"
server_pid=""
admin="${KREKI_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
admin="${admin%/*}/postgres"
db="kreki_openapi_client_$$"
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cargo build --quiet --bin kreki
"$CARGO_TARGET_DIR/debug/kreki" openapi >"$spec"
"$venv/bin/openapi-spec-validator" --validation-errors all "$spec"

client_venv="$HOME/.cache/kreki-openapi-client-venv"
client_stamp="$client_venv/.requirements"
if ! cmp -s "$here/openapi/client-requirements.txt" "$client_stamp" 2>/dev/null; then
  echo "==> installing openapi-python-client into $client_venv"
  rm -rf "$client_venv"
  python3 -m venv "$client_venv"
  "$client_venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/openapi/client-requirements.txt"
  cp "$here/openapi/client-requirements.txt" "$client_stamp"
fi
echo "==> a Python client generated from /openapi.json"
printf 'post_hooks: []\n' >"$work/generator.yaml"
"$client_venv/bin/openapi-python-client" generate --path "$spec" --meta none \
  --config "$work/generator.yaml" --output-path "$work/kreki_client" >"$work/generate.log" 2>&1 || {
  cat "$work/generate.log" >&2
  exit 1
}
"$client_venv/bin/python" -m compileall -q "$work/kreki_client" >/dev/null

psql -q "$admin" -c "CREATE DATABASE $db TEMPLATE template1" >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$CARGO_TARGET_DIR/debug/kreki" keys generate --out "$work/key.pem" >/dev/null
KREKI_DATABASE__URL="${admin%/*}/$db" KREKI_AUTH__SIGNING_KEY_FILE="$work/key.pem" \
  KREKI_SERVER__LISTEN="127.0.0.1:$port" KREKI_LOG__FILTER=warn \
  "$CARGO_TARGET_DIR/debug/kreki" serve --migrate >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || {
    cat "$work/server.log" >&2
    exit 1
  }
  sleep 0.1
done
"$client_venv/bin/python" "$here/openapi/client_check.py" "$work" "http://127.0.0.1:$port" || {
  cat "$work/server.log" >&2
  exit 1
}
