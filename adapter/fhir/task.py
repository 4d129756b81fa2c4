"""Task per statutory deadline, and the municipality's region as Organization when a
rule makes the region the owner (rehabilitering from 2027)."""

from __future__ import annotations

from adapter.danish_time import iso_instant
from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import REGION_SYSTEM, prune, required
from adapter.medcom.identifiers import normalise_municipality_code
from adapter.medcom.model import GgopMessage
from adapter.rules.model import Deadline, StratificationProposal

OWNER_ROLES = {"receiver": "receiver", "sender": "sender", "region": "region"}


def task_role(d: Deadline) -> str:
    return f"task:{d.rule_id}"


def _input(ctx: MapContext, code: str, **value) -> dict:
    system = ctx.tables.system_url("task-input-types")
    return {"type": {"coding": [{"system": system, "code": code,
                                 "display": ctx.tables.text(code, "task-input-types")}]}, **value}


def legal_basis_text(d) -> list[str]:
    return [f"{b.document}, {b.section}" for b in d.legal_basis]


def task_from_deadline(d: Deadline, ctx: MapContext, proposal: StratificationProposal | None,
                       cancelled: bool = False) -> dict:
    """The Task for one deadline; ``cancelled`` when the letter cancels the plan (annulleretbrev)."""
    task_system = ctx.tables.system_url("task-codes")
    status_system = ctx.tables.system_url("task-business-status")
    inputs = [_input(ctx, "rule-id", valueString=d.rule_id)]
    inputs += [_input(ctx, "legal-basis", valueString=t) for t in legal_basis_text(d)]
    inputs.append(_input(ctx, "day-0", valueDate=d.day0.isoformat()))
    if d.plan_deadline is not None and d.plan_deadline.text.strip():
        inputs.append(_input(ctx, "plan-deadline-text", valueString=d.plan_deadline.text))
    if d.task_code in ("visitate-level", "visitate-child") and proposal is not None and proposal.level:
        level = required(ctx.tables.translate("stratum-to-kl-category", proposal.level), "level category")
        inputs.append(_input(ctx, "proposed-level", valueCodeableConcept={
            "coding": [{"system": level.system, "code": level.code, "display": level.display}]}))
        for f in proposal.fired:
            inputs.append(_input(ctx, "stratification-rule", valueString=f"{f.rule_id}: {f.reason_da}"))
    return prune({
        "resourceType": "Task",
        "id": ctx.id(task_role(d)),
        "status": "cancelled" if cancelled else "requested",
        "statusReason": {"text": ctx.text("plan-cancelled")} if cancelled else None,
        "businessStatus": {"coding": [{"system": status_system, "code": d.business_status,
                                       "display": ctx.tables.text(d.business_status, "task-business-status")}]},
        "intent": "order",
        "code": {"coding": [{"system": task_system, "code": d.task_code, "display": d.task_display}]},
        "description": d.reason_da,
        "basedOn": [ctx.ref("careplan")],  # the plan the Task serves (reachable by _include=Task:based-on)
        "focus": ctx.ref("servicerequest"),
        "for": ctx.ref("patient"),
        "authoredOn": ctx.received_iso,
        "requester": ctx.ref("sender"),
        "owner": ctx.ref(OWNER_ROLES[d.owner]),
        "restriction": {"period": {"end": iso_instant(d.due)}},
        "input": inputs,
    })


def region_organization(msg: GgopMessage, ctx: MapContext) -> dict | None:
    """The region of the receiving municipality (from adapter/mappings/municipalities.csv)."""
    receiver = required(msg.receiver, "receiver")
    code = normalise_municipality_code(receiver.identifier.value) if receiver.identifier else None
    municipality = ctx.tables.municipalities.get(code or "")
    if municipality is None:
        return None
    iso = ctx.tables.translate("region-code-to-iso", municipality.region_code)
    return prune({
        "resourceType": "Organization",
        "id": ctx.id("region"),
        "identifier": [{"system": REGION_SYSTEM, "value": iso.code}] if iso else None,
        "active": True,
        "name": municipality.region_name,
    })


def level_category(proposal: StratificationProposal | None, ctx: MapContext) -> dict | None:
    """The proposed basal/avanceret level as a second ServiceRequest category, marked proposed."""
    if proposal is None or proposal.level is None:
        return None
    level = required(ctx.tables.translate("stratum-to-kl-category", proposal.level), "level category")
    from adapter.fhir.context import ADAPTER_BASE

    return {
        "extension": [{"url": f"{ADAPTER_BASE}/StructureDefinition/level-status",
                       "valueCoding": {"system": ctx.tables.system_url("level-status"), "code": "proposed",
                                       "display": ctx.tables.text("proposed", "level-status")}}],
        "coding": [{"system": level.system, "code": level.code, "display": level.display}],
    }
