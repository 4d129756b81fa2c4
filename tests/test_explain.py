"""`ggop-adapter explain` and the Bundle agree: every Task names its rule and legal basis."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tests.support import TEST_ID_KEY

from adapter.cli import main
from adapter.pipeline import convert_bytes
from conftest import DATA

KEY = TEST_ID_KEY.encode()

PLANS = sorted((DATA / "ggop").glob("*.xml"))
INPUT_SYSTEM = "http://ggop-adapter.dk/fhir/CodeSystem/task-input-types"


def _inputs(task, code):
    return [i for i in task.get("input", []) if i["type"]["coding"][0]["code"] == code]


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.stem)
def test_bundle_tasks_match_the_trace(path):
    result = convert_bytes(path.read_bytes(), id_key=KEY)
    tasks = [e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Task"]
    deadlines = result.trace["deadlines"]
    assert len(tasks) == len(deadlines)
    by_rule = {d["rule"]: d for d in deadlines}
    for task in tasks:
        rule = _inputs(task, "rule-id")[0]["valueString"]
        d = by_rule[rule]
        assert task["code"]["coding"][0]["code"] == d["task"]
        assert task["restriction"]["period"]["end"] == d["due"]
        assert task["businessStatus"]["coding"][0]["code"] == d["businessStatus"]
        assert _inputs(task, "legal-basis"), f"{rule} names no legal basis"
        cancelled = b"annulleretbrev" in path.read_bytes()  # a cancelled plan's deadlines no longer run
        assert task["status"] == ("cancelled" if cancelled else "requested") and task["intent"] == "order"
        assert task["focus"]["reference"] and task["for"]["reference"] and task["owner"]["reference"]


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.stem)
def test_proposal_is_on_the_visitation_task_not_the_service_request(path):
    """KL's model keeps the decided level in ServiceRequest.category: a proposal is not a decision,
    so it sits only on the Task that asks for the decision (and in the explanation)."""
    result = convert_bytes(path.read_bytes(), id_key=KEY)
    resources = [e["resource"] for e in result.bundle["entry"]]
    sr = next(r for r in resources if r["resourceType"] == "ServiceRequest")
    assert len(sr["category"]) == 1  # the plan's own type only
    level = result.trace["stratification"]["level"]
    proposed = [i for t in resources if t["resourceType"] == "Task" for i in t.get("input", [])
                if i["type"]["coding"][0]["code"] == "proposed-level"]
    if level is None:
        assert proposed == []
    else:
        assert [p["valueCodeableConcept"]["coding"][0]["display"] for p in proposed] == [level]


def test_explain_shows_postponed_start_and_notes_in_both_languages():
    path = DATA / "ggop" / "child-consent-nej.xml"  # "tidligst om 3 uger, når gipsen er fjernet"
    res = CliRunner().invoke(main, ["explain", str(path)])
    assert res.exit_code == 0
    assert "Tidligste opstart efter planen: 2026-03-22" in res.stdout
    assert "Earliest start the plan allows: 2026-03-22" in res.stdout
    assert "note [postponed-start]: Planen udskyder opstarten" in res.stdout
    assert "note [postponed-start]: The plan postpones the start" in res.stdout


def test_explain_json_is_the_trace():
    path = DATA / "ggop" / "minimal-almen.xml"
    res = CliRunner().invoke(main, ["explain", "--json", str(path)])
    assert res.exit_code == 0
    assert json.loads(res.stdout) == convert_bytes(path.read_bytes(), id_key=KEY).trace


def test_explain_text_in_danish_and_english_names_every_rule():
    path = DATA / "ggop" / "child-consent-nej.xml"
    res = CliRunner().invoke(main, ["explain", str(path)])
    assert res.exit_code == 0
    trace = convert_bytes(path.read_bytes(), id_key=KEY).trace
    # a child: its own pathway, no basal/avanceret proposal, and the reason says so
    assert "Foreslået niveau: intet forslag" in res.stdout and "Proposed level: no proposal" in res.stdout
    assert "børneteam" in res.stdout and "children's team" in res.stdout
    adult = CliRunner().invoke(main, ["explain", str(DATA / "ggop" / "minimal-almen.xml")])
    assert "Foreslået niveau: basal" in adult.stdout and "Proposed level: basal" in adult.stdout
    for f in trace["stratification"]["fired"]:
        assert f["rule"] in res.stdout
    for d in trace["deadlines"]:
        assert f"[{d['rule']}]" in res.stdout and d["due"] in res.stdout
        assert d["legalBasis"][0]["document"] in res.stdout


def test_explain_refuses_letters_and_bad_input():
    res = CliRunner().invoke(main, ["explain", str(DATA / "xdis91" / "letter-to-municipality.xml")])
    assert res.exit_code == 2 and "no plan to explain" in res.stderr
    res = CliRunner().invoke(main, ["explain", str(DATA / "invalid" / "missing-cpr.xml")])
    assert res.exit_code == 2 and "GGOP-E303" in res.stderr
