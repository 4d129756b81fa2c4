"""Concurrent delivery on PostgreSQL: several rows at a time per worker and two workers on one
outbox, every row delivered exactly once, a patient's rows in their order for each recipient,
and a stalled recipient holding only its own lanes (no head-of-line blocking).

The outbox is filled directly (many rows per patient and recipient, each payload naming its
row), so the properties are checked row by row at the receiving end."""

from __future__ import annotations

import datetime as dt
import os
import threading

import pytest
from sqlalchemy import insert, select, text
from tests.support.fhir_endpoints import Reply, StubEndpoint

from adapter.routing.routes import RoutesFile
from adapter.routing.worker import Worker
from adapter.store.engine import open_store
from adapter.store.schema import messages, outbox

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def pg_engine():
    url = os.environ.get("ADAPTER_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL: set ADAPTER_TEST_POSTGRES_URL (make test starts a local server)")
    from conftest import _reset_postgres

    _reset_postgres(url)
    engine = open_store(url)
    yield engine
    engine.dispose()


def fill(engine, recipients: list[str], patients: int, per_patient: int) -> list[int]:
    """Rows for every (patient, recipient), ``per_patient`` each, interleaved; their ids."""
    with engine.begin() as conn:
        ids = []
        for n in range(per_patient):
            for p in range(patients):
                message_id = conn.execute(insert(messages).values(  # one message: a row per recipient
                    received_at=T0, sha256="0" * 64, size=0, raw=b"", state="accepted")).inserted_primary_key[0]
                for r in recipients:
                    row = conn.execute(insert(outbox).values(
                        message_id=message_id, created_at=T0, recipient=r, role=f"r{n}", order_key=f"patient-{p}",
                        state="pending", attempts=0, next_attempt_at=T0))
                    ids.append(row.inserted_primary_key[0])
        # each payload names its row, so the receiver can tell the rows apart
        for rid in ids:
            conn.execute(outbox.update().where(outbox.c.id == rid).values(payload={
                "resourceType": "Bundle", "type": "transaction", "id": f"row-{rid}",
                "entry": [{"fullUrl": f"urn:uuid:{rid}", "resource": {"resourceType": "Basic", "id": f"b{rid}"},
                           "request": {"method": "PUT", "url": f"Basic/b{rid}"}}]}))
    return ids


def routes(tmp_path, stubs: dict[str, StubEndpoint]) -> RoutesFile:
    path = tmp_path / "routing.yaml"
    path.write_text("routes:\n" + "".join(f'  "{k}": {{mode: push, base_url: "{s.base_url}"}}\n'
                                          for k, s in stubs.items()))
    return RoutesFile(path)


def arrivals(stub: StubEndpoint) -> list[int]:
    return [int(p.body["id"].split("-")[1]) for p in stub.posts if p.body]


def two_workers_deliver_once_in_order(pg_engine, tmp_path, recipients: list[str], *, patients: int,
                                      per_patient: int, delay: float, concurrency: int,
                                      per_recipient: int) -> list[Worker]:
    """Two workers (an engine each, as two processes would have) empty the outbox: every row
    is delivered exactly once and each patient's rows reach a recipient in their order."""
    ids = fill(pg_engine, recipients, patients=patients, per_patient=per_patient)
    stubs = {r: StubEndpoint(delay=delay).start() for r in recipients}
    try:
        table = routes(tmp_path, stubs)
        second = open_store(str(pg_engine.url.render_as_string(hide_password=False)))
        workers = [Worker(engine, table, concurrency=concurrency, per_recipient=per_recipient, poll_interval=0.05)
                   for engine in (pg_engine, second)]
        threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        second.dispose()
        with pg_engine.connect() as conn:
            got = conn.execute(select(outbox.c.id, outbox.c.state, outbox.c.recipient, outbox.c.order_key)
                               .order_by(outbox.c.id)).all()
        assert {r.state for r in got} == {"delivered"}
        received = [rid for s in stubs.values() for rid in arrivals(s)]
        assert sorted(received) == sorted(ids)  # every row once, none twice
        assert sum(w.stats.delivered for w in workers) == len(ids)
        key = {r.id: (r.order_key, r.recipient) for r in got}
        for stub in stubs.values():
            seen: dict[tuple[str, str], list[int]] = {}
            for rid in arrivals(stub):
                seen.setdefault(key[rid], []).append(rid)
            for order in seen.values():
                assert order == sorted(order)  # a patient's rows reach the recipient in their order
        return workers
    finally:
        for s in stubs.values():
            s.stop()


def test_two_concurrent_workers_deliver_every_row_once_and_each_patient_in_order(pg_engine, tmp_path):
    workers = two_workers_deliver_once_in_order(
        pg_engine, tmp_path, [f"municipality:0{n}" for n in (101, 147, 151)], patients=6, per_patient=4,
        delay=0.002, concurrency=4, per_recipient=2)
    assert all(w.stats.delivered > 0 for w in workers)  # both took part


def test_a_stalled_recipient_holds_only_its_own_lanes(pg_engine, tmp_path):
    slow, fast = "municipality:0101", ["municipality:0147", "municipality:0151"]
    fill(pg_engine, [slow, *fast], patients=5, per_patient=2)
    release = threading.Event()
    stubs = {slow: StubEndpoint([Reply(200, hold=release) for _ in range(100)]).start(),
             **{r: StubEndpoint().start() for r in fast}}
    try:
        worker = Worker(pg_engine, routes(tmp_path, stubs), concurrency=4, per_recipient=1, poll_interval=0.05)
        thread = threading.Thread(target=worker.run, kwargs={"once": True})
        thread.start()
        # while the slow recipient holds its one lane, every row of the others is delivered
        fast_rows = 5 * 2 * len(fast)
        deadline = threading.Event()
        for _ in range(600):
            if sum(s.completed for r, s in stubs.items() if r in fast) == fast_rows:
                break
            deadline.wait(0.1)
        done_fast = sum(s.completed for r, s in stubs.items() if r in fast)
        held = len(stubs[slow].posts)
        release.set()
        thread.join(timeout=300)
        assert done_fast == fast_rows
        assert held == 1  # one lane for the stalled recipient: its other rows waited their turn
        with pg_engine.connect() as conn:
            assert set(conn.execute(select(outbox.c.state)).scalars()) == {"delivered"}
    finally:
        release.set()
        for s in stubs.values():
            s.stop()


# --------------------------------------------------------------------------------------------
# Batch claims (PostgreSQL): the claim statement itself, driven step by step
# --------------------------------------------------------------------------------------------


def chains(engine) -> dict[tuple[str, str], list[int]]:
    """Each (patient, recipient)'s row ids, in order."""
    with engine.connect() as conn:
        got = conn.execute(select(outbox.c.id, outbox.c.order_key, outbox.c.recipient).order_by(outbox.c.id)).all()
    out: dict[tuple[str, str], list[int]] = {}
    for r in got:
        out.setdefault((r.order_key, r.recipient), []).append(r.id)
    return out


def delivered(worker: Worker) -> None:
    """Record every row ``worker`` holds as delivered, as its lanes would hand them back."""
    now = T0 + dt.timedelta(minutes=1)
    worker._finished = [(row, dict(state="delivered", delivered_at=now, next_attempt_at=None, attempts=1,
                                   last_status=200, mode="push")) for row in worker._waiting]
    worker._waiting.clear()
    worker._write_finished()


def test_batch_claims_of_two_workers_never_overlap_and_keep_each_patient_in_order(pg_engine, tmp_path):
    fill(pg_engine, ["municipality:0101", "municipality:0147"], patients=5, per_patient=3)
    table = routes(tmp_path, {})
    order = chains(pg_engine)
    second = open_store(str(pg_engine.url.render_as_string(hide_password=False)))
    a = Worker(pg_engine, table, concurrency=8, per_recipient=8)
    b = Worker(second, table, concurrency=8, per_recipient=8)
    try:
        # one statement takes the first row of every patient and recipient, and nothing behind them
        assert a._claim_more() == 10
        assert set(a._held) == {ids[0] for ids in order.values()}
        # the other worker finds nothing: the heads are held, the rows behind them wait
        assert b._claim_more() == 0 and not b._held
        # once the heads' outcomes are written, the next rows are free, and only those
        delivered(a)
        assert not a._held
        assert b._claim_more() == 10
        assert set(b._held) == {ids[1] for ids in order.values()}
        assert a._claim_more() == 0
        # a worker whose connection ends (the worker killed) frees its rows at once
        taken = set(b._held)
        pid = b._connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with pg_engine.connect() as conn:  # returns once that session has ended
            assert conn.execute(text("SELECT pg_terminate_backend(:pid, 60000)"), {"pid": pid}).scalar()
        b._lose_connection()
        assert a._claim_more() == 10 and set(a._held) == taken
        delivered(a)
        assert a._claim_more() == 10 and set(a._held) == {ids[2] for ids in order.values()}
        delivered(a)
        assert a._claim_more() == 0
        with pg_engine.connect() as conn:
            assert set(conn.execute(select(outbox.c.state)).scalars()) == {"delivered"}
    finally:
        a._close_connection()
        b._close_connection()
        second.dispose()


def test_one_claim_takes_at_most_per_recipient_rows_of_a_recipient(pg_engine, tmp_path):
    fill(pg_engine, ["municipality:0101"], patients=6, per_patient=1)  # six patients, one recipient
    fill(pg_engine, ["municipality:0147"], patients=1, per_patient=1)
    w = Worker(pg_engine, routes(tmp_path, {}), concurrency=8, per_recipient=2)
    try:
        assert w._claim_more() == 3  # two of the six, and the other recipient's one
        assert sorted(w._held_per_recipient.values()) == [1, 2]
        assert w._claim_more() == 0  # the full recipient waits; nothing else is due
    finally:
        w._close_connection()


def test_two_workers_with_many_lanes_deliver_a_long_queue_once_in_order(pg_engine, tmp_path):
    # 300 rows in chains of five
    two_workers_deliver_once_in_order(
        pg_engine, tmp_path, [f"municipality:0{n}" for n in (101, 147, 151, 153)], patients=15, per_patient=5,
        delay=0.0, concurrency=8, per_recipient=3)
