#!/usr/bin/env bash
# Validates KREKI's public contract the way a client generator reads it: the `/openapi.json` the
# built `kreki` serves (printed by `kreki openapi`, the same document, no database needed) is checked
# by openapi-spec-validator (OpenAPI 3.1 schema, unique operationIds, resolvable references).
# The validator comes from PyPI, pinned in scripts/openapi/requirements.txt, into a virtualenv under
# ~/.cache. Called by scripts/test.sh; the insta snapshot in tests/e2e/openapi.rs is the other check.
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

spec="$(mktemp --suffix=.json)"
trap 'rm -f "$spec"' EXIT
cargo build --quiet --bin kreki
"$CARGO_TARGET_DIR/debug/kreki" openapi >"$spec"
"$venv/bin/openapi-spec-validator" --validation-errors all "$spec"
