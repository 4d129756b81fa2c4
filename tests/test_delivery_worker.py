"""The outbox worker against a stub endpoint, on SQLite and PostgreSQL: pull, unroutable until
a route appears, Retry-After, backoff until the maximum age, dead letters without patient data,
per-patient order, one worker per SQLite file, graceful stop, two workers on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import subprocess
import sys
import time

import pytest
from sqlalchemy import select, update
from tests.support.fhir_endpoints import Reply, StubEndpoint

from adapter.routing.routes import RoutesFile
from adapter.routing.worker import Worker, WorkerBusy
from adapter.service.ingest import ingest
from adapter.store.engine import open_store
from adapter.store.schema import outbox
from conftest import DATA, REPO, runtime_for

MINIMAL = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
FULL = (DATA / "ggop" / "full-specialiseret.xml").read_bytes()
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
OUTCOME_WITH_PATIENT_DATA = {"resourceType": "OperationOutcome", "issue": [{
    "severity": "error", "code": "invalid", "diagnostics": "Patient Tove Testesen 0103450017 is not acceptable",
    "expression": ["Bundle.entry[2].resource.subject"], "details": {"text": "Tove Testesen"}}]}


class Clock:
    def __init__(self, start: dt.datetime = T0 + dt.timedelta(minutes=1)):
        self.t = start

    def __call__(self) -> dt.datetime:
        return self.t

    def advance(self, **kw) -> None:
        self.t += dt.timedelta(**kw)


@pytest.fixture
def stub():
    s = StubEndpoint().start()
    yield s
    s.stop()


def push(engine, raw=MINIMAL, at=T0):
    result = ingest(runtime_for(engine), raw, received_at=at, client="test")
    assert result.state == "accepted"
    return result


def routes(tmp_path, body: str):
    p = tmp_path / "routing.yaml"
    p.write_text("defaults: {first_retry_seconds: 30, max_retry_seconds: 3600, max_age_hours: 24, "
                 "unroutable_recheck_seconds: 300}\nroutes:\n" + body, encoding="utf-8")
    return RoutesFile(p)


def stub_route(stub, key="municipality:0461", extra=""):
    return f'  "{key}": {{mode: push, base_url: "{stub.base_url}"{extra}}}\n'


def worker(engine, routes_file, clock, **kw):
    return Worker(engine, routes_file, clock=clock, rng=random.Random(7), **kw)


def rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(outbox).order_by(outbox.c.id)).all()


def aware(value):
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def test_a_municipality_without_an_entry_pulls(engine, tmp_path):
    push(engine)
    stats = worker(engine, routes(tmp_path, ""), Clock()).run(once=True)
    (row,) = rows(engine)
    assert row.state == "delivered" and row.mode == "pull" and row.endpoint is None and stats.pulled == 1


def test_push_delivers_the_payload_with_the_bearer_token(engine, tmp_path, stub):
    result = push(engine)
    w = worker(engine, routes(tmp_path, stub_route(stub, extra=", auth: {bearer_token_env: MUNI_TOKEN}")),
               Clock(), env={"MUNI_TOKEN": "s3cret"})
    w.run(once=True)
    (row,) = rows(engine)
    assert row.state == "delivered" and row.mode == "push" and row.last_status == 200 and row.attempts == 1
    (seen,) = stub.posts
    assert seen.path == "/fhir" and seen.headers["Authorization"] == "Bearer s3cret"
    assert seen.headers["Content-Type"] == "application/fhir+json"
    assert seen.body == result.bundle and all(e["request"]["method"] == "PUT" for e in seen.body["entry"])


def test_a_message_bundle_goes_to_process_message(engine, tmp_path, stub):
    push(engine)
    worker(engine, routes(tmp_path, stub_route(stub, extra=", payload: message")), Clock()).run(once=True)
    (seen,) = stub.posts
    assert seen.path == "/fhir/$process-message" and seen.body["type"] == "message"
    header = seen.body["entry"][0]["resource"]
    assert header["resourceType"] == "MessageHeader" and header["destination"][0]["endpoint"] == stub.base_url
    focus = header["focus"][0]["reference"]
    assert next(e for e in seen.body["entry"] if e["fullUrl"] == focus)["resource"]["resourceType"] == "ServiceRequest"
    assert rows(engine)[0].state == "delivered"


def test_message_response_codes_transient_retries_fatal_is_dead(engine, tmp_path):
    def answer(code):
        return Reply(200, {"resourceType": "Bundle", "type": "message", "entry": [
            {"resource": {"resourceType": "MessageHeader", "response": {"identifier": "x", "code": code}}},
            {"resource": OUTCOME_WITH_PATIENT_DATA}]})

    with StubEndpoint([answer("transient-error"), answer("fatal-error")]) as stub:
        push(engine)
        clock = Clock()
        w = worker(engine, routes(tmp_path, stub_route(stub, extra=", payload: message")), clock)
        w.run(once=True)
        assert rows(engine)[0].state == "pending" and "transient-error" in rows(engine)[0].last_error
        clock.advance(hours=1)
        w.run(once=True)
        (row,) = rows(engine)
        assert row.state == "dead" and "fatal-error" in row.last_error and "Tove" not in row.last_error


def test_unroutable_waits_visibly_until_a_route_appears_then_goes(engine, tmp_path, stub, caplog):
    push(engine, FULL, at=T0)
    table = routes(tmp_path, "")
    clock = Clock()
    w = worker(engine, table, clock)
    with caplog.at_level(logging.INFO, logger="adapter.routing"):
        w.run(once=True)
    got = {r.recipient: r for r in rows(engine)}
    assert got["municipality:0851"].state == "delivered"
    gp = got["gln:5790001234560"]
    assert gp.state == "unroutable" and "no route for gln:5790001234560 (nor ydernummer:012345)" in gp.last_error
    assert any("ALERT" in m and "gln:5790001234560" in m and "unroutable" in m for m in caplog.messages)
    assert "1207524006" not in caplog.text and "Demodatter" not in caplog.text
    clock.advance(hours=5)
    w.run(once=True)  # re-checked: still no route, nothing lost
    assert {r.recipient: r.state for r in rows(engine)}["gln:5790001234560"] == "unroutable"
    # an operator adds the GP by its ydernummer; the worker reads the file again
    table.path.write_text(table.path.read_text() + stub_route(stub, key="ydernummer:012345")
                          + stub_route(stub, key="gln:5790001112226"))
    w.run(once=True)
    assert {r.recipient: r.state for r in rows(engine)} == {
        "municipality:0851": "delivered", "gln:5790001234560": "delivered", "gln:5790001112226": "delivered"}
    assert len(stub.posts) == 2


def test_503_with_retry_after_then_success_is_delivered_once(engine, tmp_path):
    with StubEndpoint([Reply(503, headers={"Retry-After": "120"})]) as stub:
        push(engine)
        clock = Clock()
        w = worker(engine, routes(tmp_path, stub_route(stub)), clock)
        w.run(once=True)
        (row,) = rows(engine)
        assert row.state == "pending" and row.last_status == 503 and row.attempts == 1
        assert aware(row.next_attempt_at) == clock.t + dt.timedelta(seconds=120)  # Retry-After honoured
        clock.advance(seconds=119)
        w.run(once=True)
        assert len(stub.posts) == 1  # not before the server said
        clock.advance(seconds=1)
        w.run(once=True)
        (row,) = rows(engine)
        assert row.state == "delivered" and row.attempts == 2 and row.last_error is None
        assert len(stub.posts) == 2 and stub.completed == 1
        w.run(once=True)
        assert len(stub.posts) == 2


def test_400_is_a_dead_letter_with_the_status_and_no_patient_data(engine, tmp_path, caplog):
    with StubEndpoint([Reply(400, OUTCOME_WITH_PATIENT_DATA)]) as stub:
        push(engine)
        with caplog.at_level(logging.INFO, logger="adapter.routing"):
            worker(engine, routes(tmp_path, stub_route(stub)), Clock()).run(once=True)
        (row,) = rows(engine)
        assert row.state == "dead" and row.last_status == 400 and row.next_attempt_at is None
        assert row.last_error == "HTTP 400; refused; OperationOutcome error/invalid at Bundle.entry[2].resource.subject"
        for text in (row.last_error, caplog.text):
            assert "Tove" not in text and "0103450017" not in text and "Testesen" not in text
        assert any("ALERT" in m and "dead letter" in m for m in caplog.messages)


def test_connection_errors_back_off_exponentially_with_jitter_until_the_maximum_age(engine, tmp_path):
    push(engine)
    clock = Clock()
    w = worker(engine, routes(tmp_path, '  "municipality:0461": {mode: push, base_url: "http://127.0.0.1:9/fhir"}\n'),
               clock)
    start = clock.t
    delays = []
    while True:
        w.run(once=True)
        (row,) = rows(engine)
        if row.state != "pending":
            break
        nxt = aware(row.next_attempt_at)
        delays.append((nxt - clock.t).total_seconds())
        clock.t = nxt
    assert row.state == "dead" and row.last_status is None
    assert row.last_error.startswith(f"gave up after {row.attempts} attempts in 24 h; last: no connection")
    assert clock.t - start >= dt.timedelta(hours=24)  # retried for the whole maximum age
    for n, d in enumerate(delays[:6], 1):  # 30 s doubling, half fixed and half random
        step = 30 * 2 ** (n - 1)
        assert step / 2 <= d <= step, (n, d)
    assert max(delays) <= 3600 and len(set(delays)) > 5


def test_a_correction_is_never_delivered_before_its_original(engine, tmp_path):
    original = push(engine)
    corrected_raw = MINIMAL.replace(b"00000000004711", b"00000000004799").replace(
        b"<TypeCode>GGOP</TypeCode>", b"<TypeCode>GGOP</TypeCode>\n            <StatusCode>rettetbrev</StatusCode>"
    ).replace(b"Har brug for hj\xc3\xa6lp til trapper.", "Klarer trapper med gelænder.".encode())
    corrected = push(engine, corrected_raw, at=T0 + dt.timedelta(minutes=30))
    with StubEndpoint([Reply(503)]) as stub:
        clock = Clock(T0 + dt.timedelta(hours=1))
        w = worker(engine, routes(tmp_path, stub_route(stub)), clock)
        w.run(once=True)
        first, second = rows(engine)
        assert first.state == "pending" and first.attempts == 1
        assert second.state == "pending" and second.attempts == 0  # waits for the original
        assert len(stub.posts) == 1
        clock.advance(hours=1)
        w.run(once=True)
        assert [r.state for r in rows(engine)] == ["delivered", "delivered"]
        bodies = [p.body for p in stub.posts]
        assert bodies == [original.bundle, original.bundle, corrected.bundle]


def test_an_operator_cancel_during_a_delivery_is_not_overwritten(engine, tmp_path, stub):
    push(engine)
    w = worker(engine, routes(tmp_path, stub_route(stub)), Clock())
    w.table = w.routes.load()
    with engine.connect() as conn:
        row = conn.execute(select(outbox)).first()
    change = w._work(row, Clock()())
    with engine.begin() as conn:
        conn.execute(update(outbox).values(state="cancelled"))
        w._record(conn, row, change)
    assert rows(engine)[0].state == "cancelled"


def test_sqlite_allows_one_worker(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path}/adapter.db")
    first = Worker(engine, routes(tmp_path, ""))
    first.acquire()
    try:
        with pytest.raises(WorkerBusy, match="another worker is running on this SQLite database"):
            Worker(engine, routes(tmp_path, "")).run(once=True)
    finally:
        first.release()
    Worker(engine, routes(tmp_path, "")).run(once=True)  # free again
    env = {**os.environ, "ADAPTER_DATABASE_URL": f"sqlite:///{tmp_path}/adapter.db"}
    first.acquire()
    try:
        cli = subprocess.run([sys.executable, "-m", "adapter", "worker", "--once", "--routes",
                              str(tmp_path / "routing.yaml")], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=60)
    finally:
        first.release()
    assert cli.returncode == 3 and "SQLite allows one worker" in cli.stderr
    engine.dispose()


def test_stop_ends_the_loop_after_the_work_in_hand(engine, tmp_path):
    push(engine)
    naps = []
    w = worker(engine, routes(tmp_path, ""), Clock(), sleep=lambda s: (naps.append(s), w.stop()))
    stats = w.run(once=False)
    assert stats.pulled == 1 and naps == [w.poll_interval]


def test_sigterm_stops_a_running_worker_gracefully(tmp_path):
    (tmp_path / "routing.yaml").write_text("routes: {}\n")
    env = {**os.environ, "ADAPTER_DATABASE_URL": f"sqlite:///{tmp_path}/adapter.db"}
    proc = subprocess.Popen([sys.executable, "-m", "adapter", "worker", "--routes", str(tmp_path / "routing.yaml"),
                             "--poll-interval", "0.2"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "adapter.db.worker.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped: delivered 0" in err, err


def test_two_workers_on_postgresql_never_deliver_the_same_row_twice(tmp_path):
    url = os.environ.get("ADAPTER_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL: set ADAPTER_TEST_POSTGRES_URL")
    from adapter.generate import generate_messages
    from conftest import _reset_postgres

    _reset_postgres(url)
    engine = open_store(url)
    messages = generate_messages(40, seed=11)
    for m in messages:
        push(engine, m.xml, at=T0)
    keys = sorted({r.recipient for r in rows(engine)})
    with StubEndpoint(delay=0.05) as stub:  # every recipient is the stub: each row must arrive exactly once
        path = tmp_path / "routing.yaml"
        path.write_text("routes:\n" + "".join(stub_route(stub, key=k) for k in keys))
        env = {**os.environ, "ADAPTER_DATABASE_URL": url}
        # two lanes each: the queue lasts long enough for the later of the two to start and take part
        procs = [subprocess.Popen([sys.executable, "-m", "adapter", "worker", "--once", "--routes", str(path),
                                   "--concurrency", "2"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outputs = [p.communicate(timeout=300)[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        got = rows(engine)
        assert [r.state for r in got] == ["delivered"] * len(got)
        assert len(stub.posts) == len(got) == stub.completed
        bodies = [repr(p.body) for p in stub.posts]
        assert len(set(bodies)) >= len({r.message_id for r in got})  # one POST per row, none twice
        per_worker = [sum("delivered to" in line for line in out.splitlines()) for out in outputs]
        assert sum(per_worker) == len(got) and all(n > 0 for n in per_worker), per_worker
    engine.dispose()


def test_a_defect_while_delivering_is_a_dead_letter_and_the_queue_goes_on(engine, tmp_path, stub, monkeypatch):
    push(engine, FULL)
    import adapter.routing.worker as worker_module

    real = worker_module.deliver
    calls = []

    def flaky(session, route, payload, **kw):
        calls.append(kw["recipient"])
        if len(calls) == 1:
            raise TypeError("a defect")
        return real(session, route, payload, **kw)

    monkeypatch.setattr(worker_module, "deliver", flaky)
    lines = stub_route(stub, "municipality:0851") + stub_route(stub, "gln:5790001234560")
    worker(engine, routes(tmp_path, lines), Clock()).run(once=True)
    got = {r.recipient: r for r in rows(engine)}
    assert got["municipality:0851"].state == "dead"
    assert got["municipality:0851"].last_error == "internal error (TypeError)"
    assert got["gln:5790001234560"].state == "delivered"


def test_a_database_error_in_the_loop_is_logged_and_survived(engine, tmp_path, caplog):
    from sqlalchemy.exc import OperationalError

    push(engine)
    w = worker(engine, routes(tmp_path, ""), Clock())
    real_step, failures = w.step, []

    def step():
        if not failures:
            failures.append(1)
            raise OperationalError("SELECT", {}, ConnectionError("server closed the connection"))
        return real_step()

    w.step = step
    naps = []
    w.sleep = lambda s: naps.append(s) or (len(naps) > 1 and w.stop())
    with caplog.at_level(logging.ERROR, logger="adapter.routing"):
        stats = w.run()
    assert stats.pulled == 1 and "ALERT database error (ConnectionError)" in caplog.text
    with pytest.raises(OperationalError):
        failures.clear()
        w._stop.clear()
        w.run(once=True)
