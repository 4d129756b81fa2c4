"""Against MedCom's real files in ../shared/medcom (skipped when absent)."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree
from tests.support import TEST_ID_KEY

from adapter.fhir.bundle import entry_resource
from adapter.medcom.receipt_writer import ReceiptAddress, build_receipt
from adapter.pipeline import convert_bytes, receipt_for, validate_bytes
from conftest import DATA, invalid_inputs

KEY = TEST_ID_KEY.encode()


def resources(bundle, kind):
    return [entry_resource(e) for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


@pytest.fixture(scope="module")
def xctl_schema(medcom):
    return etree.XMLSchema(etree.parse(str(medcom / "xsd" / "2005-08-07" / "EMessage.xsd")))


def test_medcom_ggop_example_converts_with_warnings_only(medcom):
    raw = (medcom / "examples-ggop" / "ggop-medcom-example.xml").read_bytes()
    result = convert_bytes(raw, id_key=KEY)
    codes = {i.code for i in result.issues}
    assert not any(i.is_error for i in result.issues)
    assert "GGOP-W331" in codes  # the GP's and copy receivers' GLNs fail the check digit
    sr = resources(result.bundle, "ServiceRequest")[0]
    assert sr["category"][0]["coding"][0]["code"] == "0c8e2bfc-1350-45d1-90da-c07e2645d073"  # specialiseret
    assert sr["extension"][0] == {"url": "http://fhir.kl.dk/rehab/StructureDefinition/PreconditionDate",
                                  "valueDate": "2014-12-20"}
    patient = resources(result.bundle, "Patient")[0]
    assert patient["identifier"][0] == {"system": "urn:oid:1.2.208.176.1.2", "value": "2512484916"}
    assert len(patient["contact"]) == 2
    conditions = resources(result.bundle, "Condition")
    assert [c["code"]["coding"][0]["code"] for c in conditions] == ["DC189", "DS720"]
    assert all(c["code"]["coding"][0]["system"] == "urn:oid:1.2.208.176.2.4.12" for c in conditions)
    receiver = next(o for o in resources(result.bundle, "Organization") if o["id"] == sr["performer"][0]["reference"][9:])
    assert {"system": "http://hl7.dk/fhir/core/CodeSystem/dk-core-municipality-codes", "value": "0461"} in receiver["identifier"]


def test_xdis91_flow1_converts_as_medcoms_mapping_prescribes(medcom):
    """Compare with MedCom's own conversion result Flow1-CareCommunication_Ex_from_OIOXML.xml."""
    raw = (medcom / "carecommunication-conversion" / "Flow1-XDIS91_Ex_to_FHIR.xml").read_bytes()
    bundle = convert_bytes(raw, id_key=KEY).bundle
    comm = resources(bundle, "Communication")[0]
    patient = resources(bundle, "Patient")[0]
    orgs = {o["id"]: o for o in resources(bundle, "Organization")}
    assert patient["identifier"] == [{"system": "urn:oid:1.2.208.176.1.2", "value": "2512489996"}]
    assert patient["address"][0] == {"line": ["Hindbærvej 23"], "city": "Odense S", "postalCode": "5260"}
    assert comm["status"] == "unknown"
    assert comm["category"][0]["coding"][0]["code"] == "other"
    assert comm["topic"]["text"] == "Forundersøgelse"
    text = comm["payload"][0]["contentString"]
    assert text.startswith("Denne meddelelse har høj prioritet.\nAfdeling A har modtaget en henvisning")
    assert "Røntgen af hofte i to planer.\nBlodtryksresultat" in text
    exts = {e["url"].rsplit("/", 1)[1]: e for e in comm["payload"][0]["extension"]}
    assert exts["medcom-core-datetime-extension"]["valueDateTime"] == "2023-11-20T17:45:00+01:00"
    assert set(exts) == {"medcom-core-datetime-extension", "medcom-core-identifier-extension",
                         "medcom-core-practitioner-extension", "medcom-core-contact-extension"}
    assigner = comm["payload"][0]["extension"][1]["valueIdentifier"]["assigner"]
    assert assigner == {"identifier": {"system": "https://www.gs1.org/gln", "value": "5790001382445"}}
    provenance = resources(bundle, "Provenance")[0]
    sender = orgs[provenance["agent"][0]["who"]["reference"][9:]]
    assert {"system": "https://www.gs1.org/gln", "value": "5790001382445"} in sender["identifier"]
    assert sender["name"] == "Medcom testcenter"
    provenance = resources(bundle, "Provenance")[0]
    assert provenance["activity"]["coding"][0]["code"] == "new-message"
    assert provenance["occurredDateTime"] == "2023-11-20T17:45:00+01:00"
    payload_ids = {e["valueIdentifier"]["value"] for p in comm["payload"] for e in p["extension"]
                   if e["url"].endswith("identifier-extension")}
    entity_ids = {e["what"]["identifier"]["value"] for e in provenance["entity"] if "identifier" in e["what"]}
    assert payload_ids == entity_ids  # every payload has its Provenance entity
    encounter = resources(bundle, "Encounter")[0]
    assert encounter["status"] == "unknown"  # inaktiv → other/unknown


@pytest.mark.parametrize("name", ["DIS91_1.xml", "DIS91_2.xml"])
def test_edifact_converter_xdis91_examples_convert(medcom, name):
    raw = (medcom / "examples-oioxml" / name).read_bytes()
    bundle = convert_bytes(raw, id_key=KEY).bundle
    comm = resources(bundle, "Communication")[0]
    assert comm["payload"][0]["contentString"]
    assert resources(bundle, "Patient")[0]["identifier"][0]["system"] == "urn:oid:1.2.208.176.1.2"


def test_dis91_2_episode_of_care_identifier_gets_hyphens(medcom):
    bundle = convert_bytes((medcom / "examples-oioxml" / "DIS91_2.xml").read_bytes(), id_key=KEY).bundle
    enc = resources(bundle, "Encounter")[0]
    assert enc["episodeOfCare"][0]["identifier"]["value"] == "65528acd-a12c-4d85-b701-6f4b12eec2bc"


def test_binary_letters_and_xdis90_are_unsupported_with_a_clear_code(medcom):
    for path in [medcom / "examples-oioxml" / "DIS91_3.xml",
                 medcom / "carecommunication-conversion" / "Flow1-XBIN01_Ex_to_FHIR.xml"]:
        result = validate_bytes(path.read_bytes())
        assert [i.code for i in result.issues if i.is_error] == ["GGOP-E101"]


@pytest.mark.parametrize("name", ["CTL01_1.xml", "CTL02_1.xml", "CTL03_1.xml"])
def test_medcom_receipts_are_read(medcom, name):
    result = validate_bytes((medcom / "examples-oioxml" / name).read_bytes())
    assert result.accepted and result.parsed.kind == "xctl"
    assert result.message.receipt_type == name[:3].replace("CTL", "XCTL") + name[3:5]


def test_our_positive_receipts_validate_against_medcoms_schema(medcom, xctl_schema):
    files = [medcom / "examples-ggop" / "ggop-medcom-example.xml", medcom / "examples-oioxml" / "DIS91_2.xml",
             DATA / "ggop" / "minimal-almen.xml"]
    for f in files:
        result = receipt_for(f.read_bytes())
        assert result.positive
        doc = etree.fromstring(result.xml)
        assert xctl_schema.validate(doc), (f.name, xctl_schema.error_log)
        assert doc.find(".//{*}OriginalVersionCode").text in ("GGOP100", "XD9134L")


def test_our_negative_receipts_validate_against_medcoms_schema(medcom, xctl_schema):
    checked = 0
    for f in invalid_inputs():
        result = receipt_for(f.read_bytes())
        if result.xml is None:
            continue
        doc = etree.fromstring(result.xml)
        assert xctl_schema.validate(doc), (f.name, xctl_schema.error_log)
        checked += 1
    assert checked >= 15


def test_receipt_without_letter_identifier_validates(medcom, xctl_schema):
    addr = ReceiptAddress("KUVERT1", None, None, "5790001234560", "5790007654324")
    xml = build_receipt(addr, dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), [], "syntaksfejl")
    assert xctl_schema.validate(etree.fromstring(xml)), xctl_schema.error_log


def test_alternative_identifier_system_only_for_the_x_ecpr_format(tables):
    from adapter.fhir.context import MapContext
    from adapter.fhir.patient import patient_identifier
    from adapter.medcom.model import Patient, Where
    from adapter.medcom.nodes import Val

    ctx = MapContext("5790001234560", "L1", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tables)
    x = Patient(Where(1, "/P"), alternative_identifier=Val("0103451AB7", 1, "/P/AlternativeIdentifier"))
    other = Patient(Where(1, "/P"), alternative_identifier=Val("HOSP-4711", 1, "/P/AlternativeIdentifier"))
    assert patient_identifier(x, ctx) == {"system": "urn:oid:1.2.208.176.1.6.1.1", "value": "0103451AB7"}
    assert "system" not in patient_identifier(other, ctx)
