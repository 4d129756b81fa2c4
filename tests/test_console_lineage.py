"""The lineage table (adapter/mappings/lineage.yaml) against real converted Bundles: every
value of a listed element is found at one of its sources, every entry is met, and every
string of a Bundle that is also a text of its message is listed."""

from __future__ import annotations

import re
from functools import lru_cache

import pytest
from tests.support import TEST_ID_KEY

from adapter.errors import ConfigError
from adapter.generate import generate_messages
from adapter.lineage import element_values, lineage, load_lineage, resource_label, untraced
from adapter.medcom.xmlsafe import read_xml
from adapter.pipeline import convert_bytes
from conftest import golden_inputs
from invariants import json_nodes

KEY = TEST_ID_KEY.encode()


@lru_cache(maxsize=1)
def cases() -> tuple[tuple[str, bytes, dict, dict | None], ...]:
    out = []
    inputs = [(p.name, p.read_bytes()) for p in golden_inputs()]
    inputs += [(m.filename, m.xml) for m in generate_messages(60, 17)]
    for name, raw in inputs:
        result = convert_bytes(raw, id_key=KEY, check_models=False)
        out.append((name, raw, result.bundle, result.trace))
    return tuple(out)


def _texts(root) -> set[str]:
    return {t for el in root.iter() if isinstance(el.tag, str) and len(el) == 0
            and len(t := re.sub(r"\s+", " ", "".join(el.itertext())).strip()) >= 3}


def _leaves(obj, path):
    return [(p, v) for p, v in json_nodes(obj, path) if isinstance(v, str)]


@pytest.mark.parametrize("case", range(len(cases())), ids=lambda i: cases()[i][0])
def test_every_listed_value_is_found_at_its_source(case):
    _name, raw, bundle, _trace = cases()[case]
    assert untraced(read_xml(raw).root, bundle) == []


@pytest.mark.parametrize("case", range(len(cases())), ids=lambda i: cases()[i][0])
def test_every_string_taken_from_the_message_is_listed(case):
    _name, raw, bundle, trace = cases()[case]
    root = read_xml(raw).root
    texts = _texts(root)
    rows = {(r["resource"], r["element"]) for r in lineage(root, bundle, trace)}
    missing = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        for path, value in _leaves(resource, resource["resourceType"]):
            if value in texts and (resource_label(entry), path) not in rows and ".content[" not in path:
                missing.append(f"{path} (a text of the message)")
    assert missing == []


def test_every_entry_is_met_by_some_message():
    entries = load_lineage()
    met = set()
    for _name, raw, bundle, trace in cases():
        root = read_xml(raw).root
        for entry in entries:
            for e in bundle["entry"]:
                if e["resource"]["resourceType"] == entry.resource_type and element_values(e["resource"], entry.element):
                    met.add(entry)
        del root, trace
    assert [e.element for e in entries if e not in met] == []


def test_rule_output_names_its_rule():
    _name, raw, bundle, trace = next(c for c in cases() if c[0] == "minimal-almen.xml")
    rows = lineage(read_xml(raw).root, bundle, trace)
    due = [r for r in rows if r["element"] == "Task.restriction.period.end"]
    assert due and {r["rule"] for r in due} == {d["rule"] for d in trace["deadlines"]}
    assert all(r["xpath"] == "/Emessage/RehabilitationPlan/CurrentHospitalContact/ExpectedEnd/Date" for r in due)
    proposed = [r for r in rows if r["element"].startswith("Task.input[") and "valueCodeableConcept" in r["element"]]
    assert proposed and proposed[0]["rule"] == ", ".join(trace["stratification"]["decidedBy"])


def test_rows_carry_locations_not_values():
    _name, raw, bundle, trace = next(c for c in cases() if c[0] == "minimal-almen.xml")
    rows = lineage(read_xml(raw).root, bundle, trace)
    assert all(set(r) <= {"resource", "element", "xpath", "line", "how", "rule", "evidence"} for r in rows)
    assert "0103450017" not in repr(rows)
    cpr = next(r for r in rows if r["element"] == "Patient.identifier[0].value")
    assert cpr["xpath"] == "/Emessage/RehabilitationPlan/Patient/CivilRegistrationNumber" and cpr["line"] == 39


def test_a_broken_table_is_a_located_config_error(tmp_path):
    bad = tmp_path / "lineage.yaml"
    bad.write_text("entries:\n  - {element: Patient.name, how: guessed, sources: [Patient/PersonSurnameName]}\n")
    with pytest.raises(ConfigError) as err:
        load_lineage(bad)
    assert err.value.issues[0].code == "GGOP-E501" and err.value.issues[0].location.xpath.endswith("[0].how")
