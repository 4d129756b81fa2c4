"""MedCom FHIR messages through HAPI FHIR's validator with the MedCom packages of
``../shared/fhir-profiles`` (the newest version of each package, read from there at test time):
MedCom's own examples, the Acknowledgements the adapter answers them with, and the
CareCommunication messages it makes of MedCom's XDIS91 examples, the goldens and 500 generated
letters. 0 errors."""

from __future__ import annotations

import datetime as dt
import shutil
from itertools import islice

import pytest
from tests.support import TEST_ID_KEY

from adapter.data import MAPPINGS_DIR
from adapter.errors import issue
from adapter.medcom_fhir.acknowledgement import FATAL, OK, TRANSIENT, acknowledge
from adapter.medcom_fhir.inbound import read_carecommunication
from adapter.medcom_fhir.outbound import carecommunication_message, letter_seed, message_ids
from adapter.medcom_fhir.sor import SorDirectory, SorEntry, load_sor_directory
from adapter.medcom_fhir.wire import read_message
from adapter.pipeline import convert_bytes
from conftest import DATA, MEDCOM, SHARED

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

KEY = TEST_ID_KEY.encode()
PROFILES = SHARED / "fhir-profiles"
FLOWS = MEDCOM / "carecommunication-conversion"
SOR = load_sor_directory(MAPPINGS_DIR)
AT = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
# What is wrong with MedCom's conversion examples, by file: the CareCommunications are 4.0.0-era
# files, whose MessageDefinition is not the ...MedComCareCommunicationMessageDefinition|5.x that
# CareCommunication 5.0 requires; the Acknowledgements' fullUrls are relative ('Organization/…')
# and their narratives link to anchors ('#Organization_…') that the narratives do not have.
EXAMPLE_DEFECTS = {
    # the definition, and hence the MessageHeader's profile, which the Bundle (medcom-messaging-1)
    # and the Provenance's target check
    "CareCommunication": ("medcom-carecommunication-definition-url", "medcom-messaging-1",
                          "Unable to find a profile match for MessageHeader/"),
    # relative fullUrls, narrative links to missing anchors, and hence the MessageHeader's profile
    "Acknowledgement": ("The fullUrl must be an absolute URL", "Hyperlink '#", "Unable to find a profile match for MessageHeader/", "medcom-messaging-1",
                        "medcom-acknowledgement-2"),
}


@pytest.fixture(scope="module")
def validator():
    from adapter.conformance import HapiValidator, ValidatorUnavailable
    from adapter.conformance.validator import package_folders

    if shutil.which("java") is None:
        pytest.skip("Java is not installed: the conformance tests need a JDK 17+")
    if not PROFILES.is_dir():
        pytest.skip(f"the FHIR packages are not present at {PROFILES}")
    try:
        folders = package_folders()
        names = [f.name for f in folders]
        assert "hl7.fhir.dk.core#2.0.0" not in names and "medcom.fhir.dk.messaging#2.1.0" not in names
        assert "medcom.fhir.dk.carecommunication#5.0.4" in names and "medcom.fhir.dk.acknowledgement#2.0.3" in names
        v = HapiValidator(packages=folders)
        v.start()
    except ValidatorUnavailable as exc:
        pytest.skip(f"validator unavailable: {exc.reason}")
    yield v
    v.close()


def _errors(issues: list[dict]) -> list[str]:
    return [f"{i.get('location')}: {i.get('message')}" for i in issues if i.get("severity") in ("error", "fatal")]


def _check_all(validator, resources: list[tuple[str, dict]]) -> None:
    failures = {}
    for (name, _), issues in zip(resources, validator.validate_many([r for _, r in resources]), strict=True):
        errors = _errors(issues)
        if errors:
            failures[name] = errors[:5]
    assert failures == {}


def medcom_messages():
    return sorted(PROFILES.glob("medcom.fhir.dk.carecommunication#*/package/example/Bundle-*.json")) + \
        sorted(PROFILES.glob("medcom.fhir.dk.acknowledgement#*/package/example/Bundle-*.json"))


def test_medcoms_examples_pass(validator):
    if not FLOWS.is_dir():
        pytest.skip("MedCom's conversion examples are not present")
    _check_all(validator, [(p.name, read_message(p.read_bytes())[0]) for p in medcom_messages()])
    flows = sorted(FLOWS.glob("Flow*-CareCommunication_*.xml")) + sorted(FLOWS.glob("Flow*-Acknowledgement_*.xml"))
    assert len(flows) == 4
    for path in flows:
        defect = EXAMPLE_DEFECTS[path.name.split("-")[1].split("_")[0]]
        errors = _errors(validator.validate(read_message(path.read_bytes())[0]))
        assert errors and all(any(d in e for d in defect) for e in errors), (path.name, errors)


def test_the_acknowledgements_of_medcoms_examples_pass(validator):
    paths = sorted(PROFILES.glob("medcom.fhir.dk.carecommunication#*/package/example/Bundle-*.json")) + \
        sorted(FLOWS.glob("Flow*-CareCommunication_*.xml"))
    acks = []
    for path in paths:
        msg = read_carecommunication(read_message(path.read_bytes())[0])
        acks.append((f"{path.name} ok", acknowledge(msg, OK, AT, SOR)))
        acks.append((f"{path.name} fatal", acknowledge(msg, FATAL, AT, SOR, [
            issue("GGOP-E609", fhir_path="Bundle.entry[0].resource.destination[0].receiver"),
            issue("GGOP-E608", fhir_path="Bundle.id")])))
        acks.append((f"{path.name} transient", acknowledge(msg, TRANSIENT, AT, SOR, [issue("GGOP-E616")])))
    assert len(acks) >= 30
    _check_all(validator, acks)


def _directory(glns: set[str]) -> SorDirectory:
    """The test deployment's SOR directory: MedCom's two parties, and a SOR code (made up, the
    SOR register's shape) for every other location number the letters name."""
    known = {e.gln for e in SOR.entries}
    return SOR.with_entries([SorEntry(g, f"{int(g[4:12]):08d}1000016{n % 10}", None, None)
                             for n, g in enumerate(sorted(glns - known))])


def _message(raw: bytes) -> tuple[dict, dict]:
    conversion = convert_bytes(raw, id_key=KEY)
    letter = conversion.message
    glns = {i["value"] for e in conversion.bundle["entry"] if e["resource"]["resourceType"] == "Organization"
            for i in e["resource"].get("identifier", []) if i.get("system") == "https://www.gs1.org/gln"}
    bundle_id, header_id = message_ids(letter_seed(letter.sender.ean.value, letter.letter.identifier.value))
    message = carecommunication_message(conversion.bundle, _directory(glns), bundle_id=bundle_id,
                                        header_id=header_id)
    checked = read_carecommunication(message)
    assert checked.accepted, [(i.code, i.location.fhir_path) for i in checked.issues]  # our own checks too
    return message, acknowledge(checked, OK, AT, _directory(glns))


def test_xdis91_examples_and_goldens_become_valid_carecommunications(validator):
    paths = sorted(DATA.glob("xdis91/*.xml"))
    if MEDCOM.is_dir():
        # DIS91_1.xml's sender GLN fails the GS1 check digit: no CareCommunication (test_medcom_fhir.py)
        paths += [MEDCOM / "examples-oioxml" / "DIS91_2.xml",
                  FLOWS / "Flow1-XDIS91_Ex_to_FHIR.xml", FLOWS / "Flow3-XDIS91_Ex_from_FHIR.xml"]
    resources = []
    for path in paths:
        message, ack = _message(path.read_bytes())
        resources += [(path.name, message), (f"{path.name} ack", ack)]
    _check_all(validator, resources)


def test_500_generated_letters_become_valid_carecommunications(validator):
    from adapter.generate import iter_messages

    letters = list(islice((m for m in iter_messages(2026) if m.kind == "xdis91"), 500))
    assert len(letters) == 500
    resources = []
    for m in letters:
        message, ack = _message(m.xml)
        resources += [(m.filename, message), (f"{m.filename} ack", ack)]
    _check_all(validator, resources)
