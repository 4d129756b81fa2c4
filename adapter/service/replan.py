"""Re-evaluating a plan: its schedule computed again from the stored raw message and replayed
through everything its Tasks recorded, as of now.

The plan is the ServiceRequest a Task focuses; its schedule is computed again from the stored
raw message (:func:`adapter.pipeline.apply_rules` at the plan's receipt time,
``ServiceRequest.authoredOn``) and replayed through every stored version of the plan's Tasks,
oldest first, plus the one being written: a version that brings a new offered start,
informing time or confirmed level is a :class:`~adapter.rules.model.TaskUpdates` at the time
it was written; a Task whose status became ``completed`` completes its deadline at that time.
Then, as of ``now``:

* every other active Task of the plan gets the ``businessStatus`` its deadline has now
  (``on-time``, ``due-soon``, ``overdue``; a completed deadline ``done-on-time``/``done-late``);
  Tasks that are cancelled, rejected, failed or entered-in-error are left alone;
* a deadline that exists only once its trigger happened gets its Task: the free-choice Task
  when the 7 days (from the later of discharge and the plan's earliest start) passed without an
  offer, or the offered start is later than them; the 14-day change window once the first
  session was held (output ``course-started``);
* an ``earliest-start`` output (the municipality read a start condition the adapter could not)
  moves the start deadline and lets the free-choice deadline run; ids are the ones the converter
  would give (``uuid5(sender|letter|task:<rule id>)``);
* a level changed after the change window closed is flagged with a ``note`` on the Task that
  carried the change, written by ``ggop-adapter`` with the rules' Danish reason text;
* the ServiceRequest's level category (extension ``level-status``) becomes ``confirmed`` with
  the confirmed level's code.

Used by the API's Task update (``PUT /fhir/Task/<id>``) and by the timed sweep
(``ggop-adapter reevaluate``). The pure part (:func:`read_outputs`, :func:`replay`,
:func:`plan_changes`, :func:`confirm_level`) reads no clock and does no I/O; :func:`replan`
reads the store and returns what to write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, false, select
from sqlalchemy.engine import Connection

from adapter.codes import CodeTables
from adapter.danish_time import EARLIEST_DATE, LATEST_DATE, as_utc, sane_date
from adapter.fhir.context import ADAPTER_BASE, MapContext
from adapter.fhir.datatypes import required
from adapter.fhir.plan import organization_ids
from adapter.fhir.task import NOTE_AUTHOR, task_from_deadline, task_role
from adapter.medcom.model import GgopMessage
from adapter.pipeline import apply_rules, validate_bytes
from adapter.rules.model import LEVELS, LevelChange, RuleSet, Schedule, TaskUpdates
from adapter.rules.schedule import reevaluate
from adapter.store.resources import iso, rewrite_references
from adapter.store.schema import messages, resource_history, resources
from adapter.store.search import Ref

INACTIVE = ("cancelled", "rejected", "failed", "entered-in-error")
LEVEL_STATUS_URL = f"{ADAPTER_BASE}/StructureDefinition/level-status"

def codings(cc) -> list[dict]:
    if not isinstance(cc, dict):
        return []
    return [c for c in cc.get("coding") or [] if isinstance(c, dict)]



def level_codes(tables: CodeTables) -> dict[tuple[str, str], str]:
    out = {}
    for level in LEVELS:
        t = required(tables.translate("stratum-to-kl-category", level), "level category")
        out[(t.system, t.code)] = level
    return out




def parse_date(value: str) -> dt.date | None:
    """A date within 1900–2099 (the window every deadline computation stays inside)."""
    return sane_date(value)


def parse_datetime(value: str) -> dt.datetime | None:
    """An aware dateTime within 1900–2099, else None."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None or not EARLIEST_DATE <= parsed.date() <= LATEST_DATE:
        return None
    return parsed


@dataclass(frozen=True)
class Outputs:
    offered_start: dt.date | None = None
    informed_at: dt.datetime | None = None
    confirmed_level: str | None = None
    course_started: dt.date | None = None
    earliest_start: dt.date | None = None


def read_outputs(task: dict, tables: CodeTables) -> Outputs:
    """The adapter's outputs on a Task (malformed ones are skipped: they were refused on update)."""
    system = tables.system_url("task-output-types")
    levels: dict[tuple[Any, Any], str] = level_codes(tables)  # looked up by a JSON coding's (system, code)
    offered = informed = level = None
    dates: dict[str, dt.date | None] = {"course-started": None, "earliest-start": None}
    for out in task.get("output") or []:
        if not isinstance(out, dict):
            continue
        code = next((c.get("code") for c in codings(out.get("type")) if c.get("system") == system), None)
        if code == "offered-start" and isinstance(out.get("valueDate"), str):
            offered = parse_date(out["valueDate"])
        elif code in dates and isinstance(out.get("valueDate"), str):
            dates[code] = parse_date(out["valueDate"])
        elif code == "citizen-informed" and isinstance(out.get("valueDateTime"), str):
            informed = parse_datetime(out["valueDateTime"])
        elif code == "confirmed-level":
            level = next((levels[(c.get("system"), c.get("code"))] for c in codings(out.get("valueCodeableConcept"))
                          if (c.get("system"), c.get("code")) in levels), None)
    return Outputs(offered, informed, level, dates["course-started"], dates["earliest-start"])


@dataclass(frozen=True)
class TaskVersion:
    """One stored (or proposed) version of a Task of the plan, and when it was written."""

    at: dt.datetime
    task_id: str
    version: int
    content: dict


def rule_id_of(task: dict, tables: CodeTables) -> str | None:
    system = tables.system_url("task-input-types")
    for inp in task.get("input") or []:
        if isinstance(inp, dict) and any(c.get("system") == system and c.get("code") == "rule-id"
                                         for c in codings(inp.get("type"))):
            value = inp.get("valueString")
            return value if isinstance(value, str) else None
    return None


def replay(base: Schedule, versions: Sequence[TaskVersion], now: dt.datetime,
           tables: CodeTables) -> tuple[Schedule, list[tuple[LevelChange, str]]]:
    """The plan's schedule as of ``now`` after everything its Tasks recorded, and each level
    change with the id of the Task that carried it."""
    ordered = sorted(versions, key=lambda v: (v.at, v.version, v.task_id))
    offered: dt.date | None = None
    informed: dt.datetime | None = None
    level: str | None = None
    started: dt.date | None = None
    earliest: dt.date | None = None
    completed: dict[str, dt.datetime] = {}
    rules_of: dict[str, str] = {}
    changes: list[tuple[LevelChange, str]] = []
    sched = base
    for v in ordered:
        rule = rule_id_of(v.content, tables)
        if rule:
            rules_of[v.task_id] = rule
        if v.content.get("status") == "completed":
            completed.setdefault(v.task_id, v.at)
        out = read_outputs(v.content, tables)
        fields: dict = {}
        if out.informed_at is not None and out.informed_at != informed:
            informed = out.informed_at
            fields["offered_at"] = informed
        if out.offered_start is not None and out.offered_start != offered:
            offered = out.offered_start
            fields["offered_start"] = offered
            fields.setdefault("offered_at", informed or v.at)
        if out.confirmed_level is not None and out.confirmed_level != level:
            level = out.confirmed_level
            fields.update(confirmed_level=level, confirmed_at=v.at)
        if out.course_started is not None and out.course_started != started:
            started = fields["course_started"] = out.course_started
        if out.earliest_start is not None and out.earliest_start != earliest:
            earliest = fields["earliest_start"] = out.earliest_start
        if fields:
            before = len(sched.level_changes)
            sched = reevaluate(sched, v.at, TaskUpdates(**fields))
            changes += [(c, v.task_id) for c in sched.level_changes[before:]]
    sched = reevaluate(sched, now, TaskUpdates())
    done_by_rule = {rules_of[t]: at for t, at in completed.items() if t in rules_of}
    if done_by_rule:
        sched = replace(sched, deadlines=[
            replace(d, completed_at=d.completed_at or done_by_rule[d.rule_id]) if d.rule_id in done_by_rule else d
            for d in sched.deadlines])
        sched = reevaluate(sched, now, TaskUpdates())
    return sched, changes


def status_code(deadline) -> str:
    if deadline.completed_at is not None:
        return "done-on-time" if deadline.business_status == "on-time" else "done-late"
    return deadline.business_status


def _business_status(code: str, tables: CodeTables) -> dict:
    return {"coding": [{"system": tables.system_url("task-business-status"), "code": code,
                        "display": tables.text(code, "task-business-status")}]}


def _current_status_code(task: dict, tables: CodeTables) -> str | None:
    system = tables.system_url("task-business-status")
    return next((c.get("code") for c in codings(task.get("businessStatus")) if c.get("system") == system), None)


@dataclass(frozen=True)
class PlanRefs:
    """The stored references of the plan a new Task points to."""

    service_request: str  # ServiceRequest/<id>
    patient: str | None  # Patient/<id>
    organizations: dict[str, str]  # sender | receiver | region -> Organization id


def _new_task(deadline, ctx: MapContext, proposal, refs: PlanRefs, tables: CodeTables) -> dict:
    task = task_from_deadline(deadline, ctx, proposal)
    targets = {f"urn:uuid:{ctx.id(role)}": f"Organization/{refs.organizations.get(role, ctx.id(role))}"
               for role in ("sender", "receiver", "region")}
    targets[f"urn:uuid:{ctx.id('servicerequest')}"] = refs.service_request
    targets[f"urn:uuid:{ctx.id('careplan')}"] = f"CarePlan/{ctx.id('careplan')}"
    if refs.patient:
        targets[f"urn:uuid:{ctx.id('patient')}"] = refs.patient
    task = rewrite_references(task, targets)
    task["businessStatus"] = _business_status(status_code(deadline), tables)
    return task


_REFRESHED_INPUTS = ("flag", "earliest-start")


def _refresh(task: dict, deadline, ctx: MapContext, proposal) -> dict:
    """The stored Task with its deadline's current due time, earliest start, flags and notes
    (they change when the municipality records the earliest start it read from the plan); the
    municipality's own notes and outputs stay."""
    fresh = task_from_deadline(deadline, ctx, proposal)
    system = ctx.tables.system_url("task-input-types")

    def refreshed_input(inp) -> bool:
        return isinstance(inp, dict) and any(c.get("system") == system and c.get("code") in _REFRESHED_INPUTS
                                             for c in codings(inp.get("type")))

    inputs = [i for i in task.get("input") or [] if not refreshed_input(i)]
    inputs += [i for i in fresh.get("input") or [] if refreshed_input(i)]
    # the deadline's own notes are the adapter's notes without a time (a level-change note has one)
    notes = [n for n in task.get("note") or []
             if not (isinstance(n, dict) and n.get("authorString") == ctx.text(NOTE_AUTHOR) and "time" not in n)]
    notes += fresh.get("note") or []
    out = {**task, "restriction": fresh["restriction"], "input": inputs}
    if notes:
        out["note"] = notes
    else:
        out.pop("note", None)
    return out


def _flag_note(change: LevelChange, tables: CodeTables) -> dict:
    return {"authorString": tables.text(NOTE_AUTHOR), "time": iso(change.at), "text": change.reason_da}


def plan_changes(sched: Schedule, tasks: dict[str, dict], *, ctx: MapContext, proposal, refs: PlanRefs,
                 tables: CodeTables, keep_business_status: frozenset[str] = frozenset(),
                 level_changes: Sequence[tuple[LevelChange, str]] = ()) -> dict[str, dict]:
    """Tasks (by id) whose content changes, and new Tasks for deadlines without one."""
    out: dict[str, dict] = {}
    by_rule: dict[str, str] = {}
    for task_id, task in tasks.items():
        rule = rule_id_of(task, tables)
        if rule:
            by_rule.setdefault(rule, task_id)
    for d in sched.deadlines:
        code = status_code(d)
        own_id = ctx.id(task_role(d))
        tid = by_rule.get(d.rule_id) or (own_id if own_id in tasks else None)
        if tid is None:
            out[own_id] = _new_task(d, ctx, proposal, refs, tables)
            continue
        task = tasks[tid]
        if task.get("status") in INACTIVE:
            continue
        refreshed = _refresh(task, d, ctx, proposal)
        if tid not in keep_business_status and _current_status_code(refreshed, tables) != code:
            refreshed = {**refreshed, "businessStatus": _business_status(code, tables)}
        if refreshed != task:
            out[tid] = refreshed
    for change, tid in level_changes:
        if not change.flagged or tid not in tasks:
            continue
        task = out.get(tid, tasks[tid])
        notes = list(task.get("note") or [])
        author = tables.text(NOTE_AUTHOR)
        if not any(isinstance(n, dict) and n.get("authorString") == author and n.get("text") == change.reason_da
                   for n in notes):
            out[tid] = {**task, "note": [*notes, _flag_note(change, tables)]}
    return out


def confirm_level(service_request: dict, level: str, tables: CodeTables) -> dict:
    """The ServiceRequest with its level category marked ``confirmed`` at ``level``."""
    target = required(tables.translate("stratum-to-kl-category", level), "level category")
    category = {
        "extension": [{"url": LEVEL_STATUS_URL,
                       "valueCoding": {"system": tables.system_url("level-status"), "code": "confirmed",
                                       "display": tables.text("confirmed", "level-status")}}],
        "coding": [{"system": target.system, "code": target.code, "display": target.display}],
    }
    categories = list(service_request.get("category") or [])
    at = next((i for i, c in enumerate(categories) if isinstance(c, dict) and any(
        isinstance(e, dict) and e.get("url") == LEVEL_STATUS_URL for e in c.get("extension") or [])), None)
    if at is None:
        categories.append(category)
    else:
        categories[at] = category
    return {**service_request, "category": categories}


@dataclass(frozen=True)
class Saved:
    content: dict
    municipality: str | None
    patient_id: str | None
    message_id: int | None


def plan_of(task: dict) -> Ref | None:
    """The ServiceRequest a Task focuses (its plan), or None."""
    focus = task.get("focus")
    if not isinstance(focus, dict) or not isinstance(focus.get("reference"), str):
        return None
    ref = Ref.parse(focus["reference"])
    return ref if ref is not None and ref.type == "ServiceRequest" else None


def replan(conn: Connection, row, task_id: str, new: dict, keep: frozenset[str], now: dt.datetime,
                     tables: CodeTables, rules: RuleSet, id_key: bytes) -> dict[tuple[str, str], Saved]:
    focus = plan_of(new)
    if focus is None:
        return {}
    sr = conn.execute(select(resources.c.id, resources.c.content, resources.c.patient_id, resources.c.message_id)
                      .where(resources.c.type == "ServiceRequest", resources.c.id == focus.id,
                             resources.c.municipality == row.municipality, resources.c.deleted == false())).first()
    if sr is None or sr.message_id is None:
        return {}
    message = conn.execute(select(messages.c.raw, messages.c.received_at)
                           .where(messages.c.id == sr.message_id)).first()
    if message is None:
        return {}
    msg = validate_bytes(bytes(message.raw), tables).message
    if not isinstance(msg, GgopMessage) or msg.sender is None or msg.sender.ean is None \
            or msg.letter.identifier is None:
        return {}
    at = parse_datetime(sr.content.get("authoredOn") or "") or as_utc(message.received_at)
    proposal, base, _issues = apply_rules(msg, at, rules)

    sr_ref = f"ServiceRequest/{sr.id}"
    task_conds = [resources.c.type == "Task", resources.c.municipality == row.municipality,
                  resources.c.deleted == false()]
    if sr.patient_id is not None:  # every resource of a plan carries its Patient's id
        task_conds.append(resources.c.patient_id == sr.patient_id)
    candidates = conn.execute(select(resources.c.id, resources.c.content, resources.c.municipality,
                                     resources.c.patient_id, resources.c.message_id).where(*task_conds))
    rows = {r.id: r for r in candidates
            if isinstance(r.content.get("focus"), dict) and r.content["focus"].get("reference") == sr_ref}
    tasks = {tid: r.content for tid, r in rows.items()}
    tasks[task_id] = new
    history = conn.execute(select(resource_history.c.id, resource_history.c.version_id,
                                  resource_history.c.last_updated, resource_history.c.content)
                           .where(and_(resource_history.c.type == "Task", resource_history.c.id.in_(sorted(tasks)),
                                       resource_history.c.municipality == row.municipality)))
    versions = [TaskVersion(as_utc(h.last_updated), h.id, h.version_id, h.content) for h in history]
    versions.append(TaskVersion(as_utc(now), task_id, row.version_id + 1, new))
    sched, level_changes = replay(base, versions, now, tables)

    ctx = MapContext(sender_ean=msg.sender.ean.value, letter_id=msg.letter.identifier.value, received_at=at,
                     tables=tables)
    subject = sr.content.get("subject")
    refs = PlanRefs(sr_ref, subject.get("reference") if isinstance(subject, dict) else None,
                    organization_ids(msg, ctx, id_key, sched))
    changed = plan_changes(sched, tasks, ctx=ctx, proposal=proposal, refs=refs, tables=tables,
                           keep_business_status=keep, level_changes=level_changes)
    out: dict[tuple[str, str], Saved] = {}
    for tid, content in changed.items():
        source = rows.get(tid)
        if tid == task_id:
            out[("Task", tid)] = Saved(content, row.municipality, row.patient_id, row.message_id)
        elif source is not None:
            out[("Task", tid)] = Saved(content, source.municipality, source.patient_id, source.message_id)
        else:
            out[("Task", tid)] = Saved(content, row.municipality, sr.patient_id, sr.message_id)
    if sched.confirmed_level is not None:
        confirmed = confirm_level(sr.content, sched.confirmed_level, tables)
        if confirmed != sr.content:
            out[("ServiceRequest", sr.id)] = Saved(confirmed, row.municipality, sr.patient_id, sr.message_id)
    return out
