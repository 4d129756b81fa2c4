"""ServiceRequest for a received G-GOP, shaped after KL Gateway's klgateway-140-servicerequest."""

from __future__ import annotations

from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import medcom_identifier, prune, required, v
from adapter.medcom.model import GgopMessage

PRECONDITION_DATE = "http://fhir.kl.dk/rehab/StructureDefinition/PreconditionDate"


def service_request_from_plan(msg: GgopMessage, ctx: MapContext, condition_roles: list[str],
                              status: str = "active", proposed_level: dict | None = None) -> dict:
    """``proposed_level`` is the basal/avanceret category marked as proposed (almen plans)."""
    category = required(ctx.tables.translate("plan-type-to-kl-category", v(msg.plan_type)), "plan category")
    code = required(ctx.tables.translate("ggop-service-code", "GGOP"), "service code")
    discharge = msg.contact_end.date.value if msg.contact_end and msg.contact_end.date else None
    return prune({
        "resourceType": "ServiceRequest",
        "id": ctx.id("servicerequest"),
        "extension": [{"url": PRECONDITION_DATE, "valueDate": discharge}] if discharge else None,
        "identifier": [medcom_identifier("letter-id", required(msg.letter.identifier, "letter identifier").value, ctx)],
        "status": status,
        "intent": "plan",
        "category": [{"coding": [{"system": category.system, "code": category.code, "display": category.display}]},
                     proposed_level],
        "code": {"coding": [{"system": code.system, "code": code.code, "display": code.display}]},
        "subject": ctx.ref("patient"),
        "authoredOn": ctx.received_iso,
        "requester": ctx.ref("sender"),
        "performer": [ctx.ref("receiver")],
        "reasonReference": [ctx.ref(r) for r in condition_roles],
        "supportingInfo": [ctx.ref("documentreference")],
        "patientInstruction": v(msg.information_for_patient),
    })
