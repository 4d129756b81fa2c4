"""Outbox rows written when a message is accepted, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from adapter.fhir.bundle import patient_id
from adapter.routing.outbox import payload_of
from adapter.service.ingest import ingest
from adapter.store.schema import outbox, resources
from conftest import DATA, runtime_for

FULL = (DATA / "ggop" / "full-specialiseret.xml").read_bytes()
LETTER = (DATA / "xdis91" / "letter-to-municipality.xml").read_bytes()
T0 = dt.datetime(2026, 4, 7, 15, 0, tzinfo=dt.UTC)


def push(engine, raw, at=T0):
    return ingest(runtime_for(engine), raw, received_at=at, client="test")


def rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(outbox).order_by(outbox.c.id)).all()


def test_one_row_per_recipient_each_with_the_payload(engine):
    result = push(engine, FULL)
    got = rows(engine)
    assert [(r.recipient, r.role, r.state) for r in got] == [
        ("municipality:0851", "primary", "pending"), ("gln:5790001234560", "gp", "pending"),
        ("gln:5790001112226", "hospital", "pending")]
    assert got[1].addresses == ["ydernummer:012345"]
    assert got[0].payload == result.bundle  # stored once, on the first row; the others share it
    assert [r.payload for r in got[1:]] == [None, None]
    with engine.connect() as conn:
        assert all(payload_of(conn, r) == result.bundle for r in got)
    for r in got:
        assert r.attempts == 0 and r.message_id == result.message_id
        assert r.order_key == patient_id(result.bundle)
    assert len({r.order_key for r in got}) == 1


def test_a_letter_stores_its_tasks_and_sends_them(engine):
    push(engine, LETTER, at=dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC))
    (row,) = rows(engine)
    assert row.recipient == "municipality:0851"
    tasks = [e["resource"] for e in row.payload["entry"] if e["resource"]["resourceType"] == "Task"]
    assert sorted(t["code"]["coding"][0]["code"] for t in tasks) == ["answer-letter", "visitate-child"]
    with engine.connect() as conn:
        stored = {r.id: r for r in conn.execute(select(resources).where(resources.c.type == "Task"))}
    assert set(stored) == {t["id"] for t in tasks}
    for t in tasks:
        s = stored[t["id"]]
        assert s.municipality == "0851" and s.content["owner"]["reference"].startswith("Organization/")
        assert s.content["meta"]["versionId"] == "1"


def test_a_duplicate_adds_no_rows_and_a_correction_follows_its_original(engine):
    push(engine, FULL)
    push(engine, FULL, at=T0 + dt.timedelta(hours=1))
    assert len(rows(engine)) == 3
    corrected = FULL.replace(b"ENV20260407001", b"ENV20260408001").replace(
        b"<TypeCode>GGOP</TypeCode>", b"<TypeCode>GGOP</TypeCode>\n            <StatusCode>rettetbrev</StatusCode>")
    result = push(engine, corrected, at=T0 + dt.timedelta(days=1))
    assert result.state == "accepted", [i.code for i in result.issues]
    got = rows(engine)
    assert len(got) == 6
    first, second = got[0], got[3]
    assert first.recipient == second.recipient and first.order_key == second.order_key and first.id < second.id
