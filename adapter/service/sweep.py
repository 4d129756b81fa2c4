"""The timed re-evaluation of open plans: deadlines move to due soon / overdue as time
passes, and a plan whose start deadline passed without an offer gets its free-choice Task,
even when no municipality touched it. Run by ``ggop-adapter reevaluate`` (once, or every
``--interval`` seconds) next to the service.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import false, select
from sqlalchemy.engine import Connection

from adapter.service.replan import replan
from adapter.store.resources import save_resource
from adapter.store.schema import resources

if TYPE_CHECKING:
    from adapter.runtime import Runtime

log = logging.getLogger("ggop.sweep")
ACTOR = "ggop-adapter"
OPEN = ("requested", "accepted", "received", "ready", "in-progress", "on-hold")


def reevaluate_all(runtime: Runtime, now: dt.datetime) -> dict[str, int]:
    """Re-evaluate every active plan as of ``now``; one transaction per plan."""
    engine = runtime.engine
    with engine.connect() as conn:
        plans = [(r.id, r.municipality) for r in conn.execute(
            select(resources.c.id, resources.c.municipality, resources.c.content)
            .where(resources.c.type == "ServiceRequest", resources.c.deleted == false()))
            if r.content.get("status") == "active"]
    counts = {"plans": 0, "changed": 0}
    for sr_id, municipality in plans:
        with engine.begin() as conn:
            counts["plans"] += 1
            counts["changed"] += _sweep_plan(conn, runtime, sr_id, municipality, now)
    return counts


def _sweep_plan(conn: Connection, runtime: Runtime, sr_id: str, municipality: str | None, now: dt.datetime) -> int:
    ref = f"ServiceRequest/{sr_id}"
    conn.execute(select(resources.c.version_id).where(
        resources.c.type == "ServiceRequest", resources.c.id == sr_id).with_for_update()).first()
    task = next((r for r in conn.execute(
        select(resources.c.id, resources.c.version_id, resources.c.content, resources.c.municipality,
               resources.c.patient_id, resources.c.message_id)
        .where(resources.c.type == "Task", resources.c.municipality == municipality,
               resources.c.deleted == false()).with_for_update())
        if (r.content.get("focus") or {}).get("reference") == ref and r.content.get("status") in OPEN), None)
    if task is None:
        return 0
    # The plan is replayed as if this Task were written again unchanged: no new outputs, so
    # only the passing of time changes anything.
    changes = replan(conn, task, task.id, task.content, frozenset(), now, runtime.tables,
                     runtime.rules_for(task.municipality),
                     runtime.id_key)
    for item in changes.values():
        save_resource(conn, item.content, now=now, municipality=item.municipality, patient_id=item.patient_id,
                      message_id=item.message_id, changed_by=ACTOR)
    return len(changes)
