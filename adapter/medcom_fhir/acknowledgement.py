"""MedCom Acknowledgement messages (Acknowledgement 2.0): the answer to every CareCommunication
the adapter accepts or refuses, and the conversion between XCTL receipts and Acknowledgements
(MedCom's ``Mapning-XCTL-Acknowledgement.xlsx``).

An Acknowledgement answers one message: its MessageHeader goes from the message's receiver back
to its sender (endpoints swapped), ``response.identifier`` is the message's MessageHeader.id and
``response.code`` is ``ok``, ``transient-error`` (send again later) or ``fatal-error`` (do not
send this again), the last two with a ``MedComAcknowledgementOperationOutcome``. Two
Provenances: the acknowledged message's (its activity, by its sender) and the
acknowledgement's (``acknowledgement``, entity ``revision`` → the message's MessageHeader).
Ids derive from the acknowledged message, so the same message gets the same Acknowledgement.

XCTL03 (positive) ↔ ``ok``; XCTL02/XCTL01 (negative) ↔ ``fatal-error`` (a ``transient-error``
becomes XCTL02 too: OIOXML has no "send again"); ``RefuseCode``/``RefuseText`` ↔ the
OperationOutcome issue's code and ``details.text``; ``OriginalLetterIdentifier`` ↔
``response.identifier`` and ``OriginalEnvelopeIdentifier`` ↔ the acknowledged Bundle.id, which
are the ids of the OIOXML letter the acknowledged message was converted from or into
(:class:`Acknowledged`). Pure functions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from adapter.danish_time import iso_instant, local_datetime
from adapter.errors import Issue
from adapter.fhir.context import ID_NAMESPACE
from adapter.fhir.systems import GLN_SYSTEM, SOR_SYSTEM
from adapter.medcom.model import NS_2005, ReceiptMessage
from adapter.medcom.receipt_writer import MAX_REFUSE_TEXT, ReceiptAddress, build_receipt
from adapter.medcom.xmlsafe import read_xml
from adapter.medcom_fhir import profiles as p
from adapter.medcom_fhir.inbound import Inbound, gln_of, identifier_value
from adapter.medcom_fhir.outbound import full_url, letter_seed, message_ids
from adapter.medcom_fhir.sor import SorDirectory

OK, TRANSIENT, FATAL = "ok", "transient-error", "fatal-error"
RESPONSE_CODES = (OK, TRANSIENT, FATAL)

# The MedCom error code of the OperationOutcome for each of the adapter's refusals; codes of
# MedCom's own code system, else of HL7's operation-outcome (both in MedCom's value set).
MEDCOM_CODES: dict[str, tuple[str, str]] = {
    "GGOP-E605": (p.ACK_ERROR_SYSTEM, "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE"),
    "GGOP-E609": (p.ACK_ERROR_SYSTEM, "MSG_Receiver_Identifier_UNKNOWN"),
    "GGOP-E604": (p.ACK_ERROR_SYSTEM, "MSG_Datatype_Wrong"),
    "GGOP-E616": (p.ACK_ERROR_SYSTEM, "MSG_Mailbox_Out_Of_Operation"),
    "GGOP-E606": (p.HL7_OUTCOME_SYSTEM, "MSG_RESOURCE_REQUIRED"),
    "GGOP-E612": (p.HL7_OUTCOME_SYSTEM, "MSG_RESOURCE_REQUIRED"),
    "GGOP-E607": (p.HL7_OUTCOME_SYSTEM, "MSG_NO_EXIST"),
    "GGOP-E608": (p.HL7_OUTCOME_SYSTEM, "MSG_ID_INVALID"),
    "GGOP-E610": (p.HL7_OUTCOME_SYSTEM, "MSG_DUPLICATE_ID"),
    "GGOP-E611": (p.HL7_OUTCOME_SYSTEM, "MSG_DUPLICATE_ID"),
}
SYNTAX = (p.HL7_OUTCOME_SYSTEM, "MSG_BAD_SYNTAX")
# XCTL RefuseCode ↔ the OperationOutcome of an Acknowledgement
REFUSE_TO_MEDCOM = {
    "ukendt_lokationsnummer": (p.ACK_ERROR_SYSTEM, "MSG_Receiver_Identifier_UNKNOWN"),
    "problem_med_modtagerID": (p.ACK_ERROR_SYSTEM, "MSG_Receiver_Identifier_UNKNOWN"),
    "problem_med_version": (p.ACK_ERROR_SYSTEM, "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE"),
    "syntaksfejl": SYNTAX,
}
MEDCOM_TO_REFUSE = {
    "MSG_Receiver_Identifier_UNKNOWN": "ukendt_lokationsnummer",
    "MSG_Receiver_Identifier_MISSING": "problem_med_modtagerID",
    "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE": "problem_med_version",
    "MSG_BAD_SYNTAX": "syntaksfejl",
    "MSG_BAD_FORMAT": "syntaksfejl",
}


def _id(seed: str, role: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{seed}|{role}"))


def _ref(rtype: str, rid: str) -> dict:
    return {"reference": f"{rtype}/{rid}"}


def _organization(org: dict, sor: SorDirectory) -> dict:
    """A MedComMessagingOrganization: id, GLN, SOR code (the directory's when the message has
    none) and name."""
    gln = gln_of(org)
    entry = sor.by_gln(gln)
    code = identifier_value(org, SOR_SYSTEM) or (entry.sor if entry else None)
    out: dict[str, Any] = {"resourceType": "Organization", "id": org["id"],
                           "meta": {"profile": [p.MESSAGING_ORGANIZATION]},
                           "identifier": [{"system": GLN_SYSTEM, "value": gln}]}
    if code:
        out["identifier"].append({"system": SOR_SYSTEM, "value": code})
    if isinstance(org.get("name"), str):
        out["name"] = org["name"]
    return out


def operation_outcome(oid: str, issues: list[dict]) -> dict:
    return {"resourceType": "OperationOutcome", "id": oid, "meta": {"profile": [p.ACK_OUTCOME]}, "issue": issues}


def outcome_issues(issues: list[Issue]) -> list[dict]:
    """The refusal's errors as MedCom Acknowledgement issues: the MedCom code, the adapter's
    code and title as text, the FHIR path; never a value."""
    out = []
    for i in [i for i in issues if i.is_error] or issues:
        system, code = MEDCOM_CODES.get(i.code, SYNTAX)
        item: dict[str, Any] = {"severity": "error", "code": i.info.issue_type,
                                "details": {"coding": [{"system": system, "code": code}],
                                            "text": f"{i.code}: {i.message}"}}
        if i.location.fhir_path:
            item["expression"] = [i.location.fhir_path]
        out.append(item)
    return out


@dataclass(frozen=True)
class Parties:
    """Who answers whom: the acknowledged message's sender and receiver Organizations and
    endpoints, and its MessageHeader, Bundle and Provenance facts."""

    sender: dict
    receiver: dict
    sender_endpoint: str | None
    receiver_endpoint: str | None
    header_id: str
    bundle_id: str
    occurred: str | None
    recorded: str | None
    activity: str = "new-message"


def parties_of(msg: Inbound) -> Parties | None:
    """The addressing of an Acknowledgement for a received message (None when it has none)."""
    if not msg.addressable or msg.sender is None or msg.receiver is None or msg.header is None:
        return None
    source = msg.header.resource.get("source")
    provenance = msg.provenance.resource if msg.provenance else {}
    coding = ((provenance.get("activity") or {}).get("coding") or [{}])[0]
    return Parties(
        sender=msg.sender.resource, receiver=msg.receiver.resource,
        sender_endpoint=source.get("endpoint") if isinstance(source, dict) else None,
        receiver_endpoint=msg.receiver_endpoint,
        header_id=str(msg.header_id), bundle_id=str(msg.bundle_id),
        occurred=provenance.get("occurredDateTime") or msg.timestamp,
        recorded=provenance.get("recorded") or provenance.get("occurredDateTime") or msg.timestamp,
        activity=str(coding["code"]) if isinstance(coding, dict) and coding.get("code") in p.CC_ACTIVITIES
        else "new-message")


def build_acknowledgement(parties: Parties, code: str, at: dt.datetime, sor: SorDirectory,
                          outcome: list[dict] | None = None, *, seed: str | None = None) -> dict:
    """The Acknowledgement of the message ``parties`` describes; ``outcome`` issues for a
    ``transient-error`` or ``fatal-error``."""
    if code not in RESPONSE_CODES:
        raise ValueError(code)
    seed = seed or f"ack|{gln_of(parties.sender)}|{parties.header_id}|{parties.bundle_id}"
    sender, receiver = _organization(parties.sender, sor), _organization(parties.receiver, sor)
    sender_sor = identifier_value(sender, SOR_SYSTEM)
    receiver_sor = identifier_value(receiver, SOR_SYSTEM)
    header_id = _id(seed, "messageheader")
    when = iso_instant(at)
    response: dict[str, Any] = {"identifier": parties.header_id, "code": code}
    entries: list[dict] = []
    oo = None
    if code != OK:
        oo = operation_outcome(_id(seed, "operationoutcome"), outcome or [])
        response["details"] = _ref("OperationOutcome", oo["id"])
    header: dict[str, Any] = {
        "resourceType": "MessageHeader", "id": header_id, "meta": {"profile": [p.ACK_HEADER]},
        "eventCoding": {"system": p.EVENT_SYSTEM, "code": p.ACKNOWLEDGEMENT_EVENT},
        "destination": [{
            "extension": [{"url": p.DESTINATION_USE_EXTENSION,
                           "valueCoding": {"system": p.DESTINATION_USE_SYSTEM, "code": "primary"}}],
            "endpoint": parties.sender_endpoint or (p.SOR_ENDPOINT + sender_sor if sender_sor else None),
            "receiver": _ref("Organization", sender["id"])}],
        "sender": _ref("Organization", receiver["id"]),
        "source": {"endpoint": parties.receiver_endpoint or (p.SOR_ENDPOINT + receiver_sor if receiver_sor
                                                             else None)},
        "response": response,
    }
    for d in header["destination"]:
        if d["endpoint"] is None:
            del d["endpoint"]
    if header["source"]["endpoint"] is None:
        header["source"] = {"endpoint": full_url("Organization", receiver["id"])}
    acknowledged = {
        "resourceType": "Provenance", "id": _id(seed, "provenance-message"),
        "meta": {"profile": [p.MESSAGING_PROVENANCE]},
        "target": [_ref("MessageHeader", parties.header_id)],
        "occurredDateTime": parties.occurred or when, "recorded": parties.recorded or when,
        "activity": {"coding": [{"system": p.ACTIVITY_SYSTEM, "code": parties.activity}]},
        "agent": [{"who": _ref("Organization", sender["id"])}],
    }
    acknowledgement = {
        "resourceType": "Provenance", "id": _id(seed, "provenance-acknowledgement"),
        "meta": {"profile": [p.MESSAGING_PROVENANCE]},
        "target": [_ref("MessageHeader", header_id)],
        "occurredDateTime": when, "recorded": when,
        "activity": {"coding": [{"system": p.ACTIVITY_SYSTEM, "code": p.ACK_ACTIVITY}]},
        "agent": [{"who": _ref("Organization", receiver["id"])}],
        "entity": [{"role": "revision", "what": _ref("MessageHeader", parties.header_id)}],
    }
    resources = [header, acknowledged, acknowledgement, sender]
    if receiver["id"] != sender["id"]:
        resources.append(receiver)
    if oo is not None:
        resources.append(oo)
    entries = [{"fullUrl": full_url(r["resourceType"], r["id"]), "resource": r} for r in resources]
    return {"resourceType": "Bundle", "id": _id(seed, "bundle"), "meta": {"profile": [p.ACK_MESSAGE]},
            "type": "message", "timestamp": when, "entry": entries}


def acknowledge(msg: Inbound, code: str, at: dt.datetime, sor: SorDirectory,
                issues: list[Issue] | None = None) -> dict | None:
    """The Acknowledgement of a received CareCommunication (None when it cannot be addressed)."""
    parties = parties_of(msg)
    if parties is None:
        return None
    return build_acknowledgement(parties, code, at, sor, outcome_issues(issues or []) if code != OK else None)


# --------------------------------------------------------------------------------------------
# XCTL ↔ Acknowledgement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledged:
    """The acknowledged message in both worlds: its OIOXML ids (the letter's envelope and
    letter id, version code) and its FHIR ids (Bundle.id and MessageHeader.id)."""

    envelope_id: str
    letter_id: str
    version_code: str
    bundle_id: str
    header_id: str

    @classmethod
    def converted_letter(cls, sender_gln: str, envelope_id: str, letter_id: str,
                         version_code: str = "XD9134L") -> Acknowledged:
        """A letter this adapter converted into a CareCommunication: its FHIR ids are the ones
        ``convert --as carecommunication`` gives it."""
        bundle_id, header_id = message_ids(letter_seed(sender_gln, letter_id))
        return cls(envelope_id, letter_id, version_code, bundle_id, header_id)


def _stub_organization(gln: str, sor: SorDirectory) -> dict:
    entry = sor.by_gln(gln)
    org: dict[str, Any] = {"resourceType": "Organization", "id": str(uuid.uuid5(ID_NAMESPACE, f"organization|{gln}")),
                           "identifier": [{"system": GLN_SYSTEM, "value": gln}]}
    if entry is not None:
        org["identifier"].append({"system": SOR_SYSTEM, "value": entry.sor})
        if entry.name:
            org["name"] = entry.name
    return org


def acknowledgement_from_xctl(receipt: ReceiptMessage, acknowledged: Acknowledged, sor: SorDirectory) -> dict:
    """An XCTL receipt as the Acknowledgement of the FHIR message its letter became (Flow 4)."""
    sender_gln = receipt.original_sender_ean.value if receipt.original_sender_ean else ""
    receiver_gln = receipt.original_receiver_ean.value if receipt.original_receiver_ean else ""
    env = receipt.envelope
    at = local_datetime(env.sent_date.value if env.sent_date else None, env.sent_time.value if env.sent_time else None)
    if at is None:
        raise ValueError("the receipt has no Sent date and time")
    code = OK if receipt.receipt_type == "XCTL03" else FATAL
    outcome = None
    if code != OK:
        refuse = next((ol.refuse_code for ol in receipt.original_letters if ol.refuse_code), None) \
            or receipt.refuse_code
        text = next((ol.refuse_text for ol in receipt.original_letters if ol.refuse_text), None) or receipt.refuse_text
        system, medcom = REFUSE_TO_MEDCOM.get(refuse.value if refuse else "", SYNTAX)
        item: dict[str, Any] = {"severity": "error", "code": "processing",
                                "details": {"coding": [{"system": system, "code": medcom}]}}
        if text is not None and text.value:
            item["details"]["text"] = text.value
        outcome = [item]
    parties = Parties(
        sender=_stub_organization(sender_gln, sor), receiver=_stub_organization(receiver_gln, sor),
        sender_endpoint=None, receiver_endpoint=None,
        header_id=acknowledged.header_id, bundle_id=acknowledged.bundle_id,
        occurred=None, recorded=None)
    letter = receipt.letter.identifier.value if receipt.letter.identifier else ""
    envelope = env.identifier.value if env.identifier else ""
    return build_acknowledgement(parties, code, at, sor, outcome,
                                 seed=f"xctl|{receipt.sender_ean.value if receipt.sender_ean else ''}|"
                                      f"{envelope}|{letter}")


def _organization_in(ack: dict, ref: Any) -> dict | None:
    target = ref.get("reference") if isinstance(ref, dict) else None
    for e in ack.get("entry") or []:
        r = e.get("resource") or {}
        if isinstance(target, str) and (e.get("fullUrl", "").endswith("/" + target)
                                        or f"{r.get('resourceType')}/{r.get('id')}" == target
                                        or e.get("fullUrl") == target):
            return r
    return None


def xctl_from_acknowledgement(ack: dict, acknowledged: Acknowledged) -> bytes:
    """An Acknowledgement as the XCTL receipt for the OIOXML letter its message came from
    (Flow 2): XCTL03 for ``ok``, XCTL02 otherwise with the OperationOutcome's code and text.
    Raises ValueError when ``ack`` is not an Acknowledgement."""
    entries = ack.get("entry") or []
    header = (entries[0].get("resource") if entries else None) or {}
    event = header.get("eventCoding") or {}
    if ack.get("type") != "message" or event.get("code") != p.ACKNOWLEDGEMENT_EVENT:
        raise ValueError("not an Acknowledgement message")
    response = header.get("response") or {}
    destination = (header.get("destination") or [{}])[0]
    ack_sender = _organization_in(ack, header.get("sender"))  # the acknowledged message's receiver
    ack_receiver = _organization_in(ack, destination.get("receiver"))  # ... and its sender
    if ack_sender is None or ack_receiver is None:
        raise ValueError("the Acknowledgement's sender or receiver is not in the Bundle")
    at = dt.datetime.fromisoformat(str(ack.get("timestamp")).replace("Z", "+00:00"))
    addr = ReceiptAddress(acknowledged.envelope_id[:14], acknowledged.letter_id[:14], acknowledged.version_code,
                          sender_ean=gln_of(ack_receiver) or "", receiver_ean=gln_of(ack_sender) or "")
    if response.get("code") == OK:
        return build_receipt(addr, at)
    outcome = next((e.get("resource") for e in entries
                    if (e.get("resource") or {}).get("resourceType") == "OperationOutcome"), None) or {}
    issue0 = (outcome.get("issue") or [{}])[0]
    details = issue0.get("details") or {}
    coding = (details.get("coding") or [{}])[0]
    refuse = MEDCOM_TO_REFUSE.get(coding.get("code", ""), "ikke_specificeret")
    xml = build_receipt(addr, at, [], refuse)
    text = details.get("text") or coding.get("code") or ""
    root = read_xml(xml).root
    for el in root.iter(f"{{{NS_2005}}}RefuseText"):
        el.text = str(text)[:MAX_REFUSE_TEXT]
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
