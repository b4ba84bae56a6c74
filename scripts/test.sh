#!/usr/bin/env bash
# Runs the whole KREKI test suite on this machine.
#
# 1. deploy/local-services.sh makes sure PostgreSQL + PostGIS, Redis and Mosquitto run (installing
#    Debian packages and starting services as needed); xmllint is installed for the CAP XSD checks.
# 2. The deployment files are validated offline (deploy/validate.sh: both Kustomize overlays against
#    the Kubernetes and vendored CRD schemas, promtool checks and rule unit tests, dashboards), and a
#    pgBackRest point-in-time restore is tested (deploy/backup/test-restore.sh, PostgreSQL on :5444
#    and :5445).
# 3. Every FHIR resource shape KREKI serves or sends is checked by an independent validator.
# 4. The OpenAPI description `/openapi.json` serves passes openapi-spec-validator, and a Python
#    client generated from it (openapi-python-client) signs in and raises a panic on a real kreki.
# 5. Doc tests, then every unit, integration and end-to-end test of the workspace with cargo-nextest
#    (plain `cargo test` where nextest is missing). Each database test gets its own fresh database.
# 6. The dashboard and the web apps in a real headless Chromium (tests/browser/; installs Debian's
#    chromium and the npm packages when missing), against a real `kreki` on its own database.
#
# Builds go to $CARGO_TARGET_DIR (default ~/.cache/kreki-target) so repeated runs and clones reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kreki-target}"

bash deploy/local-services.sh

# CAP 1.2 documents (KREKI's and the fake BMKG's) are checked against the vendored OASIS XSD
# by xmllint in cap/tests/xsd.rs and tests/e2e/warnings.rs (Debian's libxml2-utils).
if ! command -v xmllint >/dev/null 2>&1; then
  echo "==> installing xmllint (libxml2-utils)"
  sudo_if() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  sudo_if env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libxml2-utils >/dev/null
fi

echo "==> deployment files"
cargo build --bin kreki --quiet
bash deploy/validate.sh

echo "==> point-in-time restore (pgBackRest)"
bash deploy/backup/test-restore.sh

echo "==> FHIR resources checked by an independent validator (fhir.resources)"
bash bridge-satusehat/validation/run.sh

echo "==> /openapi.json checked by openapi-spec-validator and a generated client"
bash scripts/validate-openapi.sh

echo "==> doc tests"
cargo test --workspace --doc --quiet

echo "==> unit, integration and end-to-end tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

echo "==> browser tests (headless Chromium)"
bash tests/browser/setup.sh
node tests/browser/run.mjs
