"""The outbox worker against misbehaving endpoints: a huge Retry-After, a defect anywhere in
one row, an endpoint that trickles its headers or its body, a stop (SIGTERM) while an
endpoint holds the worker, an endless or a declared-huge body, and a 2xx that is not FHIR.

Each is bounded: a row never kills the worker, a request never outlasts the route's timeout,
a stop ends the worker within seconds, a response is never read past the cap, and only a
FHIR answer counts as delivered. Faults the stub endpoint cannot produce come from
:class:`MisbehavingEndpoint`, a raw HTTP endpoint on 127.0.0.1 in a thread."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from sqlalchemy import select
from tests.support.fhir_endpoints import Reply, StubEndpoint

from adapter.routing import delivery
from adapter.routing.delivery import parse_retry_after
from adapter.routing.routes import Route, RoutesFile
from adapter.routing.worker import Worker
from adapter.service.ingest import ingest
from adapter.store.engine import open_store
from adapter.store.schema import outbox
from conftest import DATA, REPO, TEST_ID_KEY, runtime_for

MINIMAL = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
FULL = (DATA / "ggop" / "full-specialiseret.xml").read_bytes()
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
PATIENT_DATA = ("Tove", "Testesen", "0103450017")
OUTCOME_WITH_PATIENT_DATA = {"resourceType": "OperationOutcome", "issue": [{
    "severity": "error", "code": "invalid", "diagnostics": "Patient Tove Testesen 0103450017 is not acceptable",
    "expression": ["Bundle.entry[2].resource.subject"], "details": {"text": "Tove Testesen"}}]}
TRANSACTION_RESPONSE = {"resourceType": "Bundle", "type": "transaction-response",
                        "entry": [{"response": {"status": "200 OK"}}]}


class Clock:
    def __init__(self, start: dt.datetime = T0 + dt.timedelta(minutes=1)):
        self.t = start

    def __call__(self) -> dt.datetime:
        return self.t


def push(engine, raw=MINIMAL):
    result = ingest(runtime_for(engine), raw, received_at=T0, client="test")
    assert result.state == "accepted"
    return result


def routes(tmp_path, base_url: str, *, key="municipality:0461", extra="", more=()) -> RoutesFile:
    p = tmp_path / "routing.yaml"
    lines = [f'  "{k}": {{mode: push, base_url: "{base_url}"{extra}}}\n' for k in (key, *more)]
    p.write_text("defaults: {first_retry_seconds: 30, max_retry_seconds: 3600, max_age_hours: 72}\nroutes:\n"
                 + "".join(lines), encoding="utf-8")
    return RoutesFile(p)


def worker(engine, routes_file, clock=None, **kw) -> Worker:
    return Worker(engine, routes_file, clock=clock or Clock(), rng=random.Random(7), **kw)


def rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(outbox).order_by(outbox.c.id)).all()


def aware(value):
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def run_in_thread(target: Callable[[], object]) -> threading.Thread:
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def assert_no_patient_data(*texts: str) -> None:
    for text in texts:
        for word in PATIENT_DATA:
            assert word not in text, (word, text)


# --------------------------------------------------------------------------------------------
# A raw endpoint for the faults the stub cannot produce
# --------------------------------------------------------------------------------------------


class MisbehavingEndpoint:
    """Answers every POST with ``behaviour(endpoint, wfile)``, which writes raw HTTP bytes.

    ``arrived`` is set when a request has been read, ``sent`` counts the bytes written, and
    ``done`` is set when the behaviour has ended (the client closed, the limit, or stop())."""

    def __init__(self, behaviour: Callable[[MisbehavingEndpoint, object], None]):
        self.behaviour = behaviour
        self.arrived = threading.Event()
        self.done = threading.Event()
        self.stopping = threading.Event()
        self.sent = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                return

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.close_connection = True
                endpoint.arrived.set()
                try:
                    endpoint.behaviour(endpoint, self.wfile)
                except OSError:
                    pass  # the client went away: what the worker should do
                finally:
                    endpoint.done.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def write(self, wfile, data: bytes) -> None:
        wfile.write(data)
        wfile.flush()
        self.sent += len(data)

    def pause(self, seconds: float) -> bool:
        """Wait; False once the endpoint is stopping."""
        return not self.stopping.wait(seconds)

    def __enter__(self) -> MisbehavingEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def answer(status: int, body: bytes, content_type: str | None):
    def behaviour(endpoint: MisbehavingEndpoint, wfile) -> None:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        endpoint.write(wfile, head.encode() + b"\r\n" + body)
    return behaviour


def trickle_body(endpoint: MisbehavingEndpoint, wfile) -> None:
    """A promised 100 kB body, one byte every 0.1 s (under any per-read timeout)."""
    endpoint.write(wfile, b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 100000\r\n\r\n")
    while endpoint.pause(0.1):
        endpoint.write(wfile, b" ")


def trickle_headers(endpoint: MisbehavingEndpoint, wfile) -> None:
    """A status line, then one header byte every 0.1 s, never the end of the headers."""
    endpoint.write(wfile, b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while endpoint.pause(0.1):
        endpoint.write(wfile, b"a")


ENDLESS_LIMIT = 64 * 1024 * 1024


def endless_body(endpoint: MisbehavingEndpoint, wfile) -> None:
    """A 200 whose body never ends (up to 64 MiB here, standing for 300 MB or more)."""
    endpoint.write(wfile, b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nConnection: close\r\n\r\n")
    chunk = b"[" * 65536
    while endpoint.sent < ENDLESS_LIMIT and not endpoint.stopping.is_set():
        endpoint.write(wfile, chunk)


def declared_huge(endpoint: MisbehavingEndpoint, wfile) -> None:
    """Content-Length 300 MB, a few bytes, then nothing."""
    endpoint.write(wfile, b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                          b"Content-Length: 300000000\r\n\r\n{\"resourceType\":")
    endpoint.pause(30)


# --------------------------------------------------------------------------------------------
# 1. Retry-After and poison rows
# --------------------------------------------------------------------------------------------


def test_retry_after_is_parsed_within_bounds():
    now = T0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("99999999999999999999", now) == delivery.MAX_RETRY_AFTER == 24 * 3600
    assert parse_retry_after("9" * 5000, now) == delivery.MAX_RETRY_AFTER
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == delivery.MAX_RETRY_AFTER
    assert parse_retry_after("Mon, 02 Mar 2026 10:02:00 GMT", now) == 120
    assert parse_retry_after("Mon, 02 Mar 2020 10:02:00 GMT", now) == 0
    for junk in ("²", "١٢٠", "-5", "1e9", "Mon, 01 Jan 99999 00:00:00 GMT", "soon", ""):
        assert parse_retry_after(junk, now) is None, junk


def test_a_huge_retry_after_is_clamped_and_the_row_retried(engine, tmp_path):
    with StubEndpoint([Reply(503, headers={"Retry-After": "99999999999999999999"})]) as stub:
        push(engine)
        clock = Clock()
        w = worker(engine, routes(tmp_path, stub.base_url), clock)
        w.run(once=True)  # an OverflowError here used to kill the worker on every restart
        (row,) = rows(engine)
        assert row.state == "pending" and row.last_status == 503 and row.attempts == 1
        assert aware(row.next_attempt_at) == clock.t + dt.timedelta(hours=24)  # clamped, not 3 trillion years
        clock.t = aware(row.next_attempt_at)
        w.run(once=True)
        assert rows(engine)[0].state == "delivered"


def test_a_huge_retry_after_never_waits_past_the_maximum_age(engine, tmp_path):
    with StubEndpoint([Reply(429, headers={"Retry-After": "99999999999999999999"})]) as stub:
        push(engine)
        clock = Clock()
        rf = routes(tmp_path, stub.base_url, extra=", max_age_hours: 2")
        worker(engine, rf, clock).run(once=True)
        (row,) = rows(engine)
        assert row.state == "pending" and aware(row.next_attempt_at) == clock.t + dt.timedelta(hours=2)


def test_a_defect_after_the_request_is_a_dead_letter_and_the_worker_goes_on(engine, tmp_path, monkeypatch, caplog):
    push(engine, FULL)  # two pushed rows: municipality:0851 first, then the GP copy

    def broken_backoff(self, attempts, retry):
        raise ArithmeticError("Tove Testesen 0103450017")  # an exception text may carry patient data

    monkeypatch.setattr(Worker, "backoff", broken_backoff)
    with StubEndpoint([Reply(503)]) as stub:
        rf = routes(tmp_path, stub.base_url, key="municipality:0851", more=("gln:5790001234560",))
        with caplog.at_level(logging.INFO, logger="adapter.routing"):
            stats = worker(engine, rf).run(once=True)
        got = {r.recipient: r for r in rows(engine)}
        assert got["municipality:0851"].state == "dead"
        assert got["municipality:0851"].last_error == "internal error (ArithmeticError)"
        assert got["gln:5790001234560"].state == "delivered" and len(stub.posts) == 2
        assert stats.dead == 1 and stats.delivered == 1
        assert any("ALERT" in m and "internal error (ArithmeticError)" in m for m in caplog.messages)
        assert_no_patient_data(caplog.text, got["municipality:0851"].last_error)


def test_an_outcome_that_cannot_be_written_is_a_dead_letter(engine, tmp_path, monkeypatch, caplog):
    push(engine, FULL)
    real_work, calls = Worker._work, []

    def work(self, row, now):
        calls.append(row.id)
        change = real_work(self, row, now)
        if len(calls) == 1:
            change = dict(change, delivered_at="Tove Testesen")  # not a time: the store refuses it
        return change

    monkeypatch.setattr(Worker, "_work", work)
    with StubEndpoint() as stub:
        rf = routes(tmp_path, stub.base_url, key="municipality:0851", more=("gln:5790001234560",))
        with caplog.at_level(logging.INFO, logger="adapter.routing"):
            worker(engine, rf).run(once=True)
    got = {r.recipient: r for r in rows(engine)}
    first, second = got["municipality:0851"], got["gln:5790001234560"]
    refusal = "DataError" if engine.dialect.name == "postgresql" else "StatementError"  # SQLite's is ours
    assert first.state == "dead" and first.last_error == f"internal error ({refusal})"
    assert second.state == "delivered"
    assert any("ALERT" in m and f"internal error ({refusal}) while recording" in m for m in caplog.messages)
    assert_no_patient_data(caplog.text, first.last_error)


# --------------------------------------------------------------------------------------------
# 2. A total deadline per request; a stop ends a delivery in hand
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [trickle_body, trickle_headers], ids=["body", "headers"])
def test_a_trickling_endpoint_is_cut_off_at_the_route_timeout(engine, tmp_path, behaviour):
    with MisbehavingEndpoint(behaviour) as endpoint:
        push(engine)
        w = worker(engine, routes(tmp_path, endpoint.base_url, extra=", timeout_seconds: 1"))
        started = time.monotonic()
        t = run_in_thread(lambda: w.run(once=True))
        t.join(6)
        took = time.monotonic() - started
        assert not t.is_alive(), "the worker is still held by a trickling endpoint"
    (row,) = rows(engine)
    assert row.state == "pending" and row.attempts == 1 and row.last_error == "timeout (deadline)"
    assert took < 3, took


def test_stop_ends_a_delivery_in_hand_within_seconds(engine, tmp_path):
    with MisbehavingEndpoint(trickle_body) as endpoint:
        push(engine)
        w = worker(engine, routes(tmp_path, endpoint.base_url, extra=", timeout_seconds: 300"))
        t = run_in_thread(w.run)
        assert endpoint.arrived.wait(10)
        time.sleep(0.3)
        stopped = time.monotonic()
        w.stop()
        t.join(delivery.STOP_GRACE + 3)
        assert not t.is_alive(), "stop() did not end a delivery held by the endpoint"
        assert time.monotonic() - stopped < delivery.STOP_GRACE + 2
    (row,) = rows(engine)
    assert row.state == "pending" and row.attempts == 0 and row.last_error is None  # due again at once


def test_sigterm_stops_a_worker_held_by_a_slow_endpoint(tmp_path):
    url = f"sqlite:///{tmp_path}/adapter.db"
    engine = open_store(url, id_key=TEST_ID_KEY.encode())
    try:
        push(engine)
        with MisbehavingEndpoint(trickle_body) as endpoint:
            rf = routes(tmp_path, endpoint.base_url, extra=", timeout_seconds: 300")
            env = {**os.environ, "ADAPTER_DATABASE_URL": url}
            proc = subprocess.Popen([sys.executable, "-m", "adapter", "worker", "--routes", str(rf.path)],
                                    cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
            try:
                assert endpoint.arrived.wait(60), "the worker never called"
                time.sleep(0.3)
                stopped = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=delivery.STOP_GRACE + 5)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert time.monotonic() - stopped < delivery.STOP_GRACE + 3
        assert proc.returncode == 0 and "stopped: delivered 0" in err, err
        (row,) = rows(engine)
        assert row.state == "pending" and row.attempts == 0
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# 3. The response body is capped
# --------------------------------------------------------------------------------------------


def test_an_endless_body_is_read_no_further_than_the_cap(engine, tmp_path):
    with MisbehavingEndpoint(endless_body) as endpoint:
        push(engine)
        w = worker(engine, routes(tmp_path, endpoint.base_url, extra=", timeout_seconds: 10"))
        w.table = w.routes.load()
        tracemalloc.start()
        try:
            t = run_in_thread(lambda: w.run(once=True))
            t.join(8)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert not t.is_alive()
        assert endpoint.done.wait(5)
        sent = endpoint.sent
    (row,) = rows(engine)
    assert row.state == "pending" and row.last_status == 200 and row.last_error == "HTTP 200; response too large"
    assert sent < ENDLESS_LIMIT / 2, sent  # the worker hung up near the cap (plus the sockets' buffers)
    assert peak < 3 * delivery.MAX_RESPONSE_BYTES, peak  # never more than the cap in memory


def test_the_cap_can_be_set_per_worker(engine, tmp_path):
    body = json.dumps({**TRANSACTION_RESPONSE, "padding": "x" * 5000}).encode()
    with MisbehavingEndpoint(answer(200, body, "application/fhir+json")) as endpoint:
        push(engine)
        worker(engine, routes(tmp_path, endpoint.base_url), max_response_bytes=4096).run(once=True)
    assert rows(engine)[0].last_error == "HTTP 200; response too large"


def test_a_declared_huge_body_is_refused_without_reading_it(engine, tmp_path):
    with MisbehavingEndpoint(declared_huge) as endpoint:
        push(engine)
        w = worker(engine, routes(tmp_path, endpoint.base_url, extra=", timeout_seconds: 5"))
        started = time.monotonic()
        w.run(once=True)
        took = time.monotonic() - started
    (row,) = rows(engine)
    assert row.state == "pending" and row.last_error == "HTTP 200; response too large" and took < 2, took


# --------------------------------------------------------------------------------------------
# 4. Only a FHIR answer is a delivery
# --------------------------------------------------------------------------------------------


HTML = b"<html><body><h1>Welcome to nginx!</h1></body></html>"


@pytest.mark.parametrize(("payload", "expected"), [
    ("transaction", "HTTP 200; not a FHIR transaction-response"),
    ("message", "HTTP 200; not a FHIR message response"),
])
@pytest.mark.parametrize(("body", "content_type", "note"), [
    (HTML, "text/html; charset=utf-8", " (Content-Type text/html)"),
    (json.dumps(TRANSACTION_RESPONSE).encode(), "text/html", " (Content-Type text/html)"),  # FHIR, but not served as JSON
    (json.dumps(TRANSACTION_RESPONSE).encode(), None, " (no Content-Type)"),
    (b"{}", "text/html; name=\"Tove Testesen\"", " (Content-Type text/html)"),  # only the media type is kept
    (b"{}", "Tove/Testesen 0103450017", " (Content-Type not shown)"),
    (b"[]", "application/fhir+json", ""),
    (b"[" * 200_000, "application/fhir+json", ""),  # deeper than the JSON parser goes
    (json.dumps({"resourceType": "Bundle", "type": "searchset"}).encode(), "application/fhir+json", ""),
    (json.dumps({"resourceType": "Bundle", "type": "message", "entry": "x"}).encode(), "application/fhir+json", ""),
    (json.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": ["x", 3]}).encode(),
     "application/fhir+json", ""),
], ids=["html", "json-as-html", "no-content-type", "content-type-parameters", "content-type-junk", "array", "deep",
        "searchset", "broken-message", "odd-entries"])
def test_a_2xx_that_is_not_a_fhir_answer_is_retried(engine, tmp_path, payload, expected, body, content_type, note):
    with MisbehavingEndpoint(answer(200, body, content_type)) as endpoint:
        push(engine)
        worker(engine, routes(tmp_path, endpoint.base_url, extra=f", payload: {payload}")).run(once=True)
    (row,) = rows(engine)
    assert row.state == "pending" and row.last_status == 200 and row.attempts == 1
    assert row.last_error == expected + note
    assert_no_patient_data(row.last_error)


@pytest.mark.parametrize("payload", ["transaction", "message"])
def test_a_200_operation_outcome_is_not_a_delivery(engine, tmp_path, payload):
    with StubEndpoint([Reply(200, OUTCOME_WITH_PATIENT_DATA)]) as stub:
        push(engine)
        worker(engine, routes(tmp_path, stub.base_url, extra=f", payload: {payload}")).run(once=True)
    (row,) = rows(engine)
    kind = "transaction-response" if payload == "transaction" else "message response"
    assert row.state == "pending" and row.last_error == (
        f"HTTP 200; not a FHIR {kind}; OperationOutcome error/invalid at Bundle.entry[2].resource.subject")
    assert_no_patient_data(row.last_error)


def test_a_2xx_without_a_body_delivers_a_message_but_not_a_transaction(engine, tmp_path):
    with StubEndpoint([Reply(202), Reply(204)]) as stub:
        push(engine, FULL)
        rf = routes(tmp_path, stub.base_url, key="municipality:0851", extra=", payload: message")
        rf.path.write_text(rf.path.read_text() + f'  "gln:5790001234560": {{mode: push, base_url: "{stub.base_url}"}}\n')
        worker(engine, rf).run(once=True)
    got = {r.recipient: r for r in rows(engine)}
    assert got["municipality:0851"].state == "delivered"  # $process-message accepted for asynchronous processing
    gp = got["gln:5790001234560"]
    assert gp.state == "pending" and gp.last_error == "HTTP 204; not a FHIR transaction-response"


@pytest.mark.parametrize("content_type", ["application/fhir+json", "application/json; charset=utf-8",
                                          "application/fhir+json;fhirVersion=4.0", "Application/JSON+FHIR"])
def test_a_transaction_response_in_any_json_type_is_delivered(engine, tmp_path, content_type):
    with MisbehavingEndpoint(answer(200, json.dumps(TRANSACTION_RESPONSE).encode(), content_type)) as endpoint:
        push(engine)
        worker(engine, routes(tmp_path, endpoint.base_url)).run(once=True)
    assert rows(engine)[0].state == "delivered"


def test_the_probe_reads_no_more_than_the_cap(tmp_path):
    """``routes check --probe`` uses the same bounded reads."""

    class Metadata(BaseHTTPRequestHandler):
        def log_message(self, *_args):
            return

        def do_GET(self):
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nConnection: close\r\n\r\n")
            try:
                for _ in range(1024):  # 64 MiB
                    self.wfile.write(b" " * 65536)
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        route = Route("municipality:0461", "push", base_url=f"http://127.0.0.1:{server.server_address[1]}/fhir",
                      timeout=5)
        started = time.monotonic()
        ok, line = delivery.probe(requests.Session(), route)
        assert not ok and line == "HTTP 200 but the response is too large" and time.monotonic() - started < 3
    finally:
        server.shutdown()
        server.server_close()

