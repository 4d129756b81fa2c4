"""ServiceRequest for a received G-GOP, shaped after KL Gateway's klgateway-140-servicerequest."""

from __future__ import annotations

from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import coding, compact, medcom_identifier, required, v
from adapter.medcom.model import GgopMessage

PRECONDITION_DATE = "http://fhir.kl.dk/rehab/StructureDefinition/PreconditionDate"
STATUS_REASON = "http://hl7.org/fhir/StructureDefinition/request-statusReason"


def _status_reason(ctx: MapContext, reason: str) -> dict:
    """KL Gateway's status reason (ServiceRequestStatusReasons140) for an adapter flag."""
    target = required(ctx.tables.translate("service-request-status-reason", reason), "status reason")
    return {"url": STATUS_REASON, "valueCodeableConcept": {
        "coding": [coding(target.system, target.code, target.display)]}}


def service_request_from_plan(msg: GgopMessage, ctx: MapContext, condition_roles: list[str],
                              status: str = "active", postponed: bool = False) -> dict:
    """The referral. It carries the plan's own level (almen/specialiseret/rehabilitering) but not
    the adapter's basal/avanceret proposal: KL's model keeps the *decided* level there, which the
    municipality's confirmation adds. ``postponed``: the plan postpones the start (KL "Udskudt");
    ``occurrencePeriod`` is left to the offered first contact."""
    category = required(ctx.tables.translate("plan-type-to-kl-category", v(msg.plan_type)), "plan category")
    code = required(ctx.tables.translate("ggop-service-code", "GGOP"), "service code")
    discharge = msg.contact_end.date.value if msg.contact_end and msg.contact_end.date else None
    return compact({  # every nested part is built without empty values
        "resourceType": "ServiceRequest",
        "id": ctx.id("servicerequest"),
        "extension": ([{"url": PRECONDITION_DATE, "valueDate": discharge}] if discharge else [])
        + ([_status_reason(ctx, "postponed-start")] if postponed else []),
        "identifier": [medcom_identifier("letter-id", required(msg.letter.identifier, "letter identifier").value, ctx)],
        "status": status,
        "intent": "plan",
        "category": [{"coding": [coding(category.system, category.code, category.display)]}],
        "code": {"coding": [coding(code.system, code.code, code.display)]},
        "subject": ctx.ref("patient"),
        "authoredOn": ctx.received_iso,
        "requester": ctx.ref("sender"),
        "performer": [ctx.ref("receiver")],
        "reasonReference": [ctx.ref(r) for r in condition_roles],
        "supportingInfo": [ctx.ref("documentreference")],
        "patientInstruction": v(msg.information_for_patient),
    })
