"""The runtime guard (adapter/fhir/guard.py): the schema file is what the fhir.resources models
say, every golden Bundle passes it, and the defects a mapping could make are caught."""

from __future__ import annotations

import copy
import json

import pytest

from adapter.errors import MappingError
from adapter.fhir.guard import SCHEMA_FILE, build_schema, check_resources
from conftest import DATA


def goldens() -> list[dict]:
    return [json.loads(p.read_text("utf-8")) for p in sorted(DATA.rglob("*.bundle.json"))]


def test_the_schema_file_is_made_from_the_models():
    made = json.dumps(build_schema(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    assert SCHEMA_FILE.read_text("utf-8") == made, "run: python -m adapter.fhir.guard"


def test_every_golden_bundle_passes():
    for bundle in goldens():
        check_resources(bundle)


def _task(bundle: dict) -> tuple[int, dict]:
    return next((i, e["resource"]) for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Task")


@pytest.mark.parametrize(("change", "rule"), [
    (lambda t: t.__setitem__("statuss", "requested"), "additionalProperties"),  # an element FHIR does not define
    (lambda t: t.__setitem__("status", 3), "type"),  # a number for a code
    (lambda t: t.__setitem__("status", "two words "), "pattern"),  # not a code
    (lambda t: t.pop("intent"), "required"),  # a required element missing
    (lambda t: t.__setitem__("for", [t["for"]]), "type"),  # a list for a single value
    (lambda t: t.__setitem__("authoredOn", "2026-13-01"), "pattern"),  # not a dateTime
    (lambda t: t.__setitem__("description", ""), "pattern"),  # an empty string
])
def test_a_mapping_defect_is_a_located_mapping_error(change, rule):
    bundle = copy.deepcopy(next(b for b in goldens() if any(e["resource"]["resourceType"] == "Task"
                                                           for e in b["entry"])))
    index, task = _task(bundle)
    change(task)
    with pytest.raises(MappingError) as err:
        check_resources(bundle)
    found = err.value.issues[0]
    assert found.code == "GGOP-E401" and found.detail == rule
    assert found.location.fhir_path.startswith(f"Bundle.entry[{index}].resource")


def test_an_unknown_resource_type_is_refused():
    bundle = copy.deepcopy(goldens()[0])
    bundle["entry"][0]["resource"]["resourceType"] = "Basic"
    with pytest.raises(MappingError):
        check_resources(bundle)
