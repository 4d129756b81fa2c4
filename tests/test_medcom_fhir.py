"""MedCom FHIR messaging, the pure core (adapter/medcom_fhir): FHIR XML ⇄ JSON, XDIS91 →
CareCommunication compared with MedCom's Flow 1 example, received messages checked (invalid
inputs named by their defect) and read as letters, Acknowledgements, XCTL ⇄ Acknowledgement
(Flow 2 and Flow 4), the CLI and the routing option."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from tests.support import TEST_ID_KEY

from adapter.cli import main
from adapter.data import MAPPINGS_DIR
from adapter.errors import ConfigError, InputError, issue
from adapter.fhir.bundle import entry_resource
from adapter.medcom.model import ReceiptMessage
from adapter.medcom_fhir import profiles as p
from adapter.medcom_fhir.acknowledgement import (
    FATAL,
    OK,
    Acknowledged,
    acknowledge,
    acknowledgement_from_xctl,
    xctl_from_acknowledgement,
)
from adapter.medcom_fhir.delivery import medcom_message
from adapter.medcom_fhir.fhirxml import parse_xml, to_xml
from adapter.medcom_fhir.inbound import read_carecommunication, served_municipality, to_letter
from adapter.medcom_fhir.outbound import carecommunication_message, letter_seed, message_ids
from adapter.medcom_fhir.receive import content_key, store_key
from adapter.medcom_fhir.sor import SorEntry, load_sor_directory, parse_sor_directory
from adapter.medcom_fhir.wire import read_message
from adapter.pipeline import Limits, convert_bytes, validate_bytes
from adapter.routing.recipients import letter_tasks, load_letter_terms
from adapter.routing.routes import MEDCOM_MESSAGE, load_routing
from conftest import DATA, SHARED

KEY = TEST_ID_KEY.encode()
FLOWS = SHARED / "medcom" / "carecommunication-conversion"
PROFILES = SHARED / "fhir-profiles"
SOR = load_sor_directory(MAPPINGS_DIR)
AT = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
LIMITS = Limits()


def _needs(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"MedCom's files are not present at {path}")
    return path


def fhir_examples() -> list[Path]:
    """MedCom's FHIR messages: the package examples (JSON) and the conversion examples (XML)."""
    return sorted(PROFILES.glob("medcom.fhir.dk.carecommunication#*/package/example/Bundle-*.json")) + \
        sorted(PROFILES.glob("medcom.fhir.dk.acknowledgement#*/package/example/Bundle-*.json")) + \
        sorted(FLOWS.glob("Flow*-CareCommunication_*.xml")) + sorted(FLOWS.glob("Flow*-Acknowledgement_*.xml"))


def carecommunication_examples() -> list[Path]:
    return sorted(PROFILES.glob("medcom.fhir.dk.carecommunication#*/package/example/Bundle-*.json")) + \
        sorted(FLOWS.glob("Flow*-CareCommunication_*.xml"))


def _read(path: Path) -> dict:
    return read_message(path.read_bytes(), LIMITS)[0]


def _by_type(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


# --------------------------------------------------------------------------------------------
# FHIR XML ⇄ JSON
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", fhir_examples(), ids=lambda x: x.name)
def test_medcoms_messages_round_trip_between_xml_and_json(path):
    data = _read(path)
    xml = to_xml(data)
    kwargs = dict(max_bytes=LIMITS.max_bytes, max_depth=LIMITS.max_depth, max_elements=LIMITS.max_elements,
                  max_attributes=LIMITS.max_attributes)
    assert parse_xml(xml, **kwargs) == data
    assert to_xml(parse_xml(xml, **kwargs)) == xml  # deterministic


def test_the_flow1_xml_reads_as_the_json_medcom_would_write():
    data = _read(_needs(FLOWS / "Flow1-CareCommunication_Ex_from_OIOXML.xml"))
    comm = _by_type(data, "Communication")[0]
    assert comm["payload"][0]["contentString"].startswith("Denne besked har høj prioritet.\nAfdeling A")
    assert comm["identifier"] == [{"value": "urn:uuid:3fab3414-6c8b-45bf-af93-27dd333554c6"}]
    assert data["entry"][0]["resource"]["destination"][0]["extension"][0]["valueCoding"]["code"] == "primary"
    assert _by_type(data, "Patient")[0]["name"][0]["given"] == ["Nancy", "Ann"]


HOSTILE_XML = {
    "doctype-with-external-entity": ((b'<?xml version="1.0"?><!DOCTYPE Bundle [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                      b'<Bundle xmlns="http://hl7.org/fhir"><id value="&x;"/></Bundle>'), "GGOP-E002"),
    "entity-declaration-in-the-prolog": (b'<?xml version="1.0"?><!ENTITY x "y"><Bundle xmlns="http://hl7.org/fhir"/>',
                                         "GGOP-E002"),
    "doctype": (b'<!DOCTYPE Bundle><Bundle xmlns="http://hl7.org/fhir"/>', "GGOP-E002"),
    "unknown-element": (b'<Bundle xmlns="http://hl7.org/fhir"><colour value="red"/></Bundle>', "GGOP-E603"),
    "not-fhir-namespace": (b'<Bundle xmlns="urn:other"><id value="a"/></Bundle>', "GGOP-E603"),
    "boolean-not-true-or-false": (b'<Patient xmlns="http://hl7.org/fhir"><active value="yes"/></Patient>',
                                  "GGOP-E604"),
    "single-element-repeated": (b'<Patient xmlns="http://hl7.org/fhir"><id value="a"/><id value="b"/></Patient>',
                                "GGOP-E603"),
    "not-a-resource-root": (b'<Envelope xmlns="http://hl7.org/fhir"/>', "GGOP-E603"),
    "json-nested-too-deep": (b'{"resourceType":"Bundle","x":' + b"[" * 200 + b"]" * 200 + b"}", "GGOP-E602"),
    "json-not-well-formed": (b'{"resourceType": "Bundle",', "GGOP-E602"),
    "json-array": (b'[{"resourceType": "Bundle"}]', "GGOP-E601"),
    "neither-xml-nor-json": (b"MSH|^~\\&|", "GGOP-E601"),
}


@pytest.mark.parametrize("defect", sorted(HOSTILE_XML))
def test_bad_fhir_is_refused_with_a_code_and_no_value(defect):
    raw, code = HOSTILE_XML[defect]
    with pytest.raises(InputError) as err:
        read_message(raw, LIMITS)
    assert err.value.issues[0].code == code
    assert all("passwd" not in (i.detail or "") and i.detail != "red" for i in err.value.issues)


# --------------------------------------------------------------------------------------------
# XDIS91 → CareCommunication, compared with MedCom's Flow 1 example field by field
# --------------------------------------------------------------------------------------------

# Each field where our message and MedCom's converted Flow1 example differ, and why.
ACCEPTED_DIFFERENCES = {
    "Bundle.id": "a new id per message; MedCom's conversion service draws a random UUID, ours derives from the "
                 "sender and letter id, so a conversion is repeatable",
    "Bundle.timestamp": "the envelope's Sent time (MedCom's mapping); the example was converted later, in 2024",
    "MessageHeader.id": "derived from sender and letter id like Bundle.id (the example's is random)",
    "MessageHeader.definition": "CareCommunication 5.0 requires ...MedComCareCommunicationMessageDefinition|5.x; the "
                                "example is a 4.0.0-era file",
    "Communication.id": "the adapter's deterministic id",
    "Communication.identifier": "a UUID derived from sender and letter id instead of a random one",
    "Communication.category": "MedCom's mapping (v5.0.0) sets 'other' by default; the example chose "
                              "examination-results by hand",
    "Communication.topic": "the mapping makes Subject the topic (category other needs one); the example left "
                           "the Subject out",
    "Communication.payload[0].contentString": "the mapping's own priority text 'Denne meddelelse har høj "
                                              "prioritet.' (the example says 'Denne besked ...') and MedCom's "
                                              "example XML's <br/> are not Break elements",
    "Communication.payload.author": "XDIS91 names no author: the mapping's PractitionerRole 'ukendt' with the "
                                    "organisation's name; the example invented a nurse 'K Petersen'",
    "Communication.payload.authorContact": "the sender gave no telephone: the mapping's '0000 0000' (the example "
                                           "looked one up in SOR)",
    "Communication.payload[1]": "an XBIN01 attachment is a separate message the adapter does not read: the "
                                "attachment names the binary object (urn:medcom:xbin01:<id>) instead of carrying it",
    "Patient.name": "PersonSurnameName 'Ann Berggren' stays the family name (the example split it); MedCom's "
                    "reverse example (Flow 3) keeps it whole",
    "Patient.gender/birthDate": "derived from the CPR number, as everywhere in the adapter",
    "Organization.name": "the letter's spelling 'Medcom testcenter' (the example's came from SOR); department "
                         "names become alias",
    "Organization.address/active": "kept from the letter (the example took only SOR's identifiers)",
    "Organization.identifier (receiver)": "the letter's Identifier, which MedCom's example letter filled with a "
                                          "GLN under IdentifierCode kommunenummer, is kept as a typed identifier",
}


def _flow1_ours() -> dict:
    raw = _needs(FLOWS / "Flow1-XDIS91_Ex_to_FHIR.xml").read_bytes()
    conversion = convert_bytes(raw, id_key=KEY)
    bundle_id, header_id = message_ids(letter_seed("5790001382445", "Brevt23400929"))
    return carecommunication_message(conversion.bundle, SOR, bundle_id=bundle_id, header_id=header_id)


def _ref(bundle: dict, ref: dict) -> dict:
    rtype, rid = ref["reference"].rsplit("/", 2)[-2:]
    return next(r for r in (e["resource"] for e in bundle["entry"]) if r["resourceType"] == rtype and r["id"] == rid)


def test_xdis91_becomes_the_carecommunication_of_medcoms_flow1_example():
    ours, theirs = _flow1_ours(), _read(_needs(FLOWS / "Flow1-CareCommunication_Ex_from_OIOXML.xml"))
    assert set(ACCEPTED_DIFFERENCES)  # each difference the assertions below skip is listed with its reason
    # the Bundle
    assert ours["type"] == theirs["type"] == "message"
    assert ours["meta"] == theirs["meta"]
    assert [e["resource"]["resourceType"] for e in ours["entry"]] == \
        [e["resource"]["resourceType"] for e in theirs["entry"]]
    # the MessageHeader
    oh, th = ours["entry"][0]["resource"], theirs["entry"][0]["resource"]
    assert oh["meta"] == th["meta"] and oh["eventCoding"] == th["eventCoding"]
    assert oh["destination"][0]["extension"] == th["destination"][0]["extension"]
    assert oh["destination"][0]["endpoint"] == th["destination"][0]["endpoint"]
    assert oh["source"] == th["source"]
    assert oh["definition"] == p.CC_DEFINITION != th["definition"]  # ACCEPTED_DIFFERENCES["MessageHeader.definition"]
    for role in ("sender", "receiver"):
        o_org = _ref(ours, oh["sender"] if role == "sender" else oh["destination"][0]["receiver"])
        t_org = _ref(theirs, th["sender"] if role == "sender" else th["destination"][0]["receiver"])
        assert o_org["meta"] == t_org["meta"]
        for ident in t_org["identifier"]:
            assert ident in o_org["identifier"], (role, ident["system"])
    # the Patient
    op, tp = _by_type(ours, "Patient")[0], _by_type(theirs, "Patient")[0]
    assert op["meta"] == tp["meta"] and op["identifier"] == tp["identifier"] and op["address"] == tp["address"]
    assert op["name"][0]["use"] == tp["name"][0]["use"] == "official"
    # the Communication
    oc, tc = _by_type(ours, "Communication")[0], _by_type(theirs, "Communication")[0]
    for field in ("meta", "status"):
        assert oc[field] == tc[field]
    assert _ref(ours, oc["subject"]) is op
    assert len(oc["payload"]) == len(tc["payload"]) == 2
    assert oc["payload"][0]["contentString"].split("\n", 1)[1].startswith("Afdeling A har modtaget en henvisning")
    for o_pl, t_pl in zip(oc["payload"], tc["payload"], strict=True):
        o_ext = {e["url"]: e for e in o_pl["extension"]}
        t_ext = {e["url"]: e for e in t_pl["extension"]}
        assert set(o_ext) == set(t_ext)
        date = p.CORE + "medcom-core-datetime-extension"
        assert o_ext[date] == t_ext[date]
        ident = p.CORE + "medcom-core-identifier-extension"
        assert _ref(ours, o_ext[ident]["valueIdentifier"]["assigner"])["identifier"][0] == \
            _ref(theirs, t_ext[ident]["valueIdentifier"]["assigner"])["identifier"][0]
    assert oc["payload"][1]["contentAttachment"]["title"] == tc["payload"][1]["contentAttachment"]["title"]
    # the Provenance
    opv, tpv = _by_type(ours, "Provenance")[0], _by_type(theirs, "Provenance")[0]
    for field in ("meta", "occurredDateTime", "activity"):
        assert opv[field] == tpv[field]
    assert _ref(ours, opv["target"][0]) is oh and _ref(ours, opv["agent"][0]["who"]) is _ref(ours, oh["sender"])
    payload_ids = [e["valueIdentifier"]["value"] for pl in oc["payload"] for e in pl["extension"]
                   if e["url"].endswith("identifier-extension")]
    assert [e["what"]["identifier"]["value"] for e in opv["entity"]] == payload_ids
    assert [e["role"] for e in opv["entity"]] == [e["role"] for e in tpv["entity"]]
    # the author
    role = _ref(ours, next(e for e in oc["payload"][0]["extension"]
                           if e["url"].endswith("practitioner-extension"))["valueReference"])
    assert role["code"] == [{"text": "ukendt"}] and _ref(ours, role["practitioner"])["name"][0]["text"]


def test_the_shared_resources_keep_their_keyed_identity():
    raw = (FLOWS / "Flow1-XDIS91_Ex_to_FHIR.xml")
    conversion = convert_bytes(_needs(raw).read_bytes(), id_key=KEY)
    ours = _flow1_ours()
    transaction_ids = {(entry_resource(e)["resourceType"], entry_resource(e)["id"]) for e in conversion.bundle["entry"]}
    for rtype in ("Patient", "Organization", "Practitioner", "PractitionerRole"):
        for r in _by_type(ours, rtype):
            assert (rtype, r["id"]) in transaction_ids


def test_a_party_without_sor_code_is_refused_with_e613():
    raw = (DATA / "xdis91" / "letter-to-municipality.xml").read_bytes()
    bundle = convert_bytes(raw, id_key=KEY).bundle
    with pytest.raises(InputError) as err:
        carecommunication_message(bundle, SOR, bundle_id="b", header_id="h")
    assert err.value.issues[0].code == "GGOP-E613"


def test_a_sender_whose_gln_fails_the_check_digit_has_no_carecommunication(medcom):
    """MedCom's DIS91_1.xml: the letter is accepted (GGOP-W341), but a MedCom messaging
    Organization needs a GLN that is one."""
    conversion = convert_bytes((medcom / "examples-oioxml" / "DIS91_1.xml").read_bytes(), id_key=KEY)
    assert "GGOP-W341" in {i.code for i in conversion.issues}
    with pytest.raises(InputError) as err:
        carecommunication_message(conversion.bundle, _directory_for(conversion.bundle), bundle_id="b",
                                  header_id="h")
    assert [(i.code, i.detail) for i in err.value.issues] == [("GGOP-E613", "sender")]


def test_our_carecommunication_passes_our_own_checks():
    message = _flow1_ours()
    msg = read_carecommunication(message)
    assert msg.accepted and served_municipality(msg, {"0461"}, SOR, lambda keys: False) == ("0461", None)


def test_a_letter_with_an_episode_of_care_keeps_its_encounter(medcom):
    raw = (medcom / "examples-oioxml" / "DIS91_2.xml").read_bytes()
    conversion = convert_bytes(raw, id_key=KEY)
    message = carecommunication_message(conversion.bundle, _directory_for(conversion.bundle), bundle_id="b",
                                        header_id="h")
    enc = _by_type(message, "Encounter")[0]
    assert enc["meta"]["profile"] == [p.CORE_ENCOUNTER]
    assert _by_type(message, "Communication")[0]["encounter"] == {"reference": f"Encounter/{enc['id']}"}


def _directory_for(bundle: dict):
    """A SOR directory naming every GLN of a Bundle (SOR codes made up for the test)."""
    glns = {i["value"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Organization"
            for i in e["resource"].get("identifier", []) if i.get("system") == "https://www.gs1.org/gln"}
    return SOR.with_entries([SorEntry(g, f"9{g[:12]}016", None, None) for g in sorted(glns)])


# --------------------------------------------------------------------------------------------
# A received CareCommunication: checks (invalid inputs named by their defect) and the letter
# --------------------------------------------------------------------------------------------


def _flow3() -> dict:
    return _read(_needs(FLOWS / "Flow3-CareCommunication_Ex_to_OIOXML.xml"))


def _entry(bundle: dict, rtype: str) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


DEFECTS = {
    "not-a-message-bundle": (lambda b: b.update(type="transaction"), "GGOP-E605", "Bundle.type"),
    "acknowledgement-instead": (lambda b: b["entry"][0]["resource"]["eventCoding"].update(
        code="acknowledgement-message"), "GGOP-E605", "Bundle.entry[0].resource.eventCoding"),
    "messageheader-not-first": (lambda b: b["entry"].reverse(), "GGOP-E605", "Bundle.entry[0].resource"),
    "bundle-id-missing": (lambda b: b.pop("id"), "GGOP-E606", "Bundle.id"),
    "bundle-id-not-a-fhir-id": (lambda b: b.update(id="has spaces"), "GGOP-E608", "Bundle.id"),
    "timestamp-without-zone": (lambda b: b.update(timestamp="2023-11-22T12:33:00"), "GGOP-E604", "Bundle.timestamp"),
    "receiver-reference-dangling": (lambda b: b["entry"][0]["resource"]["destination"][0].update(
        receiver={"reference": "Organization/nowhere"}), "GGOP-E607",
        "Bundle.entry[0].resource.destination[0].receiver"),
    "sender-gln-check-digit-wrong": (lambda b: _entry_by_ref(b, b["entry"][0]["resource"]["sender"])["identifier"][0]
                                     .update(value="5790001382446"), "GGOP-E608", None),
    "no-primary-destination": (lambda b: b["entry"][0]["resource"].update(destination=[]), "GGOP-E606",
                               "Bundle.entry[0].resource.destination"),
    "focus-not-a-communication": (lambda b: b["entry"][0]["resource"].update(
        focus=[{"reference": b["entry"][0]["resource"]["sender"]["reference"]}]), "GGOP-E607",
        "Bundle.entry[0].resource.focus"),
    "communication-identifier-not-uuid": (lambda b: _entry(b, "Communication").update(
        identifier=[{"value": "brev-17"}]), "GGOP-E608", None),
    "communication-without-payload": (lambda b: _entry(b, "Communication").pop("payload"), "GGOP-E606", None),
    "cpr-number-malformed": (lambda b: _entry(b, "Patient")["identifier"][0].update(value="2512489"), "GGOP-E608",
                             None),
    "patient-without-identifier": (lambda b: _entry(b, "Patient").pop("identifier"), "GGOP-E612", None),
    "two-patients": (lambda b: b["entry"].append({"fullUrl": "urn:uuid:x", "resource": copy.deepcopy(
        _entry(b, "Patient"))}), "GGOP-E612", None),
    "provenance-missing": (lambda b: b.update(entry=[e for e in b["entry"]
                                                    if e["resource"]["resourceType"] != "Provenance"]),
                           "GGOP-E606", None),
}


def _entry_by_ref(b: dict, ref: dict) -> dict:
    return _ref(b, ref)


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_a_defective_carecommunication_is_refused_where_the_defect_is(defect):
    mutate, code, path = DEFECTS[defect]
    bundle = _flow3()
    mutate(bundle)
    msg = read_carecommunication(bundle)
    codes = [(i.code, i.location.fhir_path) for i in msg.issues]
    assert not msg.accepted
    assert code in [c for c, _ in codes], codes
    if path is not None:
        assert (code, path) in codes
    rendered = json.dumps([i.as_dict() for i in msg.issues], ensure_ascii=False)
    assert "2512489996" not in rendered and "Berggren" not in rendered and "Nancy" not in rendered


@pytest.mark.parametrize("path", carecommunication_examples(), ids=lambda x: x.name)
def test_medcoms_carecommunications_pass_the_safety_checks(path):
    msg = read_carecommunication(_read(path))
    assert msg.accepted, [(i.code, i.location.fhir_path) for i in msg.issues]
    assert msg.addressable


def test_whom_a_message_is_for():
    msg = read_carecommunication(_flow3())
    assert served_municipality(msg, {"0461"}, SOR, lambda keys: False) == ("0461", None)
    bundle = _flow3()
    receiver = _ref(bundle, bundle["entry"][0]["resource"]["destination"][0]["receiver"])
    receiver["identifier"] = [{"system": "https://www.gs1.org/gln", "value": "5790001348120"},
                              {"system": "urn:oid:1.2.208.176.1.1", "value": "953741000016009"}]
    other = read_carecommunication(bundle)
    municipality, refused = served_municipality(other, {"0461"}, SOR, lambda keys: False)
    assert municipality is None and refused is not None and refused.code == "GGOP-E609"
    assert served_municipality(other, {"0461"}, SOR, lambda keys: "gln:5790001348120" in keys) == (None, None)


def test_a_received_carecommunication_is_the_letter_medcoms_converted_xdis91_is(medcom):
    """Flow 3: MedCom converted this CareCommunication into that XDIS91; read as a letter, the
    message says what the XDIS91 says."""
    msg = read_carecommunication(_flow3())
    ours = to_letter(msg, "0461", SOR)
    theirs = validate_bytes((FLOWS / "Flow3-XDIS91_Ex_from_FHIR.xml").read_bytes()).message
    assert ours.sender.ean.value == theirs.sender.ean.value
    assert ours.receiver.ean.value == theirs.receiver.ean.value
    assert ours.patient.cpr.value == theirs.patient.cpr.value
    assert ours.patient.surname.value == theirs.patient.surname.value
    assert ours.patient.given_name.value == theirs.patient.given_name.value
    assert ours.subject.value in theirs.subject.value  # MedCom joins category and topic into Subject
    # The message says 12:32+02:00 (summer time, in November); MedCom copied the digits, the
    # adapter writes the instant in Danish time: 11:32.
    assert (ours.letter.authorisation_date.value, ours.letter.authorisation_time.value) == ("2023-11-22", "11:32")
    assert theirs.letter.authorisation_time.value == "12:32"
    assert ours.patient.episode_of_care_status.value == theirs.patient.episode_of_care_status.value


def test_a_received_message_asking_for_a_reply_gets_the_letters_task(tables):
    bundle = _flow3()
    _entry(bundle, "Communication")["payload"][0]["contentString"] += "\nVi beder om svar inden fredag."
    msg = read_carecommunication(bundle)
    letter = to_letter(msg, "0461", SOR)
    from adapter.medcom_fhir.receive import Checked, convert_message

    conversion = convert_message(Checked(msg, "json", [], "0461"), b"{}", AT, tables=tables, sor=SOR, id_key=KEY)
    tasks = letter_tasks(letter, conversion.bundle, tables, load_letter_terms())
    assert [t["code"]["coding"][0]["code"] for t in tasks] == ["answer-letter"]
    comm = _by_type({"entry": conversion.bundle["entry"]}, "Communication")[0]
    assert comm["category"][0]["coding"][0]["code"] == "regarding-referral"  # the message's own category
    doc = _by_type({"entry": conversion.bundle["entry"]}, "DocumentReference")[0]
    assert doc["content"][0]["attachment"]["contentType"] == "application/fhir+json"


def test_store_keys_fit_the_store_and_never_collide():
    keys = [store_key("0d5b3c18-fab6-4d93-9d88-c9c8abf1f18c"), store_key("0d5b3c18fab64d939d88c9c8abf1f18c"),
            store_key("gfd00bc2-9c26-4174-934e-f6e4360845de"), store_key("x" * 64), store_key("x" * 63)]
    assert all(len(k) <= 35 for k in keys) and len(set(keys)) == len(keys)


def test_content_key_ignores_what_a_resend_renews():
    a = _flow3()
    b = copy.deepcopy(a) | {"id": "another", "timestamp": "2026-01-01T00:00:00Z"}
    c = copy.deepcopy(a)
    _entry(c, "Communication")["payload"][0]["contentString"] = "andet"
    assert content_key(a) == content_key(b) != content_key(c)


# --------------------------------------------------------------------------------------------
# Acknowledgements, and XCTL ⇄ Acknowledgement (Flow 2 and Flow 4)
# --------------------------------------------------------------------------------------------


def test_an_acknowledgement_answers_the_message_it_acknowledges():
    msg = read_carecommunication(_flow3())
    ack = acknowledge(msg, OK, AT, SOR)
    header = ack["entry"][0]["resource"]
    assert header["response"] == {"identifier": msg.header_id, "code": "ok"}
    assert _ref(ack, header["sender"])["id"] == msg.receiver.resource["id"]
    assert _ref(ack, header["destination"][0]["receiver"])["id"] == msg.sender.resource["id"]
    assert header["destination"][0]["endpoint"] == msg.header.resource["source"]["endpoint"]
    provenances = _by_type(ack, "Provenance")
    assert [x["activity"]["coding"][0]["code"] for x in provenances] == ["new-message", "acknowledgement"]
    assert provenances[1]["entity"] == [{"role": "revision", "what": {"reference": f"MessageHeader/{msg.header_id}"}}]
    assert acknowledge(msg, OK, AT, SOR) == ack  # the same message, the same answer


def test_a_refusal_is_a_fatal_error_with_medcoms_codes_and_no_values():
    msg = read_carecommunication(_flow3())
    ack = acknowledge(msg, FATAL, AT, SOR, [issue("GGOP-E609", fhir_path="Bundle.entry[0].resource.destination[0]")])
    header = ack["entry"][0]["resource"]
    outcome = _by_type(ack, "OperationOutcome")[0]
    assert header["response"]["code"] == "fatal-error"
    assert header["response"]["details"] == {"reference": f"OperationOutcome/{outcome['id']}"}
    assert outcome["issue"][0]["details"]["coding"] == [{"system": p.ACK_ERROR_SYSTEM,
                                                         "code": "MSG_Receiver_Identifier_UNKNOWN"}]
    assert outcome["issue"][0]["details"]["text"].startswith("GGOP-E609")
    assert "2512489996" not in json.dumps(ack)


def _flow3_ids() -> Acknowledged:
    """Flow 3: MedCom converted the CareCommunication (Bundle.id, MessageHeader.id) into the
    XDIS91 (envelope and letter id) that Flow 4's XCTL03 acknowledges."""
    cc = _flow3()
    xdis91 = validate_bytes((FLOWS / "Flow3-XDIS91_Ex_from_FHIR.xml").read_bytes()).message
    return Acknowledged(xdis91.envelope.identifier.value, xdis91.letter.identifier.value,
                        xdis91.letter.version_code.value, cc["id"], cc["entry"][0]["resource"]["id"])


# Fields where our Acknowledgement (Flow 4) or XCTL (Flow 2) and MedCom's example differ, and why.
XCTL_ACK_DIFFERENCES = {
    "ids of the new message": "Bundle.id, MessageHeader.id, Provenance ids (Flow 4) and the XCTL's envelope and "
                              "letter id (Flow 2) are new ids: ours derive from the message answered, MedCom's are "
                              "random",
    "Bundle.timestamp": "the XCTL's Sent time is Danish time: 12:33 is 12:33+01:00, which MedCom's example wrote "
                        "as 12:33Z",
    "Organization ids": "new resources of the new message",
    "Flow 2 Sent": "the XCTL is sent at the Acknowledgement's timestamp (2023-11-22 13:33 Danish time); MedCom's "
                   "example XCTL says 2023-11-20 17:46, the time of Flow 1, a file made for another run",
    "Provenance.occurredDateTime of the acknowledged message": "an XCTL does not say when the letter was written: "
                                                               "the receipt's time",
}


def test_flow4_xctl03_becomes_medcoms_acknowledgement():
    xctl = validate_bytes(_needs(FLOWS / "Flow4-XCTL03_Ex_to_FHIR_XDIS91.xml").read_bytes()).message
    assert isinstance(xctl, ReceiptMessage)
    ours = acknowledgement_from_xctl(xctl, _flow3_ids(), SOR)
    theirs = _read(FLOWS / "Flow4-Acknowledgement_Ex_from_OIOXML.xml")
    assert XCTL_ACK_DIFFERENCES
    oh, th = ours["entry"][0]["resource"], theirs["entry"][0]["resource"]
    assert ours["meta"] == theirs["meta"] and ours["type"] == theirs["type"]
    for field in ("meta", "eventCoding", "response"):
        assert oh[field] == th[field], field
    assert oh["source"] == th["source"]
    assert oh["destination"][0]["endpoint"] == th["destination"][0]["endpoint"]
    assert oh["destination"][0]["extension"] == th["destination"][0]["extension"]
    for ref in ("sender",):
        assert _ref(ours, oh[ref])["identifier"] == _ref(theirs, th[ref])["identifier"]
    assert _ref(ours, oh["destination"][0]["receiver"])["identifier"] == \
        _ref(theirs, th["destination"][0]["receiver"])["identifier"]
    ops, tps = _by_type(ours, "Provenance"), _by_type(theirs, "Provenance")
    for o, t in zip(ops, tps, strict=True):
        assert o["meta"] == t["meta"] and o["activity"] == t["activity"]
        assert o.get("entity") == t.get("entity")
        assert _ref(ours, o["agent"][0]["who"])["identifier"] == _ref(theirs, t["agent"][0]["who"])["identifier"]
    assert ops[0]["target"] == tps[0]["target"]


@pytest.fixture(scope="module")
def xctl_schema():
    xsd = _needs(SHARED / "medcom" / "xsd" / "2005-08-07" / "EMessage.xsd")
    return etree.XMLSchema(etree.parse(str(xsd)))


def _xml(raw: bytes):
    from adapter.medcom.xmlsafe import read_xml

    return read_xml(raw).root


def test_flow2_acknowledgement_becomes_medcoms_xctl03(xctl_schema):
    ack = _read(_needs(FLOWS / "Flow2-Acknowledgement_Ex_to_OIOXML.xml"))
    flow1 = validate_bytes((FLOWS / "Flow1-XDIS91_Ex_to_FHIR.xml").read_bytes()).message
    acknowledged = Acknowledged.converted_letter(flow1.sender.ean.value, flow1.envelope.identifier.value,
                                                 flow1.letter.identifier.value)
    ours = _xml(xctl_from_acknowledgement(ack, acknowledged))
    theirs = _xml((FLOWS / "Flow2-XCTL03_Ex_from_FHIR_XDIS91.xml").read_bytes())
    assert xctl_schema.validate(ours), xctl_schema.error_log

    def fields(root) -> dict:
        out = {}
        for el in root.iter():
            if isinstance(el.tag, str) and len(el) == 0:
                path = "/".join(etree.QName(a).localname for a in [*reversed(list(el.iterancestors())), el])
                out[path] = (el.text or "").strip()
        return out

    o, t = fields(ours), fields(theirs)
    different = {k for k in set(o) | set(t) if o.get(k) != t.get(k)}
    assert different == {"Emessage/Envelope/Sent/Date", "Emessage/Envelope/Sent/Time", "Emessage/Envelope/Identifier",
                         "Emessage/PositiveReceipt/Letter/Identifier"}, different  # XCTL_ACK_DIFFERENCES


def test_xctl_and_acknowledgement_round_trip(medcom):
    for name in ("Flow4-XCTL03_Ex_to_FHIR_XDIS91.xml", "Flow2-XCTL03_Ex_from_FHIR_XDIS91.xml"):
        xctl = validate_bytes((FLOWS / name).read_bytes()).message
        original = xctl.original_letters[0]
        acknowledged = Acknowledged.converted_letter(xctl.original_sender_ean.value,
                                                     xctl.original_envelope_identifier.value,
                                                     original.identifier.value, original.version_code.value)
        ack = acknowledgement_from_xctl(xctl, acknowledged, SOR)
        back = validate_bytes(xctl_from_acknowledgement(ack, acknowledged)).message
        assert back.receipt_type == xctl.receipt_type
        for attr in ("original_envelope_identifier", "original_sender_ean", "original_receiver_ean", "sender_ean",
                     "receiver_ean"):
            assert getattr(back, attr).value == getattr(xctl, attr).value, attr
        assert back.original_letters[0].identifier.value == original.identifier.value


def test_a_negative_receipt_and_a_fatal_acknowledgement_carry_each_others_codes(medcom):
    xctl = validate_bytes((medcom / "examples-oioxml" / "CTL02_1.xml").read_bytes()).message
    letter = xctl.original_letters[0] if xctl.original_letters else None
    acknowledged = Acknowledged.converted_letter(
        xctl.original_sender_ean.value, xctl.original_envelope_identifier.value,
        letter.identifier.value if letter else "L", "XD9134L")
    ack = acknowledgement_from_xctl(xctl, acknowledged, SOR)
    assert ack["entry"][0]["resource"]["response"]["code"] == "fatal-error"
    back = validate_bytes(xctl_from_acknowledgement(ack, acknowledged)).message
    assert back.receipt_type == "XCTL02"


# --------------------------------------------------------------------------------------------
# The CLI, the routing option and the SOR directory
# --------------------------------------------------------------------------------------------


def test_cli_convert_as_carecommunication_in_json_and_xml():
    flow1 = str(_needs(FLOWS / "Flow1-XDIS91_Ex_to_FHIR.xml"))
    as_json = CliRunner().invoke(main, ["convert", "--as", "carecommunication", flow1])
    assert as_json.exit_code == 0, as_json.output
    message = json.loads(as_json.stdout)
    assert message == _flow1_ours()
    as_xml = CliRunner().invoke(main, ["convert", "--as", "carecommunication", "--format", "xml", flow1])
    assert as_xml.exit_code == 0
    assert read_message(as_xml.stdout_bytes, LIMITS)[0] == message
    refused = CliRunner().invoke(main, ["convert", "--as", "carecommunication",
                                        str(DATA / "xdis91" / "letter-to-municipality.xml")])
    assert refused.exit_code == 2 and "GGOP-E613" in refused.stderr


def test_cli_receipt_as_acknowledgement_and_as_xctl(tmp_path):
    flow4 = str(_needs(FLOWS / "Flow4-XCTL03_Ex_to_FHIR_XDIS91.xml"))
    res = CliRunner().invoke(main, ["receipt", "--as", "acknowledgement", flow4])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["entry"][0]["resource"]["response"]["code"] == "ok"
    refused = CliRunner().invoke(main, ["receipt", "--as", "acknowledgement", str(DATA / "invalid" / "missing-cpr.xml")])
    assert refused.exit_code == 2
    assert json.loads(refused.stdout)["entry"][0]["resource"]["response"]["code"] == "fatal-error"
    flow2 = str(FLOWS / "Flow2-Acknowledgement_Ex_to_OIOXML.xml")
    xctl = CliRunner().invoke(main, ["receipt", "--as", "xctl", "--acknowledged", "KuvNrerwerwe99,Brevt23400929",
                                     flow2])
    assert xctl.exit_code == 0 and b"<OriginalLetterIdentifier>Brevt23400929<" in xctl.stdout_bytes


def test_the_routing_table_takes_payload_medcom_message(tmp_path):
    f = tmp_path / "routing.yaml"
    f.write_text('routes:\n  "gln:5790000121441":\n    mode: push\n    base_url: https://x.example/fhir\n'
                 '    payload: medcom-message\n', "utf-8")
    assert load_routing(f).routes["gln:5790000121441"].payload == MEDCOM_MESSAGE
    f.write_text('routes:\n  "gln:5790000121441":\n    mode: push\n    base_url: https://x.example/fhir\n'
                 '    payload: medcom\n', "utf-8")
    with pytest.raises(ConfigError):
        load_routing(f)


def test_an_outbox_payload_becomes_a_carecommunication_per_row():
    bundle = convert_bytes(_needs(FLOWS / "Flow1-XDIS91_Ex_to_FHIR.xml").read_bytes(), id_key=KEY).bundle
    first = medcom_message(bundle, message_id=7, recipient="municipality:0461", sor=SOR)
    again = medcom_message(bundle, message_id=7, recipient="municipality:0461", sor=SOR)
    other = medcom_message(bundle, message_id=7, recipient="gln:5790000121441", sor=SOR)
    assert first == again and first["id"] != other["id"]
    plan = convert_bytes((DATA / "ggop" / "minimal-almen.xml").read_bytes(), id_key=KEY).bundle
    with pytest.raises(ValueError, match="not a correspondence letter"):
        medcom_message(plan, message_id=8, recipient="municipality:0461", sor=SOR)


SOR_DEFECTS = {
    "wrong-header": ("gln;sor\n", 1),
    "gln-check-digit": ("gln,sor,municipality,name\n5790001382446,359001000016000,,x\n", 2),
    "sor-too-short": ("gln,sor,municipality,name\n5790001382445,3590,,x\n", 2),
    "municipality-three-digits": ("gln,sor,municipality,name\n5790001382445,359001000016000,461,x\n", 2),
}


@pytest.mark.parametrize("defect", sorted(SOR_DEFECTS))
def test_a_broken_sor_directory_is_a_located_e501(defect):
    text, line = SOR_DEFECTS[defect]
    with pytest.raises(ConfigError) as err:
        parse_sor_directory(text, "sor.csv")
    assert err.value.issues[0].code == "GGOP-E501" and err.value.issues[0].location.line == line
