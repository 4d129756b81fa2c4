"""The service under gunicorn facing misbehaving senders and a failing store: chunked bodies
over the limit (413), stalled uploads (408, and /healthz keeps answering), a full SQLite store
(503 with Retry-After, /readyz not ready, nothing acknowledged that was not stored), and
PostgreSQL stopped and started again (a private server the test runs itself)."""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest
import requests
from sqlalchemy import event, func, select
from tests.support.fhir_world import write_clients
from tests.support.private_postgres import NoPrivatePostgres, PrivatePostgres
from tests.support.service_process import kill_service, start_service, stop_service

from adapter.api.app import create_app
from adapter.generate import generate_messages
from adapter.store.engine import make_engine
from adapter.store.schema import messages
from conftest import DATA, REPO, runtime_for

pytestmark = pytest.mark.slow
PLAN = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
HOSPITAL = {"Authorization": "Bearer demo-hospital", "Content-Type": "application/xml"}


@pytest.fixture
def service(tmp_path):
    proc, base = start_service(f"sqlite:///{tmp_path}/a.db", REPO / "config" / "clients.sample.yaml", workers=1,
                               env={"ADAPTER_MAX_BYTES": "20000", "ADAPTER_BODY_TIMEOUT": "2"}, wait_for="/healthz")
    yield base
    stop_service(proc)


def test_a_chunked_body_over_the_limit_is_413(service):
    def chunks():
        for _ in range(100):
            yield b"<x>" + b"y" * 1000 + b"</x>"

    r = requests.post(service + "/medcom", data=chunks(), headers=HOSPITAL, timeout=30)
    assert r.status_code == 413 and "GGOP-E003" in r.text
    small = requests.post(service + "/medcom", data=iter([PLAN]), headers=HOSPITAL, timeout=30)
    assert small.status_code == 200  # a chunked message within the limit is read whole


def _stalled_upload(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(b"POST /medcom HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo-hospital\r\n"
              b"Content-Type: application/xml\r\nContent-Length: 5000\r\n\r\n<?xml version")
    return s


def test_stalled_uploads_get_408_and_do_not_starve_health_checks(service):
    stalled = [_stalled_upload(service) for _ in range(10)]  # more than the worker's threads
    try:
        time.sleep(0.5)
        started = time.monotonic()
        assert requests.get(service + "/healthz", timeout=30).status_code == 200
        assert time.monotonic() - started < 15  # the body timeout (2 s) frees the threads
        answer = stalled[0].recv(4096)
        assert b" 408 " in answer.split(b"\r\n", 1)[0] and b"GGOP-E905" in answer
    finally:
        for s in stalled:
            s.close()


def test_a_full_sqlite_store_answers_503_and_is_not_ready(tmp_path):
    rt = runtime_for(None, database_url=f"sqlite:///{tmp_path}/a.db",
                     clients_file=str(write_clients(tmp_path / "clients.yaml")))
    now = [dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)]
    http = create_app(rt, lambda: now[0]).test_client()
    assert http.get("/readyz").status_code == 200

    @event.listens_for(rt.engine, "connect")
    def _full(dbapi_conn, _record):  # the disk is full: no page may be added
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    rt.engine.dispose()  # new connections, each on a full disk
    with rt.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(messages)).scalar_one()
    push = {"Authorization": "Bearer tok-hospital", "Content-Type": "application/xml"}
    r = http.post("/medcom", data=PLAN, headers=push)
    assert r.status_code == 503 and r.headers["Retry-After"] == "30"
    assert b"GGOP-E904" in r.data and b"XCTL03" not in r.data and b"PositiveReceipt" not in r.data
    assert http.get("/readyz").status_code == 503
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar_one() == before  # nothing half-stored

    event.remove(rt.engine, "connect", _full)
    rt.engine.dispose()
    now[0] += dt.timedelta(minutes=2)
    assert http.get("/readyz").status_code == 200
    assert http.post("/medcom", data=PLAN, headers=push).status_code == 200  # the resend is taken


def test_postgresql_stopped_means_503_and_no_receipt_and_the_resend_is_taken_when_it_is_back(tmp_path):
    try:
        pg = PrivatePostgres().start()
    except NoPrivatePostgres as exc:
        pytest.skip(f"no private PostgreSQL: {exc}")
    try:
        proc, base = start_service(pg.url, REPO / "config" / "clients.sample.yaml", workers=1)
        try:
            plans = [m.xml for m in generate_messages(6, seed=3) if m.kind == "ggop"][:2]
            assert requests.post(base + "/medcom", data=plans[0], headers=HOSPITAL, timeout=30).status_code == 200
            pg.stop("immediate")  # as a crash would
            down = requests.post(base + "/medcom", data=plans[1], headers=HOSPITAL, timeout=60)
            assert down.status_code == 503 and down.headers["Retry-After"] == "30"
            assert b"PositiveReceipt" not in down.content and b"GGOP-E904" in down.content
            assert requests.get(base + "/readyz", timeout=30).status_code == 503
            pg.start()
            again = requests.post(base + "/medcom", data=plans[1], headers=HOSPITAL, timeout=60)
            assert again.status_code == 200 and b"PositiveReceipt" in again.content
        finally:
            stop_service(proc)
        engine = make_engine(pg.url)
        with engine.connect() as conn:
            states = list(conn.execute(select(messages.c.state).order_by(messages.c.id)).scalars())
        engine.dispose()
        assert states == ["accepted", "accepted"]  # the refused attempt left nothing behind
    finally:
        pg.remove()


def test_clients_stalling_in_their_headers_do_not_starve_health_checks(service):
    """Slowloris: part of the headers, then nothing. Every socket read has a deadline."""
    host, port = service.removeprefix("http://").split(":")
    stalled = []
    for _ in range(12):  # more than the worker's threads
        s = socket.create_connection((host, int(port)), timeout=30)
        s.sendall(b"POST /medcom HTTP/1.1\r\nHost: x\r\n")
        stalled.append(s)
    try:
        time.sleep(0.5)
        started = time.monotonic()
        assert requests.get(service + "/healthz", timeout=60).status_code == 200
        assert time.monotonic() - started < 30
    finally:
        for s in stalled:
            s.close()


def test_killed_under_load_nothing_acknowledged_is_lost_and_resends_are_answered_alike(store_url):
    """kill -9 while eight senders push: every message that got a positive receipt is stored
    with its resources; after a restart, resending everything gives the acknowledged ones the
    same bytes again and takes the others, each plan once."""
    import concurrent.futures

    from adapter.store.schema import resources

    plans = [m.xml for m in generate_messages(120, seed=17) if m.kind == "ggop"][:80]
    proc, base = start_service(store_url, REPO / "config" / "clients.sample.yaml", workers=2, wait_for="/healthz")
    acked: dict[int, bytes] = {}

    def send(i: int) -> None:
        try:
            r = requests.post(base + "/medcom", data=plans[i], headers=HOSPITAL, timeout=30)
        except requests.RequestException:
            return
        if r.status_code == 200:
            acked[i] = r.content

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(send, i) for i in range(len(plans))]
            deadline = time.monotonic() + 60
            while len(acked) < 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            kill_service(proc)  # master and workers, mid-stream
            concurrent.futures.wait(futures, timeout=120)
    finally:
        kill_service(proc)
    assert 10 <= len(acked) < len(plans), len(acked)  # killed mid-stream, some answered

    proc, base = start_service(store_url, REPO / "config" / "clients.sample.yaml", workers=2, wait_for="/readyz")
    try:
        for i, raw in enumerate(plans):
            r = requests.post(base + "/medcom", data=raw, headers=HOSPITAL, timeout=60)
            assert r.status_code == 200, (i, r.status_code)
            if i in acked:
                assert r.content == acked[i] and r.headers["X-Message-State"] == "duplicate"
    finally:
        stop_service(proc)
    engine = make_engine(store_url)
    with engine.connect() as conn:
        accepted = conn.execute(select(func.count()).select_from(messages)
                                .where(messages.c.state == "accepted")).scalar_one()
        plans_stored = conn.execute(select(func.count()).select_from(resources)
                                    .where(resources.c.type == "ServiceRequest")).scalar_one()
    engine.dispose()
    assert accepted == plans_stored == len(plans)


def test_readyz_says_disk_when_the_sqlite_volume_has_no_room_for_a_few_messages(tmp_path):
    rt = runtime_for(None, database_url=f"sqlite:///{tmp_path}/a.db",
                     clients_file=str(write_clients(tmp_path / "clients.yaml")))
    assert create_app(rt).test_client().get("/readyz").status_code == 200
    huge = runtime_for(None, database_url=f"sqlite:///{tmp_path}/a.db", max_bytes=2**62,  # more than any disk holds
                       clients_file=str(write_clients(tmp_path / "clients.yaml")))
    r = create_app(huge).test_client().get("/readyz")
    assert r.status_code == 503 and r.get_json()["reason"] == "disk"
