"""Tests for the synthetic message generator (adapter.generate)."""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from adapter.generate import GeneratedMessage, catalog, generate_messages, ggop, xdis91
from adapter.generate.common import make_context
from adapter.generate.ids import (
    cpr_birth_date,
    cpr_birth_year,
    cpr_mod11_ok,
    gln_check_digit,
    gln_is_valid,
    make_cpr,
    make_gln,
    org_gln,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MEDCOM_XSD = SHARED / "medcom" / "xsd" / "2006-07-01" / "EMessage.xsd"
MEDCOM_GGOP_EXAMPLE = SHARED / "medcom" / "examples-ggop" / "ggop-medcom-example.xml"

M104 = "urn:oio:medcom:municipality:1.0.4"
M100 = "urn:oio:medcom:municipality:1.0.0"
XDIS = "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2006/07/01/"
NS = {"a": M104, "b": M100, "x": XDIS}

SEED = 2026
START = date(2026, 1, 5)
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def parse(msg: GeneratedMessage) -> etree._Element:
    return etree.fromstring(msg.xml, PARSER)


@pytest.fixture(scope="module")
def batch() -> list[GeneratedMessage]:
    return generate_messages(200, SEED)


@pytest.fixture(scope="module")
def ggops(batch):
    return [(m, parse(m)) for m in batch if m.kind == "ggop"]


@pytest.fixture(scope="module")
def letters(batch):
    return [(m, parse(m)) for m in batch if m.kind == "xdis91"]


@pytest.fixture(scope="module")
def municipalities() -> dict[str, str]:
    with (REPO / "adapter" / "mappings" / "municipalities.csv").open(encoding="utf-8") as fh:
        return {row["kommunekode"]: row["navn"] for row in csv.DictReader(fh)}


def medcom_schema() -> etree.XMLSchema:
    if not MEDCOM_XSD.is_file():
        pytest.skip(f"MedCom's XSDs are not available at {MEDCOM_XSD} (../shared is absent)")
    return etree.XMLSchema(etree.parse(str(MEDCOM_XSD)))


def text(root: etree._Element, path: str) -> str | None:
    found = root.find(path, NS)
    return None if found is None else "".join(found.itertext())


# ---------------------------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes():
    first = generate_messages(60, 11)
    second = generate_messages(60, 11)
    assert [m.filename for m in first] == [m.filename for m in second]
    assert [m.xml for m in first] == [m.xml for m in second]
    assert [m.facts for m in first] == [m.facts for m in second]


def test_different_seed_gives_different_messages():
    a = generate_messages(20, 1)
    b = generate_messages(20, 2)
    assert [m.xml for m in a] != [m.xml for m in b]
    assert not {m.xml for m in a} & {m.xml for m in b}


def test_shorter_batch_is_a_prefix(batch):
    assert generate_messages(25, SEED) == batch[:25]


def test_zero_and_negative_count():
    assert generate_messages(0, 1) == []
    with pytest.raises(ValueError):
        generate_messages(-1, 1)


def test_generated_message_is_frozen(batch):
    with pytest.raises(AttributeError):
        batch[0].filename = "x.xml"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Form
# ---------------------------------------------------------------------------------------------


def test_every_message_is_well_formed_with_the_right_root(batch):
    for m in batch:
        assert m.xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        m.xml.decode("utf-8")
        root = parse(m)
        if m.kind == "ggop":
            assert re.fullmatch(r"ggop-\d{4}-(almen|specialiseret|rehabilitering)\.xml", m.filename)
            assert root.tag == f"{{{M104}}}Emessage"
            assert root.nsmap[None] == M104 and root.nsmap["mm100"] == M100
            assert [c.tag for c in root] == [f"{{{M100}}}Envelope", f"{{{M104}}}RehabilitationPlan"]
            assert root[0].nsmap[None] == M100  # Envelope redeclares the default namespace
            assert m.filename.endswith(f"-{m.facts['plan_type']}.xml")
        else:
            assert m.kind == "xdis91"
            assert re.fullmatch(r"xdis91-\d{4}\.xml", m.filename)
            assert root.tag == f"{{{XDIS}}}Emessage"
            assert root.nsmap == {None: XDIS}
            assert [etree.QName(c).localname for c in root] == ["Envelope", "ClinicalEmail"]


def test_filenames_are_numbered_in_order(batch):
    numbers = [int(re.search(r"-(\d{4})", m.filename).group(1)) for m in batch]
    assert numbers == list(range(1, len(batch) + 1))


def test_mix_is_roughly_four_to_one(batch):
    share = sum(m.kind == "ggop" for m in batch) / len(batch)
    assert 0.7 <= share <= 0.9


def test_facts_have_the_documented_keys(batch):
    keys = {"plan_type", "consent", "gp_deselected", "deadline_text", "child",
            "municipality_code", "diagnoses", "discharge", "letter_id", "envelope_id",
            "sender_gln", "receiver_gln", "heading"}
    for m in batch:
        assert keys <= m.facts.keys(), m.filename


def test_facts_are_plain_json(batch):
    for m in batch:
        assert json.loads(json.dumps(m.facts)) == m.facts


def test_identifiers_are_unique_and_at_most_14_characters(batch):
    ids = [m.facts["envelope_id"] for m in batch] + [m.facts["letter_id"] for m in batch]
    assert len(ids) == len(set(ids))
    assert all(1 <= len(i) <= 14 for i in ids)
    for m in batch:
        root = parse(m)
        if m.kind == "ggop":
            assert text(root, "b:Envelope/b:Identifier") == m.facts["envelope_id"]
            assert text(root, "a:RehabilitationPlan/a:Letter/a:Identifier") == m.facts["letter_id"]
        else:
            assert text(root, "x:Envelope/x:Identifier") == m.facts["envelope_id"]
            assert text(root, "x:ClinicalEmail/x:Letter/x:Identifier") == m.facts["letter_id"]


# ---------------------------------------------------------------------------------------------
# G-GOP content
# ---------------------------------------------------------------------------------------------


def test_plan_facts_match_the_xml(ggops):
    stat = {"almen": "GGOP1", "specialiseret": "GGOP2", "rehabilitering": "GGOP3"}
    for m, root in ggops:
        plan = root.find("a:RehabilitationPlan", NS)
        f = m.facts
        assert text(plan, "a:TypeOfRehabilitationPlan") == f["plan_type"]
        assert text(plan, "a:Letter/a:StatisticalCode") == stat[f["plan_type"]]
        assert text(plan, "a:Letter/a:VersionCode") == "GGOP100"
        assert text(plan, "a:Letter/a:TypeCode") == "GGOP"
        assert text(plan, "a:ConsentInformed") == f["consent"]
        assert (plan.find("a:GPCCReceiver/a:Deselected", NS) is not None) == f["gp_deselected"]
        assert (plan.find("a:GPCCReceiver/a:CCReceiver", NS) is None) == f["gp_deselected"]
        assert text(plan, "a:RehabilitationDeadline") == f["deadline_text"]
        codes = [c.text for c in plan.iterfind("a:ICD10Diagnoses/a:ICD10Diagnose/*/a:Code", NS)]
        assert codes == f["diagnoses"]
        end = plan.find("a:CurrentHospitalContact/a:ExpectedEnd", NS)
        if end is not None:
            assert f"{text(end, 'a:Date')}T{text(end, 'a:Time')}" == f["discharge"]
        else:
            end_text = text(plan, "a:CurrentHospitalContact/a:ExpectedEndText")
            assert end_text == f["expected_end_text"]
        if f["plan_type"] == "rehabilitering":
            assert plan.find("a:AbilityAtDischargeExtended", NS) is not None


def test_batch_covers_the_variants(ggops):
    facts = [m.facts for m, _ in ggops]
    plan_types = Counter(f["plan_type"] for f in facts)
    assert {"almen", "specialiseret"} <= set(plan_types)  # rehabilitering: 0.3 %, see below
    assert plan_types["almen"] > plan_types["specialiseret"] + plan_types["rehabilitering"]
    assert {f["consent"] for f in facts} == {"ja", "nej"}
    assert any(f["gp_deselected"] for f in facts) and not all(f["gp_deselected"] for f in facts)
    assert any(f["child"] for f in facts)
    assert any(f["deadline_text"] is None for f in facts)
    assert any(f["expected_end_text"] for f in facts)
    assert any(f["cc_receivers"] == 2 for f in facts)
    assert any(len(f["diagnoses"]) == 3 for f in facts)
    assert {f["diagnosis_type_code"].lower() for f in facts} == {"icd10kode", "sksdiagnosekode"}
    assert any(f["icf"] for f in facts)
    assert any(f["complications"] for f in facts) and any(f["cognitive"] for f in facts)
    assert any("jobcenter" in f["coordination"] for f in facts)
    kinds = Counter(f["deadline_kind"] for f in facts)
    assert {"sooner", "later", "standard", "none", "vague", "absent"} <= set(kinds)


def _deadline_days(deadline: str, discharge: date) -> int | None:
    """A small independent reading of the deadline texts: days after discharge."""
    months = {name: i + 1 for i, name in enumerate(catalog.DEADLINE_MONTHS)}
    m = re.search(r"(\d{1,2})\. (\w+) (\d{4})", deadline)
    if m and m.group(2) in months:
        return (date(int(m.group(3)), months[m.group(2)], int(m.group(1))) - discharge).days
    m = re.search(r"(\d+)(?:-\d+| til \d+)? uger", deadline)
    if m:
        return 7 * int(m.group(1))
    m = re.search(r"(\d+) (?:dage|hverdage)", deadline)
    if m:
        return int(m.group(1))
    if "48 timer" in deadline:
        return 2
    if "dagen efter" in deadline:
        return 1
    return None


def test_deadlines_sooner_and_later_than_seven_days(ggops):
    sooner = later = 0
    for m, _ in ggops:
        f = m.facts
        if not f["deadline_text"]:
            continue
        days = _deadline_days(f["deadline_text"], date.fromisoformat(f["discharge"][:10]))
        if f["deadline_kind"] == "sooner":
            assert days is not None and days < 7, f["deadline_text"]
            sooner += 1
        elif f["deadline_kind"] == "later":
            assert days is not None and days > 7, f["deadline_text"]
            later += 1
        elif f["deadline_kind"] == "standard":
            assert days == 7
    assert sooner >= 5 and later >= 5
    texts = " | ".join(m.facts["deadline_text"] or "" for m, _ in ggops)
    assert "Opstart efter" in texts and "tidligst om" in texts and "Ingen" in texts


def test_make_deadline_examples():
    rng = random.Random(5)
    d = date(2026, 2, 10)
    for kind in ("sooner", "later", "standard"):
        for _ in range(30):
            dl = ggop.make_deadline(rng, d, kind=kind)
            days = _deadline_days(dl.text, d)
            assert days is not None
            assert (days < 7) if kind == "sooner" else (days > 7) if kind == "later" else days == 7
    assert ggop.make_deadline(rng, d, kind="absent").text is None


def test_children_are_under_18_by_cpr(ggops):
    children = 0
    for m, root in ggops:
        cpr = text(root, "a:RehabilitationPlan/a:Patient/b:CivilRegistrationNumber")
        birth = cpr_birth_date(cpr)
        discharge = date.fromisoformat(m.facts["discharge"][:10])
        age = discharge.year - birth.year - (
            (discharge.month, discharge.day) < (birth.month, birth.day))
        assert (age < 18) == m.facts["child"]
        children += m.facts["child"]
    assert 0.03 <= children / len(ggops) <= 0.2
    ages = [m.facts["age"] for m, _ in ggops if not m.facts["child"]]
    assert min(ages) < 40 and max(ages) >= 90


def test_sender_and_receiver_glns_pass_the_gs1_check(batch):
    for m in batch:
        root = parse(m)
        if m.kind == "ggop":
            sender = text(root, "a:RehabilitationPlan/a:Sender/b:EANIdentifier")
            receiver = text(root, "a:RehabilitationPlan/a:Receiver/b:EANIdentifier")
        else:
            sender = text(root, "x:ClinicalEmail/x:Sender/x:EANIdentifier")
            receiver = text(root, "x:ClinicalEmail/x:Receiver/x:EANIdentifier")
        assert (sender, receiver) == (m.facts["sender_gln"], m.facts["receiver_gln"])
        assert sender.startswith("579") and gln_is_valid(sender)
        assert receiver.startswith("579") and gln_is_valid(receiver)


def test_glns_are_stable_per_organisation(batch):
    by_municipality: dict[str, set[str]] = {}
    by_sender: dict[str, set[str]] = {}
    for m in batch:
        by_municipality.setdefault(m.facts["municipality_code"], set()).add(m.facts["receiver_gln"])
        by_sender.setdefault(m.facts["sender_identifier"], set()).add(m.facts["sender_gln"])
    assert all(len(v) == 1 for v in by_municipality.values())
    assert all(len(v) == 1 for v in by_sender.values())
    # and across seeds
    other = generate_messages(40, SEED + 1)
    for m in other:
        if m.facts["municipality_code"] in by_municipality:
            assert {m.facts["receiver_gln"]} == by_municipality[m.facts["municipality_code"]]


def test_some_copy_receivers_have_a_wrong_check_digit(ggops):
    copies = bad = 0
    for m, root in ggops:
        plan = root.find("a:RehabilitationPlan", NS)
        for cc in plan.iterfind("a:GPCCReceiver/a:CCReceiver", NS):
            copies += 1
            bad += not gln_is_valid(text(cc, "b:EANIdentifier"))
        for cc in plan.iterfind("a:CCReceiver", NS):
            copies += 1
            bad += not gln_is_valid(text(cc, "b:EANIdentifier"))
        assert all(not gln_is_valid(g) for g in m.facts["invalid_glns"])
    assert 0 < bad <= 0.15 * copies


def test_gp_copy_has_a_six_digit_ydernummer(ggops):
    for _m, root in ggops:
        gp = root.find("a:RehabilitationPlan/a:GPCCReceiver/a:CCReceiver", NS)
        if gp is not None:
            assert re.fullmatch(r"\d{6}", text(gp, "b:Identifier"))
            assert text(gp, "a:IdentifierCode") == "ydernummer"


def test_cpr_numbers_have_valid_dates_and_both_mod11_kinds(batch):
    mod11 = Counter()
    for m in batch:
        root = parse(m)
        path = ("a:RehabilitationPlan/a:Patient/b:CivilRegistrationNumber" if m.kind == "ggop"
                else "x:ClinicalEmail/x:Patient/x:CivilRegistrationNumber")
        cpr = text(root, path)
        assert re.fullmatch(r"\d{10}", cpr)
        assert cpr_birth_date(cpr).isoformat() == m.facts["birth_date"]  # raises if not a date
        mod11[cpr_mod11_ok(cpr)] += 1
    assert mod11[True] > 0.3 * len(batch) and mod11[False] > 0.3 * len(batch)


def test_municipality_codes_come_from_the_csv(batch, municipalities):
    forms = Counter()
    for m in batch:
        code = m.facts["municipality_code"]
        assert code in municipalities
        root = parse(m)
        if m.kind == "ggop":
            rec = root.find("a:RehabilitationPlan/a:Receiver", NS)
            ident, ident_code, name = (text(rec, "b:Identifier"), text(rec, "a:IdentifierCode"),
                                       text(rec, "b:OrganisationName"))
        else:
            rec = root.find("x:ClinicalEmail/x:Receiver", NS)
            ident, ident_code, name = (text(rec, "x:Identifier"), text(rec, "x:IdentifierCode"),
                                       text(rec, "x:OrganisationName"))
        assert ident_code == "kommunenummer"
        assert name == f"{municipalities[code]} Kommune"
        assert ident in (code, code.lstrip("0"))
        forms["short" if ident == code.lstrip("0") else "long"] += 1
    assert forms["short"] and forms["long"]


def test_custom_municipality_table_and_start_date(tmp_path):
    table = tmp_path / "kommuner.csv"
    table.write_text("kommunekode,navn,regionskode,regionsnavn\n"
                     "0851,Aalborg,1081,Region Nordjylland\n"
                     "0999,Testrup,1082,Region Midtjylland\n", encoding="utf-8")
    start = date(2027, 3, 1)
    msgs = generate_messages(30, 3, municipalities_csv=table, start_date=start)
    assert {m.facts["municipality_code"] for m in msgs} == {"0851", "0999"}
    schema = medcom_schema() if MEDCOM_XSD.is_file() else None
    for m in msgs:
        if m.kind == "xdis91" and schema is not None:
            assert schema.validate(etree.fromstring(m.xml, PARSER)), schema.error_log.last_error
        if m.kind == "ggop":
            day = date.fromisoformat(m.facts["discharge"][:10])
            assert start <= day < start + timedelta(days=365)


def test_discharge_and_sent_times(ggops):
    weekend = late = easter = christmas = 0
    for m, root in ggops:
        f = m.facts
        discharge = datetime.fromisoformat(f["discharge"])
        assert START <= discharge.date() < START + timedelta(days=365)
        sent = root.find("b:Envelope/b:Sent", NS)
        sent_day = date.fromisoformat(text(sent, "b:Date"))
        assert sent_day in (discharge.date(), discharge.date() + timedelta(days=1))
        assert re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text(sent, "b:Time"))
        assert datetime.fromisoformat(f["admission"]) <= discharge
        weekend += discharge.weekday() >= 5
        late += discharge.hour >= 20
        easter += date(2026, 4, 2) <= discharge.date() <= date(2026, 4, 6)
        christmas += date(2026, 12, 24) <= discharge.date() <= date(2026, 12, 26)
    assert weekend and late and easter and christmas


def _plans(plan_type: str, count: int, seed: int = SEED) -> list[tuple[GeneratedMessage, etree._Element]]:
    ctx = make_context()
    rng = random.Random(seed)
    out = []
    for n in range(1, count + 1):
        m = ggop.generate(random.Random(rng.getrandbits(64)), ctx, n, plan_type=plan_type)
        out.append((m, parse(m)))
    return out


def test_rehabilitering_extended_text_is_formatted():
    rehab = _plans("rehabilitering", 12)
    assert {m.facts["plan_type"] for m, _ in rehab} == {"rehabilitering"}
    for _m, root in rehab:
        ext = root.find("a:RehabilitationPlan/a:AbilityAtDischargeExtended", NS)
        assert ext.prefix == "mm104" and ext.nsmap[None] == M100
        tags = {etree.QName(c).localname for c in ext}
        assert {"Bold", "Italic", "Break"} <= tags
        assert all(etree.QName(c).namespace == M100 for c in ext)


# ---------------------------------------------------------------------------------------------
# G-GOP shape against MedCom's example
# ---------------------------------------------------------------------------------------------


def _paths(root: etree._Element) -> tuple[list[tuple], dict[tuple, str | None]]:
    """Element paths (tuples of (namespace, localname)) in document order of first occurrence,
    and the prefix each path is written with."""
    order: list[tuple] = []
    prefixes: dict[tuple, str | None] = {}

    def walk(el: etree._Element, prefix: tuple) -> None:
        q = etree.QName(el)
        path = prefix + ((q.namespace, q.localname),)
        if path not in prefixes:
            order.append(path)
            prefixes[path] = el.prefix
        for child in el:
            if isinstance(child.tag, str):  # skip comments and processing instructions
                walk(child, path)

    walk(root, ())
    return order, prefixes


FORMATTING = {(M100, "Break"), (M100, "Bold"), (M100, "Italic")}


def _is_formatting(path: tuple) -> bool:
    """Mixed-content markup (m100 Break/Bold/Italic) inside a free-text element, which the
    example leaves as plain "Fri tekst" in most places."""
    return path[-1] in FORMATTING


def test_ggop_shape_matches_medcom_example():
    if not MEDCOM_GGOP_EXAMPLE.is_file():
        pytest.skip(f"MedCom's example G-GOP is not available at {MEDCOM_GGOP_EXAMPLE}")
    example = etree.parse(str(MEDCOM_GGOP_EXAMPLE), PARSER).getroot()
    msg = ggop.generate(random.Random(3), make_context(), 1, full=True)
    ours = parse(msg)
    ex_order, ex_prefix = _paths(example)
    our_order, our_prefix = _paths(ours)

    unknown = [p for p in our_order if p not in ex_prefix and not _is_formatting(p)]
    assert not unknown, f"elements (or namespaces) the example does not have: {unknown}"
    missing = [p for p in ex_order if p not in our_prefix]
    assert not missing, f"optional parts of the example left out: {missing}"
    common = set(ex_prefix) & set(our_prefix)
    assert [p for p in ex_order if p in common] == [p for p in our_order if p in common]
    assert {p: ex_prefix[p] for p in common} == {p: our_prefix[p] for p in common}
    # line breaks in other free texts are written like the example's Comment/mm100:Break
    for path in our_order:
        if _is_formatting(path) and path not in ex_prefix:
            assert our_prefix[path] == "mm100", path


def test_every_ggop_uses_only_known_paths(ggops):
    """All plans of a batch use the example's elements and namespaces, plus the alternatives
    MedCom's stylesheet reads (Deselected, NoTelephoneReason, ExpectedEndText,
    ExpectedStartText, ICD10Diagnoses/Text) and line breaks in free text."""
    if not MEDCOM_GGOP_EXAMPLE.is_file():
        pytest.skip(f"MedCom's example G-GOP is not available at {MEDCOM_GGOP_EXAMPLE}")
    example = etree.parse(str(MEDCOM_GGOP_EXAMPLE), PARSER).getroot()
    _ex_order, ex_prefix = _paths(example)
    allowed_extra = {(M104, name) for name in ("Deselected", "NoTelephoneReason",
                                                "ExpectedEndText", "ExpectedStartText", "Text")}
    child_order = _child_order(example)
    for m, root in ggops:
        our_order, ours = _paths(root)
        for path in our_order:
            if path not in ex_prefix:
                assert path[-1] in allowed_extra or _is_formatting(path), (m.filename, path)
            else:
                assert ours[path] == ex_prefix[path], (m.filename, path)
        _check_sibling_order(root, child_order, m.filename)


def _child_order(example: etree._Element) -> dict[tuple, list[tuple]]:
    """For each element path of the example, its children's (namespace, localname) in order."""
    order: dict[tuple, list[tuple]] = {}

    def walk(el: etree._Element, path: tuple) -> None:
        keys = order.setdefault(path, [])
        for child in el:
            if isinstance(child.tag, str):
                q = etree.QName(child)
                key = (q.namespace, q.localname)
                if key not in keys:
                    keys.append(key)
                walk(child, path + (key,))

    q = etree.QName(example)
    walk(example, ((q.namespace, q.localname),))
    return order


def _check_sibling_order(root: etree._Element, order: dict[tuple, list[tuple]], name: str) -> None:
    """Every element's children come in the example's order (repeats and gaps allowed; the
    markup inside mixed content is free)."""

    def walk(el: etree._Element, path: tuple) -> None:
        expected = order.get(path)
        last = -1
        for child in el:
            q = etree.QName(child)
            key = (q.namespace, q.localname)
            if expected is not None and key in expected and key not in FORMATTING:
                index = expected.index(key)
                assert index >= last, (name, path[-1], key)
                last = index
            walk(child, path + (key,))

    q = etree.QName(root)
    walk(root, ((q.namespace, q.localname),))


# ---------------------------------------------------------------------------------------------
# XDIS91
# ---------------------------------------------------------------------------------------------


def test_every_xdis91_validates_against_medcom_xsd(letters):
    schema = medcom_schema()
    assert letters
    forced = [xdis91.generate(random.Random(i), make_context(), i, children_heading=flag)
              for i in range(10) for flag in (True, False)]
    for m in [m for m, _ in letters] + forced:
        doc = etree.fromstring(m.xml, PARSER)
        assert schema.validate(doc), (m.filename, schema.error_log.last_error)


def test_xdis91_letters_content(letters):
    headings = replies = 0
    for m, root in letters:
        mail = root.find("x:ClinicalEmail", NS)
        assert text(mail, "x:Letter/x:VersionCode") == "XD9134L"
        assert text(mail, "x:Letter/x:StatisticalCode") == "XDIS91"
        assert text(mail, "x:Letter/x:TypeCode") == "XDIS91"
        assert text(mail, "x:Letter/x:StatusCode") == "nytbrev"
        assert text(mail, "x:Receiver/x:IdentifierCode") == "kommunenummer"
        status = text(mail, "x:Patient/x:EpisodeOfCareStatusCode")
        assert status in ("inaktiv", "indlagt", "ambulant")
        assert text(mail, "x:AdditionalInformation/x:Priority") in (None, "rutine", "høj_prioritet")
        subject = text(mail, "x:AdditionalInformation/x:Subject")
        assert subject == m.facts["subject"] and len(subject) <= 70
        text01 = mail.find("x:ClinicalInformation/x:Text01", NS)
        assert text01.find("x:Break", NS) is not None
        if m.facts["children_heading"]:
            headings += 1
            assert m.facts["heading"] == catalog.CHILD_HEADING and len(catalog.CHILD_HEADING) > 70
            assert subject == catalog.CHILD_HEADING_SUBJECT
            assert text01.text == catalog.CHILD_HEADING  # the first line
            assert m.facts["child"]
        else:
            assert m.facts["heading"] == subject
        if m.facts["reply_requested"]:
            replies += 1
            assert "Vi beder om svar senest" in "".join(text01.itertext()) or \
                "Svar bedes sendt senest" in "".join(text01.itertext())
    assert headings and replies
    assert 0.05 <= headings / len(letters) <= 0.4


# ---------------------------------------------------------------------------------------------
# Identifier helpers
# ---------------------------------------------------------------------------------------------


def test_gln_check_digit_known_values():
    for gln in ("5790000121441", "5790000121526", "5790001348120", "5790001354145"):
        assert gln_check_digit(gln[:12]) == gln[12]
        assert gln_is_valid(gln)
    assert not gln_is_valid("5790000121442")
    assert not gln_is_valid("579000012144")
    with pytest.raises(ValueError):
        gln_check_digit("57900001214")


def test_make_gln_and_org_gln():
    rng = random.Random(1)
    for _ in range(200):
        good, bad = make_gln(rng), make_gln(rng, valid=False)
        assert good.startswith("579") and len(good) == 13 and gln_is_valid(good)
        assert bad.startswith("579") and len(bad) == 13 and not gln_is_valid(bad)
    assert org_gln("kommune:0461") == org_gln("kommune:0461")
    assert gln_is_valid(org_gln("kommune:0461"))
    assert not gln_is_valid(org_gln("kommune:0461", valid=False))


def test_catalog_organisations_have_distinct_glns_and_short_names(municipalities):
    glns = [org_gln(f"sygehus:{d.key}") for d in catalog.DEPARTMENTS]
    glns += [org_gln(f"kommune:{code}") for code in municipalities]
    assert len(glns) == len(set(glns))
    for d in catalog.DEPARTMENTS:
        assert len(d.organisation) <= 35 and len(d.department) <= 35
        assert re.fullmatch(r"\d{7}", d.shak) and re.fullmatch(r"\d{15,16}", d.sor)
    assert set(municipalities) <= set(catalog.MUNICIPALITY_TOWNS)


def test_catalog_has_texts_for_every_diagnosis():
    for dx in catalog.PRIMARY_DIAGNOSES + catalog.CHILD_DIAGNOSES:
        for table in (catalog.HEALTH_SUMMARY, catalog.ABILITY_SUMMARY):
            assert catalog.texts_for(table, dx.group, dx.code), (dx.code, dx.group)
        assert catalog.NEED_AND_POTENTIAL[dx.group] and catalog.ICF_BY_GROUP[dx.group]
        assert any(dx.group in d.groups for d in catalog.DEPARTMENTS), dx.group
        assert re.fullmatch(r"D[A-Z][0-9]{2}[0-9A-Z]{0,6}", dx.code)
    assert all(len(s) <= 70 for s, _lines, _status in catalog.ADULT_LETTER_SUBJECTS)


def test_cpr_century_rule():
    assert cpr_birth_year(0, 48) == 1948
    assert cpr_birth_year(3, 10) == 1910
    assert cpr_birth_year(4, 36) == 2036 and cpr_birth_year(4, 37) == 1937
    assert cpr_birth_year(9, 5) == 2005 and cpr_birth_year(9, 60) == 1960
    assert cpr_birth_year(5, 57) == 2057 and cpr_birth_year(8, 58) == 1858
    assert cpr_birth_date("2512484916") == date(1948, 12, 25)
    assert cpr_mod11_ok("2512484916")


@pytest.mark.parametrize("birth", [date(1858, 3, 1), date(1925, 2, 28), date(1937, 6, 30),
                                   date(1999, 12, 31), date(2000, 2, 29), date(2012, 7, 7),
                                   date(2036, 1, 1), date(2040, 5, 5)])
def test_make_cpr_round_trips(birth):
    rng = random.Random(birth.toordinal())
    for valid in (True, False):
        for male in (True, False):
            cpr = make_cpr(rng, birth, valid, male=male)
            assert cpr_birth_date(cpr) == birth
            assert cpr_mod11_ok(cpr) == valid
            assert (int(cpr[-1]) % 2 == 1) == male


# ---------------------------------------------------------------------------------------------
# Calibration to the national figures (seed S3, 2023)
# ---------------------------------------------------------------------------------------------


def test_iter_messages_continues_generate_messages():
    from itertools import islice

    from adapter.generate import iter_messages
    assert list(islice(iter_messages(SEED), 30)) == generate_messages(30, SEED)


def test_fixed_plan_type_must_be_known():
    with pytest.raises(ValueError):
        ggop.generate(random.Random(1), make_context(), 1, plan_type="avanceret")


def test_plan_types_are_drawn_in_the_national_proportions():
    rng = random.Random(SEED)
    n = 200_000
    drawn = Counter(ggop._pick_plan_type(rng) for _ in range(n))
    total = sum(catalog.PLAN_TYPE_VOLUMES_2023.values())
    assert total == 214_550
    for plan_type, volume in catalog.PLAN_TYPE_VOLUMES_2023.items():
        expected = volume / total
        tolerance = 4 * (expected * (1 - expected) / n) ** 0.5  # four standard errors
        assert abs(drawn[plan_type] / n - expected) <= tolerance, (plan_type, drawn[plan_type] / n, expected)


def test_almen_category_weights_give_the_national_shares_over_adults_and_children():
    c = catalog.CHILD_SHARE
    adult, child = ggop.almen_category_weights(False), ggop.almen_category_weights(True)
    assert abs(sum(adult.values()) - 1) < 1e-12 and abs(sum(child.values()) - 1) < 1e-12
    national = catalog.national_shares()
    for category in ("abi", "ms", "parkinson", "other"):
        assert abs((1 - c) * adult[category] + c * child[category] - national[f"almen:{category}"]) < 1e-12
    assert child["ms"] == child["parkinson"] == 0  # no child diagnosis in those categories


def test_catalogue_brain_injuries_are_those_the_stratification_rules_count():
    from adapter.rules.loader import load_rules
    abi = tuple(load_rules().stratification.code_lists["abi"])
    for d in catalog.PRIMARY_DIAGNOSES + catalog.CHILD_DIAGNOSES:
        assert (catalog.diagnosis_category(d.code) == "abi") == d.code.startswith(abi), d.code
    assert catalog.diagnosis_category("DG459") == "other"  # TIA
    assert catalog.diagnosis_category("DS060") == "other"  # concussion


@pytest.fixture(scope="module")
def large_batch() -> list[GeneratedMessage]:
    return generate_messages(4000, SEED)


def test_generated_mix_matches_the_national_figures(large_batch):
    from adapter.generate.mix import format_rows, plan_mix
    rows = {r.key: r for r in plan_mix(large_batch)}
    for key in ("plan_type:almen", "plan_type:specialiseret", "almen:abi", "almen:other"):
        r = rows[key]
        tolerance = 4 * (r.national * (1 - r.national) / r.of) ** 0.5
        assert abs(r.share - r.national) <= tolerance, (key, r.share, r.national)
    # the rare categories: present at most a few times over ~3000 almen plans (0.1-0.3 %)
    for key in ("plan_type:rehabilitering", "almen:ms", "almen:parkinson"):
        assert rows[key].share < 0.01, key
    assert rows["almen:child"].national is None and 0.05 < rows["almen:child"].share < 0.15
    text = format_rows(rows.values())
    assert "almen: acquired brain injury" in text and "S3 2023" in text


def test_flagged_secondary_diagnoses_only_code_a_flag_the_plan_has(large_batch):
    flagged = {code: flag for code, _t, _a, flag in catalog.SECONDARY_DIAGNOSES + catalog.CHILD_SECONDARY_DIAGNOSES}
    seen = Counter()
    for m in large_batch:
        if m.kind != "ggop":
            continue
        for code in m.facts["diagnoses"][1:]:
            if flagged.get(code) == "complication":
                assert m.facts["complications"], (m.filename, code)
                seen["complication"] += 1
            elif flagged.get(code) == "cognitive":
                assert m.facts["cognitive"], (m.filename, code)
                seen["cognitive"] += 1
    assert seen["complication"] and seen["cognitive"]


NEURO_FINDINGS = ("dysartri", "spasticitet", "synsfeltudfald", "ordfindingsbesvær", "følesans")
COGNITIVE_FINDINGS = ("nedsat opmærksomhed", "nedsat initiativ", "svært ved at lære")


def test_extended_description_fits_the_diagnosis_and_the_cognition():
    checked = Counter()
    for m, root in _plans("almen", 400, seed=SEED + 3):
        ext = root.find("a:RehabilitationPlan/a:AbilityAtDischargeExtended", NS)
        if ext is None:
            continue
        body = "".join(ext.itertext()).lower()
        neuro = m.facts["diagnosis_group"] in catalog.NEURO_GROUPS
        if not neuro:
            assert not any(w in body for w in NEURO_FINDINGS), (m.filename, body)
            checked["other"] += 1
        if not m.facts["cognitive"]:
            assert not any(w in body for w in COGNITIVE_FINDINGS), (m.filename, body)
            assert "orienteret i tid, sted og egne data" in body
            checked["intact"] += 1
        else:
            assert "orienteret i tid, sted og egne data" not in body
            checked["cognitive"] += 1
    assert checked["other"] and checked["intact"] and checked["cognitive"]
