#!/usr/bin/env bash
# Validates the deployment files offline (no Docker engine or cluster needed):
# - Kubernetes manifests against the API schemas (kubernetes-validate --strict, bundled schemas);
# - every YAML file with yamllint;
# - that the commands the Dockerfile, compose file and manifests run are real `kreki` subcommands.
# Usage: deploy/validate.sh [path/to/kreki]   (defaults to $CARGO_TARGET_DIR/debug/kreki)
set -euo pipefail
cd "$(dirname "$0")/.."
kreki="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/kreki-target}/debug/kreki}"
venv="${KREKI_VENV:-$HOME/.cache/kreki-venv}"

if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1 || ! "$venv/bin/yamllint" --version >/dev/null 2>&1; then
  echo "deploy: installing validators into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 yamllint==1.38.0
fi

echo "deploy: Kubernetes manifests"
manifests=()
for file in deploy/k8s/*.yaml; do
  [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done
"$venv/bin/kubernetes-validate" --strict --quiet -k 1.30.0 "${manifests[@]}"

echo "deploy: YAML lint"
"$venv/bin/yamllint" --strict -d '{extends: default, rules: {line-length: {max: 110}, document-start: disable,
  braces: {max-spaces-inside: 1}, brackets: {max-spaces-inside: 1}, comments: {min-spaces-from-content: 1}}}' deploy

echo "deploy: commands exist in kreki"
"$venv/bin/python" - "$kreki" <<'PY'
import json, re, subprocess, sys, yaml, pathlib

kreki = sys.argv[1]
commands = set()
dockerfile = pathlib.Path("deploy/Dockerfile").read_text()
commands.add(tuple(json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))))
for service in yaml.safe_load(pathlib.Path("deploy/compose.yaml").read_text())["services"].values():
    if service.get("image", "").startswith("kreki") and "command" in service:
        commands.add(tuple(service["command"]))
for path in pathlib.Path("deploy/k8s").glob("*.yaml"):
    for doc in yaml.safe_load_all(path.read_text()):
        spec = (doc or {}).get("spec", {})
        template = spec.get("template", {}).get("spec", {})
        for container in template.get("containers", []):
            if container.get("image") == "kreki":
                commands.add(tuple(container.get("args", [])))
for args in sorted(commands):
    result = subprocess.run([kreki, *args, "--help"], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"`kreki {' '.join(args)}` is not a valid command: {result.stderr.strip()}")
    print(f"  kreki {' '.join(args)}: ok")
PY
