"""A received MedCom CareCommunication message: the checks that matter for safety, and the
letter it carries, in the typed model an XDIS91 letter is read into.

:func:`read_carecommunication` checks what the adapter relies on — a message Bundle with a
``care-communication-message`` MessageHeader first, its ids, a sender and a primary receiver
that resolve to Organizations with a location number (GLN), a focus Communication with its
``urn:uuid`` identifier, category, subject and payloads, exactly one Patient identified by CPR
or replacement CPR, the Provenance of the message — each failure an issue with its code and
FHIR path, never a value. :func:`served_municipality` decides whether the primary receiver is
one the adapter serves. :func:`to_letter` reads the message into a
:class:`~adapter.medcom.model.CorrespondenceMessage` along MedCom's CareCommunication → XDIS91
mapping, so a received CareCommunication is converted, routed and turned into Tasks exactly as
an XDIS91 letter is (:mod:`adapter.fhir.letter`, :mod:`adapter.routing.recipients`).
Pure functions.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

from adapter.danish_time import DANISH_TIME
from adapter.errors import Issue, issue
from adapter.fhir.systems import CPR_SYSTEM, GLN_SYSTEM, MUNICIPALITY_SYSTEM, SOR_SYSTEM, XECPR_SYSTEM
from adapter.medcom.identifiers import cpr_birth_date, gln_is_valid, normalise_municipality_code
from adapter.medcom.model import (
    NS_2006,
    Address,
    CorrespondenceMessage,
    Envelope,
    Letter,
    Party,
    Patient,
    Reference,
    Where,
)
from adapter.medcom.nodes import Val
from adapter.medcom_fhir import profiles as p
from adapter.medcom_fhir.sor import SorDirectory

DECPR_SYSTEM = "urn:oid:1.2.208.176.1.6.1.3"
REPLACEMENT_SYSTEMS = (XECPR_SYSTEM, DECPR_SYSTEM)
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
UUID_URN = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_CPR = re.compile(r"^[0-9]{10}$")
_DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
                       r"(Z|[+-][0-9]{2}:[0-9]{2})$")
# MedCom's requestPriority codes that XDIS91 calls høj_prioritet
HIGH_PRIORITY = ("asap", "urgent", "stat")


@dataclass
class Located:
    """A resource of the Bundle and its FHIR path."""

    resource: dict
    path: str


@dataclass
class Inbound:
    """What the adapter needs of a CareCommunication message (any part may be missing when
    the message is refused; ``issues`` say why)."""

    bundle: dict
    bundle_id: str | None = None
    header_id: str | None = None
    timestamp: str | None = None
    header: Located | None = None
    sender: Located | None = None
    receiver: Located | None = None
    receiver_endpoint: str | None = None
    communication: Located | None = None
    patient: Located | None = None
    encounter: Located | None = None
    provenance: Located | None = None
    issues: list[Issue] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not any(i.is_error for i in self.issues)

    @property
    def addressable(self) -> bool:
        """An Acknowledgement can be sent: both ids and both parties are known."""
        return bool(self.bundle_id and self.header_id and self.sender_gln and self.receiver_gln)

    @property
    def sender_gln(self) -> str | None:
        return gln_of(self.sender.resource) if self.sender else None

    @property
    def receiver_gln(self) -> str | None:
        return gln_of(self.receiver.resource) if self.receiver else None


def identifier_value(resource: dict, system: str) -> str | None:
    for i in resource.get("identifier") or []:
        if isinstance(i, dict) and i.get("system") == system and isinstance(i.get("value"), str):
            return i["value"]
    return None


def gln_of(org: dict) -> str | None:
    """The organisation's GLN (DK-core's system; older MedCom documents use ``urn:oid:1.3.88``
    and DK-core 3.5 ``http://www.gs1.org/gln``, which are read too)."""
    for system in (GLN_SYSTEM, "http://www.gs1.org/gln", "urn:oid:1.3.88"):
        value = identifier_value(org, system)
        if value:
            return value
    return None


class _Bundle:
    def __init__(self, bundle: dict):
        entries = bundle.get("entry")
        self.entries = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    def resource(self, i: int) -> dict | None:
        r = self.entries[i].get("resource") if i < len(self.entries) else None
        return r if isinstance(r, dict) else None

    def resolve(self, ref: Any) -> Located | None:
        """The entry a reference points to (``Type/id`` against the fullUrls, or a ``urn:uuid``)."""
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str) or not target:
            return None
        for i, e in enumerate(self.entries):
            res = self.resource(i)
            if res is None:
                continue
            url: str = e["fullUrl"] if isinstance(e.get("fullUrl"), str) else ""
            own = f"{res.get('resourceType')}/{res.get('id')}"
            if url == target or (not target.startswith("urn:") and (url.endswith("/" + target) or own == target)):
                return Located(res, f"Bundle.entry[{i}].resource")
        return None

    def of_type(self, rtype: str) -> list[Located]:
        out = []
        for i in range(len(self.entries)):
            res = self.resource(i)
            if res is not None and res.get("resourceType") == rtype:
                out.append(Located(res, f"Bundle.entry[{i}].resource"))
        return out


def _primary_destination(header: dict) -> tuple[int, dict] | None:
    destinations = header.get("destination")
    if not isinstance(destinations, list):
        return None
    found = []
    for n, d in enumerate(destinations):
        if not isinstance(d, dict):
            continue
        uses = [x.get("valueCoding", {}).get("code") for x in d.get("extension") or []
                if isinstance(x, dict) and x.get("url") == p.DESTINATION_USE_EXTENSION
                and isinstance(x.get("valueCoding"), dict)]
        if "primary" in uses or (not uses and len(destinations) == 1):
            found.append((n, d))
    return found[0] if len(found) == 1 else None


def read_carecommunication(bundle: dict) -> Inbound:
    """Check a CareCommunication message and find its parts (see the module's doc)."""
    msg = Inbound(bundle)
    add = msg.issues.append

    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "message":
        add(issue("GGOP-E605", fhir_path="Bundle.type"))
        return msg
    b = _Bundle(bundle)
    bid = bundle.get("id")
    if not isinstance(bid, str) or not bid:
        add(issue("GGOP-E606", fhir_path="Bundle.id"))
    elif not FHIR_ID.match(bid):
        add(issue("GGOP-E608", fhir_path="Bundle.id"))
    else:
        msg.bundle_id = bid
    ts = bundle.get("timestamp")
    if not isinstance(ts, str) or not ts:
        add(issue("GGOP-E606", fhir_path="Bundle.timestamp"))
    elif not _DATETIME.match(ts) or _instant(ts) is None:
        add(issue("GGOP-E604", fhir_path="Bundle.timestamp", detail="dateTime with time zone"))
    else:
        msg.timestamp = ts

    header = b.resource(0) if b.entries else None
    if header is None or header.get("resourceType") != "MessageHeader":
        add(issue("GGOP-E605", fhir_path="Bundle.entry[0].resource"))
        return msg
    hpath = "Bundle.entry[0].resource"
    msg.header = Located(header, hpath)
    event: dict = header["eventCoding"] if isinstance(header.get("eventCoding"), dict) else {}
    if event.get("system") != p.EVENT_SYSTEM or event.get("code") != p.CARE_COMMUNICATION_EVENT:
        add(issue("GGOP-E605", fhir_path=f"{hpath}.eventCoding"))
        return msg
    hid = header.get("id")
    if not isinstance(hid, str) or not hid:
        add(issue("GGOP-E606", fhir_path=f"{hpath}.id"))
    elif not FHIR_ID.match(hid):
        add(issue("GGOP-E608", fhir_path=f"{hpath}.id"))
    else:
        msg.header_id = hid

    msg.sender = _organization(b, header.get("sender"), f"{hpath}.sender", add)
    primary = _primary_destination(header)
    if primary is None:
        add(issue("GGOP-E606", fhir_path=f"{hpath}.destination", detail="one primary destination"))
    else:
        n, dest = primary
        msg.receiver = _organization(b, dest.get("receiver"), f"{hpath}.destination[{n}].receiver", add)
        msg.receiver_endpoint = dest.get("endpoint") if isinstance(dest.get("endpoint"), str) else None

    focus = header.get("focus")
    comm = b.resolve(focus[0]) if isinstance(focus, list) and len(focus) == 1 else None
    if comm is None or comm.resource.get("resourceType") != "Communication":
        add(issue("GGOP-E607", fhir_path=f"{hpath}.focus"))
    else:
        msg.communication = comm
        _check_communication(b, msg, comm, add)

    patients = b.of_type("Patient")
    if len(patients) != 1:
        add(issue("GGOP-E612", fhir_path="Bundle.entry.resource.ofType(Patient)", detail=f"{len(patients)} found"))
    else:
        msg.patient = patients[0]
        _check_patient(patients[0], add)

    provenances = [x for x in b.of_type("Provenance")
                   if any(_targets(t, hid) or _is(b.resolve(t), header) for t in x.resource.get("target") or [])]
    if not provenances:
        add(issue("GGOP-E606", fhir_path="Bundle.entry.resource.ofType(Provenance)",
                  detail="a Provenance of this message"))
    else:
        msg.provenance = provenances[0]
        coding = (provenances[0].resource.get("activity") or {}).get("coding") or [{}]
        if not isinstance(coding[0], dict) or coding[0].get("code") not in p.CC_ACTIVITIES:
            add(issue("GGOP-E606", fhir_path=f"{provenances[0].path}.activity", detail="a messaging activity"))
    return msg


def _is(found: Located | None, resource: dict) -> bool:
    return found is not None and found.resource is resource


def _targets(ref: Any, header_id: Any) -> bool:
    target = ref.get("reference") if isinstance(ref, dict) else None
    return isinstance(target, str) and isinstance(header_id, str) and target.endswith(f"MessageHeader/{header_id}")


def _organization(b: _Bundle, ref: Any, path: str, add: Callable[[Issue], None]) -> Located | None:
    if not isinstance(ref, dict):
        add(issue("GGOP-E606", fhir_path=path))
        return None
    org = b.resolve(ref)
    if org is None or org.resource.get("resourceType") != "Organization":
        add(issue("GGOP-E607", fhir_path=path))
        return None
    gln = gln_of(org.resource)
    if gln is None:
        add(issue("GGOP-E606", fhir_path=f"{org.path}.identifier", detail="location number (GLN)"))
        return None
    if not gln_is_valid(gln):
        add(issue("GGOP-E608", fhir_path=f"{org.path}.identifier", detail="location number (GLN)"))
        return None
    return org


def _check_communication(b: _Bundle, msg: Inbound, comm: Located, add: Callable[[Issue], None]) -> None:
    r, path = comm.resource, comm.path
    idents = r.get("identifier") or []
    value = idents[0].get("value") if idents and isinstance(idents[0], dict) else None
    if not isinstance(value, str):
        add(issue("GGOP-E606", fhir_path=f"{path}.identifier"))
    elif not UUID_URN.match(value):
        add(issue("GGOP-E608", fhir_path=f"{path}.identifier", detail="urn:uuid:<UUID>"))
    category = (r.get("category") or [{}])[0]
    coding = (category.get("coding") or [{}])[0] if isinstance(category, dict) else {}
    if not isinstance(coding, dict) or coding.get("system") != p.CATEGORY_SYSTEM or not coding.get("code"):
        add(issue("GGOP-E606", fhir_path=f"{path}.category"))
    subject = b.resolve(r.get("subject"))
    if subject is None or subject.resource.get("resourceType") != "Patient":
        add(issue("GGOP-E607", fhir_path=f"{path}.subject"))
    if r.get("encounter") is not None:
        enc = b.resolve(r.get("encounter"))
        if enc is None or enc.resource.get("resourceType") != "Encounter":
            add(issue("GGOP-E607", fhir_path=f"{path}.encounter"))
        else:
            msg.encounter = enc
    payloads = r.get("payload")
    if not isinstance(payloads, list) or not payloads:
        add(issue("GGOP-E606", fhir_path=f"{path}.payload"))
        return
    for n, pl in enumerate(payloads):
        if not isinstance(pl, dict) or not (isinstance(pl.get("contentString"), str)
                                            or isinstance(pl.get("contentAttachment"), dict)):
            add(issue("GGOP-E606", fhir_path=f"{path}.payload[{n}].content[x]"))


def _check_patient(pat: Located, add: Callable[[Issue], None]) -> None:
    cpr = identifier_value(pat.resource, CPR_SYSTEM)
    replacement = next((v for s in REPLACEMENT_SYSTEMS if (v := identifier_value(pat.resource, s))), None)
    if cpr is None and replacement is None:
        add(issue("GGOP-E612", fhir_path=f"{pat.path}.identifier", detail="no CPR number or replacement CPR"))
    elif cpr is not None and (not _CPR.match(cpr) or cpr_birth_date(cpr) is None):
        add(issue("GGOP-E608", fhir_path=f"{pat.path}.identifier", detail="CPR number"))
    names = pat.resource.get("name") or []
    if not any(isinstance(n, dict) and n.get("family") for n in names):
        add(issue("GGOP-E606", fhir_path=f"{pat.path}.name.family"))


def _instant(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Who the message is for
# --------------------------------------------------------------------------------------------


def served_municipality(msg: Inbound, municipalities: Container[str], sor: SorDirectory,
                        routable: Callable[[list[str]], bool]) -> tuple[str | None, Issue | None]:
    """(the municipality the primary receiver belongs to, or None; an issue when the adapter
    does not serve the receiver). Served: a receiver naming a known municipality code, one the
    SOR directory knows as a municipal unit, or one the routing table has a route for."""
    if msg.receiver is None:
        return None, None
    org, path = msg.receiver.resource, msg.receiver.path
    gln = gln_of(org)
    sor_code = identifier_value(org, SOR_SYSTEM)
    own = normalise_municipality_code(identifier_value(org, MUNICIPALITY_SYSTEM) or "")
    entry = sor.by_gln(gln) or sor.by_sor(sor_code)
    municipality = own or (entry.municipality if entry else None)
    if municipality is not None and municipality in municipalities:
        return municipality, None
    keys = [k for k in (f"gln:{gln}" if gln else None, f"sor:{sor_code}" if sor_code else None) if k]
    if keys and routable(keys):
        return None, None
    return None, issue("GGOP-E609", fhir_path=f"{path}.identifier")


# --------------------------------------------------------------------------------------------
# The letter in the message, as the typed model of an XDIS91 letter
# --------------------------------------------------------------------------------------------


def _val(value: Any, path: str) -> Val | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return Val(str(value), None, path)


def _local(value: str | None) -> tuple[str, str] | None:
    when = _instant(value) if value else None
    if when is None or when.tzinfo is None:
        return None
    local = when.astimezone(DANISH_TIME)
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M")


def _party(org: Located, role: str, municipality: str | None, sor: SorDirectory) -> Party:
    r, path = org.resource, org.path
    gln = gln_of(r)
    own_municipality = identifier_value(r, MUNICIPALITY_SYSTEM)
    entry = sor.by_gln(gln)
    sor_code = identifier_value(r, SOR_SYSTEM) or (entry.sor if entry else None)
    ident: tuple[str, str] | None = None
    if role == "receiver" and (municipality or own_municipality):
        ident = (str(municipality or own_municipality), "kommunenummer")
    elif sor_code:
        ident = (sor_code, "sorkode")
    names = [n for n in [r.get("name"), *(r.get("alias") or [])] if isinstance(n, str) and n.strip()]
    phone = next((t.get("value") for t in r.get("telecom") or []
                  if isinstance(t, dict) and t.get("system") == "phone"), None)
    return Party(
        where=Where(None, path), role=role,
        ean=_val(gln, f"{path}.identifier"),
        identifier=_val(ident[0], f"{path}.identifier") if ident else None,
        identifier_code=_val(ident[1], f"{path}.identifier") if ident else None,
        organisation_name=_val(names[0] if names else None, f"{path}.name"),
        department_name=_val(names[1] if len(names) > 1 else None, f"{path}.alias"),
        telephone=_val(phone, f"{path}.telecom"),
    )


def _with_phone(party: Party, comm: dict, path: str) -> Party:
    """The sender's telephone: its Organization's, else the first payload's author contact."""
    if party.telephone is not None:
        return party
    for n, pl in enumerate(comm.get("payload") or []):
        for ext in pl.get("extension") or [] if isinstance(pl, dict) else []:
            point = ext.get("valueContactPoint") if isinstance(ext, dict) else None
            if str(ext.get("url", "")).endswith("medcom-core-contact-extension") and isinstance(point, dict) \
                    and isinstance(point.get("value"), str):
                party.telephone = Val(point["value"], None, f"{path}.payload[{n}].extension")
                return party
    return party


_STATUS = {  # MedCom's table, read backwards: Encounter status/class and Patient.deceased
    ("in-progress", "IMP"): "indlagt",
    ("in-progress", "AMB"): "ambulant",
}


def _episode_status(msg: Inbound) -> str:
    if msg.patient is not None and msg.patient.resource.get("deceasedBoolean") is True:
        return "doed"
    enc = msg.encounter.resource if msg.encounter else None
    if enc is None:
        return "inaktiv"
    klass: dict = enc["class"] if isinstance(enc.get("class"), dict) else {}
    return _STATUS.get((str(enc.get("status")), str(klass.get("code"))), "inaktiv")


def _episode_identifier(msg: Inbound) -> Val | None:
    if msg.encounter is None:
        return None
    for n, eoc in enumerate(msg.encounter.resource.get("episodeOfCare") or []):
        ident = eoc.get("identifier") if isinstance(eoc, dict) else None
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            return Val(ident["value"], None, f"{msg.encounter.path}.episodeOfCare[{n}].identifier.value")
    return None


def _payload_date(comm: dict) -> str | None:
    for pl in comm.get("payload") or []:
        for ext in pl.get("extension") or [] if isinstance(pl, dict) else []:
            if isinstance(ext, dict) and str(ext.get("url", "")).endswith("medcom-core-datetime-extension"):
                return ext.get("valueDateTime")
    return None


def to_letter(msg: Inbound, municipality: str | None, sor: SorDirectory) -> CorrespondenceMessage:
    """The message as the typed model of an XDIS91 letter (MedCom's CareCommunication → XDIS91
    mapping): Bundle.id is the envelope id, MessageHeader.id the letter id, the payload texts
    the Text01s, attachments references; every value's location is its FHIR path. Call only
    for a message :func:`read_carecommunication` accepted."""
    assert msg.header and msg.sender and msg.receiver and msg.communication and msg.patient, "an accepted message"
    comm, cpath = msg.communication.resource, msg.communication.path
    sent = _local(msg.timestamp)
    provenance = msg.provenance.resource if msg.provenance else {}
    authorised = _local(_payload_date(comm) or provenance.get("occurredDateTime") or msg.timestamp)
    envelope = Envelope(Where(None, "Bundle"), sent_date=_val(sent[0] if sent else None, "Bundle.timestamp"),
                        sent_time=_val(sent[1] if sent else None, "Bundle.timestamp"),
                        identifier=_val(msg.bundle_id, "Bundle.id"))
    hpath = msg.header.path
    letter = Letter(
        Where(None, hpath),
        identifier=_val(msg.header_id, f"{hpath}.id"),
        version_code=Val("XD9134L", None, f"{hpath}.definition"),
        statistical_code=Val("XDIS91", None, f"{hpath}.eventCoding"),
        authorisation_date=_val(authorised[0] if authorised else None, f"{cpath}.payload.extension"),
        authorisation_time=_val(authorised[1] if authorised else None, f"{cpath}.payload.extension"),
        type_code=Val("XDIS91", None, f"{hpath}.eventCoding"),
        status_code=Val("nytbrev", None, f"{msg.provenance.path}.activity" if msg.provenance else hpath),
        episode_of_care_identifier=_episode_identifier(msg),
    )
    pat, ppath = msg.patient.resource, msg.patient.path
    name = next((n for n in pat.get("name") or [] if isinstance(n, dict) and n.get("family")), {})
    addr = next((a for a in pat.get("address") or [] if isinstance(a, dict)), {})
    lines = [x for x in addr.get("line") or [] if isinstance(x, str)]
    cpr = identifier_value(pat, CPR_SYSTEM)
    replacement = next((v for s in REPLACEMENT_SYSTEMS if (v := identifier_value(pat, s))), None)
    patient = Patient(
        Where(None, ppath),
        cpr=_val(cpr, f"{ppath}.identifier"),
        alternative_identifier=None if cpr else _val(replacement, f"{ppath}.identifier"),
        surname=_val(name.get("family"), f"{ppath}.name.family"),
        given_name=_val(" ".join(g for g in name.get("given") or [] if isinstance(g, str)), f"{ppath}.name.given"),
        address=Address(street_name=_val(lines[0] if lines else None, f"{ppath}.address.line"),
                        district_name=_val(addr.get("city"), f"{ppath}.address.city"),
                        post_code=_val(addr.get("postalCode"), f"{ppath}.address.postalCode")),
        episode_of_care_status=Val(_episode_status(msg), None, f"{ppath}.deceased"),
    )
    priority = comm.get("priority")
    letter_msg = CorrespondenceMessage(
        namespace=NS_2006, envelope=envelope, letter=letter,
        sender=_with_phone(_party(msg.sender, "sender", None, sor), comm, cpath),
        receiver=_party(msg.receiver, "receiver", municipality, sor),
        patient=patient,
        priority=Val("høj_prioritet" if priority in HIGH_PRIORITY else "rutine", None, f"{cpath}.priority")
        if priority else None,
        subject=_val((comm.get("topic") or {}).get("text") if isinstance(comm.get("topic"), dict) else None,
                     f"{cpath}.topic.text"),
    )
    for n, pl in enumerate(comm.get("payload") or []):
        here = f"{cpath}.payload[{n}]"
        if isinstance(pl.get("contentString"), str):
            text = _val(pl["contentString"], f"{here}.contentString")
            if text is not None:
                letter_msg.texts.append(text)
            continue
        att = pl.get("contentAttachment") or {}
        ident = next((e.get("valueIdentifier", {}).get("value") for e in pl.get("extension") or []
                      if isinstance(e, dict) and str(e.get("url", "")).endswith("medcom-core-identifier-extension")
                      and isinstance(e.get("valueIdentifier"), dict)), None)
        title = att.get("title") if isinstance(att.get("title"), str) else None
        if isinstance(att.get("url"), str) and not att.get("data"):
            letter_msg.references.append(Reference(Where(None, here), description=_val(title, f"{here}.title"),
                                                   url=_val(att["url"], f"{here}.contentAttachment.url")))
        else:
            object_id = (ident or "").removeprefix("urn:uuid:").replace("-", "") or None
            content_type = att.get("contentType") if isinstance(att.get("contentType"), str) else None
            letter_msg.references.append(Reference(
                Where(None, here), description=_val(title, f"{here}.contentAttachment.title"),
                bin_object_identifier=_val(object_id, f"{here}.extension"),
                bin_object_code=_val(title, f"{here}.contentAttachment.title"),
                bin_extension_code=_val(content_type.rsplit("/", 1)[-1] if content_type else None,
                                        f"{here}.contentAttachment.contentType")))
    return letter_msg


def category_of(msg: Inbound) -> dict | None:
    """The Communication's category coding, as sent."""
    if msg.communication is None:
        return None
    category = (msg.communication.resource.get("category") or [{}])[0]
    coding = (category.get("coding") or [{}])[0] if isinstance(category, dict) else None
    return {"system": coding["system"], "code": coding["code"]} if isinstance(coding, dict) and \
        coding.get("system") and coding.get("code") else None
