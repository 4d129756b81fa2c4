"""Deadlines (adapter/mappings/deadlines.yaml, adapter/rules/schedule.py): dated cases, working-day
rules, business status, reevaluation, and properties."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.plans import ggop

from adapter.generate import generate_messages
from adapter.pipeline import validate_bytes
from adapter.rules.calendar import DanishCalendar
from adapter.rules.loader import DEFAULT_DIR, load_rules
from adapter.rules.model import TaskUpdates
from adapter.rules.schedule import business_status, reevaluate, schedule

TZ = ZoneInfo("Europe/Copenhagen")
DATA = Path(__file__).resolve().parent / "data" / "rules"
CAL = DanishCalendar()

D1 = "DL-D1-INFORM-CITIZEN"
VISIT = "DL-D1-VISITATE-LEVEL"
CHILD = "DL-D1-VISITATE-CHILD"
START = "DL-D2D3-OFFER-START"
FREE = "DL-D4-INFORM-FREE-CHOICE"
WINDOW = "DL-D13-CHANGE-WINDOW"
SPEC = "DL-SPEC-NOTE-PLAN"
REG_D1 = "DL-REG-D1-INFORM-CITIZEN"
REG_START = "DL-REG-D2D3-OFFER-START"
REG_FREE = "DL-REG-D4-INFORM-FREE-CHOICE"
REG_NOTE = "DL-REG-NOTE-PLAN"
D7 = "DL-D7-CARE-PLAN-BEFORE-DISCHARGE"


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(scope="module")
def rules_d7():
    return load_rules(DEFAULT_DIR, [DATA / "municipality-r7-age-16-no-r6.yaml"])


def local(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=TZ)


def by_rule(s) -> dict:
    return {d.rule_id: d for d in s.deadlines}


def run(rules, received="2026-03-02T12:00", cal=CAL, **kw):
    return schedule(ggop(**kw), rules, local(received), cal)


# --------------------------------------------------------------------------------------------
# Dated cases
# --------------------------------------------------------------------------------------------

# id, message arguments, received (local), {rule id: due as ISO date (end of day) or ISO datetime}
DATED = [
    ("day0-monday", dict(discharge="2026-03-02"), "2026-03-02T12:00",
     {D1: "2026-03-06", VISIT: "2026-03-06", START: "2026-03-09"}),
    ("discharge-friday-over-weekend", dict(discharge="2026-03-06"), "2026-03-06T15:00",
     {D1: "2026-03-10", START: "2026-03-13"}),
    ("discharge-saturday-due-saturday", dict(discharge="2026-03-07"), "2026-03-07T15:00",
     {D1: "2026-03-11", START: "2026-03-14"}),
    ("easter-2026-calendar-days-run-on", dict(discharge="2026-04-01"), "2026-04-01T15:00",
     {D1: "2026-04-05", START: "2026-04-08"}),
    ("christmas-2026-calendar-days-run-on", dict(discharge="2026-12-22"), "2026-12-22T15:00",
     {D1: "2026-12-26", START: "2026-12-29"}),
    ("summer-time-change-discharge-23-30",
     dict(discharge="2026-03-28", discharge_time="23:30"), "2026-03-29T08:00",
     {D1: "2026-04-01T23:59:59+02:00", START: "2026-04-04T23:59:59+02:00"}),
    ("winter-time-change-discharge-23-55",
     dict(discharge="2026-10-24", discharge_time="23:55"), "2026-10-25T09:00",
     {D1: "2026-10-28T23:59:59+01:00", START: "2026-10-31T23:59:59+01:00"}),
    ("late-evening-discharge-23-59", dict(discharge="2026-06-10", discharge_time="23:59"), "2026-06-11T07:00",
     {D1: "2026-06-14", START: "2026-06-17"}),
    ("discharge-time-missing", dict(discharge="2026-06-10", discharge_time=None), "2026-06-11T07:00",
     {D1: "2026-06-14", START: "2026-06-17"}),
    ("plan-shortens-inden-for-2-dage-inform-and-visit-follow",
     dict(deadline="Genoptræning skal starte inden for 2 dage"),
     "2026-03-02T12:00", {D1: "2026-03-04", VISIT: "2026-03-04", START: "2026-03-04"}),
    ("plan-hurtigst-muligt-is-day-1", dict(deadline="Hurtigst muligt"), "2026-03-02T12:00",
     {D1: "2026-03-03", VISIT: "2026-03-03", START: "2026-03-03"}),
    ("plan-week-number-uge-12", dict(deadline="Opstart uge 12"), "2026-03-02T12:00",
     {D1: "2026-03-06", START: "2026-03-22"}),
    ("plan-primo-april", dict(deadline="Opstart primo april"), "2026-03-02T12:00",
     {D1: "2026-03-06", START: "2026-04-10"}),
    ("plan-after-cast-removal-dated", dict(deadline="Træning når gipsen er fjernet d. 16/3"), "2026-03-02T12:00",
     {D1: "2026-03-06", START: "2026-03-23"}),
    ("plan-postpones-tidligst-om-3-uger", dict(deadline="Opstart tidligst om 3 uger"), "2026-03-02T12:00",
     {D1: "2026-03-06", START: "2026-03-30"}),
    ("plan-range-2-4-uger", dict(deadline="Opstart kan passende ske efter ca. 2-4 uger"), "2026-03-02T12:00",
     {START: "2026-03-30"}),
    ("plan-no-deadline-ingen", dict(deadline="Ingen"), "2026-03-02T12:00", {START: "2026-03-09"}),
    ("plan-unparseable-provisional-7", dict(deadline="Efter aftale med patienten når gipsen er fjernet"),
     "2026-03-02T12:00", {START: "2026-03-09"}),
    ("rehabilitering-2026-12-30-municipality",
     dict(plan_type="rehabilitering", discharge="2026-12-30"), "2026-12-30T14:00",
     {D1: "2027-01-03", START: "2027-01-06"}),
    ("rehabilitering-2027-01-02-region",
     dict(plan_type="rehabilitering", discharge="2027-01-02"), "2027-01-04T09:00",
     {REG_D1: "2027-01-06", REG_START: "2027-01-09", REG_NOTE: "2027-01-08"}),
    ("child-almen-children-team", dict(cpr="1503154321"), "2026-03-02T12:00",
     {D1: "2026-03-06", CHILD: "2026-03-06", START: "2026-03-09"}),
    ("specialiseret-note-only-from-receipt", dict(plan_type="specialiseret", discharge="2026-04-07"),
     "2026-04-08T16:20", {SPEC: "2026-04-12"}),
    ("discharge-missing-uses-receipt-date", dict(discharge=None), "2026-03-05T10:00",
     {D1: "2026-03-09", VISIT: "2026-03-09", START: "2026-03-12"}),
]


@pytest.mark.parametrize("kwargs,received,expected", [c[1:] for c in DATED], ids=[c[0] for c in DATED])
def test_dated_deadlines(rules, kwargs, received, expected):
    s = run(rules, received, **kwargs)
    got = by_rule(s)
    assert set(expected) <= set(got)
    for rule_id, due in expected.items():
        want = local(f"{due}T23:59:59") if len(due) == 10 else datetime.fromisoformat(due)
        assert got[rule_id].due == want, rule_id
        assert got[rule_id].due.utcoffset() == want.utcoffset(), rule_id
        assert str(got[rule_id].due.tzinfo) == "Europe/Copenhagen"


APPLY = [
    ("almen-adult", dict(), {D1, VISIT, START}, {FREE, WINDOW}),
    ("almen-child", dict(cpr="1503154321"), {D1, CHILD, START}, {FREE, WINDOW}),
    ("almen-no-cpr-treated-as-adult", dict(cpr=None), {D1, VISIT, START}, {FREE, WINDOW}),
    ("specialiseret", dict(plan_type="specialiseret"), {SPEC}, set()),
    ("rehabilitering-2026-12-31", dict(plan_type="rehabilitering", discharge="2026-12-31"), {D1, START}, {FREE}),
    ("rehabilitering-2027-01-01", dict(plan_type="rehabilitering", discharge="2027-01-01"),
     {REG_D1, REG_START, REG_NOTE}, {REG_FREE}),
]


@pytest.mark.parametrize("kwargs,active,pending", [c[1:] for c in APPLY], ids=[c[0] for c in APPLY])
def test_which_rules_apply(rules, kwargs, active, pending):
    s = run(rules, "2026-12-20T10:00", **kwargs)
    assert set(by_rule(s)) == active
    assert {p.rule.id for p in s.pending} == pending


def test_day0_is_the_discharge_date(rules):
    d = by_rule(run(rules, discharge="2026-03-02", discharge_time="23:30"))[START]
    assert (d.day0, d.day0_from, d.clock, d.owner) == (date(2026, 3, 2), "discharge", "discharge", "receiver")


def test_shortened_plan_keeps_the_parsed_deadline(rules):
    d = by_rule(run(rules, deadline="inden for 2 dage"))[START]
    assert d.plan_deadline.kind == "within" and d.not_before is None
    assert by_rule(run(rules, deadline="inden for 2 dage"))[D1].plan_deadline is None


def test_postponed_plan_sets_not_before(rules):
    d = by_rule(run(rules, deadline="Opstart tidligst om 3 uger"))[START]
    assert d.not_before == date(2026, 3, 23) and d.plan_deadline.kind == "not_before"


@pytest.mark.parametrize("text", ["Opstart når gipsen er fjernet", "efter endt strålebehandling",
                                  "Når såret er helet"])
def test_unparseable_start_condition_needs_manual_reading(rules, text):
    """2026-03-02: the start Task keeps the 7 days as provisional, says so in a note and a flag,
    and the free-choice deadline waits for the reading instead of running on the default."""
    s = run(rules, deadline=text)
    [w] = s.warnings
    assert w.code == "GGOP-W342"
    assert "manuelt" in w.message_da and "manual reading" in w.message_en
    assert w.xpath == "/Emessage/RehabilitationPlan/RehabilitationDeadline"
    assert "gipsen" not in w.message_da and "stråle" not in w.message_da  # the plan's text is not repeated
    start = by_rule(s)[START]
    assert start.plan_deadline.kind == "unparsed" and start.due == local("2026-03-09T23:59:59")
    assert start.flags == ("start-condition-manual",)
    [free] = [p for p in s.pending if p.rule.id == FREE]
    assert free.suspended is not None and free.suspended.flag == "start-condition-manual"
    later = reevaluate(s, local("2026-03-20T10:00"), TaskUpdates())
    assert FREE not in by_rule(later)


def test_manual_reading_recorded_as_earliest_start_reschedules(rules):
    """The municipality reads "når gipsen er fjernet" as 2026-03-20: the start is due 7 days after
    it (03-27), free choice watches 03-20 + 7 and is created after 03-27, due 03-28."""
    s = run(rules, deadline="Opstart når gipsen er fjernet")
    read = reevaluate(s, local("2026-03-05T10:00"), TaskUpdates(earliest_start=date(2026, 3, 20)))
    start = by_rule(read)[START]
    assert (start.not_before, start.due) == (date(2026, 3, 20), local("2026-03-27T23:59:59"))
    assert start.flags == ("postponed-start",)
    assert read.earliest_start == date(2026, 3, 20)
    assert FREE not in by_rule(reevaluate(read, local("2026-03-27T20:00"), TaskUpdates()))
    free = by_rule(reevaluate(read, local("2026-03-28T08:00"), TaskUpdates()))[FREE]
    assert (free.day0, free.due, free.business_status) == (date(2026, 3, 20), local("2026-03-28T23:59:59"), "due-soon")


def test_postponed_start_is_shown_and_counts_from_the_earliest_start(rules):
    """2026-03-02, "tidligst om 3 uger": earliest start 03-23 on the start Task (flag and note),
    the start is due 03-30; informing still within 4 days of discharge."""
    s = run(rules, deadline="Opstart tidligst om 3 uger")
    assert s.earliest_start == date(2026, 3, 23)
    got = by_rule(s)
    assert got[START].not_before == date(2026, 3, 23) and got[START].flags == ("postponed-start",)
    assert "2026-03-23" in got[START].notes[0].text_da
    assert got[D1].due == local("2026-03-06T23:59:59") and got[D1].flags == ()
    assert run(rules, deadline="inden for 2 dage").earliest_start is None


def test_shortened_plan_caps_inform_and_visitation_with_a_note(rules):
    got = by_rule(run(rules, deadline="inden for 2 dage"))
    for rule in (D1, VISIT):
        assert got[rule].due == got[START].due == local("2026-03-04T23:59:59")
        assert got[rule].flags == ("capped-by-start",)
    assert got[START].flags == ()


def test_asap_days_is_a_setting(tmp_path):
    f = tmp_path / "asap.yaml"
    f.write_text('municipality: "0461"\ndeadlines:\n  settings:\n    asap_days: 2\n', encoding="utf-8")
    got = by_rule(run(load_rules(DEFAULT_DIR, [f]), deadline="hurtigst muligt"))
    assert got[START].due == local("2026-03-04T23:59:59") and got[D1].due == local("2026-03-04T23:59:59")


def test_plan_received_after_its_deadlines_says_so(rules):
    """Discharged 2026-03-02, received 03-08 (after the 4-day deadline, before the 7-day one)."""
    s = run(rules, "2026-03-08T10:00", discharge="2026-03-02")
    got = by_rule(s)
    assert got[D1].business_status == "overdue" and "received-late" in got[D1].flags
    assert "2026-03-08" in next(n for n in got[D1].notes if n.flag == "received-late").text_da
    assert got[START].flags == () and got[START].business_status == "due-soon"
    assert [w.code for w in s.warnings] == ["GGOP-W346"]
    # free choice for a plan received after the 7 days: created at once, late, and says why
    late = run(rules, "2026-03-12T10:00", discharge="2026-03-02")
    free = by_rule(reevaluate(late, local("2026-03-12T10:00"), TaskUpdates()))[FREE]
    assert free.business_status == "overdue" and "received-late" in free.flags


def test_receipt_clock_is_a_municipal_setting(tmp_path, rules):
    """Rebild-style: deadlines count from receipt. Discharged 03-02, received 03-05."""
    f = tmp_path / "0840.yaml"
    f.write_text('municipality: "0840"\ndeadlines:\n  settings:\n    deadline_clock: received\n', encoding="utf-8")
    got = by_rule(run(load_rules(DEFAULT_DIR, [f]), "2026-03-05T10:00", discharge="2026-03-02"))
    assert (got[D1].due, got[D1].day0_from) == (local("2026-03-09T23:59:59"), "received")
    assert got[START].due == local("2026-03-12T23:59:59")
    national = by_rule(run(rules, "2026-03-05T10:00", discharge="2026-03-02"))
    assert (national[D1].due, national[D1].day0_from) == (local("2026-03-06T23:59:59"), "discharge")


def test_missing_discharge_warns_and_uses_receipt(rules):
    s = run(rules, "2026-03-05T10:00", discharge=None)
    assert [w.code for w in s.warnings] == ["GGOP-W332"]
    assert s.discharge is None
    assert all(d.day0 == date(2026, 3, 5) and d.day0_from == "received" for d in s.deadlines)


def test_rehabilitering_owner_switches_to_region_on_the_configured_date(rules, tmp_path):
    before = by_rule(run(rules, plan_type="rehabilitering", discharge="2026-12-30"))
    after = by_rule(run(rules, "2027-01-04T09:00", plan_type="rehabilitering", discharge="2027-01-02"))
    assert {d.owner for d in before.values()} == {"receiver"}
    assert (after[REG_D1].owner, after[REG_START].owner, after[REG_NOTE].owner) == ("region", "region", "receiver")
    assert after[REG_NOTE].task_code == "note-specialised-plan"
    # the date is a setting
    o = tmp_path / "later.yaml"
    o.write_text('deadlines:\n  settings: {rehabilitering_region_from: "2027-07-01"}\n', "utf-8")
    moved = by_rule(run(load_rules(DEFAULT_DIR, [o]), "2027-01-04T09:00", plan_type="rehabilitering",
                        discharge="2027-01-02"))
    assert {d.owner for d in moved.values()} == {"receiver"} and START in moved


def test_specialiseret_has_no_municipal_start_task(rules):
    s = run(rules, plan_type="specialiseret", deadline="inden for 2 dage")
    assert [d.task_code for d in s.deadlines] == ["note-specialised-plan"]
    assert s.pending == []


def test_missing_plan_type_gives_no_deadlines(rules):
    s = run(rules, plan_type=None)
    assert s.deadlines == [] and [w.code for w in s.warnings] == ["GGOP-W343"]


def test_deadline_carries_task_display_reasons_and_legal_basis(rules):
    d = by_rule(run(rules))[START]
    assert d.task_code == "offer-start" and d.task_display == "Tilbyd opstart af genoptræning"
    assert "7 kalenderdage" in d.reason_da and "7 calendar days" in d.reason_en
    assert any(lb.document == "Sundhedsloven" and "140" in lb.section for lb in d.legal_basis)


def test_received_clock_from_municipal_override(rules):
    local_rules = load_rules(DEFAULT_DIR, [DATA / "municipality-0840-rebild.yaml"])
    s = by_rule(run(local_rules, "2026-03-06T09:00", discharge="2026-03-02"))
    assert s[D1].due == local("2026-03-06T23:59:59")
    assert s["DL-REBILD-CONTACT-AFTER-RECEIPT"].due == local("2026-03-10T23:59:59")
    assert s["DL-REBILD-CONTACT-AFTER-RECEIPT"].clock == "received"


# --------------------------------------------------------------------------------------------
# Working-day rules
# --------------------------------------------------------------------------------------------

WORKING = [
    # D7: 12:00 on the working day before discharge
    ("store-bededag-2023-is-a-holiday", "2023-05-08", CAL, "2023-05-04T12:00"),
    ("store-bededag-2024-abolished", "2024-04-29", CAL, "2024-04-26T12:00"),
    ("easter-2026", "2026-04-07", CAL, "2026-04-01T12:00"),
    ("christmas-2026-juleaften-off", "2026-12-28", CAL, "2026-12-23T12:00"),
    ("christmas-2026-juleaften-working", "2026-12-28", DanishCalendar(frozenset()), "2026-12-24T12:00"),
    ("monday-discharge-friday-before", "2026-03-02", CAL, "2026-02-27T12:00"),
    ("summer-time-weekend", "2026-03-30", CAL, "2026-03-27T12:00"),
]


@pytest.mark.parametrize("discharge,cal,due", [c[1:] for c in WORKING], ids=[c[0] for c in WORKING])
def test_care_plan_before_discharge_counts_working_days(rules_d7, discharge, cal, due):
    d = by_rule(run(rules_d7, f"{discharge}T12:00", cal, discharge=discharge))[D7]
    assert d.due == local(due) and d.owner == "sender"
    assert d.day0 == date.fromisoformat(discharge)


@pytest.mark.parametrize("received,due", [
    ("2023-05-04T10:00", "2023-05-08"),  # Thursday; Friday 5 May 2023 was Store bededag
    ("2024-04-25T10:00", "2024-04-26"),  # Thursday; Friday 26 April 2024 is a working day
    ("2026-04-01T10:00", "2026-04-07"),  # Wednesday before Easter
], ids=["store-bededag-2023", "store-bededag-2024", "easter-2026"])
def test_working_day_offset(tmp_path, received, due):
    o = tmp_path / "o.yaml"
    o.write_text("""
deadlines:
  rules:
    - id: DL-ANSWER-NEXT-WORKING-DAY
      task: answer-letter
      applies_to: {plan_types: [almen]}
      clock: received
      offset: {days: 1, unit: working}
      plan_deadline: ignore
      owner: receiver
      reason_da: x
      reason_en: x
      legal_basis: {document: d, section: s}
""", "utf-8")
    d = by_rule(run(load_rules(DEFAULT_DIR, [o]), received))["DL-ANSWER-NEXT-WORKING-DAY"]
    assert d.due == local(f"{due}T23:59:59")


# --------------------------------------------------------------------------------------------
# Business status
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("due,now,status", [
    ("2026-03-09T23:59:59", "2026-03-02T12:00:00", "on-time"),
    ("2026-03-09T23:59:59", "2026-03-07T23:59:59", "due-soon"),  # exactly 48 h
    ("2026-03-09T23:59:59", "2026-03-07T23:59:58", "on-time"),
    ("2026-03-09T23:59:59", "2026-03-09T23:59:59", "due-soon"),
    ("2026-03-09T23:59:59", "2026-03-10T00:00:00", "overdue"),
    # across the summer-time change on 29 March 2026 the clock skips an hour: 48 h 30 min on
    # the wall clock are 47 h 30 min of real time
    ("2026-03-30T00:29:59", "2026-03-27T23:59:59", "due-soon"),
    ("2026-03-30T01:00:00", "2026-03-27T23:59:59", "on-time"),  # 48 h + 1 s of real time
    ("2026-03-30T01:00:00", "2026-03-28T00:00:00", "due-soon"),  # exactly 48 h of real time
], ids=["far", "exactly-48h", "just-over-48h", "at-due", "a-second-late", "dst-wall-48h30-real-47h30",
        "dst-real-48h-1s", "dst-real-48h"])
def test_business_status(due, now, status):
    assert business_status(local(due), local(now)) == status


def test_business_status_accepts_naive_local_and_other_zones():
    due = local("2026-03-09T23:59:59")
    assert business_status(due, datetime(2026, 3, 10, 0, 0)) == "overdue"
    assert business_status(due, datetime.fromisoformat("2026-03-09T22:59:59+00:00")) == "due-soon"
    assert business_status(due, datetime.fromisoformat("2026-03-09T23:00:00+00:00")) == "overdue"
    assert business_status(due, local("2026-03-08T12:00"), due_soon_hours=24) == "on-time"


def test_statuses_at_receipt(rules):
    s = run(rules, "2026-03-08T09:00", discharge="2026-03-02")  # plan arrives late
    got = {k: v.business_status for k, v in by_rule(s).items()}
    assert got == {D1: "overdue", VISIT: "overdue", START: "due-soon"}


# --------------------------------------------------------------------------------------------
# Reevaluation
# --------------------------------------------------------------------------------------------


def test_free_choice_added_when_start_deadline_passes_without_offer(rules):
    """Discharged 2026-03-02: the 7 days end 03-09; the free-choice Task appears after that, due
    the day after (03-10), not already overdue."""
    s = run(rules)
    assert [p.rule.id for p in s.pending] == [FREE, WINDOW]
    early = reevaluate(s, local("2026-03-09T23:00"), TaskUpdates())
    assert FREE not in by_rule(early)
    late = reevaluate(s, local("2026-03-10T00:00"), TaskUpdates())
    free = by_rule(late)[FREE]
    assert free.due == local("2026-03-10T23:59:59") and free.business_status == "due-soon"
    assert free.triggered_at == local("2026-03-09T23:59:59") and free.flags == ()
    assert free.task_display == "Informér om udvidet frit valg" and free.trigger == "start-not-offered"
    assert [p.rule.id for p in late.pending] == [WINDOW]
    assert by_rule(late)[START].business_status == "overdue"
    # the sweep that runs days later creates it overdue, and the Task says why
    sweep = by_rule(reevaluate(s, local("2026-03-14T06:00"), TaskUpdates()))[FREE]
    assert sweep.business_status == "overdue" and sweep.flags == ("created-late",)


def test_free_choice_added_when_offered_start_is_late(rules):
    """On 03-04 the municipality offers 03-12 (after the 7 days): free choice is due 03-05."""
    s = reevaluate(run(rules), local("2026-03-04T09:00"), TaskUpdates(offered_start=date(2026, 3, 12)))
    got = by_rule(s)
    assert got[FREE].due == local("2026-03-05T23:59:59") and got[FREE].business_status == "due-soon"
    assert got[START].business_status == "overdue" and got[START].completed_at is not None


def test_no_free_choice_when_start_offered_in_time(rules):
    s = reevaluate(run(rules), local("2026-03-12T09:00"),
                   TaskUpdates(offered_start=date(2026, 3, 9), offered_at=local("2026-03-04T10:00")))
    got = by_rule(s)
    assert FREE not in got
    assert got[START].business_status == "on-time"
    assert got[D1].business_status == "on-time" and got[D1].completed_at == local("2026-03-04T10:00")
    assert WINDOW not in got  # the window opens on the first session, not on the offer
    held = by_rule(reevaluate(s, local("2026-03-12T09:00"), TaskUpdates(course_started=date(2026, 3, 10))))
    assert held[WINDOW].due == local("2026-03-24T23:59:59") and held[WINDOW].day0 == date(2026, 3, 10)


def test_free_choice_clock_runs_from_the_plans_later_start(rules):
    """"tidligst om 3 uger": the 7 days run from 03-23 to 03-30; created 03-31, due that day."""
    s = run(rules, deadline="Opstart tidligst om 3 uger")
    assert FREE not in by_rule(reevaluate(s, local("2026-03-30T12:00"), TaskUpdates()))
    free = by_rule(reevaluate(s, local("2026-03-31T09:00"), TaskUpdates()))[FREE]
    assert (free.day0, free.day0_from) == (date(2026, 3, 23), "plan")
    assert free.due == local("2026-03-31T23:59:59") and free.business_status == "due-soon"


def test_shortened_plan_free_choice_still_counts_7_days(rules):
    """"inden for 2 dage": the start is due 03-04, but free choice still waits for the 7 days."""
    s = run(rules, deadline="inden for 2 dage")
    assert FREE not in by_rule(reevaluate(s, local("2026-03-05T10:00"), TaskUpdates()))
    free = by_rule(reevaluate(s, local("2026-03-10T08:00"), TaskUpdates()))[FREE]
    assert free.due == local("2026-03-10T23:59:59") and free.business_status == "due-soon"
    offered_late = by_rule(reevaluate(s, local("2026-03-05T10:00"), TaskUpdates(offered_start=date(2026, 3, 8))))
    assert FREE not in offered_late  # late for the plan's 2 days, but within the 7: no free choice


def test_level_change_within_and_after_the_window(rules):
    s = reevaluate(run(rules), local("2026-03-04T10:00"),
                   TaskUpdates(offered_start=date(2026, 3, 8), confirmed_level="basal",
                               confirmed_at=local("2026-03-04T10:00"), course_started=date(2026, 3, 8)))
    assert by_rule(s)[VISIT].business_status == "on-time"
    assert by_rule(s)[WINDOW].due == local("2026-03-22T23:59:59")
    within = reevaluate(s, local("2026-03-20T10:00"), TaskUpdates(confirmed_level="avanceret"))
    [change] = within.level_changes
    assert (change.from_level, change.to_level, change.flagged) == ("basal", "avanceret", False)
    after = reevaluate(s, local("2026-03-23T08:00"), TaskUpdates(confirmed_level="avanceret"))
    [change] = after.level_changes
    assert change.flagged and change.window_end == local("2026-03-22T23:59:59")
    assert "efter ændringsvinduet" in change.reason_da
    back = reevaluate(after, local("2026-03-24T08:00"), TaskUpdates(confirmed_level="basal"))
    assert [c.to_level for c in back.level_changes] == ["avanceret", "basal"]
    assert back.confirmed_level == "basal"


def test_level_change_before_the_course_starts_is_not_flagged(rules):
    s = reevaluate(run(rules), local("2026-03-03T10:00"), TaskUpdates(confirmed_level="basal"))
    s = reevaluate(s, local("2026-04-30T10:00"), TaskUpdates(confirmed_level="avanceret"))
    [change] = s.level_changes
    assert not change.flagged and change.window_end is None


def test_level_confirmed_late_marks_visitation_overdue(rules):
    s = reevaluate(run(rules), local("2026-03-07T10:00"),
                   TaskUpdates(confirmed_level="avanceret", confirmed_at=local("2026-03-07T09:00")))
    assert by_rule(s)[VISIT].business_status == "overdue"
    assert by_rule(s)[VISIT].completed_at == local("2026-03-07T09:00")


def test_offered_start_before_plans_earliest_start_warns(rules):
    s = reevaluate(run(rules, deadline="Opstart tidligst om 3 uger"), local("2026-03-05T10:00"),
                   TaskUpdates(offered_start=date(2026, 3, 10)))
    assert [w.code for w in s.warnings] == ["GGOP-W345"]


def test_reevaluate_is_pure_and_idempotent(rules):
    s = run(rules)
    snapshot = copy.deepcopy(s)
    u = TaskUpdates(offered_start=date(2026, 3, 12), confirmed_level="basal", confirmed_at=local("2026-03-03T10:00"))
    once = reevaluate(s, local("2026-03-10T10:00"), u)
    assert s == snapshot
    assert reevaluate(once, local("2026-03-10T10:00"), u) == once
    assert reevaluate(s, local("2026-03-10T10:00"), u) == once


def test_reevaluate_refuses_unknown_level(rules):
    with pytest.raises(ValueError):
        reevaluate(run(rules), local("2026-03-03T10:00"), TaskUpdates(confirmed_level="specialiseret"))


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

_DEADLINE_TEXTS = st.sampled_from([
    None, "inden for 2 dage", "Opstart tidligst om 3 uger", "ca. 2-4 uger", "Ingen", "hurtigst muligt",
    "Må ikke påbegyndes inden for 7 dage", "Opstart når gipsen er fjernet", "6 uger efter operationen",
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    discharge=st.dates(date(2024, 1, 1), date(2029, 12, 31)),
    minutes=st.integers(0, 24 * 60 - 1),
    received_after_minutes=st.integers(-2 * 24 * 60, 12 * 24 * 60),
    plan_type=st.sampled_from(["almen", "specialiseret", "rehabilitering"]),
    text=_DEADLINE_TEXTS,
    cpr=st.sampled_from(["0103450017", "1503154321"]),
    now_after_days=st.integers(0, 40),
    offered_after_days=st.one_of(st.none(), st.integers(0, 30)),
)
def test_deadlines_on_or_after_day0_and_deterministic(rules, discharge, minutes, received_after_minutes, plan_type,
                                                      text, cpr, now_after_days, offered_after_days):
    t = f"{minutes // 60:02d}:{minutes % 60:02d}"
    discharged = datetime.combine(discharge, datetime.strptime(t, "%H:%M").time(), tzinfo=TZ)
    received = (discharged.astimezone(ZoneInfo("UTC")) + timedelta(minutes=received_after_minutes)).astimezone(TZ)
    msg = ggop(plan_type=plan_type, discharge=discharge.isoformat(), discharge_time=t, deadline=text, cpr=cpr)
    a = schedule(msg, rules, received, CAL)
    assert a == schedule(msg, rules, received, CAL)
    for d in a.deadlines:
        assert d.due.date() >= d.day0
        if d.clock == "discharge":
            assert d.day0 >= discharge
            assert d.due.date() >= discharge
        assert d.due.tzinfo == TZ and d.due.time().isoformat() == "23:59:59"
        rule = rules.deadlines.rule(d.rule_id)
        if rule.offset and rule.offset.unit == "calendar" and d.plan_deadline is None and rule.same_as is None \
                and "capped-by-start" not in d.flags:
            assert (d.due.date() - d.day0).days == rule.offset.days
        if d.business_status == "overdue":  # overdue at creation only with a reason
            assert "received-late" in d.flags
    now = received + timedelta(days=now_after_days)
    updates = TaskUpdates(offered_start=discharge + timedelta(days=offered_after_days)
                          if offered_after_days is not None else None)
    b = reevaluate(a, now, updates)
    assert b == reevaluate(a, now, updates)
    for d in b.deadlines:
        assert d.due.date() >= d.day0
        assert d.business_status in ("on-time", "due-soon", "overdue")
        if d.trigger == "start-not-offered" and d.business_status == "overdue":  # created now: says why
            assert {"received-late", "created-late"} & set(d.flags)


def test_generated_plans_have_deadlines_on_or_after_day0(rules):
    count = 0
    for g in generate_messages(80, seed=11):
        if g.kind != "ggop":
            continue
        msg = validate_bytes(g.xml).message
        received = datetime.fromisoformat(g.facts["sent"]).replace(tzinfo=TZ) if g.facts.get("sent") else None
        s = schedule(msg, rules, received or datetime(2026, 6, 1, tzinfo=TZ), CAL)
        assert s == schedule(msg, rules, received or datetime(2026, 6, 1, tzinfo=TZ), CAL)
        for d in s.deadlines:
            assert d.due.date() >= d.day0
        if g.facts["plan_type"] == "specialiseret":
            assert {d.task_code for d in s.deadlines} == {"note-specialised-plan"}
        else:
            assert "offer-start" in {d.task_code for d in s.deadlines}
        count += 1
    assert count > 40


# --------------------------------------------------------------------------------------------
# A municipality's own service levels (optional rule file; Rebild, S4)
# --------------------------------------------------------------------------------------------

REBILD_FILE = DEFAULT_DIR / "service-levels" / "0840-rebild.yaml"


def test_rebild_service_levels_are_off_by_default_and_on_for_rebild(rules):
    """Received Thursday 2026-03-05 (discharged 03-02): the visitator calls by Monday 03-09 (2
    working days), the provider by Wednesday 03-11, training starts by Monday 03-16; the
    course is reviewed 12 weeks after the first session. The statutory Tasks stay."""
    from adapter.rules.book import load_rule_book

    book = load_rule_book(DEFAULT_DIR, [REBILD_FILE])
    assert book.for_municipality("0461") == rules  # another municipality: the national rules only
    rebild = book.for_municipality("0840")
    s = run(rebild, "2026-03-05T10:00", discharge="2026-03-02")
    got = by_rule(s)
    assert got["DL-0840-AUTHORITY-CONTACT"].due == local("2026-03-09T23:59:59")
    assert got["DL-0840-PROVIDER-CONTACT"].due == local("2026-03-11T23:59:59")
    start = got["DL-0840-SERVICE-START"]
    assert start.due == local("2026-03-16T23:59:59") and start.clock == "received"
    assert [n.text_en for n in start.notes] == [
        ("The citizen cancels a session the day before and is offered a new time; when the provider cancels, a new "
         "time is offered."), "Two no-shows end the course."]
    assert got[START].due == local("2026-03-09T23:59:59") and got[D1].due == local("2026-03-06T23:59:59")
    assert all(b.kind == "municipal-standard" for r in ("DL-0840-SERVICE-START", "DL-0840-COURSE-REVIEW")
               for b in rebild.deadlines.rule(r).legal_basis)
    assert "DL-0840-SERVICE-START" not in by_rule(run(rules, "2026-03-05T10:00", discharge="2026-03-02"))
    held = by_rule(reevaluate(s, local("2026-03-17T09:00"), TaskUpdates(course_started=date(2026, 3, 16))))
    assert held["DL-0840-COURSE-REVIEW"].due == local("2026-06-08T23:59:59")
