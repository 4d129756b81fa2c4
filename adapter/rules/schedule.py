"""Deadlines that follow from a received G-GOP, and their business status over time.

    sched = schedule(msg, load_rules(), received_at, DanishCalendar())
    later = reevaluate(sched, now, TaskUpdates(offered_start=date(2026, 3, 6)))

Rules come from ``adapter/mappings/deadlines.yaml``. Everything is Danish local time
(Europe/Copenhagen). Day 0 is the discharge *date* as written in the plan
(``CurrentHospitalContact/ExpectedEnd/Date``); the time of discharge is not used, so a
late-evening discharge or a summer-time change never moves a calendar-day deadline. A
deadline is due at 23:59:59 local time on its day unless its rule gives a time.

Pure: no clock reads (``received_at`` and ``now`` are arguments), no I/O, inputs are never
changed; ``reevaluate`` returns a new :class:`Schedule`.

What completes a task in :func:`reevaluate` (``TaskUpdates``):

* ``offer-start``: an ``offered_start`` date; on time when it is on or before the due date;
* ``inform-citizen``: ``offered_at`` (when the citizen was told place, time and level);
* ``visitate-level`` and ``visitate-child``: a ``confirmed_level`` at ``confirmed_at``.

Pending deadlines appear when their trigger happens:

* ``start-not-offered`` (free choice): no start offered and ``now`` is past the start deadline,
  or the offered start is later than the start deadline;
* ``course-started`` (14-day change window): a start date has been offered; day 0 is that date.

A level confirmed again with a *different* level is a :class:`LevelChange`, flagged when it
is made after the change window closed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

from adapter.danish_time import DANISH_TIME, as_danish
from adapter.medcom.model import GgopMessage
from adapter.rules.calendar import DanishCalendar
from adapter.rules.deadline_text import ParsedDeadline, parse_deadline_text
from adapter.rules.model import (
    LEVELS,
    Deadline,
    DeadlineNote,
    DeadlineRule,
    LevelChange,
    NoteTexts,
    PendingDeadline,
    RuleSet,
    Schedule,
    ScheduleWarning,
    TaskUpdates,
)
from adapter.rules.stratify import discharge_date, patient_age, plan_type_of

__all__ = ["END_OF_DAY", "business_status", "reevaluate", "schedule"]

END_OF_DAY = time(23, 59, 59)

W_NO_DISCHARGE = "GGOP-W332"
W_TEXT_UNPARSED = "GGOP-W342"
W_PLAN_TYPE = "GGOP-W343"
W_CALENDAR = "GGOP-W344"
W_START_BEFORE_EARLIEST = "GGOP-W345"
W_RECEIVED_LATE = "GGOP-W346"

# deadline kinds whose due date counts from the start of training (postponed by the plan)
START_CODES = ("offer-start",)

_COMPLETES_LEVEL = ("visitate-level", "visitate-child")


# --------------------------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    # Aware datetimes that share a tzinfo compare and subtract by wall-clock time in Python;
    # going through UTC makes both exact across summer-time changes. An aware value goes there
    # directly; a naive one is Danish time.
    return (as_danish(value) if value.tzinfo is None else value).astimezone(UTC)


def _due(day: date, at: time | None) -> datetime:
    return datetime.combine(day, at or END_OF_DAY, tzinfo=DANISH_TIME)


def business_status(due: datetime, now: datetime, due_soon_hours: int = 48) -> str:
    """``overdue`` after ``due``; ``due-soon`` within ``due_soon_hours`` before it; else ``on-time``."""
    left = _utc(due) - _utc(now)
    if left < timedelta(0):
        return "overdue"
    if left <= timedelta(hours=due_soon_hours):
        return "due-soon"
    return "on-time"


def _status_when_done(due: datetime, done: datetime) -> str:
    return "overdue" if _utc(done) > _utc(due) else "on-time"


def _add(day0: date, days: int, unit: str, calendar: DanishCalendar) -> date:
    return day0 + timedelta(days=days) if unit == "calendar" else calendar.add_working_days(day0, days)


# --------------------------------------------------------------------------------------------
# schedule
# --------------------------------------------------------------------------------------------


def _applies(rule: DeadlineRule, plan_type: str, day0: date, age: int | None) -> bool:
    for a in rule.applies_to:
        if plan_type not in a.plan_types:
            continue
        if (a.valid_from and day0 < a.valid_from) or (a.valid_to and day0 > a.valid_to):
            continue
        if a.patient_age_below is not None and (age is None or age >= a.patient_age_below):
            continue
        if a.patient_age_not_below is not None and age is not None and age < a.patient_age_not_below:
            continue
        return True
    return False


class _Timing:
    __slots__ = ("day0", "day0_from", "due", "not_before", "plan")

    def __init__(self, day0: date | None, day0_from: str, due: datetime | None,
                 not_before: date | None, plan: ParsedDeadline | None):
        self.day0, self.day0_from, self.due, self.not_before, self.plan = day0, day0_from, due, not_before, plan


def _timing(rule: DeadlineRule, rules_by_id: dict[str, DeadlineRule], clocks: dict[str, tuple[date, str]],
            parsed: ParsedDeadline | None, calendar: DanishCalendar) -> _Timing:
    if rule.same_as is not None:
        base = _timing(rules_by_id[rule.same_as], rules_by_id, clocks, parsed, calendar)
        if rule.at is not None and base.due is not None:
            base.due = _due(base.due.date(), rule.at)
        return base
    if rule.clock == "course_start":
        return _Timing(None, "course_start", None, None, None)
    day0, day0_from = clocks[rule.clock]
    if rule.before is not None:
        day0, day0_from = clocks["discharge-date"]
        day = day0
        if rule.before.working_days == 0:
            while not calendar.is_working_day(day):
                day = calendar.working_day_before(day)
        for _ in range(rule.before.working_days):
            day = calendar.working_day_before(day)
        return _Timing(day0, day0_from, _due(day, rule.before.at or rule.at), None, None)

    offset = rule.offset
    # The loader gives every rule exactly one of offset, before or same_as.
    assert offset is not None, f"rule {rule.id} has no offset"
    plan = parsed if rule.plan_deadline != "ignore" else None
    not_before = None
    due_day: date | None = None
    if plan is not None and rule.plan_deadline == "shorten_or_postpone":
        if plan.kind == "within" and plan.latest is not None:
            due_day = plan.latest
        elif plan.kind in ("not_before", "on_or_after_date") and plan.earliest is not None:
            not_before = plan.earliest
            due_day = _add(plan.earliest, offset.days, offset.unit, calendar)
        elif plan.kind == "range" and plan.earliest is not None and plan.latest is not None:
            not_before, due_day = plan.earliest, plan.latest
    elif (plan is not None and rule.plan_deadline == "postpone_only"
          and plan.kind in ("not_before", "on_or_after_date", "range") and plan.earliest and plan.earliest > day0):
        day0, day0_from = plan.earliest, "plan"
    if due_day is None:
        due_day = _add(day0, offset.days, offset.unit, calendar)
    return _Timing(day0, day0_from, _due(due_day, rule.at), not_before, plan)


def schedule(msg: GgopMessage, rules: RuleSet, received_at: datetime, calendar: DanishCalendar) -> Schedule:
    """The deadlines that ``msg`` starts, with business statuses as of ``received_at``."""
    received = as_danish(received_at)
    warnings: list[ScheduleWarning] = []
    hours = rules.deadlines.due_soon_hours
    texts = rules.deadlines.notes
    plan_type = plan_type_of(msg)
    discharge = discharge_date(msg)
    base = Schedule(plan_type=plan_type, discharge=discharge, received_at=received, evaluated_at=received,
                    deadlines=[], pending=[], warnings=warnings, calendar=calendar, due_soon_hours=hours, notes=texts,
                    region_mergers=rules.deadlines.region_mergers)
    if plan_type is None:
        warnings.append(ScheduleWarning(
            W_PLAN_TYPE, "Planens type mangler eller er ukendt; der er ikke beregnet frister.",
            "The plan type is missing or unknown; no deadlines were computed.",
            msg.plan_type.xpath if msg.plan_type else "/Emessage/RehabilitationPlan/TypeOfRehabilitationPlan",
            msg.plan_type.line if msg.plan_type else None))
        return base

    if discharge is None:
        end = msg.contact_end
        warnings.append(ScheduleWarning(
            W_NO_DISCHARGE,
            "Udskrivningsdatoen mangler eller kan ikke læses; fristerne regnes fra modtagelsesdatoen.",
            "The discharge date is missing or unreadable; deadlines run from the date of receipt.",
            end.date.xpath if end and end.date else "/Emessage/RehabilitationPlan/CurrentHospitalContact/ExpectedEnd",
            end.date.line if end and end.date else None))
        day0_discharge, discharge_from = received.date(), "received"
    else:
        day0_discharge, discharge_from = discharge, "discharge"
    clocks = {"discharge": (day0_discharge, discharge_from), "received": (received.date(), "received"),
              "discharge-date": (day0_discharge, discharge_from)}
    if rules.deadlines.settings.get("deadline_clock", "discharge") == "received":
        # the municipality counts its deadlines from when it received the plan (S4)
        clocks["discharge"] = (received.date(), "received")

    age = patient_age(msg, day0_discharge)
    applicable = [r for r in rules.deadlines.rules if _applies(r, plan_type, day0_discharge, age)]
    by_id = {r.id: r for r in rules.deadlines.rules}

    parsed: ParsedDeadline | None = None
    text_val = msg.rehabilitation_deadline
    if text_val is not None and text_val.value.strip() and any(r.plan_deadline != "ignore" for r in applicable):
        parsed = parse_deadline_text(text_val.value, day0_discharge, calendar,
                                     rules.deadlines.settings.get("asap_days", 1))
        if parsed.kind == "unparsed":
            manual_note = texts.note("start-condition-manual")
            warnings.append(ScheduleWarning(
                W_TEXT_UNPARSED, manual_note.text_da, manual_note.text_en, text_val.xpath, text_val.line))

    deadlines: list[Deadline] = []
    pending: list[PendingDeadline] = []
    for rule in applicable:
        task = rules.task_codes[rule.task]
        try:
            t = _timing(rule, by_id, clocks, parsed, calendar)
        except ValueError as exc:  # the calendar covers a limited range of years
            warnings.append(ScheduleWarning(
                W_CALENDAR, f"Fristen kan ikke beregnes ({exc}).", f"The deadline cannot be computed ({exc}).",
                rule_id=rule.id))
            continue
        manual = parsed is not None and parsed.kind == "unparsed" and rule.plan_deadline != "ignore"
        if rule.trigger is not None:
            pending.append(PendingDeadline(rule, task.display, t.day0, t.day0_from, t.plan,
                                           suspended=texts.note("free-choice-waits") if manual else None))
            continue
        # Only the course_start clock leaves day 0 and the due time open, and it always has a trigger.
        assert t.due is not None and t.day0 is not None, f"rule {rule.id} has no day 0"
        notes = _rule_notes(rule)
        if manual:
            notes.append(texts.note("start-condition-manual"))
        if t.not_before is not None and t.not_before > day0_discharge:
            notes.append(texts.note("postponed-start", date=t.not_before))
        deadlines.append(Deadline(
            task_code=rule.task, task_display=task.display, rule_id=rule.id, due=t.due, owner=rule.owner,
            clock=rule.clock, day0=t.day0, legal_basis=rule.legal_basis, reason_da=rule.reason_da,
            reason_en=rule.reason_en, plan_deadline=t.plan,
            business_status=business_status(t.due, received, hours),
            title=rule.title, day0_from=t.day0_from, not_before=t.not_before, trigger=None, notes=tuple(notes),
        ))
    deadlines = _capped(deadlines, by_id, received, hours, texts)
    late = [d for d in deadlines if _utc(d.due) < _utc(received)]
    if late:
        warnings.append(ScheduleWarning(
            W_RECEIVED_LATE,
            f"Planen blev modtaget {received.date().isoformat()}, efter {len(late)} af dens frister.",
            f"The plan was received on {received.date().isoformat()}, after {len(late)} of its deadlines."))
        deadlines = [replace(d, notes=(*d.notes, texts.note("received-late", received=received.date(),
                                                            due=d.due.date()))) if d in late else d
                     for d in deadlines]
    earliest = parsed.earliest if parsed is not None and parsed.kind in POSTPONING else None
    return replace(base, deadlines=deadlines, pending=pending, warnings=warnings,
                   earliest_start=earliest if earliest is not None and earliest > day0_discharge else None)


POSTPONING = ("not_before", "on_or_after_date", "range")

def _rule_notes(rule: DeadlineRule) -> list[DeadlineNote]:
    return [DeadlineNote(None, da, en) for da, en in rule.notes]


def _cap_rule(rule_id: str, by_id: dict[str, DeadlineRule]) -> str | None:
    """The rule whose deadline ``rule_id`` may not fall after (its own, or its same_as chain's)."""
    seen: set[str] = set()
    current: str | None = rule_id
    while current is not None and current not in seen:
        seen.add(current)
        rule = by_id[current]
        if rule.no_later_than is not None:
            return rule.no_later_than
        current = rule.same_as
    return None


def _capped(deadlines: list[Deadline], by_id: dict[str, DeadlineRule], now: datetime, hours: int,
            texts: NoteTexts) -> list[Deadline]:
    """Each deadline due no later than the one its rule names (``no_later_than``): when a plan
    shortens the start deadline, informing and visitation fall due with it."""
    due_of = {d.rule_id: d.due for d in deadlines}
    out = []
    for d in deadlines:
        cap = _cap_rule(d.rule_id, by_id)
        limit = due_of.get(cap) if cap is not None else None
        if limit is not None and _utc(limit) < _utc(d.due):
            note = texts.note("capped-by-start", due=limit.date())
            d = replace(d, due=limit, business_status=business_status(limit, now, hours), notes=(*d.notes, note))
        out.append(d)
    return out


# --------------------------------------------------------------------------------------------
# reevaluate
# --------------------------------------------------------------------------------------------


def _threshold(p: PendingDeadline, day0: date, calendar: DanishCalendar) -> datetime:
    """The end of the period the trigger watches (the start must be offered by then)."""
    offset = p.rule.offset
    assert offset is not None, f"triggered rule {p.rule.id} has no offset"
    return _due(_add(day0, offset.days, offset.unit, calendar), p.rule.at)


def _materialise(p: PendingDeadline, day0: date, day0_from: str, calendar: DanishCalendar, now: datetime,
                 hours: int, texts: NoteTexts, triggered_at: datetime | None = None,
                 received_at: datetime | None = None) -> Deadline:
    rule = p.rule
    due = _threshold(p, day0, calendar)
    notes = _rule_notes(rule)
    if rule.due_after_trigger is not None and triggered_at is not None:
        after = rule.due_after_trigger
        # known before day 0 (an offer recorded before discharge): counted from day 0
        base_day = max(as_danish(triggered_at).date(), day0)
        due = _due(_add(base_day, after.days, after.unit, calendar), rule.at)
        if _utc(due) < _utc(now):
            if received_at is not None and _utc(received_at) > _utc(triggered_at):
                notes.append(texts.note("received-late", received=as_danish(received_at).date(), due=due.date()))
            else:
                notes.append(texts.note("created-late", date=as_danish(now).date(),
                                        triggered=as_danish(triggered_at).date()))
    return Deadline(
        task_code=rule.task, task_display=p.task_display, rule_id=rule.id, due=due, owner=rule.owner,
        clock=rule.clock, day0=day0, legal_basis=rule.legal_basis, reason_da=rule.reason_da,
        reason_en=rule.reason_en, plan_deadline=p.plan_deadline,
        business_status=business_status(due, now, hours), title=rule.title, day0_from=day0_from,
        trigger=rule.trigger, notes=tuple(notes), triggered_at=triggered_at,
    )


def reevaluate(schedule: Schedule, now: datetime, updates: TaskUpdates) -> Schedule:
    """Statuses as of ``now``, tasks completed by ``updates``, pending deadlines whose trigger
    happened, and level changes (flagged after the change window)."""
    now = as_danish(now)
    if updates.confirmed_level is not None and updates.confirmed_level not in LEVELS:
        raise ValueError(f"confirmed_level must be one of {LEVELS}, got {updates.confirmed_level!r}")
    if updates.earliest_start is not None and updates.earliest_start != schedule.earliest_start:
        schedule = _with_earliest_start(schedule, updates.earliest_start, now)
    offered_start = updates.offered_start or schedule.offered_start
    offered_at = as_danish(updates.offered_at) if updates.offered_at else schedule.offered_at
    course_started = updates.course_started or schedule.course_started
    deadlines, still_pending = _triggered(schedule, now, offered_start, offered_at, course_started)
    confirmed_level, confirmed_at, changes = _level_after(schedule, deadlines, updates, now)
    warnings = list(schedule.warnings)
    statuses = [_deadline_status(d, now, schedule.due_soon_hours, offered_start, offered_at, confirmed_at, warnings)
                for d in deadlines]
    return replace(schedule, evaluated_at=now, deadlines=statuses, pending=still_pending, warnings=warnings,
                   offered_start=offered_start, offered_at=offered_at, confirmed_level=confirmed_level,
                   confirmed_at=confirmed_at, level_changes=changes, course_started=course_started)


def _with_earliest_start(schedule: Schedule, earliest: date, now: datetime) -> Schedule:
    """The schedule once the municipality has read the plan's start condition: the start
    deadline counts from ``earliest`` (when later than its day 0) and the free-choice deadline
    is watched again, from the later of its day 0 and ``earliest``."""
    hours = schedule.due_soon_hours
    deadlines = []
    for d in schedule.deadlines:
        if d.task_code in START_CODES and d.completed_at is None:
            rule_notes = tuple(n for n in d.notes if n.flag not in ("start-condition-manual", "postponed-start"))
            day0 = max(d.day0, earliest)
            offset_days = (d.due.date() - d.day0).days if d.not_before is None else (d.due.date() - d.not_before).days
            due = _due(day0 + timedelta(days=offset_days), d.due.timetz().replace(tzinfo=None))
            notes = rule_notes + ((schedule.notes.note("postponed-start", date=earliest),) if earliest > d.day0 else ())
            d = replace(d, due=due, not_before=earliest, notes=notes, business_status=business_status(due, now, hours))
        deadlines.append(d)
    pending = [replace(p, suspended=None, day0=max(p.day0, earliest) if p.day0 is not None else None,
                       day0_from="plan" if p.day0 is not None and earliest > p.day0 else p.day0_from)
               if p.rule.trigger == "start-not-offered" else p for p in schedule.pending]
    return replace(schedule, deadlines=deadlines, pending=pending, earliest_start=earliest)


def _triggered(schedule: Schedule, now: datetime, offered_start: date | None, offered_at: datetime | None,
               course_started: date | None) -> tuple[list[Deadline], list[PendingDeadline]]:
    """The deadlines with those whose trigger happened by ``now`` added, and those still pending.

    Free choice (``start-not-offered``) watches its own period: 7 days from the later of
    discharge and the plan's earliest start, whatever the plan's start deadline is. It happens
    when that period ends without an offered start (at its end), or when the start offered is
    later than the period's last day (when the offer was recorded). The 14-day change window
    (``course-started``) opens on the first training session held."""
    hours = schedule.due_soon_hours
    deadlines = list(schedule.deadlines)
    still_pending: list[PendingDeadline] = []
    for p in schedule.pending:
        added = None
        if p.rule.trigger == "start-not-offered" and p.day0 is not None and p.suspended is None:
            end = _threshold(p, p.day0, schedule.calendar)
            at: datetime | None = None
            if offered_start is not None and offered_start > end.date():
                at = offered_at or now
            elif offered_start is None and _utc(now) > _utc(end):
                at = end
            if at is not None:
                added = _materialise(p, p.day0, p.day0_from, schedule.calendar, now, hours, schedule.notes, at,
                                     schedule.received_at)
        elif p.rule.trigger == "course-started" and course_started is not None:
            added = _materialise(p, course_started, "course_start", schedule.calendar, now, hours, schedule.notes)
        if added is None:
            still_pending.append(p)
        else:
            deadlines.append(added)
    return deadlines, still_pending


def _level_after(schedule: Schedule, deadlines: list[Deadline], updates: TaskUpdates,
                 now: datetime) -> tuple[str | None, datetime | None, list[LevelChange]]:
    """The confirmed level and when, and every level change with its flag after the window."""
    confirmed_level, confirmed_at = schedule.confirmed_level, schedule.confirmed_at
    changes = list(schedule.level_changes)
    if updates.confirmed_level is None:
        return confirmed_level, confirmed_at, changes
    at = as_danish(updates.confirmed_at) if updates.confirmed_at else now
    if confirmed_level is None:
        return updates.confirmed_level, at, changes
    if updates.confirmed_level != confirmed_level:
        window = next((d for d in deadlines if d.task_code == "change-level-window"), None)
        changes.append(_level_change(confirmed_level, updates.confirmed_level, at, window.due if window else None))
    return updates.confirmed_level, confirmed_at, changes


def _level_change(old: str, new: str, at: datetime, window_end: datetime | None) -> LevelChange:
    """A level change, flagged when it comes after the change window closed, with its reason."""
    flagged = window_end is not None and _utc(at) > _utc(window_end)
    if flagged and window_end is not None:
        closed = window_end.date().isoformat()
        da = f"Niveauet er ændret fra {old} til {new} efter ændringsvinduet (sluttede {closed})."
        en = f"The level was changed from {old} to {new} after the change window (closed {closed})."
    elif window_end is None:
        da = (f"Niveauet er ændret fra {old} til {new}; forløbet er ikke startet, så ændringsvinduet er "
              "ikke begyndt.")
        en = (f"The level was changed from {old} to {new}; the course has not started, so the change "
              "window has not begun.")
    else:
        da = f"Niveauet er ændret fra {old} til {new} inden for ændringsvinduet."
        en = f"The level was changed from {old} to {new} within the change window."
    return LevelChange(old, new, at, window_end, flagged, da, en)


def _deadline_status(d: Deadline, now: datetime, hours: int, offered_start: date | None,
                     offered_at: datetime | None, confirmed_at: datetime | None,
                     warnings: list[ScheduleWarning]) -> Deadline:
    """The deadline with its business status and completion as of ``now`` (a start offered
    before the plan's earliest start adds a warning)."""
    done = d.completed_at
    status = None
    if d.task_code == "offer-start" and offered_start is not None:
        done = done or offered_at or now
        status = "on-time" if offered_start <= d.due.date() else "overdue"
        if d.not_before is not None and offered_start < d.not_before:
            w = ScheduleWarning(
                W_START_BEFORE_EARLIEST,
                f"Den tilbudte opstart ligger før planens tidligste opstart ({d.not_before.isoformat()}).",
                f"The offered start is before the plan's earliest start ({d.not_before.isoformat()}).",
                rule_id=d.rule_id)
            if w not in warnings:
                warnings.append(w)
    elif d.task_code == "inform-citizen" and offered_at is not None:
        done = done or offered_at
    elif d.task_code in _COMPLETES_LEVEL and confirmed_at is not None:
        done = done or confirmed_at
    if status is None:
        status = _status_when_done(d.due, done) if done is not None else business_status(d.due, now, hours)
    return replace(d, business_status=status, completed_at=done)
