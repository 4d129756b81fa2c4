"""/metrics read by Prometheus' own text-format parser (prometheus_client.parser): message
counts by type and refuse code, latencies, rule firings, outbox depth, deliveries and dead
letters, open and overdue Tasks; who may scrape; no patient data in any label; the JSON
request lines; and, under gunicorn with two workers, every worker's counts in one answer."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from tests.support.console import DATA, make_console, odense_and_aalborg
from tests.support.fhir_endpoints import Reply, StubEndpoint
from tests.support.service_process import start_service, stop_service

from adapter.logs import REQUEST_LOG, JsonFormatter
from adapter.routing.routes import RoutesFile
from adapter.routing.worker import Worker

OPERATOR = {"Authorization": "Bearer tok-drift"}
REFUSED = DATA / "invalid" / "bad-receiver-gln-check-digit.xml"
MINIMAL = DATA / "ggop" / "minimal-almen.xml"
CPR = re.compile(r"(?<!\d)\d{6}-?\d{4}(?!\d)")  # ten digits alone (a GLN has 13)


def scrape(http, headers=OPERATOR) -> dict[tuple[str, tuple], float]:
    r = http.get("/metrics", headers=headers)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.get_data(as_text=True) if hasattr(r, "get_data") else r.text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples, name, **labels) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


@pytest.fixture
def console(tmp_path):
    c = make_console(tmp_path)
    yield c
    c.runtime.engine.dispose()


def test_scraping_needs_an_operator_token(console):
    http = console.client()
    for headers in ({}, {"Authorization": "Bearer tok-odense"}, {"Authorization": "Bearer tok-hospital"}):
        r = http.get("/metrics", headers=headers)
        assert r.status_code == 401 and r.json["issue"][0]["details"]["coding"][0]["code"] == "GGOP-E707"


def test_metrics_public_is_a_setting(tmp_path):
    c = make_console(tmp_path, metrics_public=True)
    assert c.client().get("/metrics").status_code == 200


def test_messages_latencies_rules_outbox_and_tasks(console):
    http = console.client()
    before = scrape(http)
    odense, aalborg = odense_and_aalborg()
    assert console.push(REFUSED.read_bytes()).status_code == 422
    assert console.push(MINIMAL.read_bytes()).status_code == 200
    for raw in odense + aalborg:
        assert console.push(raw).status_code == 200
    after = scrape(make_console(console.tmp).client())  # the store's gauges are cached per process for a while

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("ggop_adapter_messages_refused_total", type="ggop", refuse_code="ukendt_lokationsnummer",
                 code="GGOP-E309") == 1
    accepted = 1 + len(odense) + len(aalborg)
    assert delta("ggop_adapter_messages_received_total") == accepted + 1
    assert delta("ggop_adapter_messages_accepted_total") == accepted
    assert delta("ggop_adapter_ingest_seconds_count") == accepted + 1
    assert delta("ggop_adapter_conversion_seconds_count") == accepted
    assert delta("ggop_adapter_rule_firings_total", rule="DL-D1-INFORM-CITIZEN", kind="deadline") >= 1
    assert delta("ggop_adapter_rule_firings_total", kind="stratification") >= 1
    # the store's gauges: one pending row per accepted message and recipient, open Tasks per municipality
    assert value(after, "ggop_adapter_outbox_rows", recipient="municipality:0461", state="pending") >= 1 + len(odense)
    assert value(after, "ggop_adapter_outbox_oldest_age_seconds", recipient="municipality:0461", state="pending") >= 0
    assert value(after, "ggop_adapter_tasks_open", municipality="0461", kind="inform-citizen") >= 1
    assert ("ggop_adapter_tasks_overdue", (("kind", "inform-citizen"), ("municipality", "0461"))) in after


def test_overdue_tasks_follow_the_clock(console):
    console.push(MINIMAL.read_bytes())
    console.clock.now = console.clock.now.replace(year=2027)  # every deadline has passed
    c2 = make_console(console.tmp)  # a fresh process reads the store (the gauges are cached for a while)
    c2.clock.now = console.clock.now
    after = scrape(c2.client())
    assert value(after, "ggop_adapter_tasks_overdue", municipality="0461", kind="inform-citizen") == \
        value(after, "ggop_adapter_tasks_open", municipality="0461", kind="inform-citizen") >= 1


def test_deliveries_and_dead_letters(console, tmp_path):
    console.push(MINIMAL.read_bytes())
    before = scrape(console.client())
    with StubEndpoint([Reply(400, {"resourceType": "OperationOutcome",
                                   "issue": [{"severity": "error", "code": "invalid"}]})]) as stub:
        routes = tmp_path / "routing.yaml"
        routes.write_text(f'routes:\n  "municipality:0461": {{mode: push, base_url: "{stub.base_url}"}}\n')
        Worker(console.runtime.engine, RoutesFile(routes)).run(once=True)
    c2 = make_console(tmp_path)
    after = scrape(c2.client())
    assert total(after, "ggop_adapter_delivery_attempts_total", recipient="municipality:0461", outcome="dead") - \
        total(before, "ggop_adapter_delivery_attempts_total", recipient="municipality:0461", outcome="dead") == 1
    assert total(after, "ggop_adapter_dead_letters_total", recipient="municipality:0461") - \
        total(before, "ggop_adapter_dead_letters_total", recipient="municipality:0461") == 1
    assert value(after, "ggop_adapter_outbox_rows", recipient="municipality:0461", state="dead") == 1


def test_no_patient_data_in_any_label(console):
    from tests.support.citizens import generated

    sent = generated("0461", 6, 41)
    console.push(MINIMAL.read_bytes())
    for m in sent:
        console.push(m.xml)
    text = console.client().get("/metrics", headers=OPERATOR).get_data(as_text=True)
    for cpr in ["0103450017"] + [m.facts["cpr"] for m in sent]:
        assert cpr not in text
    for (_name, labels), _v in scrape(console.client()).items():
        for _k, v in labels:
            assert not CPR.search(v) and " " not in v and len(v) <= 64, v


def test_one_json_line_per_request_with_its_correlation_id(console):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(REQUEST_LOG)
    logger.addHandler(handler)
    try:
        r = console.client().post("/medcom", data=MINIMAL.read_bytes(), headers={
            "Authorization": "Bearer tok-hospital", "Content-Type": "application/xml", "X-Correlation-Id": "test-123456"})
        console.client().get("/fhir/Patient?identifier=urn:oid:1.2.208.176.1.2|0103450017", headers=OPERATOR)
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert len(lines) == 2 and r.headers["X-Correlation-Id"] == "test-123456"
    push, search = lines
    assert push["event"] == "request" and push["correlation_id"] == "test-123456" and push["route"] == "/medcom"
    assert push["status"] == 200 and push["message_state"] == "accepted" and push["client"] == "hospital"
    assert search["route"].startswith("/fhir/<") and "0103450017" not in stream.getvalue()
    assert len(search["correlation_id"]) == 32
    # stored with the message, in the message's own transaction, once
    from sqlalchemy import func, select

    from adapter.logs import CORRELATE, correlation_of
    from adapter.store.schema import audit

    message_id = int(r.headers["X-Message-Id"])
    with console.runtime.engine.connect() as conn:
        assert correlation_of(conn, message_id) == "test-123456"
        assert conn.execute(select(func.count()).select_from(audit).where(
            audit.c.action == CORRELATE, audit.c.target == f"message/{message_id}")).scalar_one() == 1


@pytest.mark.slow
def test_every_gunicorn_worker_counts_into_one_answer(tmp_path):
    """Two gunicorn workers: the pushes land on either, every scrape sums both."""
    from tests.support.fhir_world import write_clients

    env = {"ADAPTER_METRICS_DIR": str(tmp_path / "metrics"), "ADAPTER_CONSOLE_SECRET_FILE": str(tmp_path / "c.key")}
    proc, base = start_service(f"sqlite:///{tmp_path}/adapter.db", write_clients(tmp_path / "clients.yaml"),
                               workers=2, env=env)
    try:
        odense, aalborg = odense_and_aalborg()
        hospital = {"Authorization": "Bearer tok-hospital", "Content-Type": "application/xml"}
        for raw in odense + aalborg:
            assert requests.post(base + "/medcom", data=raw, headers=hospital, timeout=30).status_code == 200
        assert requests.post(base + "/medcom", data=REFUSED.read_bytes(), headers=hospital, timeout=30).status_code == 422
        for _ in range(6):
            with requests.Session() as s:  # a new connection each time, so either worker may answer
                r = s.get(base + "/metrics", headers=OPERATOR, timeout=30)
            samples = scrape(_Requests(r))
            assert total(samples, "ggop_adapter_messages_accepted_total") == len(odense) + len(aalborg)
            assert total(samples, "ggop_adapter_messages_refused_total", code="GGOP-E309") == 1
        assert list((tmp_path / "metrics").glob("counter_*.db"))
    finally:
        stop_service(proc)


class _Requests:
    """A requests response as the scrape helper reads a test client's."""

    def __init__(self, response):
        self.response = response

    def get(self, _path, headers=None):
        return self.response
