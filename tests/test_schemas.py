"""The project's own XML Schemas in adapter/schemas/: they compile, MedCom's real files validate
against them (or fail for the documented reason), and small self-made messages show that
they accept what they should and reject what they should.

Only lxml is used. Tests that read MedCom's files from ../shared/medcom skip when that folder
is absent.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
from lxml import etree

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "adapter" / "schemas"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MEDCOM = SHARED / "medcom"

M104 = "urn:oio:medcom:municipality:1.0.4"
M100 = "urn:oio:medcom:municipality:1.0.0"
NS_2006 = "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2006/07/01/"
NS_2005 = "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2005/08/07/"

GGOP = "ggop-1.0.4/ggop.xsd"
XDIS91_2006 = "xdis91-2006-07-01/xdis91.xsd"
XDIS91_2005 = "xdis91-2005-08-07/xdis91.xsd"
XCTL = "xctl-2005-08-07/xctl.xsd"


# --------------------------------------------------------------------------- helpers


@functools.cache
def schema(rel: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / rel)))


def findings(rel: str, doc: etree._ElementTree | etree._Element) -> list[etree._LogEntry]:
    """Validate and return the schema's error log entries (empty when valid)."""
    xsd = schema(rel)
    ok = xsd.validate(doc)
    entries = list(xsd.error_log)
    assert ok == (not entries)
    return entries


def parse_text(text: str) -> etree._Element:
    return etree.fromstring(text.encode("utf-8"))


def messages(entries: list[etree._LogEntry]) -> list[str]:
    return [e.message for e in entries]


def medcom(rel: str) -> Path:
    if not MEDCOM.is_dir():
        pytest.skip("../shared/medcom not present")
    path = MEDCOM / rel
    assert path.is_file(), f"expected MedCom file missing: {path}"
    return path


def mutate(text: str, old: str, new: str, count: int = 1) -> str:
    """Replace old by new, insisting that old occurs exactly `count` times."""
    assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times, expected {count}"
    return text.replace(old, new)


# --------------------------------------------------------------------------- compile


ALL_XSD = sorted(p.relative_to(SCHEMAS).as_posix() for p in SCHEMAS.rglob("*.xsd"))


def test_expected_schema_files_exist():
    assert set(ALL_XSD) >= {GGOP, "ggop-1.0.4/ggop-m100.xsd", XDIS91_2006, XDIS91_2005, XCTL}


@pytest.mark.parametrize("rel", ALL_XSD)
def test_every_xsd_compiles(rel):
    compiled = etree.XMLSchema(etree.parse(str(SCHEMAS / rel)))
    assert isinstance(compiled, etree.XMLSchema)


@pytest.mark.parametrize("rel", ALL_XSD)
def test_every_xsd_is_xsd_1_0_with_qualified_elements(rel):
    root = etree.parse(str(SCHEMAS / rel)).getroot()
    assert root.tag == "{http://www.w3.org/2001/XMLSchema}schema"
    assert root.get("elementFormDefault") == "qualified"
    assert root.get("targetNamespace")


@pytest.mark.parametrize("folder", sorted(p.name for p in SCHEMAS.iterdir() if p.is_dir()))
def test_every_schema_folder_has_a_readme(folder):
    readme = SCHEMAS / folder / "README.md"
    assert readme.is_file()
    assert len(readme.read_text(encoding="utf-8").strip()) > 200


@pytest.mark.parametrize("rel", [GGOP, XDIS91_2006, XDIS91_2005, XCTL])
def test_emessage_is_the_only_global_element(rel):
    """Only Emessage may start a document; nothing else is declared globally."""
    xs = "{http://www.w3.org/2001/XMLSchema}"
    names = []
    for path in {SCHEMAS / rel, *(SCHEMAS / rel).parent.glob("*.xsd")}:
        root = etree.parse(str(path)).getroot()
        names += [el.get("name") for el in root.findall(f"{xs}element")]
    assert names == ["Emessage"]


def test_catalog_maps_each_message_kind_to_its_entry_schema():
    catalog = json.loads((SCHEMAS / "catalog.json").read_text(encoding="utf-8"))
    assert catalog == {
        "ggop": {"namespace": M104, "xsd": GGOP},
        "xdis91-2006": {"namespace": NS_2006, "xsd": XDIS91_2006},
        "xdis91-2005": {"namespace": NS_2005, "xsd": XDIS91_2005},
        "xctl": {"namespace": NS_2005, "xsd": XCTL},
    }
    for entry in catalog.values():
        root = etree.parse(str(SCHEMAS / entry["xsd"])).getroot()
        assert root.get("targetNamespace") == entry["namespace"]


# --------------------------------------------------------------------------- MedCom's files


@pytest.mark.parametrize(
    ("rel", "example"),
    [
        (XDIS91_2006, "examples-oioxml/DIS91_1.xml"),
        (XDIS91_2006, "examples-oioxml/DIS91_2.xml"),
        (XDIS91_2006, "carecommunication-conversion/Flow3-XDIS91_Ex_from_FHIR.xml"),
        (XDIS91_2006, "examples-ggop/xdis91-from-ggop-fixed.xml"),
        (XCTL, "examples-oioxml/CTL01_1.xml"),
        (XCTL, "examples-oioxml/CTL02_1.xml"),
        (XCTL, "examples-oioxml/CTL03_1.xml"),
        (XCTL, "carecommunication-conversion/Flow2-XCTL03_Ex_from_FHIR_XDIS91.xml"),
        (XCTL, "carecommunication-conversion/Flow2-XCTL03_Ex_from_FHIR_XBIN01.xml"),
        (XCTL, "carecommunication-conversion/Flow4-XCTL03_Ex_to_FHIR_XDIS91.xml"),
        (XCTL, "carecommunication-conversion/Flow4-XCTL03_Ex_to_FHIR_XBIN01.xml"),
    ],
)
def test_medcom_file_validates(rel, example):
    doc = etree.parse(str(medcom(example)))
    assert messages(findings(rel, doc)) == []


def test_medcom_ggop_example_has_only_the_short_contact_county_ean():
    """MedCom's example G-GOP is valid except for one genuinely deviating value: the
    ContactCounty EANIdentifier holds 11 digits, not a 13-digit GLN."""
    doc = etree.parse(str(medcom("examples-ggop/ggop-medcom-example.xml")))
    entries = findings(GGOP, doc)
    assert len(entries) == 1, messages(entries)
    (entry,) = entries
    assert "57001231231" in entry.message
    assert f"{{{M100}}}EANIdentifier" in entry.message
    bad = doc.getroot().xpath("//m104:ContactCounty/m100:EANIdentifier", namespaces={"m104": M104, "m100": M100})
    assert [el.text for el in bad] == ["57001231231"]
    assert entry.line == bad[0].sourceline


def test_medcom_ggop_example_with_a_13_digit_contact_county_ean_is_valid():
    doc = etree.parse(str(medcom("examples-ggop/ggop-medcom-example.xml")))
    (ean,) = doc.getroot().xpath("//m104:ContactCounty/m100:EANIdentifier", namespaces={"m104": M104, "m100": M100})
    ean.text = "5790000123117"
    assert messages(findings(GGOP, doc)) == []


def test_medcom_flow1_xdis91_fails_because_of_br():
    """Flow1 uses <br/> where XDIS91 wants <Break/>: it must fail, and for that reason."""
    path = medcom("carecommunication-conversion/Flow1-XDIS91_Ex_to_FHIR.xml")
    entries = findings(XDIS91_2006, etree.parse(str(path)))
    assert any(f"{{{NS_2006}}}br'" in m and "not expected" in m for m in messages(entries))
    # Read with the bytes' real encoding (the file declares iso-8859-1 but holds UTF-8): then
    # the <br/> elements are the only findings.
    utf8 = etree.parse(str(path), etree.XMLParser(encoding="utf-8"))
    entries = findings(XDIS91_2006, utf8)
    assert entries, "Flow1 must not validate"
    assert all(f"{{{NS_2006}}}br'" in m for m in messages(entries)), messages(entries)


def test_medcom_xdis91_from_ggop_with_placeholder_eans_fails_on_the_eans_only():
    """MedCom's stylesheet output holds the words afsender/modtager as EANs. MedCom's schema
    accepts any 1-35 characters; ours wants a 13-digit GLN."""
    doc = etree.parse(str(medcom("examples-ggop/xdis91-from-ggop.xml")))
    entries = findings(XDIS91_2006, doc)
    assert len(entries) == 2
    assert all("EANIdentifier" in m for m in messages(entries))
    assert {"afsender", "modtager"} == {re.search(r"value '([^']*)'", m).group(1) for m in messages(entries)}


def test_medcom_xdis90_is_not_an_xdis91():
    doc = etree.parse(str(medcom("examples-oioxml/DIS91_3.xml")))
    entries = findings(XDIS91_2006, doc)
    assert any("No matching global declaration" in m for m in messages(entries))


def test_xdis91_2006_letter_rewritten_to_2005_validates_against_the_2005_schema():
    """There is no MedCom XD9133L example: DIS91_2 moved to the 2005 namespace, without the
    2006-only AdditionalInformation, must validate; with it, it must not."""
    raw = medcom("examples-oioxml/DIS91_2.xml").read_bytes()
    raw = raw.replace(NS_2006.encode(), NS_2005.encode()).replace(b"XD9134L", b"XD9133L")
    without = re.sub(rb"<AdditionalInformation>.*?</AdditionalInformation>", b"", raw)
    assert without != raw
    assert messages(findings(XDIS91_2005, etree.fromstring(without))) == []
    # AdditionalInformation does not exist in XD9133L:
    with_info = messages(findings(XDIS91_2005, etree.fromstring(raw)))
    assert len(with_info) == 1 and "AdditionalInformation" in with_info[0], with_info


# --------------------------------------------------------------------------- G-GOP snippets

GGOP_MINIMAL = f"""<?xml version="1.0" encoding="UTF-8"?>
<Emessage xmlns="{M104}" xmlns:m100="{M100}">
  <m100:Envelope>
    <m100:Sent><m100:Date>2026-03-02</m100:Date><m100:Time>08:15</m100:Time></m100:Sent>
    <m100:Identifier>ENV00000000001</m100:Identifier>
    <m100:AcknowledgementCode>pluspositivkvitt</m100:AcknowledgementCode>
  </m100:Envelope>
  <RehabilitationPlan>
    <Letter>
      <Identifier>LET00000000001</Identifier>
      <VersionCode>GGOP100</VersionCode>
      <StatisticalCode>GGOP1</StatisticalCode>
      <Authorisation><m100:Date>2026-03-02</m100:Date><m100:Time>08:00</m100:Time></Authorisation>
      <TypeCode>GGOP</TypeCode>
    </Letter>
    <Sender>
      <m100:EANIdentifier>5790001354145</m100:EANIdentifier>
      <m100:Identifier>4202360</m100:Identifier>
      <IdentifierCode>sygehusafdelingsnummer</IdentifierCode>
      <m100:OrganisationName>Testhospitalet</m100:OrganisationName>
    </Sender>
    <Receiver>
      <m100:EANIdentifier>5790000121441</m100:EANIdentifier>
      <m100:Identifier>461</m100:Identifier>
      <IdentifierCode>kommunenummer</IdentifierCode>
    </Receiver>
    <GPCCReceiver><Deselected/></GPCCReceiver>
    <Patient>
      <m100:CivilRegistrationNumber>0101011234</m100:CivilRegistrationNumber>
      <m100:PersonSurnameName>Testesen</m100:PersonSurnameName>
    </Patient>
    <TypeOfRehabilitationPlan>almen</TypeOfRehabilitationPlan>
    <ConsentInformed>nej</ConsentInformed>
    <CurrentHospitalContact>
      <Start><Date>2026-02-20</Date><Time>10:00</Time></Start>
      <ExpectedEnd><Date>2026-03-02</Date><Time>12:00</Time></ExpectedEnd>
    </CurrentHospitalContact>
  </RehabilitationPlan>
</Emessage>
"""

# Every element of the structure, including those seen only in MedCom's stylesheet, written
# with other prefixes (and a redeclared default namespace) to show that only URIs matter.
GGOP_FULL = f"""<?xml version="1.0" encoding="UTF-8"?>
<?xml-stylesheet type="text/xsl" href="view.xsl"?>
<mm104:Emessage xmlns:mm104="{M104}" xmlns:mm100="{M100}">
  <!-- envelope -->
  <Envelope xmlns="{M100}">
    <Sent><Date>2026-03-02</Date><Time>23:59</Time></Sent>
    <Identifier>1</Identifier>
    <AcknowledgementCode>minuspositivkvitt</AcknowledgementCode>
  </Envelope>
  <mm104:RehabilitationPlan>
    <mm104:Letter>
      <mm104:Identifier>LET00000000002</mm104:Identifier>
      <mm104:VersionCode>GGOP100</mm104:VersionCode>
      <mm104:StatisticalCode>GGOP3</mm104:StatisticalCode>
      <mm104:Authorisation><mm100:Date>2026-03-02</mm100:Date><mm100:Time>00:00</mm100:Time></mm104:Authorisation>
      <mm104:TypeCode>GGOP</mm104:TypeCode>
      <mm104:StatusCode>rettetbrev</mm104:StatusCode>
      <mm104:EpisodeOfCareIdentifier>0f3c2b1a9e8d4c7b</mm104:EpisodeOfCareIdentifier>
    </mm104:Letter>
    <mm104:Sender>
      <mm100:EANIdentifier>5790001354145</mm100:EANIdentifier>
      <mm100:Identifier>1084181000016003</mm100:Identifier>
      <mm104:IdentifierCode>sorkode</mm104:IdentifierCode>
      <mm100:OrganisationName>Testhospitalet</mm100:OrganisationName>
      <mm100:DepartmentName>Ortopaedkirurgi</mm100:DepartmentName>
      <mm100:UnitName>Sengeafsnit 2</mm100:UnitName>
      <mm100:StreetName>Testvej 1</mm100:StreetName>
      <mm100:SuburbName>Testby</mm100:SuburbName>
      <mm100:DistrictName>Odense C</mm100:DistrictName>
      <mm100:PostCodeIdentifier>5000</mm100:PostCodeIdentifier>
      <mm100:TelephoneSubscriberIdentifier>+4512345678</mm100:TelephoneSubscriberIdentifier>
      <mm104:SignedBy>
        <mm104:PersonGivenName>Anne</mm104:PersonGivenName>
        <mm104:PersonSurnameName>Terapeut</mm104:PersonSurnameName>
        <mm104:PersonTitle>Fysioterapeut</mm104:PersonTitle>
        <mm100:TelephoneSubscriberIdentifier>12 34 56 78</mm100:TelephoneSubscriberIdentifier>
        <mm100:DepartmentName>Terapien</mm100:DepartmentName>
      </mm104:SignedBy>
      <mm104:CoWriter>
        <mm100:Identifier>12345</mm100:Identifier>
        <mm100:IdentifierCode>sorkode</mm100:IdentifierCode>
        <mm104:PersonGivenName>Bo</mm104:PersonGivenName>
        <mm104:PersonSurnameName>Laege</mm104:PersonSurnameName>
      </mm104:CoWriter>
    </mm104:Sender>
    <mm104:Receiver>
      <mm100:EANIdentifier>5790000121441</mm100:EANIdentifier>
      <mm100:Identifier>851</mm100:Identifier>
      <mm104:IdentifierCode>kommunenummer</mm104:IdentifierCode>
      <mm100:OrganisationName>Aalborg Kommune</mm100:OrganisationName>
      <mm100:PostCodeIdentifier>9000</mm100:PostCodeIdentifier>
    </mm104:Receiver>
    <mm104:GPCCReceiver>
      <mm104:CCReceiver>
        <mm100:EANIdentifier>5790000120314</mm100:EANIdentifier>
        <mm100:Identifier>091034</mm100:Identifier>
        <mm104:IdentifierCode>ydernummer</mm104:IdentifierCode>
        <mm100:OrganisationName>Laegerne i Testby</mm100:OrganisationName>
      </mm104:CCReceiver>
    </mm104:GPCCReceiver>
    <mm104:CCReceiver>
      <mm100:EANIdentifier>5790000120321</mm100:EANIdentifier>
      <mm100:Identifier>5790000120321</mm100:Identifier>
      <mm104:IdentifierCode>lokationsnummer</mm104:IdentifierCode>
      <mm100:OrganisationName>Kopimodtager 1</mm100:OrganisationName>
    </mm104:CCReceiver>
    <mm104:CCReceiver>
      <mm100:EANIdentifier>5790000120338</mm100:EANIdentifier>
      <mm100:Identifier>1</mm100:Identifier>
      <mm104:IdentifierCode>region</mm104:IdentifierCode>
      <mm100:OrganisationName>Kopimodtager 2</mm100:OrganisationName>
    </mm104:CCReceiver>
    <mm104:Patient>
      <mm100:AlternativeIdentifier>010101A123</mm100:AlternativeIdentifier>
      <mm100:PersonSurnameName>Testesen</mm100:PersonSurnameName>
      <mm100:PersonGivenName>Tove</mm100:PersonGivenName>
      <mm100:StreetName>Testvej 2</mm100:StreetName>
      <mm100:DistrictName>Aalborg</mm100:DistrictName>
      <mm100:PostCodeIdentifier>9000</mm100:PostCodeIdentifier>
      <mm100:Occupation>Pensionist</mm100:Occupation>
      <mm104:NoTelephoneReason>Har ingen telefon</mm104:NoTelephoneReason>
      <mm104:CoAddress>
        <mm100:PersonSurnameName>Hansen</mm100:PersonSurnameName>
      </mm104:CoAddress>
    </mm104:Patient>
    <mm104:Relatives>
      <mm104:Relative>
        <mm100:RelationCode>barn</mm100:RelationCode>
        <mm100:PersonSurnameName>Testesen</mm100:PersonSurnameName>
        <mm104:TelephoneSubscriber>
          <mm100:TelephoneSubscriberIdentifier>+4587654321</mm100:TelephoneSubscriberIdentifier>
          <mm104:TelephoneSubscriberCode>mobil</mm104:TelephoneSubscriberCode>
        </mm104:TelephoneSubscriber>
        <mm104:EmailAddressIdentifier>barn@example.dk</mm104:EmailAddressIdentifier>
      </mm104:Relative>
    </mm104:Relatives>
    <mm104:TypeOfRehabilitationPlan>rehabilitering</mm104:TypeOfRehabilitationPlan>
    <mm104:InformationForPatientAndRelatives>Tekst<mm100:Break/>linje 2</mm104:InformationForPatientAndRelatives>
    <mm104:ConsentInformed>ja</mm104:ConsentInformed>
    <mm104:PracticalInformation><mm100:Underline>Vigtigt</mm100:Underline><mm100:Space/><mm100:FixedFont>kode <mm100:Bold>fed</mm100:Bold></mm100:FixedFont></mm104:PracticalInformation>
    <mm104:PatientSafetyAspects/>
    <mm104:RehabilitationDeadline>inden for 2 dage</mm104:RehabilitationDeadline>
    <mm104:CurrentHospitalContact>
      <mm104:Start><mm104:Date>2026-02-20</mm104:Date><mm104:Time>10:00</mm104:Time></mm104:Start>
      <mm104:ExpectedEndText>Ved udskrivelse</mm104:ExpectedEndText>
    </mm104:CurrentHospitalContact>
    <mm104:HospitalAmbulatoryControl>
      <mm104:ExpectedStartText>Indkaldes senere</mm104:ExpectedStartText>
      <mm104:Location>
        <mm100:EANIdentifier>5790001354145</mm100:EANIdentifier>
        <mm100:Identifier>4202360</mm100:Identifier>
        <mm104:IdentifierCode>sygehusafdelingsnummer</mm104:IdentifierCode>
        <mm100:OrganisationName>Ambulatoriet</mm100:OrganisationName>
      </mm104:Location>
    </mm104:HospitalAmbulatoryControl>
    <mm100:PatientHealthSummary>Sammenfatning</mm100:PatientHealthSummary>
    <mm104:AbilityAtDischargeSummary>Sammenfatning</mm104:AbilityAtDischargeSummary>
    <mm104:AbilityAtDischargeExtended xmlns="{M100}"><Bold>8a</Bold><Break/><Italic>- Mentale funktioner</Italic><Right>h</Right><Center>c</Center></mm104:AbilityAtDischargeExtended>
    <mm104:RehabilitationNeedAndPotential>Behov</mm104:RehabilitationNeedAndPotential>
    <mm104:ICD10Diagnoses>
      <mm104:Text>Hoftenaer fraktur</mm104:Text>
    </mm104:ICD10Diagnoses>
    <mm104:ICFClassifications>
      <mm104:ICFClassification>
        <mm104:ICFCode><mm104:Code>FB799</mm104:Code><mm104:TypeCode>ICFkode</mm104:TypeCode><mm104:Text>Tekst</mm104:Text></mm104:ICFCode>
      </mm104:ICFClassification>
    </mm104:ICFClassifications>
    <mm104:JournalExcerpt>
      <mm104:TypeOfExcerpt>Notat</mm104:TypeOfExcerpt>
      <mm104:Comment>Tekst</mm104:Comment>
    </mm104:JournalExcerpt>
    <mm104:ContactCounty>
      <mm100:EANIdentifier>5790000123117</mm100:EANIdentifier>
      <mm100:OrganisationName>Region Test</mm100:OrganisationName>
    </mm104:ContactCounty>
    <mm104:ContactMunicipality>
      <mm100:DepartmentName>Visitationen</mm100:DepartmentName>
      <mm100:TelephoneSubscriberIdentifier>99 31 31 31</mm100:TelephoneSubscriberIdentifier>
    </mm104:ContactMunicipality>
    <mm104:HealthCareTeam/>
    <mm104:FinalResult>
      <mm104:ResultReceiver>
        <mm100:EANIdentifier>5790000120314</mm100:EANIdentifier>
        <mm100:Identifier>091034</mm100:Identifier>
        <mm104:IdentifierCode>ydernummer</mm104:IdentifierCode>
        <mm100:OrganisationName>Laegerne i Testby</mm100:OrganisationName>
      </mm104:ResultReceiver>
    </mm104:FinalResult>
    <mm104:Reference>
      <mm104:RefDescription>Anbefalinger</mm104:RefDescription>
      <mm104:URL>https://www.sst.dk/</mm104:URL>
    </mm104:Reference>
    <mm104:Reference>
      <mm104:RefDescription>Mere</mm104:RefDescription>
      <mm104:URL>https://www.medcom.dk/</mm104:URL>
    </mm104:Reference>
  </mm104:RehabilitationPlan>
</mm104:Emessage>
"""


@pytest.mark.parametrize("text", [GGOP_MINIMAL, GGOP_FULL], ids=["minimal", "full"])
def test_ggop_self_made_valid_messages(text):
    assert messages(findings(GGOP, parse_text(text))) == []


def test_ggop_valid_snippets_really_hold_the_stylesheet_only_elements():
    """The valid snippets exercise the elements seen only in MedCom's stylesheet."""
    full, minimal = parse_text(GGOP_FULL), parse_text(GGOP_MINIMAL)
    for local in (
        "EpisodeOfCareIdentifier", "StatusCode", "NoTelephoneReason",
        "ExpectedEndText", "ExpectedStartText", "Reference",
    ):
        assert full.findall(f".//{{{M104}}}{local}"), local
    assert minimal.findall(f".//{{{M104}}}GPCCReceiver/{{{M104}}}Deselected")
    assert full.findall(f".//{{{M100}}}AlternativeIdentifier")
    assert full.findall(f"{{{M104}}}RehabilitationPlan/{{{M104}}}ICD10Diagnoses/{{{M104}}}Text")


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        # accepted variations
        ("<StatisticalCode>GGOP1<", "<StatisticalCode>GGOP2<", None),
        ("<TypeOfRehabilitationPlan>almen<", "<TypeOfRehabilitationPlan>specialiseret<", None),
        ("<Deselected/>", ("<CCReceiver><m100:EANIdentifier>5790000120314</m100:EANIdentifier>"
         "<m100:Identifier>091034</m100:Identifier><IdentifierCode>ydernummer</IdentifierCode>"
         "<m100:OrganisationName>Lægerne</m100:OrganisationName></CCReceiver>"), None),
        ("</CurrentHospitalContact>", ("</CurrentHospitalContact><ICD10Diagnoses><ICD10Diagnose>"
         "<PrimaryDiagnosis><Code>DS720</Code><TypeCode>ICD10Kode</TypeCode><Text>Fraktur</Text></PrimaryDiagnosis>"
         "<SecondaryDiagnosis><Code>DI639</Code><TypeCode>SKSdiagnosekode</TypeCode><Text>Infarkt</Text></SecondaryDiagnosis>"
         "</ICD10Diagnose><Text>og mere</Text></ICD10Diagnoses>"), None),
        # rejected values
        ("<TypeOfRehabilitationPlan>almen<", "<TypeOfRehabilitationPlan>basal<", "TypeOfRehabilitationPlan"),
        ("<TypeOfRehabilitationPlan>almen<", "<TypeOfRehabilitationPlan>Almen<", "TypeOfRehabilitationPlan"),
        ("<ConsentInformed>nej<", "<ConsentInformed>yes<", "ConsentInformed"),
        ("<VersionCode>GGOP100<", "<VersionCode>XD9134L<", "VersionCode"),
        ("<TypeCode>GGOP<", "<TypeCode>XDIS91<", "TypeCode"),
        ("<StatisticalCode>GGOP1<", "<StatisticalCode>GGOP4<", "StatisticalCode"),
        ("pluspositivkvitt", "positivkvitt", "AcknowledgementCode"),
        ("0101011234", "010101123", "CivilRegistrationNumber"),
        ("0101011234", "01010112345", "CivilRegistrationNumber"),
        ("<m100:Time>08:15<", "<m100:Time>24:00<", "Time"),
        ("<m100:Time>08:15<", "<m100:Time>8:15<", "Time"),
        ("<m100:Date>2026-03-02</m100:Date><m100:Time>08:15", "<m100:Date>02-03-2026</m100:Date><m100:Time>08:15", "Date"),
        ("<Start><Date>2026-02-20<", "<Start><Date>2026-02-30<", "Date"),
        ("5790000121441", "579000012144", "EANIdentifier"),
        ("<IdentifierCode>kommunenummer<", "<IdentifierCode>cvr<", "IdentifierCode"),
        ("ENV00000000001", "ENV000000000012", "Identifier"),
        ("LET00000000001", "", "Identifier"),
        # rejected structure
        ("<m100:Identifier>ENV00000000001</m100:Identifier>", "", "AcknowledgementCode"),
        ("<GPCCReceiver><Deselected/></GPCCReceiver>", "", "CCReceiver"),
        ("<Deselected/>", "<Deselected/><Deselected/>", "Deselected"),
        ("<Deselected/>", "<Deselected>nej</Deselected>", "Deselected"),
        ("<ConsentInformed>nej</ConsentInformed>", "", "ConsentInformed"),
        ("</ExpectedEnd>", "</ExpectedEnd><ExpectedEndText>snart</ExpectedEndText>", "ExpectedEndText"),
        ("<Time>12:00</Time></ExpectedEnd>", "</ExpectedEnd>", "ExpectedEnd"),
        ("</Letter>", "<EpisodeOfCareIdentifier>x</EpisodeOfCareIdentifier><StatusCode>nytbrev</StatusCode></Letter>", "StatusCode"),
        ("</Letter>", "<StatusCode>slettetbrev</StatusCode></Letter>", "StatusCode"),
        ("</CurrentHospitalContact>", ("</CurrentHospitalContact><ICD10Diagnoses><ICD10Diagnose><PrimaryDiagnosis>"
         "<Code>DS720</Code><TypeCode>ICD9kode</TypeCode><Text>x</Text></PrimaryDiagnosis></ICD10Diagnose></ICD10Diagnoses>"), "TypeCode"),
        ("</CurrentHospitalContact>", "</CurrentHospitalContact><ICFClassifications/>", "ICFClassifications"),
        ("</Patient>", ("<TelephoneSubscriber><m100:TelephoneSubscriberIdentifier>1</m100:TelephoneSubscriberIdentifier>"
         "<TelephoneSubscriberCode>privat</TelephoneSubscriberCode></TelephoneSubscriber></Patient>"), "TelephoneSubscriberCode"),
        ("</Patient>", "<EmailAddressIdentifier>ikke-en-adresse</EmailAddressIdentifier></Patient>", "EmailAddressIdentifier"),
        ("</RehabilitationPlan>", "<Local_Elements/></RehabilitationPlan>", "Local_Elements"),
        ("</RehabilitationPlan>", "</RehabilitationPlan><RehabilitationPlan/>", "RehabilitationPlan"),
        ("<Sender>", "<Sender foo=\"bar\">", "foo"),
    ],
)
def test_ggop_mutations(old, new, expect):
    entries = findings(GGOP, parse_text(mutate(GGOP_MINIMAL, old, new)))
    if expect is None:
        assert messages(entries) == []
    else:
        assert entries, f"{old!r} -> {new!r} should be rejected"
        assert any(expect in m for m in messages(entries)), messages(entries)


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        # the namespace of each element is fixed element by element
        ("<mm104:IdentifierCode>sorkode</mm104:IdentifierCode>\n      <mm100:OrganisationName>Testhospitalet",
         "<mm100:IdentifierCode>sorkode</mm100:IdentifierCode>\n      <mm100:OrganisationName>Testhospitalet",
         f"{{{M100}}}IdentifierCode"),
        ("<mm100:IdentifierCode>sorkode</mm100:IdentifierCode>",
         "<mm104:IdentifierCode>sorkode</mm104:IdentifierCode>", f"{{{M104}}}IdentifierCode"),
        ("<mm100:Date>2026-03-02</mm100:Date><mm100:Time>00:00</mm100:Time>",
         "<mm104:Date>2026-03-02</mm104:Date><mm104:Time>00:00</mm104:Time>", f"{{{M104}}}Date"),
        ("<mm104:Start><mm104:Date>2026-02-20</mm104:Date>",
         "<mm104:Start><mm100:Date>2026-02-20</mm100:Date>", f"{{{M100}}}Date"),
        ("<mm100:PatientHealthSummary>Sammenfatning</mm100:PatientHealthSummary>",
         "<mm104:PatientHealthSummary>Sammenfatning</mm104:PatientHealthSummary>", f"{{{M104}}}PatientHealthSummary"),
        ("<mm104:AbilityAtDischargeSummary>Sammenfatning</mm104:AbilityAtDischargeSummary>",
         "<mm100:AbilityAtDischargeSummary>Sammenfatning</mm100:AbilityAtDischargeSummary>", f"{{{M100}}}AbilityAtDischargeSummary"),
        ("<mm104:AbilityAtDischargeExtended xmlns=\"" + M100 + "\"><Bold>",
         "<mm104:AbilityAtDischargeExtended xmlns=\"" + M104 + "\"><Bold>", f"{{{M104}}}Bold"),
        ("Tekst<mm100:Break/>linje 2", "Tekst<mm104:Break/>linje 2", f"{{{M104}}}Break"),
        ("Tekst<mm100:Break/>linje 2", "Tekst<br/>linje 2", "br"),
        ("<Envelope xmlns=\"" + M100 + "\">", "<Envelope xmlns=\"" + M104 + "\">", f"{{{M104}}}Envelope"),
        ("<mm104:SignedBy>\n        <mm104:PersonGivenName>Anne</mm104:PersonGivenName>",
         "<mm104:SignedBy>\n        <mm100:PersonGivenName>Anne</mm100:PersonGivenName>", f"{{{M100}}}PersonGivenName"),
        ("<mm100:Occupation>Pensionist</mm100:Occupation>",
         "<mm104:Occupation>Pensionist</mm104:Occupation>", f"{{{M104}}}Occupation"),
        ("<mm104:TelephoneSubscriberCode>mobil</mm104:TelephoneSubscriberCode>",
         "<mm100:TelephoneSubscriberCode>mobil</mm100:TelephoneSubscriberCode>", f"{{{M100}}}TelephoneSubscriberCode"),
        # element order and formatting content
        ("<mm100:Occupation>Pensionist</mm100:Occupation>\n      <mm104:NoTelephoneReason>Har ingen telefon</mm104:NoTelephoneReason>",
         "<mm104:NoTelephoneReason>Har ingen telefon</mm104:NoTelephoneReason>\n      <mm100:Occupation>Pensionist</mm100:Occupation>",
         "Occupation"),
        ("<Bold>8a</Bold>", "<Bold>8a<Italic>x</Italic></Bold>", "Italic"),
        ("<mm104:RehabilitationDeadline>inden for 2 dage</mm104:RehabilitationDeadline>",
         "<mm104:RehabilitationDeadline>inden for 2 dage<mm100:Break>x</mm100:Break></mm104:RehabilitationDeadline>", "Break"),
    ],
)
def test_ggop_namespace_and_order_mutations_are_rejected(old, new, expect):
    entries = findings(GGOP, parse_text(mutate(GGOP_FULL, old, new)))
    assert entries, f"{old!r} -> {new!r} should be rejected"
    assert any(expect in m for m in messages(entries)), messages(entries)


def test_ggop_other_roots_are_rejected():
    plan = parse_text(GGOP_MINIMAL).find(f"{{{M104}}}RehabilitationPlan")
    entries = findings(GGOP, etree.ElementTree(plan))
    assert any("No matching global declaration" in m for m in messages(entries))
    wrong_ns = mutate(GGOP_MINIMAL, f'<Emessage xmlns="{M104}"', f'<Emessage xmlns="{M100}"')
    entries = findings(GGOP, parse_text(wrong_ns))
    assert any("No matching global declaration" in m for m in messages(entries))


# --------------------------------------------------------------------------- XDIS91 snippets


def xdis91(ns: str, version: str, extra_after_patient: str = "", identifier_code: str = "ydernummer") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Emessage xmlns="{ns}">
  <Envelope><Sent><Date>2026-03-02</Date><Time>09:00</Time></Sent>
    <Identifier>ENV1</Identifier><AcknowledgementCode>pluspositivkvitt</AcknowledgementCode></Envelope>
  <ClinicalEmail>
    <Letter><Identifier>LET1</Identifier><VersionCode>{version}</VersionCode><StatisticalCode>XDIS91</StatisticalCode>
      <Authorisation><Date>2026-03-02</Date><Time>08:59</Time></Authorisation>
      <TypeCode>XDIS91</TypeCode><StatusCode>nytbrev</StatusCode></Letter>
    <Sender><EANIdentifier>5790000121526</EANIdentifier><Identifier>200106</Identifier>
      <IdentifierCode>{identifier_code}</IdentifierCode><OrganisationName>Klinikken</OrganisationName></Sender>
    <Receiver><EANIdentifier>5790000120314</EANIdentifier><Identifier>091034</Identifier>
      <IdentifierCode>ydernummer</IdentifierCode></Receiver>
    <Patient><CivilRegistrationNumber>0101011234</CivilRegistrationNumber><PersonSurnameName>Testesen</PersonSurnameName>
      <EpisodeOfCareStatusCode>inaktiv</EpisodeOfCareStatusCode></Patient>{extra_after_patient}
    <ClinicalInformation><Text01>Hej<Break/><Bold>fed<Break/></Bold><FixedFont>a<Underline>b</Underline></FixedFont></Text01></ClinicalInformation>
    <Reference><RefDescription>Bilag</RefDescription><BIN><ObjectIdentifier>abc</ObjectIdentifier>
      <ObjectCode>tekstfil</ObjectCode><ObjectExtensionCode>pdf</ObjectExtensionCode><OriginalObjectSize>1</OriginalObjectSize></BIN></Reference>
  </ClinicalEmail>
</Emessage>
"""


XDIS91_2006_OK = xdis91(NS_2006, "XD9134L", "\n    <AdditionalInformation><Priority>høj_prioritet</Priority><Subject>Emne</Subject></AdditionalInformation>", "amt")
XDIS91_2005_OK = xdis91(NS_2005, "XD9133L")


@pytest.mark.parametrize(("rel", "text"), [(XDIS91_2006, XDIS91_2006_OK), (XDIS91_2005, XDIS91_2005_OK)], ids=["2006", "2005"])
def test_xdis91_self_made_valid_messages(rel, text):
    assert messages(findings(rel, parse_text(text))) == []


@pytest.mark.parametrize(
    ("rel", "base", "old", "new", "expect"),
    [
        (XDIS91_2006, XDIS91_2006_OK, "Hej<Break/>", "Hej<br/>", "br"),
        (XDIS91_2006, XDIS91_2006_OK, "XD9134L", "XD9133L", "VersionCode"),
        (XDIS91_2006, XDIS91_2006_OK, "<Priority>høj_prioritet<", "<Priority>hoej<", "Priority"),
        (XDIS91_2006, XDIS91_2006_OK, "<EpisodeOfCareStatusCode>inaktiv</EpisodeOfCareStatusCode>", "", "EpisodeOfCareStatusCode"),
        (XDIS91_2006, XDIS91_2006_OK, "<EpisodeOfCareStatusCode>inaktiv<", "<EpisodeOfCareStatusCode>udskrevet_til_hjemmet<", "EpisodeOfCareStatusCode"),
        (XDIS91_2006, XDIS91_2006_OK, "<StatusCode>nytbrev<", "<StatusCode>annulleretbrev<", "StatusCode"),
        (XDIS91_2006, XDIS91_2006_OK, "<Identifier>ENV1</Identifier>", "", "Identifier"),
        (XDIS91_2006, XDIS91_2006_OK, "</BIN>", "</BIN><URL>https://x</URL>", "URL"),
        (XDIS91_2006, XDIS91_2006_OK, "<OriginalObjectSize>1<", "<OriginalObjectSize>0<", "OriginalObjectSize"),
        (XDIS91_2006, XDIS91_2006_OK, "<EANIdentifier>5790000121526<", "<EANIdentifier>afsender<", "EANIdentifier"),
        (XDIS91_2006, XDIS91_2006_OK, "</Letter>", "<EpisodeOfCareIdentifier></EpisodeOfCareIdentifier></Letter>", "EpisodeOfCareIdentifier"),
        (XDIS91_2006, XDIS91_2006_OK, "<Text01>", "<Signed><Date>2026-03-02</Date><Time>09:00</Time></Signed><Text01>", "Signed"),
        (XDIS91_2005, XDIS91_2005_OK, "</Patient>", "</Patient><AdditionalInformation><Subject>Emne</Subject></AdditionalInformation>", "AdditionalInformation"),
        (XDIS91_2005, XDIS91_2005_OK, "<IdentifierCode>ydernummer</IdentifierCode><OrganisationName>", "<IdentifierCode>amt</IdentifierCode><OrganisationName>", "IdentifierCode"),
        (XDIS91_2005, XDIS91_2005_OK, "XD9133L", "XD9134L", "VersionCode"),
    ],
)
def test_xdis91_mutations_are_rejected(rel, base, old, new, expect):
    entries = findings(rel, parse_text(mutate(base, old, new)))
    assert entries, f"{old!r} -> {new!r} should be rejected"
    assert any(expect in m for m in messages(entries)), messages(entries)


def test_xdis91_allows_at_most_ten_clinical_information_blocks():
    block = "<ClinicalInformation><Text01>x</Text01></ClinicalInformation>"
    ten = mutate(XDIS91_2006_OK, "<Reference>", block * 9 + "<Reference>")
    assert messages(findings(XDIS91_2006, parse_text(ten))) == []
    eleven = mutate(XDIS91_2006_OK, "<Reference>", block * 10 + "<Reference>")
    assert any("Reference" in m or "ClinicalInformation" in m for m in messages(findings(XDIS91_2006, parse_text(eleven))))


def test_xdis91_2005_and_2006_do_not_accept_each_others_namespace():
    assert any("No matching global declaration" in m for m in messages(findings(XDIS91_2005, parse_text(XDIS91_2006_OK))))
    assert any("No matching global declaration" in m for m in messages(findings(XDIS91_2006, parse_text(XDIS91_2005_OK))))


# --------------------------------------------------------------------------- XCTL snippets


def receipt(kind: str, version: str, stat: str, original: str, sender: str = "5790000121441") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Emessage xmlns="{NS_2005}">
  <Envelope><Sent><Date>2026-03-02</Date><Time>09:01</Time></Sent>
    <Identifier>ENV2</Identifier><AcknowledgementCode>minuspositivkvitt</AcknowledgementCode></Envelope>
  <{kind}>
    <Letter><Identifier>LET2</Identifier><VersionCode>{version}</VersionCode><StatisticalCode>{stat}</StatisticalCode></Letter>
    <Sender><EANIdentifier>{sender}</EANIdentifier></Sender>
    <Receiver><EANIdentifier>5790001354145</EANIdentifier></Receiver>
    <OriginalEmessage>
      <OriginalEnvelopeIdentifier>ENV00000000001</OriginalEnvelopeIdentifier>
      <OriginalSender><EANIdentifier>5790001354145</EANIdentifier></OriginalSender>
      <OriginalReceiver><EANIdentifier>5790000121441</EANIdentifier></OriginalReceiver>{original}
    </OriginalEmessage>
  </{kind}>
</Emessage>
"""


GGOP_POSITIVE = receipt(
    "PositiveReceipt", "XC0330Q", "XCTL03",
    "<OriginalLetter><OriginalLetterIdentifier>LET00000000001</OriginalLetterIdentifier>"
    "<OriginalVersionCode>GGOP100</OriginalVersionCode></OriginalLetter>",
)
GGOP_NEGATIVE = receipt(
    "NegativeReceipt", "XC0230Q", "XCTL02",
    "<OriginalLetter><OriginalLetterIdentifier>LET00000000001</OriginalLetterIdentifier>"
    "<OriginalVersionCode>GGOP100</OriginalVersionCode><RefuseCode>syntaksfejl</RefuseCode>"
    "<RefuseText>Linje 3:<Break/>ukendt element</RefuseText></OriginalLetter>",
)
VANS_NEGATIVE = receipt(
    "NegativeVansReceipt", "XC0130Q", "XCTL01",
    "<RefuseCode>ukendt_lokationsnummer</RefuseCode><RefuseText>ukendt</RefuseText>",
    sender="DKKMDKMDNET",
)


@pytest.mark.parametrize("text", [GGOP_POSITIVE, GGOP_NEGATIVE, VANS_NEGATIVE], ids=["XCTL03", "XCTL02", "XCTL01"])
def test_xctl_self_made_valid_receipts(text):
    assert messages(findings(XCTL, parse_text(text))) == []


@pytest.mark.parametrize(
    ("base", "old", "new", "expect"),
    [
        (GGOP_POSITIVE, "minuspositivkvitt", "pluspositivkvitt", "AcknowledgementCode"),
        (GGOP_POSITIVE, "XCTL03", "XCTL02", "StatisticalCode"),
        (GGOP_POSITIVE, "XC0330Q", "XC0230Q", "VersionCode"),
        (GGOP_POSITIVE, "</OriginalVersionCode>", "</OriginalVersionCode><RefuseCode>syntaksfejl</RefuseCode>", "RefuseCode"),
        (GGOP_POSITIVE, "GGOP100", "GGOP1000", "OriginalVersionCode"),
        (GGOP_POSITIVE, "<OriginalEnvelopeIdentifier>ENV00000000001<", "<OriginalEnvelopeIdentifier>ENV000000000012<", "OriginalEnvelopeIdentifier"),
        (GGOP_POSITIVE, "<Sender><EANIdentifier>5790000121441<", "<Sender><EANIdentifier>DKKMDKMDNET<", "EANIdentifier"),
        (GGOP_NEGATIVE, "<RefuseCode>syntaksfejl<", "<RefuseCode>andet<", "RefuseCode"),
        (GGOP_NEGATIVE, "<Break/>", "<Bold>x</Bold>", "Bold"),
        (GGOP_NEGATIVE, "<OriginalVersionCode>GGOP100</OriginalVersionCode>", "", "OriginalVersionCode"),
        (VANS_NEGATIVE, "<EANIdentifier>DKKMDKMDNET<", "<EANIdentifier><", "EANIdentifier"),
        (VANS_NEGATIVE, "<RefuseText>ukendt</RefuseText>", "<RefuseText>ukendt</RefuseText><RefuseCode>syntaksfejl</RefuseCode>", "RefuseCode"),
    ],
)
def test_xctl_mutations_are_rejected(base, old, new, expect):
    entries = findings(XCTL, parse_text(mutate(base, old, new)))
    assert entries, f"{old!r} -> {new!r} should be rejected"
    assert any(expect in m for m in messages(entries)), messages(entries)


def test_xctl_allows_at_most_99_original_letters():
    letter = ("<OriginalLetter><OriginalLetterIdentifier>L</OriginalLetterIdentifier>"
              "<OriginalVersionCode>XD9134L</OriginalVersionCode></OriginalLetter>")
    base = receipt("PositiveReceipt", "XC0330Q", "XCTL03", letter * 99)
    assert messages(findings(XCTL, parse_text(base))) == []
    over = receipt("PositiveReceipt", "XC0330Q", "XCTL03", letter * 100)
    assert any("OriginalLetter" in m for m in messages(findings(XCTL, parse_text(over))))


def test_xctl_schema_does_not_accept_an_xdis91_letter():
    assert any("ClinicalEmail" in m for m in messages(findings(XCTL, parse_text(XDIS91_2005_OK))))


# --------------------------------------------------------------------------- agreement with MedCom's XSDs


@functools.cache
def medcom_schema(folder: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(medcom(f"xsd/{folder}/EMessage.xsd"))))


@pytest.mark.parametrize(
    ("folder", "text"),
    [
        ("2006-07-01", XDIS91_2006_OK),
        ("2005-08-07", XDIS91_2005_OK),
        ("2005-08-07", GGOP_POSITIVE),
        ("2005-08-07", GGOP_NEGATIVE),
        ("2005-08-07", VANS_NEGATIVE),
    ],
    ids=["xdis91-2006", "xdis91-2005", "xctl03", "xctl02", "xctl01"],
)
def test_self_made_valid_messages_are_valid_for_medcom_too(folder, text):
    """Our valid snippets are no looser than MedCom's own schema set."""
    xsd = medcom_schema(folder)
    ok = xsd.validate(parse_text(text))
    assert ok, [e.message for e in xsd.error_log]
