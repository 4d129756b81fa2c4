"""CarePlan with the plan's free-text sections, based on the ServiceRequest."""

from __future__ import annotations

from adapter.danish_time import fhir_datetime
from adapter.fhir.context import ADAPTER_BASE, MapContext
from adapter.fhir.datatypes import coding, compact, prune, v
from adapter.medcom.model import GgopMessage
from adapter.medcom.nodes import Val

SECTION_EXTENSION = f"{ADAPTER_BASE}/StructureDefinition/ggop-section"

# (section code in adapter/mappings/codesystems/ggop-sections.json, message attribute)
TEXT_SECTIONS = (
    ("RehabilitationDeadline", "rehabilitation_deadline"),
    ("AbilityAtDischargeSummary", "ability_summary"),
    ("AbilityAtDischargeExtended", "ability_extended"),
    ("RehabilitationNeedAndPotential", "need_and_potential"),
    ("PatientHealthSummary", "health_summary"),
    ("PatientSafetyAspects", "patient_safety"),
    ("PracticalInformation", "practical_information"),
    ("InformationForPatientAndRelatives", "information_for_patient"),
    ("ICD10DiagnosesText", "diagnosis_text"),
)


def _note(section: str, text: str, ctx: MapContext, author: str | None = None, time: str | None = None) -> dict:
    system = ctx.tables.system_url("ggop-sections")
    display = ctx.tables.text(section, "ggop-sections")
    return compact({  # the text is there (an empty section or excerpt has no note)
        "extension": [{"url": SECTION_EXTENSION, "valueCoding": coding(system, section, display)}],
        "authorString": author,
        "time": time,
        "text": text,
    })


def _name(*parts: Val | None) -> str | None:
    words = [p.value for p in parts if p is not None]
    return " ".join(words) if words else None


def care_plan_from_plan(msg: GgopMessage, ctx: MapContext, condition_roles: list[str],
                        author_role: str, contributor_roles: list[str], status: str = "active") -> dict:
    notes = []
    for section, attr in TEXT_SECTIONS:
        val = getattr(msg, attr)
        if val is not None:
            notes.append(_note(section, val.value, ctx))
    if msg.contact_end is not None and msg.contact_end.text is not None:
        notes.append(_note("ExpectedEndText", msg.contact_end.text.value, ctx))
    for icf in msg.icf:
        lines = []
        for part in (icf.code, icf.gradient):
            if part is not None:
                lines.append(" ".join(x.value for x in (part.code, part.text) if x is not None))
        if any(lines):
            notes.append(_note("ICFClassification", "\n".join(lines), ctx))
    for j in msg.journal_excerpts:
        text = "\n".join(x.value for x in (j.type_of_excerpt, j.comment) if x is not None)
        if text:
            author = _name(j.signer.given_name, j.signer.surname, j.signer.title) if j.signer else None
            # a malformed signing date was warned about (GGOP-W338) and is left out
            notes.append(_note("JournalExcerpt", text, ctx, author, fhir_datetime(v(j.date), None)))
    for r in msg.references:
        text = "\n".join(x.value for x in (r.description, r.url) if x is not None)
        if text:
            notes.append(_note("Reference", text, ctx))
    for section, party in (("ContactCounty", msg.contact_county), ("ContactMunicipality", msg.contact_municipality)):
        if party is not None:
            text = "\n".join(x.value for x in (party.organisation_name, party.department_name, party.street_name,
                                                 party.district_name, party.post_code, party.telephone) if x)
            if text:
                notes.append(_note(section, text, ctx))

    # R4 CarePlan.basedOn admits only CarePlan: the referral is the plan's activity.
    activities = [{"reference": ctx.ref("servicerequest")}]
    if msg.ambulatory_start is not None or msg.ambulatory_location is not None:
        start = msg.ambulatory_start
        when = fhir_datetime(v(start.date), v(start.time)) if start else None
        activities.append({"detail": prune({
            "kind": "Appointment",
            "status": "scheduled",
            "description": "\n".join(x for x in (ctx.text("ambulatory-control"),
                                                 v(start.text) if start else None) if x),
            "scheduledPeriod": {"start": when} if when else None,
            "performer": [ctx.ref("ambulatory-location")] if msg.ambulatory_location else None,
        })})

    end = msg.contact_end
    discharge = fhir_datetime(v(end.date), v(end.time)) if end is not None else None
    return compact({  # every nested part is built without empty values
        "resourceType": "CarePlan",
        "id": ctx.id("careplan"),
        "status": status,
        "intent": "plan",
        "subject": ctx.ref("patient"),
        "period": {"start": discharge} if discharge else None,
        "created": fhir_datetime(v(msg.letter.authorisation_date), v(msg.letter.authorisation_time)),
        "author": ctx.ref(author_role),
        "contributor": [ctx.ref(r) for r in contributor_roles],
        "addresses": [ctx.ref(r) for r in condition_roles],
        "activity": activities,
        "note": notes,
    })
