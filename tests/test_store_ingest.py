"""Receiving messages into the store, on SQLite and PostgreSQL: stored first, MedCom
deduplication, corrections, concurrent duplicates, migrations."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select
from tests.support import TEST_ID_KEY

from adapter.service.ingest import ingest
from adapter.store.engine import open_store
from adapter.store.schema import audit, message_keys, messages, outbox, resource_history, resources
from conftest import DATA, runtime_for

MINIMAL = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def push(engine, raw, at=T0, client="test-hospital"):
    return ingest(runtime_for(engine), raw, received_at=at, client=client)


def count(engine, table, *where):
    with engine.connect() as conn:
        q = select(func.count()).select_from(table)
        for w in where:
            q = q.where(w)
        return conn.execute(q).scalar_one()


def test_accepted_message_is_stored_with_resources_outbox_and_audit(engine):
    result = push(engine, MINIMAL)
    assert result.state == "accepted" and result.http_status == 200 and result.receipt_positive
    assert b"<PositiveReceipt>" in result.receipt
    with engine.connect() as conn:
        row = conn.execute(select(messages).where(messages.c.id == result.message_id)).one()
        assert row.raw == MINIMAL and row.state == "accepted" and row.municipality == "0461"
        assert row.receipt == result.receipt
        types = {r.type for r in conn.execute(select(resources.c.type))}
        assert {"Patient", "ServiceRequest", "CarePlan", "Task"} <= types
        task = conn.execute(select(resources.c.content).where(resources.c.type == "Task")).first().content
        assert task["meta"]["versionId"] == "1" and task["for"]["reference"].startswith("Patient/")
        box = conn.execute(select(outbox)).one()
        assert box.recipient == "municipality:0461" and box.state == "pending"
        trail = " ".join(f"{a.action} {a.target} {a.outcome} {a.detail}" for a in conn.execute(select(audit)))
    assert "0103450017" not in trail and "Testesen" not in trail


def test_duplicate_gets_the_identical_receipt_and_creates_nothing(engine):
    first = push(engine, MINIMAL)
    before = count(engine, resource_history)
    again = push(engine, MINIMAL, at=T0 + dt.timedelta(hours=3))
    assert again.state == "duplicate" and again.receipt == first.receipt and again.http_status == 200
    assert count(engine, resource_history) == before
    assert count(engine, outbox) == 1
    assert count(engine, messages) == 2  # the resend is kept, marked as a duplicate


def test_reused_letter_id_with_other_content_is_refused_and_logged(engine):
    push(engine, MINIMAL)
    other = push(engine, MINIMAL.replace(b"Tove", b"Tova"))
    assert other.state == "refused" and other.http_status == 422
    assert b"<RefuseCode>" in other.receipt and b"GGOP-E321" in other.receipt
    assert count(engine, audit, audit.c.outcome == "refused") == 1
    with engine.connect() as conn:
        patient = conn.execute(select(resources.c.content).where(resources.c.type == "Patient")).one().content
    assert patient["name"][0]["given"] == ["Tove"]


def test_corrected_letter_supersedes_and_keeps_history(engine):
    first = push(engine, MINIMAL)
    corrected = (MINIMAL.replace(b"<TypeCode>GGOP</TypeCode>", b"<TypeCode>GGOP</TypeCode>\n            <StatusCode>rettetbrev</StatusCode>")
                 .replace(b"00000000004711", b"00000000004799")
                 .replace("Prøvevej 1".encode(), "Prøvevej 3".encode()))
    second = push(engine, corrected, at=T0 + dt.timedelta(days=1))
    assert second.state == "accepted", second.issues
    with engine.connect() as conn:
        assert conn.execute(select(messages.c.state).where(messages.c.id == first.message_id)).scalar_one() == "superseded"
        patient = conn.execute(select(resources).where(resources.c.type == "Patient")).one()
        assert patient.version_id == 2 and patient.content["address"][0]["line"] == ["Prøvevej 3"]
        versions = conn.execute(select(resource_history.c.version_id).where(
            resource_history.c.id == patient.id).order_by(resource_history.c.version_id)).scalars().all()
    assert versions == [1, 2]


def test_refused_message_is_stored_and_its_resend_gets_the_same_refusal(engine):
    bad = (DATA / "invalid" / "bad-cpr-date.xml").read_bytes()
    first = push(engine, bad)
    assert first.state == "refused" and first.http_status == 422 and not first.receipt_positive
    assert count(engine, resources) == 0
    again = push(engine, bad)
    assert again.state == "duplicate" and again.receipt == first.receipt and again.http_status == 422


def test_unreadable_message_is_stored_without_receipt(engine):
    result = push(engine, b"<<<not xml")
    assert result.state == "refused" and result.http_status == 400 and result.receipt is None
    with engine.connect() as conn:
        assert conn.execute(select(messages.c.raw).where(messages.c.id == result.message_id)).scalar_one() == b"<<<not xml"


def test_eight_concurrent_duplicates_leave_one_set_of_resources(engine):
    results = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        results.append(push(engine, MINIMAL))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    states = sorted(r.state for r in results)
    assert states == ["accepted"] + ["duplicate"] * 7
    assert len({r.receipt for r in results}) == 1
    assert count(engine, message_keys) == 1
    assert count(engine, resource_history) == count(engine, resources)  # every resource at version 1
    assert count(engine, outbox) == 1


def test_concurrent_plans_naming_the_same_organisations_keep_one_line_of_versions(engine):
    """Eight request threads store generated plans whose hospitals and municipalities recur
    with other details: every plan is accepted, and every shared Organization's history runs
    1, 2, … up to its current version (no version written twice, none lost)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.versions import version_lines

    from adapter.generate import generate_messages

    plans = [m.xml for m in generate_messages(160, seed=23) if m.kind == "ggop"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda raw: push(engine, raw), plans))
    assert {r.state for r in results} == {"accepted"}
    current, versions = version_lines(engine)
    assert max(current.values()) > 1  # the organisations were written again and again
    assert versions == {rid: list(range(1, n + 1)) for rid, n in current.items()}


def test_migrations_create_exactly_the_declared_schema(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from adapter.store.schema import metadata

    engine = open_store(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_refused_message_corrected_under_the_same_ids_is_processed_again(engine):
    bad = MINIMAL.replace(b"5790007654324", b"5790007654325")  # receiver GLN check digit
    assert push(engine, bad).state == "refused"
    fixed = push(engine, MINIMAL, at=T0 + dt.timedelta(minutes=5))
    assert fixed.state == "accepted" and fixed.receipt_positive


def test_a_hospital_may_only_send_as_its_own_location_numbers(engine):
    other = ingest(runtime_for(engine), MINIMAL, received_at=T0,
                   client="other-hospital", allowed_senders=("5790000000005",))
    assert other.state == "refused" and other.http_status == 403 and other.receipt is None
    assert count(engine, resources) == 0
    own = ingest(runtime_for(engine), MINIMAL, received_at=T0,
                 client="test-hospital", allowed_senders=("5790001234560",))
    assert own.state == "accepted"


def test_a_processing_defect_keeps_the_message_as_failed(engine, monkeypatch):
    import adapter.runtime as runtime_module
    from adapter.errors import MappingError, issue

    def broken(*args, **kwargs):
        raise MappingError(issue("GGOP-E401", detail="test"))

    monkeypatch.setattr(runtime_module.Runtime, "convert", broken)
    with pytest.raises(MappingError):
        push(engine, MINIMAL)
    with engine.connect() as conn:
        rows = conn.execute(select(messages.c.state, messages.c.raw)).all()
    assert [(r.state, r.raw) for r in rows] == [("failed", MINIMAL)]
    assert count(engine, resources) == 0 and count(engine, outbox) == 0


def test_a_conflict_in_the_array_statements_is_raised_as_sqlalchemy_raises_it(postgres_url):
    """The array statements (PostgreSQL's) go to psycopg directly: a version written twice still
    fails as an IntegrityError (which the message transaction answers by running again), and
    the transaction is rolled back as SQLAlchemy rolls back any other."""
    from sqlalchemy.exc import IntegrityError

    from adapter.store import pg_arrays
    from adapter.store.engine import drop_schema

    drop_schema(postgres_url)
    engine = open_store(postgres_url, id_key=TEST_ID_KEY.encode())

    row = {"type": "Organization", "id": "o-1", "version_id": 1, "municipality": None, "patient_id": None,
           "content": {"resourceType": "Organization", "id": "o-1", "meta": {"versionId": "1"}},
           "status": None, "as_of": None}
    with pytest.raises(IntegrityError), engine.begin() as conn:
        for _ in range(2):  # the second writes history version 1 again
            pg_arrays.write_resources(conn, [row], now=T0, message_id=None, changed_by="test", grants=[],
                                      grant_to=None)
    assert count(engine, resources) == 0 and count(engine, resource_history) == 0
    engine.dispose()


def test_a_batch_never_waits_for_a_shared_resource_it_did_not_lock_up_front(postgres_url):
    """A bulk batch holds the locks it took up front; a shared resource that turns out to need
    writing later is taken without waiting: held elsewhere, the batch gives up (LockBusy, and
    the bulk writer stores its messages one per transaction) instead of waiting while holding
    locks another transaction may wait for."""
    from adapter.pipeline import convert_bytes
    from adapter.store import pg_arrays
    from adapter.store.engine import drop_schema
    from adapter.store.resources import bundle_resources, save_bundle

    drop_schema(postgres_url)
    engine = open_store(postgres_url, id_key=TEST_ID_KEY.encode())
    bundle = convert_bytes(MINIMAL, T0, id_key=TEST_ID_KEY.encode()).bundle
    (patient,) = [("Patient", r["id"]) for r in bundle_resources(bundle) if r["resourceType"] == "Patient"]
    with engine.connect() as other:
        other.begin()
        pg_arrays.lock_shared(other, [patient])
        with pytest.raises(pg_arrays.LockBusy), engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")  # waiting would fail otherwise, not hang
            save_bundle(conn, bundle, now=T0, municipality="0461", message_id=None, changed_by="test",
                        locked=set())
        other.rollback()
    locked: set = set()
    with engine.begin() as conn:  # free again: taken, and added to what the batch holds
        save_bundle(conn, bundle, now=T0, municipality="0461", message_id=None, changed_by="test", locked=locked)
    assert patient in locked and count(engine, resources) > 0
    engine.dispose()
