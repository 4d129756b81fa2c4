"""``PUT /fhir/Task/<id>``: a municipality records what it did, and the plan is re-evaluated.

A municipal client may change ``status`` (along :data:`TRANSITIONS`), ``businessStatus``,
``output`` and ``note``; any other difference from the stored Task is refused (422, one issue
naming each element). Outputs use ``adapter/mappings/codesystems/task-output-types.json``:

* ``offered-start`` (``valueDate``): the first training meeting offered to the citizen;
* ``citizen-informed`` (``valueDateTime``): when the citizen was told place, time and level
  (without it, the time the offered start was recorded counts);
* ``confirmed-level`` (``valueCodeableConcept``): the KL CareSocialCodes code of basal or
  avanceret, as a therapist confirmed it.

Re-evaluation (same transaction as the update): the plan is the ServiceRequest the Task
focuses; its schedule is computed again from the stored raw message
(:func:`adapter.pipeline.apply_rules` at the plan's receipt time, ``ServiceRequest.authoredOn``)
and replayed through every stored version of the plan's Tasks, oldest first, plus the new one:
a version that brings a new offered start, informing time or confirmed level is a
:class:`~adapter.rules.model.TaskUpdates` at the time it was written; a Task whose status became
``completed`` completes its deadline at that time. Then, as of ``now`` (the service clock):

* every other active Task of the plan gets the ``businessStatus`` its deadline has now
  (``on-time``, ``due-soon``, ``overdue``; a completed deadline ``done-on-time``/``done-late``).
  The updated Task gets it too unless the client set its ``businessStatus`` itself; Tasks
  that are cancelled, rejected, failed or entered-in-error are left alone;
* a deadline that exists only once its trigger happened gets its Task: the free-choice Task
  when the start deadline passed without an offer (or the offered start is later than the
  deadline), the 14-day change window once a start is offered; ids are the ones the converter
  would give (``uuid5(sender|letter|task:<rule id>)``);
* a level changed after the change window closed is flagged with a ``note`` on the Task that
  carried the change, written by ``ggop-adapter`` with the rules' Danish reason text;
* the ServiceRequest's level category (extension ``level-status``) becomes ``confirmed`` with
  the confirmed level's code.

The pure part (:func:`check_update`, :func:`read_outputs`, :func:`replay`,
:func:`plan_changes`, :func:`confirm_level`) reads no clock and does no I/O;
:func:`update_task` reads and writes the store. Error texts name elements, never values.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass, replace
from typing import Sequence

from sqlalchemy import and_, false, select
from sqlalchemy.engine import Connection

from adapter.api.access import safe_name
from adapter.codes import CodeTables
from adapter.danish_time import as_utc
from adapter.fhir.context import ADAPTER_BASE, MapContext
from adapter.fhir.task import task_from_deadline, task_role
from adapter.medcom.model import GgopMessage
from adapter.rules.model import LEVELS, LevelChange, RuleSet, Schedule, TaskUpdates
from adapter.rules.schedule import reevaluate
from adapter.store.resources import iso, save_resource
from adapter.store.schema import messages, resource_history, resources
from adapter.store.search import Ref, Scope

TASK_STATUSES = ("draft", "requested", "received", "accepted", "rejected", "ready", "cancelled", "in-progress",
                 "on-hold", "failed", "completed", "entered-in-error")
_ACTIVE_TARGETS = ("ready", "in-progress", "on-hold", "cancelled", "failed", "completed", "entered-in-error")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("requested", "cancelled", "entered-in-error"),
    "requested": ("received", "accepted", "rejected", *_ACTIVE_TARGETS),
    "received": ("accepted", "rejected", *_ACTIVE_TARGETS),
    "accepted": _ACTIVE_TARGETS,
    "ready": tuple(s for s in _ACTIVE_TARGETS if s != "ready"),
    "in-progress": ("on-hold", "cancelled", "failed", "completed", "entered-in-error"),
    "on-hold": ("accepted", "ready", "in-progress", "cancelled", "failed", "completed", "entered-in-error"),
    "completed": ("entered-in-error",),
    "cancelled": ("entered-in-error",),
    "rejected": ("entered-in-error",),
    "failed": ("entered-in-error",),
    "entered-in-error": (),
}
INACTIVE = ("cancelled", "rejected", "failed", "entered-in-error")
ALLOWED = ("status", "businessStatus", "output", "note")
NOT_COMPARED = ("resourceType", "id", "meta")
ADAPTER_AUTHOR = "ggop-adapter"
LEVEL_STATUS_URL = f"{ADAPTER_BASE}/StructureDefinition/level-status"
OUTPUT_VALUE = {"offered-start": "valueDate", "citizen-informed": "valueDateTime",
                "confirmed-level": "valueCodeableConcept"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')


class UpdateRejected(Exception):
    """The update is refused: ``issues`` are (FHIRPath expression or None, text) pairs."""

    def __init__(self, status: int, issue_type: str, issues: list[tuple[str | None, str]]):
        super().__init__(issues[0][1] if issues else "")
        self.status = status
        self.issue_type = issue_type
        self.issues = issues


def _reject(status: int, issue_type: str, text: str, expression: str | None = None) -> UpdateRejected:
    return UpdateRejected(status, issue_type, [(expression, text)])


# --------------------------------------------------------------------------------------------
# Pure: checking the proposed Task
# --------------------------------------------------------------------------------------------


def parse_if_match(value: str | None) -> int:
    if value is None or not value.strip():
        raise _reject(428, "required", 'An update needs If-Match: W/"<versionId>" (read the Task first).')
    m = _ETAG.match(value)
    if not m:
        raise _reject(400, "invalid", 'If-Match must be a version ETag: W/"<versionId>".')
    return int(m.group(1))


def _element(name: str) -> str:
    safe = safe_name(name)
    return f"Task.{safe}" if safe == name and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) else "Task"


def _level_codes(tables: CodeTables) -> dict[tuple[str, str], str]:
    out = {}
    for level in LEVELS:
        t = tables.translate("stratum-to-kl-category", level)
        out[(t.system, t.code)] = level
    return out


def _codings(cc) -> list[dict]:
    if not isinstance(cc, dict):
        return []
    return [c for c in cc.get("coding") or [] if isinstance(c, dict)]


def _check_codeable(value, where: str) -> list[tuple[str | None, str]]:
    if not isinstance(value, dict):
        return [(where, f"{where} must be a CodeableConcept.")]
    coding = value.get("coding", [])
    problems = []
    if not isinstance(coding, list) or not all(isinstance(c, dict) for c in coding):
        problems.append((where, f"{where}.coding must be a list of Codings."))
    elif not all(isinstance(c.get(k, ""), str) for c in coding for k in ("system", "code", "display")):
        problems.append((where, f"{where}.coding: system, code and display are strings."))
    if "text" in value and not isinstance(value["text"], str):
        problems.append((where, f"{where}.text must be a string."))
    if not coding and "text" not in value:
        problems.append((where, f"{where} needs a coding or a text."))
    return problems


def _check_status(old: str | None, new) -> list[tuple[str | None, str]]:
    if not isinstance(new, str) or new not in TASK_STATUSES:
        return [("Task.status", "Task.status must be a Task status code.")]
    if new != old and new not in TRANSITIONS.get(old or "", ()):
        return [("Task.status", f"A Task cannot go from status {old} to {new}.")]
    return []


def _check_business_status(value, tables: CodeTables) -> list[tuple[str | None, str]]:
    problems = _check_codeable(value, "Task.businessStatus")
    if problems:
        return problems
    system = tables.system_url("task-business-status")
    for c in _codings(value):
        if c.get("system") == system:
            try:
                tables.text(c.get("code", ""), "task-business-status")
            except KeyError:
                problems.append(("Task.businessStatus", "Task.businessStatus: not a code of task-business-status."))
    return problems


def _check_outputs(value, tables: CodeTables) -> list[tuple[str | None, str]]:
    if not isinstance(value, list):
        return [("Task.output", "Task.output must be a list.")]
    system = tables.system_url("task-output-types")
    levels = _level_codes(tables)
    problems: list[tuple[str | None, str]] = []
    seen: set[str] = set()
    for i, out in enumerate(value):
        where = f"Task.output[{i}]"
        if not isinstance(out, dict):
            problems.append((where, f"{where} must be an object."))
            continue
        codes = [c.get("code") for c in _codings(out.get("type")) if c.get("system") == system]
        code = codes[0] if len(codes) == 1 else None
        if code not in OUTPUT_VALUE:
            problems.append((f"{where}.type", f"{where}.type needs one code of {system} "
                                              f"({', '.join(OUTPUT_VALUE)})."))
            continue
        if code in seen:
            problems.append((f"{where}.type", f"{where}: only one {code} output per Task."))
        seen.add(code)
        value_keys = [k for k in out if k.startswith("value")]
        extra = [k for k in out if k not in ("id", "extension", "type") and not k.startswith("value")]
        expected = OUTPUT_VALUE[code]
        if value_keys != [expected]:
            problems.append((f"{where}.{expected}", f"{where}: {code} needs {expected} (and no other value)."))
            continue
        if extra:
            problems.append((where, f"{where}: only type and {expected} are read."))
        v = out[expected]
        if code == "offered-start":
            if not isinstance(v, str) or not _DATE.match(v) or _date(v) is None:
                problems.append((f"{where}.valueDate", f"{where}.valueDate must be a date YYYY-MM-DD."))
        elif code == "citizen-informed":
            if not isinstance(v, str) or not _DATETIME.match(v) or _datetime(v) is None:
                problems.append((f"{where}.valueDateTime",
                                 f"{where}.valueDateTime must be a date and time with an offset."))
        elif not any((c.get("system"), c.get("code")) in levels for c in _codings(v)):
            problems.append((f"{where}.valueCodeableConcept",
                             f"{where}.valueCodeableConcept needs the KL code of basal or avanceret."))
    return problems


def _check_notes(value) -> list[tuple[str | None, str]]:
    if not isinstance(value, list):
        return [("Task.note", "Task.note must be a list of Annotations.")]
    problems: list[tuple[str | None, str]] = []
    for i, note in enumerate(value):
        where = f"Task.note[{i}]"
        if not isinstance(note, dict) or not isinstance(note.get("text"), str) or not note["text"].strip():
            problems.append((where, f"{where} needs a text."))
            continue
        extra = [k for k in note if k not in ("id", "extension", "text", "authorString", "authorReference", "time")]
        if extra:
            problems.append((where, f"{where}: only text, authorString, authorReference and time are allowed."))
    return problems


def check_update(current: dict, proposed, tables: CodeTables) -> None:
    """Raise :class:`UpdateRejected` unless ``proposed`` differs from ``current`` only in
    allowed, well-formed elements."""
    if not isinstance(proposed, dict) or proposed.get("resourceType") != "Task":
        raise _reject(400, "structure", "The body must be a Task resource.")
    if proposed.get("id") != current["id"]:
        raise _reject(400, "invalid", "The Task's id must be the id in the URL.", "Task.id")
    changed = sorted(k for k in set(current) | set(proposed)
                     if k not in NOT_COMPARED and current.get(k) != proposed.get(k))
    forbidden = [k for k in changed if k not in ALLOWED]
    if forbidden:
        raise UpdateRejected(422, "business-rule", [
            (_element(k), f"{_element(k)} may not be changed; a municipality may change status, businessStatus, "
                          "output and note.") for k in forbidden])
    problems: list[tuple[str | None, str]] = []
    if "status" in changed:
        problems += _check_status(current.get("status"), proposed.get("status"))
    if "businessStatus" in changed and "businessStatus" in proposed:
        problems += _check_business_status(proposed["businessStatus"], tables)
    if "output" in changed and "output" in proposed:
        problems += _check_outputs(proposed["output"], tables)
    if "note" in changed and "note" in proposed:
        problems += _check_notes(proposed["note"])
    if problems:
        raise UpdateRejected(422, "business-rule" if any(e == "Task.status" for e, _ in problems) else "value",
                             problems)


# --------------------------------------------------------------------------------------------
# Pure: outputs, replay, changes
# --------------------------------------------------------------------------------------------


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _datetime(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True)
class Outputs:
    offered_start: dt.date | None = None
    informed_at: dt.datetime | None = None
    confirmed_level: str | None = None


def read_outputs(task: dict, tables: CodeTables) -> Outputs:
    """The adapter's outputs on a Task (malformed ones are skipped: they were refused on update)."""
    system = tables.system_url("task-output-types")
    levels = _level_codes(tables)
    offered = informed = level = None
    for out in task.get("output") or []:
        if not isinstance(out, dict):
            continue
        code = next((c.get("code") for c in _codings(out.get("type")) if c.get("system") == system), None)
        if code == "offered-start" and isinstance(out.get("valueDate"), str):
            offered = _date(out["valueDate"])
        elif code == "citizen-informed" and isinstance(out.get("valueDateTime"), str):
            informed = _datetime(out["valueDateTime"])
        elif code == "confirmed-level":
            level = next((levels[(c.get("system"), c.get("code"))] for c in _codings(out.get("valueCodeableConcept"))
                          if (c.get("system"), c.get("code")) in levels), None)
    return Outputs(offered, informed, level)


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
                                         for c in _codings(inp.get("type"))):
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
    return next((c.get("code") for c in _codings(task.get("businessStatus")) if c.get("system") == system), None)


@dataclass(frozen=True)
class PlanRefs:
    """The stored references of the plan a new Task points to."""

    service_request: str  # ServiceRequest/<id>
    patient: str | None  # Patient/<id>


def _rewrite(obj, targets: dict[str, str]):
    if isinstance(obj, dict):
        return {k: (targets.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, targets))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rewrite(x, targets) for x in obj]
    return obj


def _new_task(deadline, ctx: MapContext, proposal, refs: PlanRefs, tables: CodeTables) -> dict:
    task = task_from_deadline(deadline, ctx, proposal)
    targets = {f"urn:uuid:{ctx.id(role)}": f"{rtype}/{ctx.id(role)}"
               for role, rtype in (("sender", "Organization"), ("receiver", "Organization"),
                                   ("region", "Organization"))}
    targets[f"urn:uuid:{ctx.id('servicerequest')}"] = refs.service_request
    if refs.patient:
        targets[f"urn:uuid:{ctx.id('patient')}"] = refs.patient
    task = _rewrite(task, targets)
    task["businessStatus"] = _business_status(status_code(deadline), tables)
    return task


def _flag_note(change: LevelChange) -> dict:
    return {"authorString": ADAPTER_AUTHOR, "time": iso(change.at), "text": change.reason_da}


def plan_changes(sched: Schedule, tasks: dict[str, dict], *, ctx: MapContext, proposal, refs: PlanRefs,
                 tables: CodeTables, keep_business_status: frozenset[str] = frozenset(),
                 level_changes: Sequence[tuple[LevelChange, str]] = ()) -> dict[str, dict]:
    """Tasks (by id) whose content changes, and new Tasks for deadlines without one."""
    out: dict[str, dict] = {}
    by_rule = {}
    for tid, task in tasks.items():
        rule = rule_id_of(task, tables)
        if rule:
            by_rule.setdefault(rule, tid)
    for d in sched.deadlines:
        code = status_code(d)
        own_id = ctx.id(task_role(d))
        tid = by_rule.get(d.rule_id) or (own_id if own_id in tasks else None)
        if tid is None:
            out[own_id] = _new_task(d, ctx, proposal, refs, tables)
            continue
        task = tasks[tid]
        if task.get("status") in INACTIVE or tid in keep_business_status:
            continue
        if _current_status_code(task, tables) != code:
            out[tid] = {**task, "businessStatus": _business_status(code, tables)}
    for change, tid in level_changes:
        if not change.flagged or tid not in tasks:
            continue
        task = out.get(tid, tasks[tid])
        notes = list(task.get("note") or [])
        if not any(isinstance(n, dict) and n.get("authorString") == ADAPTER_AUTHOR and n.get("text") == change.reason_da
                   for n in notes):
            out[tid] = {**task, "note": [*notes, _flag_note(change)]}
    return out


def confirm_level(service_request: dict, level: str, tables: CodeTables) -> dict:
    """The ServiceRequest with its level category marked ``confirmed`` at ``level``."""
    target = tables.translate("stratum-to-kl-category", level)
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


# --------------------------------------------------------------------------------------------
# Store
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Saved:
    content: dict
    municipality: str | None
    patient_id: str | None
    message_id: int | None


def update_task(conn: Connection, *, task_id: str, body, if_match: str | None, scope: Scope, client_name: str,
                now: dt.datetime, tables: CodeTables, rules: RuleSet) -> dict:
    """Check and store a Task update and the plan's re-evaluation; returns the stored Task.

    Raises :class:`UpdateRejected` (404 when the Task is unknown or outside ``scope``)."""
    version = parse_if_match(if_match)
    conds = [resources.c.type == "Task", resources.c.id == task_id, resources.c.deleted == false()]
    cond = scope.condition(resources.c.municipality)
    if cond is not None:
        conds.append(cond)
    # Updates of one plan are serialised on its ServiceRequest, locked before the Task: the
    # re-evaluation writes the plan's other Tasks, so two updates of sibling Tasks must not
    # each hold their own Task while waiting for the other's (SQLite: BEGIN IMMEDIATE anyway).
    peek = conn.execute(select(resources.c.content, resources.c.municipality).where(*conds)).first()
    if peek is not None:
        focus = _focus(peek.content)
        if focus is not None:
            conn.execute(select(resources.c.version_id).where(
                resources.c.type == "ServiceRequest", resources.c.id == focus.id,
                resources.c.municipality == peek.municipality).with_for_update()).first()
    row = conn.execute(select(resources.c.version_id, resources.c.content, resources.c.municipality,
                              resources.c.patient_id, resources.c.message_id)
                       .where(*conds).with_for_update()).first()
    if row is None:
        raise _reject(404, "not-found", "No such Task.")
    if row.version_id != version:
        raise _reject(412, "conflict", "The Task has changed since that version; read it again.")
    current = row.content
    check_update(current, body, tables)
    new = {k: v for k, v in current.items() if k not in ALLOWED}
    for k in ALLOWED:
        if k in body:
            new[k] = copy.deepcopy(body[k])
    keep = frozenset({task_id}) if body.get("businessStatus") != current.get("businessStatus") else frozenset()

    changes = _reevaluate_plan(conn, row, task_id, new, keep, now, tables, rules)
    final = changes.pop(("Task", task_id), None)
    stored = save_resource(conn, final.content if final else new, now=now, municipality=row.municipality,
                           patient_id=row.patient_id, message_id=row.message_id, changed_by=client_name)
    for item in changes.values():
        save_resource(conn, item.content, now=now, municipality=item.municipality, patient_id=item.patient_id,
                      message_id=item.message_id, changed_by=client_name)
    return stored


def _focus(task: dict) -> Ref | None:
    """The ServiceRequest a Task focuses (its plan), or None."""
    focus = task.get("focus")
    if not isinstance(focus, dict) or not isinstance(focus.get("reference"), str):
        return None
    ref = Ref.parse(focus["reference"])
    return ref if ref is not None and ref.type == "ServiceRequest" else None


def _reevaluate_plan(conn: Connection, row, task_id: str, new: dict, keep: frozenset[str], now: dt.datetime,
                     tables: CodeTables, rules: RuleSet) -> dict[tuple[str, str], _Saved]:
    from adapter.pipeline import apply_rules, validate_bytes

    focus = _focus(new)
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
    at = _datetime(sr.content.get("authoredOn") or "") or as_utc(message.received_at)
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
    refs = PlanRefs(sr_ref, subject.get("reference") if isinstance(subject, dict) else None)
    changed = plan_changes(sched, tasks, ctx=ctx, proposal=proposal, refs=refs, tables=tables,
                           keep_business_status=keep, level_changes=level_changes)
    out: dict[tuple[str, str], _Saved] = {}
    for tid, content in changed.items():
        source = rows.get(tid)
        if tid == task_id:
            out[("Task", tid)] = _Saved(content, row.municipality, row.patient_id, row.message_id)
        elif source is not None:
            out[("Task", tid)] = _Saved(content, source.municipality, source.patient_id, source.message_id)
        else:
            out[("Task", tid)] = _Saved(content, row.municipality, sr.patient_id, sr.message_id)
    if sched.confirmed_level is not None:
        confirmed = confirm_level(sr.content, sched.confirmed_level, tables)
        if confirmed != sr.content:
            out[("ServiceRequest", sr.id)] = _Saved(confirmed, row.municipality, sr.patient_id, sr.message_id)
    return out
