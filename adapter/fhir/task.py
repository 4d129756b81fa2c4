"""Task per statutory deadline, and the municipality's region as Organization when a
rule makes the region the owner (rehabilitering from 2027)."""

from __future__ import annotations

from adapter.danish_time import iso_instant
from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import REGION_SYSTEM, coding, compact, prune, required
from adapter.fhir.systems import REGION_KEY_SYSTEM
from adapter.medcom.identifiers import normalise_municipality_code
from adapter.medcom.model import GgopMessage
from adapter.rules.model import Deadline, Schedule, StratificationProposal

OWNER_ROLES = {"receiver": "receiver", "sender": "sender", "region": "region"}
NOTE_AUTHOR = "note-author"  # adapter-texts code of the notes' authorString


def task_role(d: Deadline) -> str:
    return f"task:{d.rule_id}"


def _input(ctx: MapContext, code: str, kind: str, value: str | dict) -> dict:
    """A Task.input: its type from the table, its value (``value<kind>``: a string or a coded
    value), left out when empty."""
    system = ctx.tables.system_url("task-input-types")
    out: dict = {"type": {"coding": [coding(system, code, ctx.tables.text(code, "task-input-types"))]}}
    if value:
        out["value" + kind] = value
    return out


def legal_basis_text(d, ctx: MapContext | None = None) -> list[str]:
    """"document, section (kind)": what the rule rests on and what sort of document that is."""
    return [f"{b.document}, {b.section}" + (f" ({ctx.text(f'legal-kind-{b.kind}')})" if ctx and b.kind else "")
            for b in d.legal_basis]


def task_from_deadline(d: Deadline, ctx: MapContext, proposal: StratificationProposal | None,
                       cancelled: bool = False) -> dict:
    """The Task for one deadline; ``cancelled`` when the letter cancels the plan (annulleretbrev)."""
    task_system = ctx.tables.system_url("task-codes")
    status_system = ctx.tables.system_url("task-business-status")
    inputs = [_input(ctx, "rule-id", "String", d.rule_id)]
    inputs += [_input(ctx, "legal-basis", "String", t) for t in legal_basis_text(d, ctx)]
    inputs.append(_input(ctx, "day-0", "Date", d.day0.isoformat()))
    if d.plan_deadline is not None and d.plan_deadline.text.strip():
        inputs.append(_input(ctx, "plan-deadline-text", "String", d.plan_deadline.text))
    if d.not_before is not None:
        inputs.append(_input(ctx, "earliest-start", "Date", d.not_before.isoformat()))
    flag_system = ctx.tables.system_url("task-flags")
    for flag in d.flags:
        inputs.append(_input(ctx, "flag", "CodeableConcept",
                             {"coding": [coding(flag_system, flag, ctx.tables.text(flag, "task-flags"))]}))
    if d.task_code in ("visitate-level", "visitate-child") and proposal is not None and proposal.level:
        level = required(ctx.tables.translate("stratum-to-kl-category", proposal.level), "level category")
        inputs.append(_input(ctx, "proposed-level", "CodeableConcept",
                             {"coding": [coding(level.system, level.code, level.display)]}))
        for f in proposal.fired:
            inputs.append(_input(ctx, "stratification-rule", "String", f"{f.rule_id}: {f.reason_da}"))
    period = {"start": d.not_before.isoformat()} if d.not_before else {}
    period["end"] = iso_instant(d.due)
    return compact({  # every nested part is built without empty values
        "resourceType": "Task",
        "id": ctx.id(task_role(d)),
        "status": "cancelled" if cancelled else "requested",
        "statusReason": {"text": ctx.text("plan-cancelled")} if cancelled else None,
        "businessStatus": {"coding": [coding(status_system, d.business_status,
                                             ctx.tables.text(d.business_status, "task-business-status"))]},
        "intent": "order",
        "code": {"coding": [coding(task_system, d.task_code, d.task_display)]},
        "description": d.reason_da,
        "basedOn": [ctx.ref("careplan")],  # the plan the Task serves (reachable by _include=Task:based-on)
        "focus": ctx.ref("servicerequest"),
        "for": ctx.ref("patient"),
        "authoredOn": ctx.received_iso,
        "requester": ctx.ref("sender"),
        "owner": ctx.ref(OWNER_ROLES[d.owner]),
        # a postponed start: the earliest day the start may be offered for (KL: "Udskudt")
        "restriction": {"period": period},
        "input": inputs,
        "note": task_notes(d, ctx) or None,
    })


def task_notes(d: Deadline, ctx: MapContext) -> list[dict]:
    """Why the deadline is the way it is, in Danish (the English text is in the explanation)."""
    return [{"authorString": ctx.text(NOTE_AUTHOR), "text": n.text_da} if n.text_da else
            {"authorString": ctx.text(NOTE_AUTHOR)} for n in d.notes]


def region_organization(msg: GgopMessage, ctx: MapContext, schedule: Schedule | None = None) -> dict | None:
    """The region of the receiving municipality (adapter/mappings/municipalities.csv) on the
    plan's day 0: a region the reform merged is replaced by the new one (``region_mergers``)."""
    receiver = required(msg.receiver, "receiver")
    code = normalise_municipality_code(receiver.identifier.value) if receiver.identifier else None
    municipality = ctx.tables.municipalities.get(code or "")
    if municipality is None:
        return None
    merger = schedule.region_merger(municipality.region_code) if schedule is not None else None
    if merger is not None:
        if merger.iso:
            identifier = {"system": REGION_SYSTEM, "value": merger.iso}
        else:  # no official code yet: the adapter's key names it
            identifier = {"system": REGION_KEY_SYSTEM, "value": merger.key}
        return {"resourceType": "Organization", "id": ctx.id("region"), "identifier": [identifier],
                "active": True, "name": merger.name}
    iso = ctx.tables.translate("region-code-to-iso", municipality.region_code)
    return prune({
        "resourceType": "Organization",
        "id": ctx.id("region"),
        "identifier": [{"system": REGION_SYSTEM, "value": iso.code}] if iso else None,
        "active": True,
        "name": municipality.region_name,
    })
