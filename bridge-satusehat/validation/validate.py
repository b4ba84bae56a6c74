#!/usr/bin/env python3
"""Validates FHIR resources (one JSON file each) with fhir.resources, a validator KREKI did not write.

Usage: validate.py DIR
Every *.json file in DIR is parsed into the fhir.resources model of its resourceType: structure,
cardinality (required elements), datatypes and unknown elements are checked, and every Bundle entry
is checked as its own resource too. Exits 1 if any file fails, if DIR holds no files, or if a shape
KREKI must produce is missing from DIR.
"""

import json
import pathlib
import sys

from fhir.resources.R4B import get_fhir_model_class

# Every shape KREKI serves (FHIR API) or sends (SATUSEHAT); the test suite writes one sample of each.
EXPECTED = {
    "encounter.json": "Encounter",
    "location.json": "Location",
    "task.json": "Task",
    "capability-statement.json": "CapabilityStatement",
    "bundle-encounter-searchset.json": "Bundle",
    "operation-outcome.json": "OperationOutcome",
    "satusehat-encounter-0.json": "Encounter",
    "satusehat-encounter-finished.json": "Encounter",
}


def check(resource):
    model = get_fhir_model_class(resource["resourceType"])
    model.parse_obj(resource)
    for entry in resource.get("entry", []) if resource["resourceType"] == "Bundle" else []:
        check(entry["resource"])


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    directory = pathlib.Path(sys.argv[1])
    files = sorted(directory.glob("*.json"))
    failed = 0
    for name, kind in EXPECTED.items():
        path = directory / name
        if not path.exists():
            print(f"MISSING {name} ({kind})")
            failed += 1
        elif json.loads(path.read_text()).get("resourceType") != kind:
            print(f"WRONG   {name}: not a {kind}")
            failed += 1
    for path in files:
        resource = json.loads(path.read_text())
        try:
            check(resource)
            print(f"OK      {path.name} ({resource['resourceType']})")
        except Exception as error:  # noqa: BLE001 - report every failure, then fail the run
            print(f"INVALID {path.name}: {error}")
            failed += 1
    if not files:
        print(f"no resources in {directory}")
        return 1
    print(f"{len(files)} resources checked, {failed} problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
