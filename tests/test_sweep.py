"""The timed re-evaluation: time passing moves business statuses and creates the
free-choice Task for a plan nobody touched."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from adapter.service.ingest import ingest
from adapter.service.sweep import reevaluate_all
from adapter.store.engine import open_store
from adapter.store.schema import resources
from conftest import DATA, runtime_for

T0 = dt.datetime(2026, 3, 2, 8, 15, tzinfo=dt.UTC)  # envelope Sent of minimal-almen


def tasks(engine):
    with engine.connect() as conn:
        rows = conn.execute(select(resources.c.content).where(resources.c.type == "Task")).scalars().all()
    return {t["code"]["coding"][0]["code"]: t for t in rows}


def test_time_passing_moves_statuses_and_adds_free_choice(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path}/a.db")
    ingest(runtime_for(engine), (DATA / "ggop" / "minimal-almen.xml").read_bytes(), received_at=T0)
    before = tasks(engine)
    assert before["offer-start"]["businessStatus"]["coding"][0]["code"] == "on-time"
    assert "inform-free-choice" not in before
    # the plan shortens the start to 5 days after discharge (2026-03-01): due 2026-03-06
    counts = reevaluate_all(runtime_for(engine), dt.datetime(2026, 3, 5, 12, 0, tzinfo=dt.UTC))
    assert counts["plans"] == 1
    assert tasks(engine)["offer-start"]["businessStatus"]["coding"][0]["code"] == "due-soon"
    reevaluate_all(runtime_for(engine), dt.datetime(2026, 3, 12, 12, 0, tzinfo=dt.UTC))
    after = tasks(engine)
    assert after["offer-start"]["businessStatus"]["coding"][0]["code"] == "overdue"
    assert after["inform-free-choice"]["status"] == "requested"
    assert after["offer-start"]["meta"]["versionId"] == "3"
    # nothing more happens when nothing more changes
    assert reevaluate_all(runtime_for(engine), dt.datetime(2026, 3, 12, 12, 5, tzinfo=dt.UTC))["changed"] == 0
