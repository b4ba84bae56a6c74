"""Offline checks of KREKI's deployment files, run by deploy/validate.sh (which installs the tools).

1. Every Kustomize overlay builds (`kubectl kustomize`), and every object it renders is valid:
   Kubernetes kinds against the API schemas (kubernetes-validate, strict: unknown fields fail),
   the operators' kinds against their vendored CRD schemas (deploy/k8s/crds, strict the same way).
   A kind with neither schema fails.
2. Every command a kreki container, the Dockerfile or the compose file runs is a real `kreki`
   subcommand, and every kreki container's configuration (its ConfigMaps and env, secrets replaced
   by stand-ins) is accepted by `kreki config`, so a misspelt KREKI_* key fails here.
3. The cross-references hold: the migration Job is named after the release, every Secret a pod
   reads is rendered by the overlay or listed in deploy/README.md's table of Secrets.
4. The Prometheus rules: `promtool check rules`, the unit tests, the PrometheusRule copy equal to
   the rules file, and every metric a rule or dashboard reads is one the code (or the configured
   exporters) really exports; every dashboard query parses.

Usage: python3 deploy/validate.py --kreki PATH --kubectl PATH --promtool PATH
       python3 deploy/validate.py --sync-rules   (rewrites deploy/monitoring/prometheusrule.yaml)
"""

import argparse
import functools
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAYS = DEPLOY / "k8s" / "overlays"
CRDS = DEPLOY / "k8s" / "crds"
MONITORING = DEPLOY / "monitoring"
RULES = MONITORING / "prometheus" / "kreki.rules.yml"
RULE_TESTS = MONITORING / "prometheus" / "kreki.rules.test.yml"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
KUBERNETES_VERSION = "1.32.0"

# Metrics of exporters other than kreki that the rules and dashboards read: CloudNativePG's built-in
# queries (config/manager/default-monitoring.yaml), the Barman Cloud plugin, Prometheus itself.
EXTERNAL_METRICS = {
    "up",
    "cnpg_pg_replication_lag",
    "cnpg_pg_replication_in_recovery",
    "cnpg_pg_replication_streaming_replicas",
    "cnpg_pg_stat_archiver_seconds_since_last_archival",
    "cnpg_pg_stat_archiver_failed_count",
    "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp",
    "barman_cloud_cloudnative_pg_io_first_recoverability_point",
    "barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp",
}

failures = []


def fail(message):
    failures.append(message)
    print(f"  FAIL {message}")


# ------------------------------------------------------------------ schemas


def strict(schema):
    """An OpenAPI v3 schema of a CRD as a strict JSON schema (what kubeconform's strict mode does)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items() if not key.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable"):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
    return out


@functools.cache
def crd_schemas():
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                # metadata is checked by the API server's ObjectMeta rules, not the CRD's.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return schemas


def kubernetes_validator():
    import kubernetes_validate.utils as utils

    # The bundled schema files are large; read each once.
    utils.schema_contents = functools.cache(utils.schema_contents)
    return utils


def validate_object(doc, source, utils):
    kind, api = doc.get("kind"), doc.get("apiVersion")
    name = f"{source}: {kind}/{doc.get('metadata', {}).get('name')}"
    crd = crd_schemas().get((api, kind))
    if crd is not None:
        errors = sorted(crd.iter_errors(doc), key=lambda error: list(error.path))
        for error in errors[:5]:
            fail(f"{name}: {'.'.join(str(p) for p in error.path) or '(root)'}: {error.message}")
        return
    try:
        utils.validate(doc, KUBERNETES_VERSION, strict=True)
    except utils.SchemaNotFoundError:
        fail(f"{name}: no schema for {api} {kind} (vendor its CRD into deploy/k8s/crds)")
    except utils.ValidationError as error:
        path = ".".join(str(p) for p in error.path)
        fail(f"{name}: {path}: {error.message}")


# ------------------------------------------------------------------ kreki commands and config


def kreki_containers(docs):
    """(object, pod spec, container) for every container running the kreki image."""
    for doc in docs:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") or (
            spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
        )
        if not pod:
            continue
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            image = container.get("image", "")
            if image == "kreki" or re.search(r"/kreki(:|@|$)", image):
                yield doc, pod, container


def check_command(kreki, args, where):
    result = subprocess.run([kreki, *args, "--help"], capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"{where}: `kreki {' '.join(args)}` is not a valid command: {result.stderr.strip()}")
        return False
    return True


def stand_in(name, key):
    """A plausible value for a secret the check cannot read."""
    if name.endswith("DATABASE__URL"):
        return "postgres://kreki:stand-in@kreki-db-rw:5432/kreki"
    return f"stand-in-for-{key}"


def container_env(container, config_maps):
    env = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        if ref is not None:
            env.update(config_maps.get(ref, {}))
    for var in container.get("env", []):
        if "value" in var:
            value = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), var["value"])
            env[var["name"]] = value
        elif "secretKeyRef" in var.get("valueFrom", {}):
            env[var["name"]] = stand_in(var["name"], var["valueFrom"]["secretKeyRef"]["key"])
        elif "fieldRef" in var.get("valueFrom", {}):
            env[var["name"]] = "kreki-pod-0"
    return env


def check_config(kreki, env, where):
    config = {key: value for key, value in env.items() if key.startswith("KREKI_")}
    result = subprocess.run([kreki, "config"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **config})
    if result.returncode != 0:
        fail(f"{where}: kreki refuses this configuration: {result.stderr.strip()}")


# ------------------------------------------------------------------ references


def documented_secrets():
    """Secret names in the table under '### Secrets' of deploy/README.md."""
    text = (DEPLOY / "README.md").read_text()
    section = text.split("### Secrets", 1)[-1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.M))


def secrets_read(docs):
    for doc in docs:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") or (
            spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
        )
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if pod:
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                for var in container.get("env", []):
                    ref = var.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        yield ref["name"], where
                for source in container.get("envFrom", []):
                    if "secretRef" in source:
                        yield source["secretRef"]["name"], where
            for volume in pod.get("volumes", []):
                if "secret" in volume:
                    yield volume["secret"]["secretName"], where
        if doc["kind"] == "ObjectStore":
            for ref in doc["spec"]["configuration"].get("s3Credentials", {}).values():
                if isinstance(ref, dict) and "name" in ref:
                    yield ref["name"], where


def check_references(docs, overlay):
    made = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "Secret"}
    made |= {doc["spec"]["secretName"] for doc in docs if doc["kind"] == "Certificate"}
    documented = documented_secrets()
    for name, where in sorted(set(secrets_read(docs))):
        if name not in made and name not in documented:
            fail(f"{overlay}: {where} reads Secret {name}, which neither the overlay makes nor deploy/README.md lists")
    api = next(doc for doc in docs if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "kreki-api")
    image = next(c["image"] for c in api["spec"]["template"]["spec"]["containers"] if c["name"] == "kreki")
    tag = image.rsplit(":", 1)[-1]
    jobs = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Job"]
    if jobs != [f"kreki-migrate-{tag}"]:
        fail(f"{overlay}: the migration Job must be kreki-migrate-{tag} (one per release), found {jobs}")
    images = {c["image"] for _, _, c in kreki_containers(docs)}
    if len(images) != 1:
        fail(f"{overlay}: kreki containers run different images {sorted(images)}")


# ------------------------------------------------------------------ Prometheus and Grafana


def exported_metrics():
    """Metric names the Rust code exports, plus the custom queries' and the external ones."""
    names = set()
    for path in ROOT.glob("*/src/**/*.rs"):
        text = path.read_text()
        for kind, name in re.findall(r'metrics::(counter|gauge|histogram)!\(\s*"([a-z_0-9]+)"', text):
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    queries = yaml.safe_load((MONITORING / "postgres-queries.yaml").read_text())
    for query, spec in queries.items():
        for metric in spec["metrics"]:
            for column, settings in metric.items():
                if settings.get("usage") not in ("LABEL", "DISCARD"):
                    names.add(f"cnpg_{query}_{column}")
    return names | EXTERNAL_METRICS


def metrics_in(expr):
    # Every selector is written with braces in these files, which makes them easy to find.
    return set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr)) - {"by", "without", "on", "ignoring"}


def dashboard_exprs():
    for path in sorted((MONITORING / "grafana").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                yield path.name, panel["title"], target["expr"]


def check_monitoring(promtool):
    rules = yaml.safe_load(RULES.read_text())
    wrapped = yaml.safe_load(PROMETHEUS_RULE.read_text())
    if wrapped["spec"]["groups"] != rules["groups"]:
        fail(f"{PROMETHEUS_RULE.relative_to(ROOT)} differs from {RULES.relative_to(ROOT)}: run python3 deploy/validate.py --sync-rules")
    exported = exported_metrics()
    for group in rules["groups"]:
        for rule in group["rules"]:
            for metric in metrics_in(rule["expr"]) - exported:
                fail(f"rule {rule.get('alert') or rule.get('record')} reads {metric}, which nothing exports")
    exprs = []
    for file, title, expr in dashboard_exprs():
        for metric in metrics_in(expr) - exported:
            fail(f"dashboard {file}, panel '{title}' reads {metric}, which nothing exports")
        exprs.append(expr.replace("$__rate_interval", "5m"))
    with tempfile.TemporaryDirectory() as scratch:
        queries = pathlib.Path(scratch) / "dashboard-queries.yml"
        queries.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": [
            {"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(exprs)]}]}))
        for command in ([promtool, "check", "rules", str(RULES)],
                        [promtool, "check", "rules", str(queries)],
                        [promtool, "test", "rules", str(RULE_TESTS)]):
            result = subprocess.run(command, capture_output=True, text=True)
            label = " ".join(pathlib.Path(part).name if "/" in part else part for part in command[1:])
            if result.returncode != 0:
                fail(f"promtool {label}:\n{result.stdout}{result.stderr}")
            else:
                print(f"  promtool {label}: ok")
    print(f"  {sum(len(g['rules']) for g in rules['groups'])} rules, {len(exprs)} dashboard queries: every metric is exported")


def sync_rules():
    rules = yaml.safe_load(RULES.read_text())
    header = (
        "# Generated from prometheus/kreki.rules.yml by `python3 deploy/validate.py --sync-rules`;\n"
        "# edit that file, not this one (deploy/validate.sh fails while the two differ).\n"
    )
    body = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "kreki", "labels": {"app.kubernetes.io/part-of": "kreki"}},
        "spec": {"groups": rules["groups"]},
    }
    class Indented(yaml.SafeDumper):
        def increase_indent(self, flow=False, indentless=False):
            return super().increase_indent(flow, False)

    PROMETHEUS_RULE.write_text(header + yaml.dump(body, Dumper=Indented, sort_keys=False, width=100))
    print(f"wrote {PROMETHEUS_RULE.relative_to(ROOT)}")


# ------------------------------------------------------------------ main


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kreki")
    parser.add_argument("--kubectl")
    parser.add_argument("--promtool")
    parser.add_argument("--sync-rules", action="store_true")
    args = parser.parse_args()
    if args.sync_rules:
        sync_rules()
        return
    utils = kubernetes_validator()

    print("deploy: Kubernetes overlays (kustomize build, strict schemas incl. vendored CRDs)")
    for overlay in sorted(path for path in OVERLAYS.iterdir() if path.is_dir()):
        name = overlay.relative_to(ROOT)
        built = subprocess.run([args.kubectl, "kustomize", str(overlay)], capture_output=True, text=True)
        if built.returncode != 0:
            fail(f"{name}: kustomize build failed: {built.stderr.strip()}")
            continue
        docs = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
        for doc in docs:
            validate_object(doc, name, utils)
        config_maps = {doc["metadata"]["name"]: doc.get("data", {}) for doc in docs if doc["kind"] == "ConfigMap"}
        # Generated names carry a hash suffix; references in the rendered pods use it too.
        for doc, _, container in kreki_containers(docs):
            where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            if check_command(args.kreki, container.get("args", []), where):
                check_config(args.kreki, container_env(container, config_maps), where)
        check_references(docs, name)
        kinds = sorted({doc["kind"] for doc in docs})
        print(f"  {name}: {len(docs)} objects ({', '.join(kinds)})")

    print("deploy: Dockerfile and compose commands")
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    check_command(args.kreki, json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1)), "Dockerfile")
    for service, spec in yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"].items():
        if spec.get("image", "").startswith("kreki") and "command" in spec:
            check_command(args.kreki, spec["command"], f"compose service {service}")

    print("deploy: Prometheus rules, rule tests and dashboards")
    check_monitoring(args.promtool)

    if failures:
        sys.exit(f"deploy: {len(failures)} problem(s)")
    print("deploy: all checks passed")


if __name__ == "__main__":
    main()
