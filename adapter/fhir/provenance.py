"""Provenance naming the source message of everything in the Bundle."""

from __future__ import annotations

from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import coding, compact, prune, required


def provenance(ctx: MapContext, targets: list[str], occurred: str | None, status_code: str | None,
               entities: list[dict] | None = None) -> dict:
    activity = required(ctx.tables.translate("letter-status-to-activity", status_code or "nytbrev"),
                        "provenance activity")
    return compact({
        "resourceType": "Provenance",
        "id": ctx.id("provenance"),
        "target": [{"reference": f"urn:uuid:{t}"} for t in targets],
        "occurredDateTime": occurred,
        "recorded": ctx.received_iso,
        "activity": {"coding": [coding(activity.system, activity.code)]},
        "agent": [{"who": ctx.ref("sender")}],
        "entity": prune(entities) if entities is not None
        else [{"role": "source", "what": ctx.ref("documentreference")}],
    })
