"""The service as hospitals use it: a real gunicorn server on loopback, real HTTP."""

from __future__ import annotations

import concurrent.futures
import os

import pytest
import requests
from tests.support.service_process import kill_service, start_service, stop_service

from conftest import DATA, REPO

pytestmark = pytest.mark.slow
HOSPITAL = {"Authorization": "Bearer demo-hospital", "Content-Type": "application/xml"}


def _database(kind: str, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/adapter.db"
    url = os.environ.get("ADAPTER_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL: set ADAPTER_TEST_POSTGRES_URL")
    from conftest import _reset_postgres
    _reset_postgres(url)
    return url


def _start(url: str):
    return start_service(url, REPO / "config" / "clients.sample.yaml", wait_for="/healthz")


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, tmp_path):
    proc, base = _start(_database(request.param, tmp_path))
    yield base
    stop_service(proc)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_killed_after_the_receipt_nothing_acknowledged_is_lost(kind, tmp_path):
    """kill -9 between receipt and routing: after a restart the message, its resources and
    its outbox row are all there, waiting for delivery."""
    from sqlalchemy import select

    from adapter.store.engine import make_engine
    from adapter.store.schema import messages, outbox, resources

    url = _database(kind, tmp_path)
    proc, base = _start(url)
    raw = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
    ack = requests.post(base + "/medcom", data=raw, headers=HOSPITAL, timeout=30)
    assert ack.status_code == 200
    kill_service(proc)  # the master and its workers, no shutdown
    proc, base = _start(url)
    try:
        assert requests.get(base + "/readyz", timeout=5).json()["status"] == "ready"
        again = requests.post(base + "/medcom", data=raw, headers=HOSPITAL, timeout=30)
        assert again.content == ack.content and again.headers["X-Message-State"] == "duplicate"
    finally:
        stop_service(proc)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(messages.c.state).where(messages.c.state == "accepted")).scalars().all() == ["accepted"]
        assert conn.execute(select(outbox.c.state)).scalars().all() == ["pending"]
        assert conn.execute(select(resources.c.type).where(resources.c.type == "Task")).first() is not None
    engine.dispose()


def test_push_gets_receipt_duplicate_gets_the_same(server):
    raw = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
    first = requests.post(server + "/medcom", data=raw, headers=HOSPITAL, timeout=30)
    assert first.status_code == 200 and b"<PositiveReceipt>" in first.content
    assert first.headers["Content-Type"].startswith("application/xml")
    again = requests.post(server + "/medcom", data=raw, headers=HOSPITAL, timeout=30)
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["X-Message-State"] == "duplicate"


def test_refusals_and_their_statuses(server):
    bad = requests.post(server + "/medcom", data=(DATA / "invalid" / "bad-receiver-gln-check-digit.xml").read_bytes(),
                        headers=HOSPITAL, timeout=30)
    assert bad.status_code == 422 and b"<RefuseCode>ukendt_lokationsnummer</RefuseCode>" in bad.content
    broken = requests.post(server + "/medcom", data=b"<Emessage>", headers=HOSPITAL, timeout=30)
    assert broken.status_code == 400
    wrong_type = requests.post(server + "/medcom", data=b"{}", timeout=30,
                               headers={**HOSPITAL, "Content-Type": "application/json"})
    assert wrong_type.status_code == 415 and wrong_type.json()["resourceType"] == "OperationOutcome"
    as_fhir = requests.post(server + "/medcom", data=(DATA / "invalid" / "unknown-plan-type.xml").read_bytes(),
                            headers={**HOSPITAL, "Accept": "application/fhir+json"}, timeout=30)
    assert as_fhir.status_code == 422
    assert as_fhir.json()["issue"][0]["details"]["coding"][0]["code"] == "GGOP-E306"
    too_big = requests.post(server + "/medcom", data=b"<a>" + b" " * (11 * 1024 * 1024) + b"</a>",
                            headers=HOSPITAL, timeout=60)
    assert too_big.status_code == 413
    anonymous = requests.post(server + "/medcom", data=b"<a/>", timeout=30,
                              headers={"Content-Type": "application/xml"})
    assert anonymous.status_code == 401
    municipality = requests.post(server + "/medcom", data=b"<a/>", timeout=30,
                                 headers={"Content-Type": "application/xml", "Authorization": "Bearer demo-odense"})
    assert municipality.status_code == 403


def test_eight_identical_posts_at_once(server):
    raw = (DATA / "ggop" / "full-specialiseret.xml").read_bytes()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.post(server + "/medcom", data=raw, headers=HOSPITAL, timeout=60),
                                range(8)))
    assert all(a.status_code == 200 for a in answers)
    assert sorted(a.headers["X-Message-State"] for a in answers) == ["accepted"] + ["duplicate"] * 7
    assert len({a.content for a in answers}) == 1
