"""Loading rules: defaults, municipal overrides, and broken files that name file, key and line."""

from __future__ import annotations

import hashlib
import shutil
from datetime import date
from pathlib import Path

import pytest
from tests.support.plans import ggop

from adapter.errors import ConfigError
from adapter.rules.loader import DEFAULT_DIR, load_rules
from adapter.rules.stratify import stratify

DATA = Path(__file__).resolve().parent / "data" / "rules"
OVERRIDE_R7_R6_D7 = DATA / "municipality-r7-age-16-no-r6.yaml"
AT = date(2026, 3, 2)


def fired_ids(p) -> list[str]:
    return [f.rule_id for f in p.fired]


# --------------------------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------------------------


def test_default_rules_load():
    r = load_rules()
    strat = [x.id for x in r.stratification.rules]
    assert strat == [
        "STRAT-R0-LEVEL-SET-BY-DOCTOR", "STRAT-R1-ABI", "STRAT-R2-COMPLICATIONS",
        "STRAT-R3-EXTENSIVE-IMPAIRMENT", "STRAT-R4-SEVERAL-LIFE-DOMAINS", "STRAT-R5-MENTAL-IMPAIRMENT",
        "STRAT-R6-COORDINATION", "STRAT-R7-CHILD", "STRAT-R11-ABI-SECONDARY-DIAGNOSIS",
        "STRAT-R8-THERAPIST-PREFERENCE-STAYS-BASAL", "STRAT-R9-DEFAULT-BASAL", "STRAT-R10-CHANGE-WINDOW"]
    dl = [x.id for x in r.deadlines.rules]
    assert "DL-D7-CARE-PLAN-BEFORE-DISCHARGE" not in dl  # disabled by default
    assert {"DL-D1-INFORM-CITIZEN", "DL-D2D3-OFFER-START", "DL-D4-INFORM-FREE-CHOICE", "DL-D13-CHANGE-WINDOW",
            "DL-SPEC-NOTE-PLAN", "DL-REG-D1-INFORM-CITIZEN"} <= set(dl)
    assert r.deadlines.settings["rehabilitering_region_from"] == date(2027, 1, 1)
    assert r.task_codes["offer-start"].display == "Tilbyd opstart af genoptræning"
    assert r.task_codes["offer-start"].display_en == "Offer a training start"
    assert r.task_system == "http://ggop-adapter.dk/fhir/CodeSystem/task-codes"
    for rule in r.stratification.rules:
        assert rule.reason_da and rule.reason_en and rule.legal_basis
    for rule in r.deadlines.rules:
        assert rule.task in r.task_codes and rule.legal_basis


def test_every_deadline_task_code_is_in_the_codesystem_and_the_code_tables():
    from adapter.codes import load_code_tables
    r = load_rules()
    tables = load_code_tables()
    for code, task in r.task_codes.items():
        assert tables.text(code, "task-codes") == task.display


def test_loading_twice_gives_equal_rules():
    assert load_rules() == load_rules()


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def _digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.suffix in (".yaml", ".json"):
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_override_changes_r7_age_and_disables_r6_without_touching_defaults():
    before = _digest(DEFAULT_DIR)
    default = load_rules()
    local = load_rules(DEFAULT_DIR, [OVERRIDE_R7_R6_D7])
    assert _digest(DEFAULT_DIR) == before

    seventeen = ggop(cpr="0101094321")  # born 1 Jan 2009: 17 on 2 March 2026
    fifteen = ggop(cpr="0101114321")
    assert "STRAT-R7-CHILD" in fired_ids(stratify(seventeen, default, AT))
    assert "STRAT-R7-CHILD" not in fired_ids(stratify(seventeen, local, AT))
    assert "STRAT-R7-CHILD" in fired_ids(stratify(fifteen, local, AT))
    assert local.stratification.rule("STRAT-R7-CHILD").source_file == str(OVERRIDE_R7_R6_D7)

    ids = [x.id for x in local.stratification.rules]
    assert "STRAT-R6-COORDINATION" not in ids
    assert ids.index("STRAT-R7-CHILD") == 6  # replaced in place
    assert "STRAT-R6-COORDINATION" not in local.stratification.combination.count_rules
    p = stratify(ggop(texts={"RehabilitationNeedAndPotential": "Koordinering med jobcenter."}), local, AT)
    assert "STRAT-R6-COORDINATION" not in fired_ids(p) + p.not_fired

    assert "DL-D7-CARE-PLAN-BEFORE-DISCHARGE" in [x.id for x in local.deadlines.rules]


def test_override_adds_a_rule_and_changes_combination_settings_and_tasks(tmp_path):
    o = tmp_path / "kommune.yaml"
    o.write_text("""
municipality: "0101"
stratification:
  rules:
    - id: STRAT-R12-AMPUTATION
      inputs: [ICD10Diagnoses]
      when: {diagnosis_code_prefix_any: {prefixes: [DZ894, DS88], which: all}}
      effect: {lean: avanceret}
      reason_da: Amputation.
      reason_en: Amputation.
      legal_basis: {document: Lokal visitationsretningslinje, section: "2"}
  combination:
    count:
      rules: [STRAT-R2-COMPLICATIONS, STRAT-R12-AMPUTATION]
      at_least: 1
      level: avanceret
deadlines:
  settings: {rehabilitering_region_from: "2027-04-01", due_soon_hours: 24}
  task_codes:
    - {code: call-relative, display: Ring til pårørende}
  rules:
    - id: DL-CALL-RELATIVE
      task: call-relative
      applies_to: {plan_types: [almen]}
      clock: received
      offset: {days: 1, unit: working}
      plan_deadline: ignore
      owner: receiver
      reason_da: Lokal service.
      reason_en: Local service.
      legal_basis: {document: Lokal kvalitetsstandard, section: "3"}
""", "utf-8")
    r = load_rules(DEFAULT_DIR, [o])
    assert [x.id for x in r.stratification.rules][-1] == "STRAT-R12-AMPUTATION"
    p = stratify(ggop(diagnoses=[("DZ894", True)]), r, AT)
    assert p.level == "avanceret" and p.decided_by == ("STRAT-R12-AMPUTATION",)
    assert r.deadlines.due_soon_hours == 24
    reg = r.deadlines.rule("DL-REG-D1-INFORM-CITIZEN").applies_to[0]
    assert reg.valid_from == date(2027, 4, 1)
    assert r.deadlines.rule("DL-D1-INFORM-CITIZEN").applies_to[1].valid_to == date(2027, 3, 31)
    assert r.task_codes["call-relative"].display == "Ring til pårørende"


def test_later_override_wins(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("stratification:\n  combination:\n    change_window_days: 10\n", "utf-8")
    b.write_text("stratification:\n  combination:\n    change_window_days: 21\n", "utf-8")
    assert load_rules(DEFAULT_DIR, [a, b]).stratification.combination.change_window_days == 21
    assert load_rules(DEFAULT_DIR, [b, a]).stratification.combination.change_window_days == 10


def test_override_replacing_a_disabled_default_rule_enables_it(tmp_path):
    o = tmp_path / "o.yaml"
    o.write_text("deadlines:\n  rules:\n    - {id: DL-D7-CARE-PLAN-BEFORE-DISCHARGE, disabled: false}\n"
                 "    - {id: DL-SPEC-NOTE-PLAN, disabled: true}\n", "utf-8")
    ids = [x.id for x in load_rules(DEFAULT_DIR, [o]).deadlines.rules]
    assert "DL-D7-CARE-PLAN-BEFORE-DISCHARGE" in ids and "DL-SPEC-NOTE-PLAN" not in ids


# --------------------------------------------------------------------------------------------
# Broken files
# --------------------------------------------------------------------------------------------


def _copy_defaults(tmp_path: Path) -> Path:
    d = tmp_path / "mappings"
    (d / "codesystems").mkdir(parents=True)
    for name in ("stratification.yaml", "deadlines.yaml"):
        shutil.copy(DEFAULT_DIR / name, d / name)
    shutil.copy(DEFAULT_DIR / "codesystems" / "task-codes.json", d / "codesystems" / "task-codes.json")
    return d


def _mutate(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), "utf-8")


# id, file, old text, new text, expected key path, expected words in the detail, text on the reported line
DEFAULT_BROKEN = [
    ("missing-id", "stratification.yaml",
     "  - id: STRAT-R2-COMPLICATIONS\n    title:", "  - title:",
     "rules[2].id", "missing key 'id'", "title: Complications"),
    ("unknown-predicate", "stratification.yaml",
     "age_below: {years: 18}", "age_under: {years: 18}",
     "rules[7].when.age_under", "unknown predicate 'age_under'", "age_under"),
    ("bad-date", "stratification.yaml",
     "    effect: no_proposal\n    reason_da: >-\n      Barn", ("    valid_from: 2027-13-01\n    effect: no_proposal\n"
     "    reason_da: >-\n      Barn"),
     "rules[7].valid_from", "'2027-13-01' is not a valid date", "valid_from"),
    ("date-not-iso", "deadlines.yaml",
     'rehabilitering_region_from: "2027-01-01"', 'rehabilitering_region_from: "1.1.2027"',
     "settings.rehabilitering_region_from", "expected an ISO date", "rehabilitering_region_from"),
    ("unknown-rule-key", "stratification.yaml",
     "    title: Child under 18 (own pathway", "    titel: Child under 18 (own pathway",
     "rules[7].titel", "unknown key 'titel'", "titel"),
    ("duplicate-key", "stratification.yaml",
     "    effect: no_proposal\n    reason_da: >-\n      Barn", ("    effect: no_proposal\n    effect: note\n"
     "    reason_da: >-\n      Barn"),
     "/", "duplicate key 'effect'", "effect: note"),
    ("yaml-syntax", "deadlines.yaml",
     "    task: offer-start\n", "    task: [offer-start\n",
     "/", "YAML", None),
    ("unknown-task-code", "deadlines.yaml",
     "    task: offer-start\n", "    task: offer-the-start\n",
     "rules[3].task", "unknown task code 'offer-the-start'", "offer-the-start"),
    ("inputs-do-not-cover-when", "stratification.yaml",
     "inputs: [CivilRegistrationNumber, CurrentHospitalContact/ExpectedEnd]", "inputs: [CivilRegistrationNumber]",
     "rules[7].inputs", "'when' reads CurrentHospitalContact/ExpectedEnd", "inputs"),
    ("unknown-rule-reference", "stratification.yaml",
     "        - STRAT-R7-CHILD\n        - STRAT-R11", "        - STRAT-R7-KID\n        - STRAT-R11",
     "rules[10].when.rules_fired_none[6]", "unknown rule id 'STRAT-R7-KID'", "STRAT-R7-KID"),
    ("unknown-code-list", "stratification.yaml",
     "{list: abi, which: primary}", "{list: abj, which: primary}",
     "rules[1].when.diagnosis_code_prefix_any.list", "unknown code list 'abj'", "abj"),
    ("gradient-out-of-range", "stratification.yaml",
     "{code_prefix: [b, d, s], min: 3}", "{code_prefix: [b, d, s], min: 5}",
     "rules[3].when.any[0].icf_gradient_at_least.min", "between 0 and 4", "min: 5"),
    ("bad-effect", "stratification.yaml",
     "effect: no_proposal", "effect: nothing",
     "rules[0].effect", "unknown effect 'nothing'", "effect: nothing"),
    ("combination-unknown-rule", "stratification.yaml",
     "- {rule: STRAT-R1-ABI, level: avanceret}", "- {rule: STRAT-R1-ABX, level: avanceret}",
     "combination.decisive[0].rule", "unknown rule id 'STRAT-R1-ABX'", "STRAT-R1-ABX"),
    ("same-as-unknown", "deadlines.yaml",
     "    same_as: DL-D1-INFORM-CITIZEN\n", "    same_as: DL-D1-INFORM\n",
     "rules[1]", "same_as refers to 'DL-D1-INFORM'", "- id: DL-D1-VISITATE-LEVEL"),
    ("unknown-plan-type", "deadlines.yaml",
     "      - plan_types: [almen]\n", "      - plan_types: [almindelig]\n",
     "rules[0].applies_to[0].plan_types[0]", "'almindelig' is not one of", "almindelig"),
    ("bad-unit", "deadlines.yaml",
     "offset: {days: 4, unit: calendar}", "offset: {days: 4, unit: kalender}",
     "rules[0].offset.unit", "'kalender' is not one of", "kalender"),
    ("bad-setting-reference", "deadlines.yaml",
     "valid_before: setting:rehabilitering_region_from", "valid_before: setting:region_from",
     "rules[0].applies_to[1].valid_before", "unknown date setting 'region_from'", "region_from"),
    ("bad-time", "deadlines.yaml",
     'before: {working_days: 1, at: "12:00"}', 'before: {working_days: 1, at: "12.00"}',
     "rules[11].before.at", "expected a time HH:MM", "12.00"),
]


@pytest.mark.parametrize("filename,old,new,key_path,words,line_text", [c[1:] for c in DEFAULT_BROKEN],
                         ids=[c[0] for c in DEFAULT_BROKEN])
def test_broken_default_file_names_file_key_and_line(tmp_path, filename, old, new, key_path, words, line_text):
    d = _copy_defaults(tmp_path)
    path = d / filename
    _mutate(path, old, new)
    with pytest.raises(ConfigError) as exc:
        load_rules(d)
    problem = exc.value.first
    assert problem.code == "GGOP-E501"
    assert problem.location.xpath == f"{path}#{key_path}"
    assert words in problem.message
    if line_text is not None:
        assert line_text in path.read_text("utf-8").splitlines()[problem.location.line - 1]
    assert str(path) in exc.value.issues[0].render_line()


OVERRIDE_BROKEN = [
    ("disables-unknown-rule",
     "stratification:\n  rules:\n    - {id: STRAT-R99-NONE, disabled: true}\n",
     "stratification.rules[0].id", "does not exist"),
    ("unknown-top-level-key",
     "stratifikation:\n  rules: []\n",
     "stratifikation", "unknown key 'stratifikation'"),
    ("re-enables-active-rule",
     "stratification:\n  rules:\n    - {id: STRAT-R7-CHILD, disabled: false}\n",
     "stratification.rules[0].id", "is not disabled"),
    ("missing-id",
     "stratification:\n  rules:\n    - {disabled: true}\n",
     "stratification.rules[0].id", "missing key 'id'"),
    ("cycle-between-rules",
     ("stratification:\n  rules:\n"
     "    - id: STRAT-R1-ABI\n      inputs: []\n      when: {rules_fired_none: [STRAT-R9-DEFAULT-BASAL]}\n"
     "      effect: {propose: avanceret, strength: strong}\n      reason_da: x\n      reason_en: x\n"
     "      legal_basis: {document: d, section: s}\n"),
     "stratification.rules[0]", "cycle"),
    ("bad-date-in-rule",
     ("stratification:\n  rules:\n"
     "    - id: STRAT-R11-X\n      inputs: []\n      when: {rules_fired_any: [STRAT-R1-ABI]}\n"
     "      effect: note\n      reason_da: x\n      reason_en: x\n"
     "      legal_basis: {document: d, section: s}\n      valid_to: 2026-02-30\n"),
     "stratification.rules[0].valid_to", "not a valid date"),
    ("course-start-without-trigger",
     ("deadlines:\n  rules:\n"
     "    - id: DL-X\n      task: offer-start\n      applies_to: {plan_types: [almen]}\n      clock: course_start\n"
     "      offset: {days: 3, unit: calendar}\n      plan_deadline: ignore\n      owner: receiver\n"
     "      reason_da: x\n      reason_en: x\n      legal_basis: {document: d, section: s}\n"),
     "deadlines.rules[0].clock", "course_start goes with trigger course-started"),
    ("empty-file", "", "/", "empty"),
]


@pytest.mark.parametrize("content,key_path,words", [c[1:] for c in OVERRIDE_BROKEN],
                         ids=[c[0] for c in OVERRIDE_BROKEN])
def test_broken_override_file_names_file_and_key(tmp_path, content, key_path, words):
    o = tmp_path / "kommune-0999.yaml"
    o.write_text(content, "utf-8")
    with pytest.raises(ConfigError) as exc:
        load_rules(DEFAULT_DIR, [o])
    problem = exc.value.first
    assert problem.location.xpath == f"{o}#{key_path}"
    assert words in problem.message


def test_missing_default_file_and_broken_task_codes(tmp_path):
    d = _copy_defaults(tmp_path)
    (d / "deadlines.yaml").unlink()
    with pytest.raises(ConfigError) as exc:
        load_rules(d)
    assert exc.value.first.location.xpath == f"{d / 'deadlines.yaml'}#/"

    d = _copy_defaults(tmp_path / "again")
    _mutate(d / "codesystems" / "task-codes.json", '"display": "Tilbyd opstart af genoptræning"', '"displai": "x"')
    with pytest.raises(ConfigError) as exc:
        load_rules(d)
    assert exc.value.first.location.xpath == f"{d / 'codesystems' / 'task-codes.json'}#concept[1].display"


def test_missing_override_file(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_rules(DEFAULT_DIR, [tmp_path / "nowhere.yaml"])
    assert "cannot read" in exc.value.first.message


def test_optional_days_off_are_a_setting_a_municipality_can_override(tmp_path):
    import datetime as dt

    from adapter.pipeline import calendar_for
    from adapter.rules.loader import load_rules as _load

    default = calendar_for(_load())
    assert default.is_holiday(dt.date(2026, 6, 5))  # Grundlovsdag off by default
    override = tmp_path / "kommune.yaml"
    override.write_text("deadlines:\n  settings:\n    optional_days_off: [juleaftensdag]\n", encoding="utf-8")
    local = calendar_for(_load(override_files=[override]))
    assert not local.is_holiday(dt.date(2026, 6, 5)) and local.is_holiday(dt.date(2026, 12, 24))
    bad = tmp_path / "bad.yaml"
    bad.write_text("deadlines:\n  settings:\n    optional_days_off: [fastelavn]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        _load(override_files=[bad])
    assert "bad.yaml" in str(info.value) and "optional_days_off" in str(info.value)


# What sort of document each cited title is: a regional agreement or a municipal standard is
# never cited as law, and every rule of the national files says which sort it rests on.
KIND_BY_TITLE = (
    ("Sundhedsloven", "law"), ("Serviceloven", "law"), ("Bekendtgørelse", "executive-order"),
    ("Vejledning", "guidance"), ("Sundhedsstyrelsen", "guidance"), ("L 42", "bill"),
    ("Samarbejdsaftale", "regional-agreement"), ("Forløbsbeskrivelse", "regional-agreement"),
    ("Stratificeringsmodel", "municipal-standard"), ("Rebild Kommune", "municipal-standard"),
    ("Region Midtjylland: status", "report"),
)


def test_every_rule_cites_what_kind_of_document_it_rests_on():
    rules = load_rules()
    cited = [(r.id, b) for r in rules.stratification.rules for b in r.legal_basis]
    cited += [(r.id, b) for r in rules.deadlines.rules for b in r.legal_basis]
    assert len(cited) > 30
    for rule_id, b in cited:
        expected = next((k for title, k in KIND_BY_TITLE if b.document.strip('"').startswith(title)), None)
        assert expected is not None, f"{rule_id}: unknown document {b.document[:40]}"
        assert b.kind == expected, f"{rule_id} cites {b.document[:40]} as {b.kind}, not {expected}"
    # the §140 deadlines rest on the law; the children's visitation does not claim it
    offer = rules.deadlines.rule("DL-D2D3-OFFER-START")
    assert any(b.kind == "law" for b in offer.legal_basis)
    child = rules.deadlines.rule("DL-D1-VISITATE-CHILD")
    assert {b.kind for b in child.legal_basis} == {"regional-agreement", "municipal-standard"}
