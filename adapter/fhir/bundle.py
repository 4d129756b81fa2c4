"""The transaction Bundle, its check through the fhir.resources models, and R4 JSON.

This module and :mod:`adapter.fhir.models` are the only places that import
fhir.resources. Resources are built as plain dicts by the mapping modules;
here every one of them is parsed by the R4B model classes (structure-identical
to R4 for the resources used), so a mapping defect never leaves the adapter.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from adapter.errors import MappingError, issue
from adapter.fhir.context import MapContext
from adapter.fhir.models import model_class


def transaction_bundle(resources: list[dict], ctx: MapContext, timestamp: str) -> dict:
    return {
        "resourceType": "Bundle",
        "id": ctx.id("bundle"),
        "type": "transaction",
        "timestamp": timestamp,
        "entry": [{
            "fullUrl": f"urn:uuid:{r['id']}",
            "resource": r,
            "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
        } for r in resources],
    }


def check_with_models(bundle: dict) -> None:
    """Parse every entry with its model class; raise MappingError on any defect."""
    problems = []
    for i, entry in enumerate(bundle["entry"]):
        res = entry["resource"]
        try:
            model_class(res["resourceType"]).model_validate(res)
        except ValidationError as exc:
            for err in exc.errors():
                path = ".".join(str(p) for p in err["loc"])
                problems.append(issue("GGOP-E401", fhir_path=f"Bundle.entry[{i}].resource.{path}",
                                      detail=err["type"]))
    if problems:
        raise MappingError(problems)


def to_json(resource: dict, indent: int | None = 2) -> str:
    return json.dumps(resource, ensure_ascii=False, indent=indent)
