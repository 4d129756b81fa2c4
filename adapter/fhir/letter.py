"""XDIS91 correspondence → Communication, Patient, Organizations, Encounter, Provenance,
following MedCom's XDIS91 → CareCommunication conversion mapping (v5.0.0)."""

from __future__ import annotations

import uuid

from adapter.danish_time import fhir_datetime
from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import GLN_SYSTEM, URI_SYSTEM, medcom_identifier, prune, required, v
from adapter.fhir.document import document_reference
from adapter.fhir.organization import organization_resource
from adapter.fhir.patient import patient_resource
from adapter.fhir.provenance import provenance
from adapter.medcom.model import CorrespondenceMessage

CATEGORY_SYSTEM = "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-careCommunication-categoryCodes"
EXT = "http://medcomfhir.dk/ig/core/StructureDefinition/"
ENCOUNTER_CLASS = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CATEGORY = "other"


def _episode_identifier(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def encounter(msg: CorrespondenceMessage, ctx: MapContext) -> tuple[dict, bool]:
    status_code = v(msg.patient.episode_of_care_status) if msg.patient else None
    target = ctx.tables.translate("episode-status-to-encounter", status_code or "inaktiv")
    parts = (target.code if target else "unknown|other").split("|")
    episode = _episode_identifier(v(msg.letter.episode_of_care_identifier))
    resource = prune({
        "resourceType": "Encounter",
        "id": ctx.id("encounter"),
        "status": parts[0],
        "class": {"system": ENCOUNTER_CLASS, "code": parts[1]} if parts[1] != "other" else
        {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "OTH"},
        "subject": ctx.ref("patient"),
        "episodeOfCare": [{"identifier": {"value": episode}}] if episode else None,
    })
    return resource, len(parts) > 2 and parts[2] == "deceased"


def communication(msg: CorrespondenceMessage, ctx: MapContext) -> tuple[dict, list[str]]:
    when = fhir_datetime(v(msg.letter.authorisation_date), v(msg.letter.authorisation_time))
    author_ext = [
        {"url": EXT + "medcom-core-practitioner-extension", "valueReference": ctx.ref("practitionerrole:author")},
        {"url": EXT + "medcom-core-contact-extension", "valueContactPoint": {
            "system": "phone",
            "value": v(msg.sender.telephone) if msg.sender and msg.sender.telephone else ctx.text("unknown-phone")}},
    ]
    payload_ids: list[str] = []
    # MedCom's assigner must be a MedCom messaging Organization, which needs a SOR id
    # that XDIS91 does not carry: the sender is named logically by its GLN.
    sender_ean = required(required(msg.sender, "sender").ean, "sender EAN").value
    sender_ref = {"identifier": {"system": GLN_SYSTEM, "value": sender_ean}}

    def payload_meta(index: int) -> list[dict]:
        pid = f"urn:uuid:{ctx.id(f'payload:{index}')}"
        payload_ids.append(pid)
        return [
            {"url": EXT + "medcom-core-datetime-extension", "valueDateTime": when},
            {"url": EXT + "medcom-core-identifier-extension",
             "valueIdentifier": {"value": pid, "assigner": sender_ref}},
            *author_ext,
        ]

    texts = [t.value for t in msg.texts if t.value.strip()]
    if not texts and not any(r.url is not None or r.bin_object_identifier is not None for r in msg.references):
        # FHIR wants a payload, and content in every payload
        texts = [ctx.text("no-text")]
    if v(msg.priority) == "høj_prioritet":
        first = ctx.text("high-priority")
        texts = [first + ("\n" + texts[0] if texts else "")] + texts[1:]
    payload = []
    for i, text in enumerate(texts, 1):
        payload.append(prune({"extension": payload_meta(i), "contentString": text}))
    n = len(payload)
    for j, ref in enumerate(msg.references, 1):
        if ref.url is not None:
            payload.append({"extension": payload_meta(n + j), "contentAttachment": prune({
                "url": ref.url.value, "title": v(ref.description) or ctx.text("link")})})
        elif ref.bin_object_identifier is not None:
            payload.append({"extension": payload_meta(n + j), "contentAttachment": prune({
                "title": v(ref.bin_object_code) or v(ref.description),
                "url": f"urn:medcom:xbin01:{ref.bin_object_identifier.value}"})})
    resource = prune({
        "resourceType": "Communication",
        "id": ctx.id("communication"),
        "identifier": [{"system": URI_SYSTEM, "value": f"urn:uuid:{ctx.id('communication-identifier')}"},
                       medcom_identifier("letter-id", ctx.letter_id, ctx)],
        "status": "unknown",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": CATEGORY}]}],
        "subject": ctx.ref("patient"),
        "topic": {"text": v(msg.subject) or ctx.text("unknown-subject")},
        "encounter": ctx.ref("encounter"),
        "payload": payload,
    })
    return resource, payload_ids


def resources_from_letter(msg: CorrespondenceMessage, raw: bytes, ctx: MapContext) -> list[dict]:
    enc, deceased = encounter(msg, ctx)
    comm, payload_ids = communication(msg, ctx)
    org_name = v(msg.sender.organisation_name) if msg.sender else None
    envelope_id = required(msg.envelope.identifier, "envelope identifier").value
    out = [
        patient_resource(required(msg.patient, "patient"), [], ctx, deceased=True if deceased else None),
        organization_resource(required(msg.sender, "sender"), ctx, "sender"),
        organization_resource(required(msg.receiver, "receiver"), ctx, "receiver"),
        prune({"resourceType": "Practitioner", "id": ctx.id("practitioner:author"),
               "name": [{"text": org_name}] if org_name else None}),
        {"resourceType": "PractitionerRole", "id": ctx.id("practitionerrole:author"),
         "practitioner": ctx.ref("practitioner:author"),
         # MedCom's mapping says "ukendt"; the MedCom role code systems have no such code,
         # so it is the role's text.
         "code": [{"text": ctx.text("unknown-role")}]},
        enc,
        comm,
        document_reference(raw, ctx, "xdis91-document", envelope_id),
    ]
    occurred = fhir_datetime(v(msg.letter.authorisation_date), v(msg.letter.authorisation_time))
    entities = [{"role": "source", "what": {"identifier": {"value": pid}}} for pid in payload_ids]
    entities.append({"role": "source", "what": ctx.ref("documentreference")})
    out.append(provenance(ctx, [r["id"] for r in out], occurred, v(msg.letter.status_code), entities))
    return out
