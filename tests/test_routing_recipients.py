"""Recipient resolution and the Tasks letters create (pure functions)."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.support import TEST_ID_KEY

from adapter.fhir.bundle import check_with_models
from adapter.pipeline import convert_bytes
from adapter.routing.recipients import (
    letter_task_rules,
    letter_tasks,
    load_letter_terms,
    recipients_of,
    region_owns,
    with_tasks,
)
from conftest import DATA

KEY = TEST_ID_KEY.encode()

FULL = (DATA / "ggop" / "full-specialiseret.xml").read_bytes()
MINIMAL = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
REHAB = (DATA / "ggop" / "rehabilitering-corrected.xml").read_bytes()
LETTER = (DATA / "xdis91" / "letter-to-municipality.xml").read_bytes()
HEADING = ("Barn med varig funktionsnedsættelse, som har behov for ergo/fysioterapeutisk træning og vejledning "
           "i kommunen")


def resolve(raw: bytes, tables, **kw):
    c = convert_bytes(raw, check_models=False, **kw, id_key=KEY)
    return [(r.key, r.role) for r in recipients_of(c.message, c.trace, tables)], c


def test_primary_is_the_home_municipality_by_code(tables):
    got, _ = resolve(MINIMAL, tables)
    assert got == [("municipality:0461", "primary")]  # the GP copy was declined (Deselected)


def test_specialised_plan_goes_to_municipality_gp_with_consent_and_training_hospital(tables):
    got, c = resolve(FULL, tables)
    assert got == [("municipality:0851", "primary"), ("gln:5790001234560", "gp"), ("gln:5790001112226", "hospital")]
    gp = recipients_of(c.message, c.trace, tables)[1]
    assert gp.addresses == ("ydernummer:012345",)  # routable by its ydernummer too


def test_no_gp_copy_without_consent(tables):
    got, _ = resolve(FULL.replace(b"<ConsentInformed>ja</ConsentInformed>", b"<ConsentInformed>nej</ConsentInformed>"),
                     tables)
    assert ("gln:5790001234560", "gp") not in got
    assert ("gln:5790001112226", "hospital") in got  # the training hospital is no copy: it trains


def test_no_gp_copy_when_the_copy_was_declined(tables):
    declined = FULL.replace(FULL[FULL.index(b"<GPCCReceiver>"):FULL.index(b"</GPCCReceiver>")],
                            b"<GPCCReceiver><Deselected/>")
    got, _ = resolve(declined, tables)
    assert [r for r in got if r[1] == "gp"] == []


def test_gp_with_a_bad_gln_is_addressed_by_ydernummer(tables):
    bad = FULL.replace(b"<mm100:EANIdentifier>5790001234560</mm100:EANIdentifier>\n"
                       b"                <mm100:Identifier>012345",
                       b"<mm100:EANIdentifier>5790001234569</mm100:EANIdentifier>\n"
                       b"                <mm100:Identifier>012345")
    assert bad != FULL
    got, _ = resolve(bad, tables)
    assert ("ydernummer:012345", "gp") in got


def test_other_copy_receivers_need_a_valid_gln_and_consent(tables):
    valid_cc = FULL.replace(b"5790001234561", b"5790001234577")  # a valid check digit
    got, _ = resolve(valid_cc, tables)
    assert ("gln:5790001234577", "cc") in got
    got, _ = resolve(FULL, tables)  # 5790001234561 fails the GS1 check: not routable
    assert not any(role == "cc" for _, role in got)
    got, _ = resolve(valid_cc.replace(b"<ConsentInformed>ja", b"<ConsentInformed>nej"), tables)
    assert not any(role == "cc" for _, role in got)


def test_rehabilitering_goes_to_the_region_from_the_reform_date(tables):
    got, c = resolve(REHAB, tables)
    assert not region_owns(c.trace) and not any(role == "region" for _, role in got)
    after = REHAB.replace(b"<Date>2026-04-07</Date>\n                <Time>21:30</Time>",
                          b"<Date>2027-01-04</Date>\n                <Time>21:30</Time>")
    got, c = resolve(after, tables)
    assert region_owns(c.trace)
    assert ("region:1081", "region") in got and got[0] == ("municipality:0851", "primary")


def test_recipient_keys_are_unique_per_message(tables):
    same = FULL.replace(b"5790001112226", b"5790001234560")  # the GP's GLN is also the sender's
    got, _ = resolve(same, tables)
    keys = [k for k, _ in got]
    assert len(keys) == len(set(keys))


def test_letter_goes_to_its_receiver_and_creates_two_tasks(tables):
    got, c = resolve(LETTER, tables)
    assert got == [("municipality:0851", "primary")]
    tasks = letter_tasks(c.message, c.bundle, tables)
    assert [t["code"]["coding"][0]["code"] for t in tasks] == ["visitate-child", "answer-letter"]
    full = with_tasks(c.bundle, tasks)
    check_with_models(full)
    urls = {e["fullUrl"] for e in full["entry"]}
    for t in tasks:
        for field in ("focus", "for", "owner", "requester"):
            assert t[field]["reference"] in urls, field
        assert t["status"] == "requested" and t["intent"] == "order"
    again = convert_bytes(LETTER, check_models=False, id_key=KEY)
    assert [t["id"] for t in letter_tasks(again.message, again.bundle, tables)] == [t["id"] for t in tasks]


@pytest.mark.parametrize("subject,first,expected", [
    (HEADING, "Alma har cerebral parese.", ["LETTER-CHILD-HEADING"]),
    ("Andet emne", HEADING.upper() + ".", ["LETTER-CHILD-HEADING"]),
    ("Barn med varig funktionsnedsættelse - træning og vejledning", "Alma har cerebral parese.", []),
    ("Opfølgning", "Svar venligst inden fredag.", ["LETTER-REPLY-REQUESTED"]),
    ("Opfølgning", "Brevet bedes besvaret.", ["LETTER-REPLY-REQUESTED"]),
    ("Opfølgning", "Vi anmoder om at få en tilbagemelding på, hvilket tilbud barnet visiteres til.",
     ["LETTER-REPLY-REQUESTED"]),
    ("Opfølgning", "Vi ser frem til jeres svar.", ["LETTER-REPLY-REQUESTED"]),
    ("Opfølgning", "Giv venligst en tilbagemelding til afdelingen.", ["LETTER-REPLY-REQUESTED"]),
    ("Opfølgning", "Til orientering; svar er ikke nødvendigt. Vi beder om svar hvis noget ændres.", []),
    ("Opfølgning", "Til orientering.", []),
])
def test_which_letters_create_tasks(tables, subject, first, expected):
    raw = (LETTER.replace(b"Barn med varig funktionsneds\xc3\xa6ttelse - tr\xc3\xa6ning og vejledning",
                          subject.encode())
           .replace(HEADING.encode() + b"<Break/>", first.encode() + b"<Break/>")
           .replace(b"Vi beder om svar senest 2026-05-18.", b"Med venlig hilsen"))
    c = convert_bytes(raw, check_models=False, id_key=KEY)
    assert [r.rule for r in letter_task_rules(c.message, load_letter_terms())] == expected


def test_generated_messages_route_as_their_facts_say(tables):
    from adapter.generate import generate_messages

    for m in generate_messages(120, seed=5):
        c = convert_bytes(m.xml, check_models=False, received_at=dt.datetime(2026, 6, 1, tzinfo=dt.UTC), id_key=KEY)
        got = recipients_of(c.message, c.trace, tables)
        f = m.facts
        assert got[0].key == f"municipality:{f['municipality_code']}" and got[0].role == "primary"
        if m.kind == "ggop":
            assert any(r.role == "gp" for r in got) == (f["consent"] == "ja" and not f["gp_deselected"]), m.filename
            assert any(r.role == "hospital" for r in got) == (f["plan_type"] == "specialiseret")
            assert not any(r.role == "region" for r in got)  # discharges in 2026
        else:
            codes = [t["code"]["coding"][0]["code"] for t in letter_tasks(c.message, c.bundle, tables)]
            assert ("visitate-child" in codes) == bool(f["children_heading"]), m.filename
            assert ("answer-letter" in codes) == bool(f["reply_requested"]), m.filename


def test_a_broken_letter_rules_file_names_file_key_and_line(tmp_path):
    from adapter.errors import ConfigError

    bad = tmp_path / "letter-tasks.yaml"
    bad.write_text("child_heading:\n  rule: X\n  task: visitate-child\n  description: d\n  heading: h\n"
                   "reply_requested:\n  rule: Y\n  task: answer-letter\n  description: d\n  terms: []\n")
    with pytest.raises(ConfigError) as err:
        load_letter_terms(bad)
    i = err.value.issues[0]
    assert i.code == "GGOP-E501" and i.location.line == 10 and i.location.xpath.endswith("#reply_requested.terms")


# --------------------------------------------------------------------------------------------
# issue: recipients follow the plan (training hospital, GP consent, the 2027 region)
# --------------------------------------------------------------------------------------------

REHAB_2027 = REHAB.replace(b"<Date>2026-04-07</Date>\n                <Time>21:30</Time>",
                           b"<Date>2027-01-04</Date>\n                <Time>21:30</Time>")


def test_specialised_plan_goes_to_the_hospital_that_trains_not_the_sending_department(tables):
    """The plan names where the training and follow-up happen (HospitalAmbulatoryControl/Location):
    that hospital gets the copy, not the department that wrote the plan."""
    at = FULL.index(b"<HospitalAmbulatoryControl>")
    trains = FULL[:at] + FULL[at:].replace(b"5790001112226", b"5790001234577", 1)
    got, _ = resolve(trains, tables)
    assert ("gln:5790001234577", "hospital") in got
    assert ("gln:5790001112226", "hospital") not in got
    no_location = FULL[:at] + FULL[FULL.index(b"</HospitalAmbulatoryControl>") + len(b"</HospitalAmbulatoryControl>"):]
    got, _ = resolve(no_location, tables)
    assert ("gln:5790001112226", "hospital") in got  # no place named: the sender trains


def test_gp_copy_without_consent_is_kept_back_with_a_warning(tables):
    refused = FULL.replace(b"<ConsentInformed>ja</ConsentInformed>", b"<ConsentInformed>nej</ConsentInformed>")
    got, c = resolve(refused, tables)
    assert not any(role == "gp" for _, role in got)
    [w] = [i for i in c.issues if i.code == "GGOP-W339"]
    assert w.location.xpath.endswith("GPCCReceiver/CCReceiver") and w.severity == "warning"
    got, c = resolve(FULL, tables)
    assert ("gln:5790001234560", "gp") in got and not any(i.code == "GGOP-W339" for i in c.issues)


@pytest.mark.parametrize(("municipality", "region"), [("0851", "region:1081"), ("0101", "region:region-oestdanmark"),
                                                      ("0259", "region:region-oestdanmark")])
def test_rehabilitering_region_is_looked_up_by_municipality_on_day_0(tables, municipality, region):
    """From 2027 Region Østdanmark replaces Hovedstaden (0101 København) and Sjælland (0259 Køge);
    its code is not published, so the adapter's key names it until the setting gives one."""
    raw = REHAB_2027.replace(b"<mm100:Identifier>0851</mm100:Identifier>",
                             f"<mm100:Identifier>{municipality}</mm100:Identifier>".encode())
    got, c = resolve(raw, tables)
    assert (region, "region") in got
    orgs = [e["resource"] for e in c.bundle["entry"] if e["resource"]["resourceType"] == "Organization"]
    regions = [o for o in orgs if o.get("name", "").startswith("Region")]
    if region.endswith("oestdanmark"):
        assert [o["name"] for o in regions] == ["Region Østdanmark"]
        assert regions[0]["identifier"] == [
            {"system": "http://ggop-adapter.dk/fhir/NamingSystem/region-key", "value": "region-oestdanmark"}]
    else:
        assert [o["name"] for o in regions] == ["Region Nordjylland"]


def test_region_code_and_reform_date_are_settings(tmp_path, tables):
    from adapter.rules.loader import DEFAULT_DIR, load_rules

    f = tmp_path / "national.yaml"
    f.write_text('municipality: national\ndeadlines:\n  settings:\n    rehabilitering_region_from: "2027-07-01"\n'
                 '    region_mergers:\n      - {regions: ["1084", "1085"], key: region-oestdanmark,\n'
                 '         name: Region Østdanmark, code: "1086", iso: DK-86, valid_from: "2027-07-01"}\n',
                 encoding="utf-8")
    rules = load_rules(DEFAULT_DIR, [f])
    raw = REHAB_2027.replace(b"<mm100:Identifier>0851</mm100:Identifier>", b"<mm100:Identifier>0101</mm100:Identifier>")
    c = convert_bytes(raw, check_models=False, rules=rules, id_key=KEY)
    assert "regionMergers" not in c.trace  # 2027-01-04 is before the configured date
    later = raw.replace(b"<Date>2027-01-04</Date>", b"<Date>2027-08-02</Date>")
    c = convert_bytes(later, check_models=False, rules=rules, id_key=KEY)
    got = [(r.key, r.role) for r in recipients_of(c.message, c.trace, tables)]
    assert ("region:1086", "region") in got
    org = next(e["resource"] for e in c.bundle["entry"] if e["resource"].get("name") == "Region Østdanmark")
    assert org["identifier"] == [{"system": "http://hl7.dk/fhir/core/CodeSystem/dk-core-regional-subdivision-codes",
                                  "value": "DK-86"}]


def test_convert_emits_the_letter_tasks_the_service_stores(tables):
    """`ggop-adapter convert` and the service make the same Bundle for a letter: its Tasks are
    part of the conversion, not added on the way out."""
    c = convert_bytes(LETTER, check_models=True, id_key=KEY)
    tasks = [e["resource"] for e in c.bundle["entry"] if e["resource"]["resourceType"] == "Task"]
    assert [t["code"]["coding"][0]["code"] for t in tasks] == ["visitate-child", "answer-letter"]
    assert [t["id"] for t in tasks] == [t["id"] for t in letter_tasks(c.message, c.bundle, tables)]


def test_childrens_letter_task_cites_its_own_basis_not_paragraph_140():
    c = convert_bytes(LETTER, check_models=False, id_key=KEY)
    child = next(e["resource"] for e in c.bundle["entry"]
                 if e["resource"]["resourceType"] == "Task" and e["resource"]["code"]["coding"][0]["code"] == "visitate-child")
    basis = [i["valueString"] for i in child["input"] if i["type"]["coding"][0]["code"] == "legal-basis"]
    assert len(basis) == 2 and not any("140" in b for b in basis)
    assert basis[0].endswith("(regional aftale)") and "børneområdet" in basis[0]
    assert basis[1].startswith("Serviceloven, sundhedsloven § 120") and basis[1].endswith("(lov)")
