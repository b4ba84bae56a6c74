#!/usr/bin/env python3
"""Validates FHIR resources (one JSON file each) with fhir.resources, a validator KREKI did not write.

Usage: validate.py DIR
Every *.json file in DIR is parsed into the fhir.resources model of its resourceType, FHIR R4
(4.0.1) proper (the version KREKI's CapabilityStatement and SATUSEHAT speak): structure,
cardinality (required elements), datatypes and unknown elements are checked, and every Bundle entry
is checked as its own resource too. Exits 1 if the installed models are not R4 4.0.1, if any file
fails, if DIR holds no files, or if a shape KREKI must produce is missing from DIR.
"""

import json
import pathlib
import sys

import fhir.resources
from fhir.resources import get_fhir_model_class

# fhir.resources 6.4.0's root models are R4 4.0.1; later releases moved to R4B and R5, whose
# Encounter, Task and CapabilityStatement differ from what SATUSEHAT and R4 clients expect.
FHIR_VERSION = "4.0.1"

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
    # From the end-to-end test through the real `kreki` process (tests/e2e/satusehat.rs).
    "e2e-capability-statement.json": "CapabilityStatement",
    "e2e-encounter-searchset-1.json": "Bundle",
    "e2e-encounter-searchset-2.json": "Bundle",
    "e2e-encounter.json": "Encounter",
    "e2e-location.json": "Location",
    "e2e-task-searchset.json": "Bundle",
    "e2e-task.json": "Task",
    "e2e-operation-outcome.json": "OperationOutcome",
    "e2e-satusehat-encounter.json": "Encounter",
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
    if fhir.resources.__fhir_version__ != FHIR_VERSION:
        print(f"fhir.resources validates FHIR {fhir.resources.__fhir_version__}, not {FHIR_VERSION}")
        return 1
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
    print(f"{len(files)} resources checked against FHIR {FHIR_VERSION}, {failed} problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
