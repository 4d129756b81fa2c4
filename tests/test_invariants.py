"""Invariants over every golden, MedCom's examples and generated messages."""

from __future__ import annotations

import pytest
from tests.support import TEST_ID_KEY

from adapter.pipeline import convert_bytes
from conftest import MEDCOM, golden_inputs
from invariants import check_bundle, independent_r4_check

KEY = TEST_ID_KEY.encode()


def _medcom_inputs():
    if not MEDCOM.is_dir():
        return []
    files = [MEDCOM / "examples-ggop" / "ggop-medcom-example.xml",
             MEDCOM / "examples-ggop" / "xdis91-from-ggop-fixed.xml",
             MEDCOM / "examples-oioxml" / "DIS91_1.xml",
             MEDCOM / "examples-oioxml" / "DIS91_2.xml",
             MEDCOM / "carecommunication-conversion" / "Flow1-XDIS91_Ex_to_FHIR.xml",
             MEDCOM / "carecommunication-conversion" / "Flow3-XDIS91_Ex_from_FHIR.xml"]
    return [f for f in files if f.exists()]


INPUTS = [(p.name, p.read_bytes()) for p in golden_inputs() + _medcom_inputs()]


@pytest.mark.parametrize("name,raw", INPUTS, ids=[n for n, _ in INPUTS])
def test_invariants(name, raw, tables):
    bundle = convert_bytes(raw, id_key=KEY).bundle
    assert check_bundle(bundle, raw, tables.all_strings()) == []


@pytest.mark.parametrize("name,raw", INPUTS, ids=[n for n, _ in INPUTS])
def test_independent_r4_structure(name, raw):
    assert independent_r4_check(convert_bytes(raw, id_key=KEY).bundle) == []


@pytest.mark.parametrize("name,raw", INPUTS, ids=[n for n, _ in INPUTS])
def test_converting_twice_gives_the_identical_bundle(name, raw):
    assert convert_bytes(raw, id_key=KEY).bundle == convert_bytes(raw, id_key=KEY).bundle


def test_generated_messages_keep_the_invariants(tables):
    from adapter.generate import generate_messages

    for m in generate_messages(150, seed=7):
        bundle = convert_bytes(m.xml, id_key=KEY).bundle
        assert check_bundle(bundle, m.xml, tables.all_strings()) == [], m.filename
        assert independent_r4_check(bundle) == [], m.filename


def test_invariant_checker_catches_defects(tables):
    """The checker itself must be able to fail."""
    raw = golden_inputs()[0].read_bytes()
    bundle = convert_bytes(raw, id_key=KEY).bundle
    bundle["entry"][0]["resource"]["name"] = [{"family": "Opfundetnavn"}]
    bundle["entry"][1]["resource"]["partOf"] = {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}
    problems = check_bundle(bundle, raw, tables.all_strings())
    assert any("neither the input" in p for p in problems)
    assert any("unresolved reference" in p for p in problems)
    bundle["entry"][1]["resource"]["alias"] = []
    assert any(p == "an empty value at Bundle.entry[1].resource.alias"
               for p in check_bundle(bundle, raw, tables.all_strings()))
    bundle["entry"][0]["resource"]["name"] = [{"family": ""}]
    assert independent_r4_check(bundle)


def test_a_relative_with_nothing_to_map_leaves_no_empty_contact(tables):
    """An empty <Relative> (the schema only warns) gives no contact at all, not an empty one."""
    import re

    from conftest import DATA

    raw = (DATA / "ggop" / "full-specialiseret.xml").read_bytes()
    raw = re.sub(rb"(<Relatives>\s*)", rb"\1<Relative></Relative>", raw, count=1)
    bundle = convert_bytes(raw, id_key=KEY).bundle
    (patient,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert [c["name"]["family"] for c in patient["contact"]] == ["Demodatter"]
    assert check_bundle(bundle, raw, tables.all_strings()) == []
