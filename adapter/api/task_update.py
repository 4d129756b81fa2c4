"""``PUT /fhir/Task/<id>``: a municipality records what it did, and the plan is re-evaluated.

A municipal client may change ``status`` (along :data:`TRANSITIONS`), ``businessStatus``,
``output`` and ``note``; any other difference from the stored Task is refused (422, one issue
naming each element). Outputs use ``adapter/mappings/codesystems/task-output-types.json``:

* ``offered-start`` (``valueDate``): the first training meeting offered to the citizen;
* ``citizen-informed`` (``valueDateTime``): when the citizen was told place, time and level
  (without it, the time the offered start was recorded counts);
* ``confirmed-level`` (``valueCodeableConcept``): the KL CareSocialCodes code of basal or
  avanceret, as a therapist confirmed it;
* ``course-started`` (``valueDate``): the first training session held (the 14-day window for
  changing the level counts from it);
* ``earliest-start`` (``valueDate``): the earliest start read from a start condition the adapter
  could not interpret (the start and free-choice deadlines count from it).

The update is stored with the plan's re-evaluation (:func:`adapter.service.replan.replan`)
in one transaction; the updated Task gets its deadline's ``businessStatus`` too unless the
client set it itself. :func:`check_update` is pure; :func:`update_task` reads and writes the
store. Error texts name elements, never values.
"""

from __future__ import annotations

import copy
import datetime as dt
import re

from sqlalchemy import false, select
from sqlalchemy.engine import Connection

from adapter.api.access import safe_name
from adapter.codes import CodeTables
from adapter.rules.book import RuleBook
from adapter.service.replan import (
    codings,
    level_codes,
    parse_date,
    parse_datetime,
    plan_of,
    replan,
)
from adapter.store.resources import save_resource
from adapter.store.schema import resources
from adapter.store.search import Scope

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
ALLOWED = ("status", "businessStatus", "output", "note")
NOT_COMPARED = ("resourceType", "id", "meta")
OUTPUT_VALUE = {"offered-start": "valueDate", "citizen-informed": "valueDateTime",
                "confirmed-level": "valueCodeableConcept", "course-started": "valueDate",
                "earliest-start": "valueDate"}
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




def _check_codeable(value, where: str) -> list[tuple[str | None, str]]:
    if not isinstance(value, dict):
        return [(where, f"{where} must be a CodeableConcept.")]
    coding = value.get("coding", [])
    problems: list[tuple[str | None, str]] = []
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
    for c in codings(value):
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
    levels = level_codes(tables)
    problems: list[tuple[str | None, str]] = []
    seen: set[str] = set()
    for i, out in enumerate(value):
        where = f"Task.output[{i}]"
        if not isinstance(out, dict):
            problems.append((where, f"{where} must be an object."))
            continue
        codes = [c.get("code") for c in codings(out.get("type")) if c.get("system") == system]
        code = codes[0] if len(codes) == 1 else None
        if code not in OUTPUT_VALUE:
            problems.append((f"{where}.type", (f"{where}.type needs one code of {system} "
                                              f"({', '.join(OUTPUT_VALUE)}).")))
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
        if OUTPUT_VALUE[code] == "valueDate":
            if not isinstance(v, str) or not _DATE.match(v) or parse_date(v) is None:
                problems.append((f"{where}.valueDate", f"{where}.valueDate must be a date YYYY-MM-DD."))
        elif code == "citizen-informed":
            if not isinstance(v, str) or not _DATETIME.match(v) or parse_datetime(v) is None:
                problems.append((f"{where}.valueDateTime",
                                 f"{where}.valueDateTime must be a date and time with an offset."))
        elif not any((c.get("system"), c.get("code")) in levels for c in codings(v)):
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
            (_element(k), (f"{_element(k)} may not be changed; a municipality may change status, businessStatus, "
                          "output and note.")) for k in forbidden])
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
# Store
# --------------------------------------------------------------------------------------------


def update_task(conn: Connection, *, task_id: str, body, if_match: str | None, scope: Scope, client_name: str,
                now: dt.datetime, tables: CodeTables, rules: RuleBook, id_key: bytes) -> dict:
    """Check and store a Task update and the plan's re-evaluation; returns the stored Task.

    Raises :class:`UpdateRejected` (404 when the Task is unknown or outside ``scope``)."""
    version = parse_if_match(if_match)
    conds = [resources.c.type == "Task", resources.c.id == task_id, resources.c.deleted == false()]
    cond = scope.owns(resources.c.municipality)  # Tasks belong to one municipality's plan
    if cond is not None:
        conds.append(cond)
    # Updates of one plan are serialised on its ServiceRequest, locked before the Task: the
    # re-evaluation writes the plan's other Tasks, so two updates of sibling Tasks must not
    # each hold their own Task while waiting for the other's (SQLite: BEGIN IMMEDIATE anyway).
    peek = conn.execute(select(resources.c.content, resources.c.municipality).where(*conds)).first()
    if peek is not None:
        focus = plan_of(peek.content)
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

    changes = replan(conn, row, task_id, new, keep, now, tables, rules.for_municipality(row.municipality), id_key)
    final = changes.pop(("Task", task_id), None)
    stored = save_resource(conn, final.content if final else new, now=now, municipality=row.municipality,
                           patient_id=row.patient_id, message_id=row.message_id, changed_by=client_name)
    for item in changes.values():
        save_resource(conn, item.content, now=now, municipality=item.municipality, patient_id=item.patient_id,
                      message_id=item.message_id, changed_by=client_name)
    return stored


