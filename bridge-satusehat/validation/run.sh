#!/usr/bin/env bash
# Independent FHIR validation: the bridge's tests and the end-to-end test through a real `kreki`
# process write every resource shape KREKI serves to health systems and sends to SATUSEHAT, then
# fhir.resources with FHIR R4 4.0.1 models (pinned in requirements.txt, installed into a virtualenv
# under the cargo target dir) validates each one. Called by .ci/run (through scripts/test.sh).
#
# Needs PostgreSQL (the tests use it): run deploy/local-services.sh first, as scripts/test.sh does.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kreki-target}"

venv="$CARGO_TARGET_DIR/fhir-validation-venv"
stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  echo "==> installing the FHIR validator into $venv"
  # A fresh one: pins may go down as well as up (pydantic 2 -> 1), and nothing stale may linger.
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

samples="$(mktemp -d)"
trap 'rm -rf "$samples"' EXIT
echo "==> writing FHIR samples from the bridge's tests"
KREKI_FHIR_SAMPLES_DIR="$samples" cargo test --quiet -p kreki-bridge-satusehat --test bridge -- \
  resources_are_versioned_scoped_and_free_of_personal_data \
  health_systems_page_through_every_incident_exactly_once \
  an_encounter_is_created_exactly_once_when_the_create_times_out_after_commit
echo "==> writing FHIR samples from the end-to-end test (a real kreki process and a health system)"
KREKI_FHIR_SAMPLES_DIR="$samples" cargo test --quiet -p kreki --test e2e -- \
  satusehat::flow::a_verified_health_worker_s_incident_reaches_satusehat_once_under_faults_and_health_systems_page_through_it
echo "==> validating them with fhir.resources (FHIR R4 4.0.1)"
"$venv/bin/python" "$here/validate.py" "$samples"
