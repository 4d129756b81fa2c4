"""Consent: the patient's ConsentInformed answer and a declined GP copy."""

from __future__ import annotations

from adapter.danish_time import fhir_datetime
from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import prune, v
from adapter.medcom.model import GgopMessage

SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CATEGORY = "http://loinc.org"


def consent_from_plan(msg: GgopMessage, ctx: MapContext) -> dict | None:
    answer = ctx.tables.translate("consent-answer", v(msg.consent))
    if answer is None and msg.gp_deselected is None:
        return None
    nested = None
    if msg.gp_deselected is not None:
        nested = [{"type": "deny", "code": [{"text": ctx.text("gp-copy-declined")}]}]
    return prune({
        "resourceType": "Consent",
        "id": ctx.id("consent"),
        "status": "active",
        "scope": {"coding": [{"system": SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": CATEGORY, "code": "59284-0"}]}],
        "patient": ctx.ref("patient"),
        "dateTime": fhir_datetime(v(msg.letter.authorisation_date), v(msg.letter.authorisation_time)),
        "organization": [ctx.ref("sender")],
        "policyRule": {"text": ctx.text("ggop-consent-policy")},
        "provision": {"type": answer.code if answer else "permit", "provision": nested}
        if answer else {"type": "deny", "provision": nested},
    })
