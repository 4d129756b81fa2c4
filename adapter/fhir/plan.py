"""All FHIR resources for one G-GOP, in Bundle order."""

from __future__ import annotations

import dataclasses

from adapter.danish_time import fhir_datetime
from adapter.fhir.care_plan import care_plan_from_plan
from adapter.fhir.condition import (
    condition_resource,
    condition_role,
    free_text_condition,
)
from adapter.fhir.consent import consent_from_plan
from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import required, v
from adapter.fhir.document import document_reference
from adapter.fhir.identity import assign_identities, organization_identity
from adapter.fhir.organization import organization_resource
from adapter.fhir.patient import patient_resource
from adapter.fhir.practitioner import practitioner_resources
from adapter.fhir.provenance import provenance
from adapter.fhir.service_request import service_request_from_plan
from adapter.fhir.task import region_organization, task_from_deadline
from adapter.medcom.model import GgopMessage
from adapter.rules.model import Schedule, StratificationProposal

STATUS_BY_LETTER = {"annulleretbrev": ("revoked", "revoked")}


def resources_from_plan(msg: GgopMessage, raw: bytes, ctx: MapContext,
                        proposal: StratificationProposal | None = None,
                        schedule: Schedule | None = None) -> list[dict]:
    sr_status, cp_status = STATUS_BY_LETTER.get(v(msg.letter.status_code) or "", ("active", "active"))
    out: list[dict] = []

    orgs = [(required(msg.sender, "sender"), "sender"), (required(msg.receiver, "receiver"), "receiver")]
    if msg.gp is not None:
        orgs.append((msg.gp, "gp"))
    orgs += [(p, p.role) for p in msg.cc_receivers]
    if msg.ambulatory_location is not None:
        orgs.append((msg.ambulatory_location, "ambulatory-location"))
    orgs += [(p, p.role) for p in msg.result_receivers]

    out.append(patient_resource(required(msg.patient, "patient"), msg.relatives, ctx, gp=msg.gp))
    out += [organization_resource(p, ctx, role) for p, role in orgs]

    people = [p for p in (msg.signed_by, msg.co_writer) if p is not None] + list(msg.team)
    for person in people:
        out += practitioner_resources(person, ctx, "sender")

    deadlines = schedule.deadlines if schedule is not None else []
    region = None
    if any(d.owner == "region" for d in deadlines):
        region = region_organization(msg, ctx, schedule)
        if region is None:  # the receiver names no known municipality: it keeps the region's tasks
            deadlines = [dataclasses.replace(d, owner="receiver") if d.owner == "region" else d for d in deadlines]
    if ctx.id_key is not None:  # the keyed ids now, so that every reference below is right at once
        shared = out + ([region] if region is not None else [])
        new_ids, ctx.identities = assign_identities(shared, ctx.id_key)
        ctx.rename(new_ids)
        out = shared[:len(out)]
        region = shared[-1] if region is not None else None

    condition_roles = []
    for i, d in enumerate(msg.diagnoses, 1):
        out.append(condition_resource(d, i, ctx))
        condition_roles.append(condition_role(i, d))
    if msg.diagnosis_text is not None and not msg.diagnoses:
        out.append(free_text_condition(msg.diagnosis_text, ctx))
        condition_roles.append("condition:text")
    if region is not None:
        out.insert(1, region)

    postponed = schedule is not None and schedule.earliest_start is not None
    out.append(service_request_from_plan(msg, ctx, condition_roles, sr_status, postponed))
    author = "practitionerrole:signer" if msg.signed_by is not None else "sender"
    contributors = [f"practitionerrole:{p.role}" for p in people if p.role != "signer"]
    out.append(care_plan_from_plan(msg, ctx, condition_roles, author, contributors, cp_status))
    consent = consent_from_plan(msg, ctx)
    if consent is not None:
        out.append(consent)
    cancelled = sr_status == "revoked"  # the hospital cancelled the plan: its deadlines no longer run
    out += [task_from_deadline(d, ctx, proposal, cancelled) for d in deadlines]
    envelope_id = required(msg.envelope.identifier, "envelope identifier").value
    out.append(document_reference(raw, ctx, "ggop-document", envelope_id))
    occurred = fhir_datetime(v(msg.letter.authorisation_date), v(msg.letter.authorisation_time))
    out.append(provenance(ctx, [r["id"] for r in out], occurred, v(msg.letter.status_code)))
    return out


def organization_ids(msg: GgopMessage, ctx: MapContext, secret: bytes,
                     schedule: Schedule | None = None) -> dict[str, str]:
    """The ids of the plan's sender, receiver and (when known) region Organizations, as
    :func:`adapter.fhir.identity.identify` gives them: what a Task made later refers to."""
    parties = [("sender", organization_resource(required(msg.sender, "sender"), ctx, "sender")),
               ("receiver", organization_resource(required(msg.receiver, "receiver"), ctx, "receiver"))]
    region = region_organization(msg, ctx, schedule)
    if region is not None:
        parties.append(("region", region))
    out = {}
    for role, resource in parties:
        ident = organization_identity(resource)
        out[role] = ident.resource_id(secret) if ident is not None else resource["id"]
    return out
