"""DocumentReference keeping the original MedCom XML, byte for byte."""

from __future__ import annotations

import base64
import hashlib

from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import medcom_identifier


def document_reference(raw: bytes, ctx: MapContext, type_text_code: str, envelope_id: str,
                       subject_role: str | None = "patient") -> dict:
    doc = {
        "resourceType": "DocumentReference",
        "id": ctx.id("documentreference"),
        "identifier": [
            medcom_identifier("envelope-id", envelope_id, ctx),
            medcom_identifier("letter-id", ctx.letter_id, ctx),
        ],
        "status": "current",
        "type": {"text": ctx.text(type_text_code)},
        "date": ctx.received_iso,
        "author": [ctx.ref("sender")],
        "content": [{"attachment": {
            "contentType": "application/xml",
            "data": base64.b64encode(raw).decode("ascii"),
            "size": len(raw),
            "hash": base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii"),
        }}],
    }
    if subject_role:
        doc["subject"] = ctx.ref(subject_role)
    return doc
