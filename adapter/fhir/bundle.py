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
from adapter.fhir.identity import Identity
from adapter.fhir.models import model_class


def _entry(resource: dict, identity: Identity | None) -> dict:
    conditional = identity.conditional_url if identity is not None else None
    if conditional is None:
        return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource,
                "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}}
    # A conditional update carries no id: a receiver that knows this citizen or organisation
    # under its own id updates that resource (FHIR http.html#cond-update).
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": {k: v for k, v in resource.items() if k != "id"},
            "request": {"method": "PUT", "url": conditional}}


def transaction_bundle(resources: list[dict], ctx: MapContext, timestamp: str,
                       identities: dict[str, Identity] | None = None) -> dict:
    """PUT entries: by id, or conditional on the business identifier for resources that
    have one (``identities``, by resource id)."""
    return {
        "resourceType": "Bundle",
        "id": ctx.id("bundle"),
        "type": "transaction",
        "timestamp": timestamp,
        "entry": transaction_entries(resources, identities or {}),
    }


def transaction_entries(resources: list[dict], identities: dict[str, Identity]) -> list[dict]:
    return [_entry(r, identities.get(r["id"])) for r in resources]


def entry_id(entry: dict) -> str:
    """The id of an entry's resource: its own, or (conditional entries) its fullUrl's uuid."""
    rid = entry["resource"].get("id")
    if rid:
        return rid
    return entry["fullUrl"].rsplit(":", 1)[-1]


def entry_resource(entry: dict) -> dict:
    """The entry's resource with its id (as the adapter stores it)."""
    res = entry["resource"]
    if res.get("id"):
        return res
    return {"resourceType": res["resourceType"], "id": entry_id(entry),
            **{k: v for k, v in res.items() if k != "resourceType"}}


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


def patient_id(bundle: dict) -> str | None:
    """The id of the Bundle's Patient."""
    return next((entry_id(e) for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"), None)
