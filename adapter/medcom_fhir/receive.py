"""A received CareCommunication message, checked and converted: the pure core of
``POST /fhir/$process-message`` and of the inbox for FHIR messages.

:func:`check_message` reads the bytes (FHIR XML or JSON, hardened and bounded), checks the
message (:mod:`adapter.medcom_fhir.inbound`) and decides whom it is for;
:func:`convert_message` turns it into the transaction Bundle an XDIS91 letter with the same
content gives (:func:`adapter.fhir.letter.resources_from_letter`), with the message's own
category on the Communication and the message itself, as received, in the DocumentReference.
:func:`content_key` is what "the same content" means for MedCom's reliable messaging: the
message without Bundle.id, Bundle.timestamp and Bundle.meta, which a resend renews.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Container
from dataclasses import dataclass, field

from adapter.codes import CodeTables
from adapter.errors import AdapterError, InputError, Issue, MappingError, issue
from adapter.fhir.context import MapContext
from adapter.fhir.letter import resources_from_letter
from adapter.medcom.model import CorrespondenceMessage
from adapter.medcom_fhir.inbound import Inbound, category_of, read_carecommunication, served_municipality, to_letter
from adapter.medcom_fhir.sor import SorDirectory
from adapter.medcom_fhir.wire import MEDIA_TYPES, read_message
from adapter.pipeline import Conversion, Limits, finish_bundle
from adapter.routing.recipients import LetterTerms

KIND = "fdis91"  # MedCom's name for a CareCommunication on VANS (MCM:FDIS91)
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


@dataclass
class Checked:
    """A received message read and checked; ``message`` is None when it could not be read."""

    message: Inbound | None
    fmt: str | None
    issues: list[Issue] = field(default_factory=list)
    municipality: str | None = None

    @property
    def accepted(self) -> bool:
        return self.message is not None and not any(i.is_error for i in self.issues)


def check_message(raw: bytes, *, limits: Limits, municipalities: Container[str], sor: SorDirectory,
                  routable: Callable[[list[str]], bool], media_type: str | None = None) -> Checked:
    """Read and check a CareCommunication message. Never raises for bad input."""
    try:
        bundle, fmt = read_message(raw, limits, media_type)
    except InputError as exc:
        return Checked(None, None, exc.issues)
    msg = read_carecommunication(bundle)
    issues = list(msg.issues)
    municipality = None
    if msg.receiver is not None:
        municipality, not_served = served_municipality(msg, municipalities, sor, routable)
        if not_served is not None:
            issues.append(not_served)
    return Checked(msg, fmt, issues, municipality)


def store_key(value: str) -> str:
    """A Bundle.id or MessageHeader.id as the store keeps it (at most 35 characters): a UUID
    without its hyphens (``u:``), another id up to 35 characters as it is, a longer one hashed
    (``h:``). FHIR ids have no ``:``, so the three never collide."""
    if _UUID.match(value):
        return "u:" + value.replace("-", "")
    if len(value) <= 35:
        return value
    return "h:" + hashlib.sha256(value.encode()).hexdigest()[:32]


def content_key(bundle: dict) -> str:
    """SHA-256 of the message without what a resend renews (Bundle.id, timestamp, meta)."""
    body = {k: v for k, v in bundle.items() if k not in ("id", "timestamp", "meta")}
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
                          .encode("utf-8")).hexdigest()


def convert_message(checked: Checked, raw: bytes, at: dt.datetime, *, tables: CodeTables, sor: SorDirectory,
                    id_key: bytes, letter_terms: LetterTerms | None = None, check_models: bool = True) -> Conversion:
    """The transaction Bundle of an accepted message, with the Tasks the letter asks for
    (``letter-tasks.yaml``), as :func:`adapter.pipeline.convert_bytes` makes it of an XDIS91
    letter (raises MappingError on a defect of ours)."""
    msg = checked.message
    assert msg is not None and checked.accepted, "convert only an accepted message"
    letter: CorrespondenceMessage = to_letter(msg, checked.municipality, sor)
    assert letter.sender is not None and letter.sender.ean is not None and letter.letter.identifier is not None
    ctx = MapContext(sender_ean=letter.sender.ean.value, letter_id=letter.letter.identifier.value,
                     received_at=at, tables=tables)
    issues: list[Issue] = []
    try:
        resources = resources_from_letter(letter, raw, ctx)
        category = category_of(msg)
        for r in resources:
            if r["resourceType"] == "Communication" and category is not None:
                r["category"] = [{"coding": [category]}]
            if r["resourceType"] == "DocumentReference":
                r["type"] = {"text": ctx.text("carecommunication-document")}
                r["content"][0]["attachment"]["contentType"] = MEDIA_TYPES[checked.fmt or "json"]
        if any(ref.bin_object_identifier is not None for ref in letter.references):
            issues.append(issue("GGOP-W602", fhir_path=f"{msg.communication.path}.payload"
                                if msg.communication else None))
        bundle = finish_bundle(resources, ctx, at, id_key=id_key, check_models=check_models, letter=letter,
                               letter_terms=letter_terms)
    except AdapterError:
        raise
    except (KeyError, AttributeError, TypeError, ValueError) as exc:  # a defect of ours, located
        raise MappingError(issue("GGOP-E401", detail=type(exc).__name__)) from exc
    return Conversion(bundle, issues, KIND, letter)
