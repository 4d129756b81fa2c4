"""A letter's FHIR resources as a MedCom CareCommunication message (CareCommunication 5.0).

The input is the transaction Bundle the adapter makes of an XDIS91 letter (or of a received
CareCommunication): :mod:`adapter.fhir.letter` already follows MedCom's XDIS91 →
CareCommunication mapping, so this module only reshapes those resources into MedCom's message
form, as MedCom's conversion service does:

- a ``MessageHeader`` first (event ``care-communication-message``, the receiver as primary
  destination, SOR endpoints, the Communication as focus, MessageDefinition 5.0);
- sender and receiver as ``MedComMessagingOrganization`` (GLN and SOR code; the SOR code comes
  from the organisation's own identifier or the SOR directory, :mod:`adapter.medcom_fhir.sor`);
- the MedCom core profiles on Patient, Practitioner, PractitionerRole and Encounter (kept only
  with an episode-of-care identifier, which MedCom requires of it);
- the Communication with its one ``urn:uuid`` identifier, the payload identifiers assigned by
  the sender Organization;
- a ``MedComCareCommunicationProvenance`` targeting the MessageHeader, with one entity per
  payload;
- references ``Type/id`` against ``fullUrl`` ``http://ggop-adapter.dk/fhir/Type/id``.

The ids of Patients, Organizations, Practitioners and PractitionerRoles are those of the
transaction Bundle: the keyed identity of :mod:`adapter.fhir.identity`. The DocumentReference
with the original letter and a letter's Tasks are not part of a CareCommunication.
Pure: the same Bundle, directory and ids give the same message.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from adapter.errors import InputError, issue
from adapter.fhir.bundle import entry_resource
from adapter.fhir.context import ADAPTER_BASE, ID_NAMESPACE
from adapter.fhir.systems import GLN_SYSTEM, MUNICIPALITY_SYSTEM, SOR_SYSTEM
from adapter.medcom_fhir import profiles as p
from adapter.medcom_fhir.sor import SorDirectory

ENCOUNTER_ACT_CODES = p.TERMINOLOGY + "medcom-core-encounter-act-codes"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
KEPT = ("Patient", "Organization", "Practitioner", "PractitionerRole", "Encounter", "Communication", "Provenance")


def message_ids(seed: str) -> tuple[str, str]:
    """(Bundle.id, MessageHeader.id) of a message, derived from ``seed``: the sender's GLN and
    letter id for a converted letter, the outbox row for a delivery."""
    return (str(uuid.uuid5(ID_NAMESPACE, f"{seed}|medcom-message")),
            str(uuid.uuid5(ID_NAMESPACE, f"{seed}|medcom-messageheader")))


def letter_seed(sender_gln: str, letter_id: str) -> str:
    return f"{sender_gln}|{letter_id}"


def full_url(rtype: str, rid: str) -> str:
    return f"{ADAPTER_BASE}/{rtype}/{rid}"


def _ref(rtype: str, rid: str) -> dict:
    return {"reference": f"{rtype}/{rid}"}


def _relink(value: Any, types: dict[str, str]) -> Any:
    """``urn:uuid:<id>`` references as ``Type/<id>``."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "reference" and isinstance(v, str) and v.startswith("urn:uuid:") and v[9:] in types:
                out[k] = f"{types[v[9:]]}/{v[9:]}"
            else:
                out[k] = _relink(v, types)
        return out
    if isinstance(value, list):
        return [_relink(v, types) for v in value]
    return value


def _target(ref: Any) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        return ref["reference"].rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    return None


def _with_profile(resource: dict, profile: str) -> dict:
    out = {k: v for k, v in resource.items() if k not in ("meta", "text")}
    return {"resourceType": out.pop("resourceType"), "id": out.pop("id"), "meta": {"profile": [profile]}, **out}


def _ident(org: dict, system: str) -> str | None:
    return next((i.get("value") for i in org.get("identifier", []) if i.get("system") == system), None)


def _messaging_organization(org: dict, sor: SorDirectory, role: str) -> tuple[dict, str]:
    gln = _ident(org, GLN_SYSTEM)
    own_sor = _ident(org, SOR_SYSTEM)
    entry = sor.by_gln(gln)
    code = own_sor or (entry.sor if entry else None)
    if gln is None or code is None:
        raise InputError(issue("GGOP-E613", None, None, role, fhir_path=f"Organization ({role})"))
    identifiers = list(org.get("identifier", []))
    if own_sor is None:
        identifiers.append({"system": SOR_SYSTEM, "value": code})
    if entry is not None and entry.municipality and _ident(org, MUNICIPALITY_SYSTEM) is None:
        identifiers.append({"system": MUNICIPALITY_SYSTEM, "value": entry.municipality})
    out = _with_profile({**org, "identifier": identifiers}, p.MESSAGING_ORGANIZATION)
    return out, code


def carecommunication_message(bundle: dict, sor: SorDirectory, *, bundle_id: str, header_id: str) -> dict:
    """The CareCommunication message for a letter's transaction Bundle; raises
    :class:`InputError` (``GGOP-E613`` an organisation without SOR code, ``GGOP-E614`` a
    cancelled letter)."""
    resources = [copy.deepcopy(entry_resource(e)) for e in bundle.get("entry", [])]
    types = {r["id"]: r["resourceType"] for r in resources}
    resources = [_relink(r, types) for r in resources if r["resourceType"] in KEPT]
    by_type: dict[str, list[dict]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    comm = by_type["Communication"][0]
    source = by_type["Provenance"][0]
    activity = source["activity"]["coding"][0]["code"]
    if activity == "retract-message":
        raise InputError(issue("GGOP-E614", None, None, fhir_path="Provenance.activity"))
    orgs = {o["id"]: o for o in by_type.get("Organization", [])}
    sender_id = _target(source["agent"][0]["who"])
    if sender_id not in orgs:
        raise InputError(issue("GGOP-E606", None, None, "sender", fhir_path="Provenance.agent.who"))
    receiver_id = next((oid for oid in orgs if oid != sender_id), sender_id)
    sender, sender_sor = _messaging_organization(orgs[sender_id], sor, "sender")
    receiver, receiver_sor = _messaging_organization(orgs[receiver_id], sor, "receiver")

    patient = _with_profile(by_type["Patient"][0], p.CORE_PATIENT)
    encounters = [e for e in by_type.get("Encounter", [])
                  if any(isinstance(c.get("identifier"), dict) for c in e.get("episodeOfCare", []))]
    encounter = None
    if encounters:
        encounter = _with_profile(encounters[0], p.CORE_ENCOUNTER)
        if encounter.get("class", {}).get("system") == NULL_FLAVOR:
            encounter["class"] = {"system": ENCOUNTER_ACT_CODES, "code": "other"}

    communication = _with_profile(comm, p.CC_COMMUNICATION)
    communication["identifier"] = [{"value": i["value"]} for i in comm.get("identifier", [])
                                   if str(i.get("value", "")).startswith("urn:uuid:")][:1]
    if encounter is None:
        communication.pop("encounter", None)
    else:
        communication["encounter"] = _ref("Encounter", encounter["id"])
    for payload in communication.get("payload", []):
        for ext in payload.get("extension", []):
            if ext.get("url", "").endswith("medcom-core-identifier-extension"):
                ext["valueIdentifier"] = {"value": ext["valueIdentifier"]["value"],
                                          "assigner": _ref("Organization", sender["id"])}

    roles = [_with_profile(r, p.CORE_PRACTITIONER_ROLE) for r in by_type.get("PractitionerRole", [])]
    practitioners = [_with_profile(r, p.CORE_PRACTITIONER) for r in by_type.get("Practitioner", [])]

    provenance = {
        "resourceType": "Provenance",
        "id": str(uuid.uuid5(ID_NAMESPACE, f"{header_id}|provenance")),
        "meta": {"profile": [p.CC_PROVENANCE]},
        "target": [_ref("MessageHeader", header_id)],
        "occurredDateTime": source.get("occurredDateTime") or bundle.get("timestamp"),
        "recorded": bundle.get("timestamp") or source.get("recorded"),
        # MedCom's mapping: new-message; a corrected letter (rettetbrev) is a new message too
        "activity": {"coding": [{"system": p.ACTIVITY_SYSTEM, "code": "new-message"}]},
        "agent": [{"who": _ref("Organization", sender["id"])}],
        "entity": [e for e in source.get("entity", []) if isinstance(e.get("what", {}).get("identifier"), dict)],
    }
    header = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "meta": {"profile": [p.CC_HEADER]},
        "eventCoding": {"system": p.EVENT_SYSTEM, "code": p.CARE_COMMUNICATION_EVENT},
        "destination": [{
            "extension": [{"url": p.DESTINATION_USE_EXTENSION,
                           "valueCoding": {"system": p.DESTINATION_USE_SYSTEM, "code": "primary"}}],
            "endpoint": p.SOR_ENDPOINT + receiver_sor,
            "receiver": _ref("Organization", receiver["id"]),
        }],
        "sender": _ref("Organization", sender["id"]),
        "source": {"endpoint": p.SOR_ENDPOINT + sender_sor},
        "focus": [_ref("Communication", communication["id"])],
        "definition": p.CC_DEFINITION,
    }
    entries = [header, patient, communication, *([encounter] if encounter else []), *roles, *practitioners,
               sender, *([receiver] if receiver["id"] != sender["id"] else []), provenance]
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [p.CC_MESSAGE]},
        "type": "message",
        "timestamp": bundle.get("timestamp"),
        "entry": [{"fullUrl": full_url(r["resourceType"], r["id"]), "resource": r} for r in entries],
    }
