"""Delivery to a real FHIR server as the municipal endpoint: sekmet-fhir (PyPI, pinned), in its
own virtual environment under build/, started on loopback with its simulator off and a bearer
token required. A stub in front of it injects the faults the server cannot produce on demand.

Skipped, with the reason, when the server cannot be installed or started here."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from urllib.parse import unquote

import pytest
import requests
from sqlalchemy import select
from tests.support.citizens import about, plans_and_letter
from tests.support.fhir_endpoints import FhirServer, FhirServerUnavailable, Reply, StubEndpoint, free_port
from tests.support.service_process import ServiceDidNotStart, start_service

from adapter.fhir.bundle import entry_id
from adapter.fhir.identity import SHARED_TYPES
from adapter.generate import generate_messages
from adapter.routing.routes import RoutesFile
from adapter.routing.worker import Worker
from adapter.service.ingest import ingest
from adapter.store.engine import open_store
from adapter.store.resources import bundle_resources
from adapter.store.schema import outbox
from conftest import DATA, REPO, runtime_for

pytestmark = pytest.mark.slow
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
HOSPITAL = {"Authorization": "Bearer demo-hospital", "Content-Type": "application/xml"}
CPR = "urn:oid:1.2.208.176.1.2"
MUNICIPALITY_CODES = "http://hl7.dk/fhir/core/CodeSystem/dk-core-municipality-codes"


@pytest.fixture(scope="module")
def fhir(tmp_path_factory):
    try:
        server = FhirServer(tmp_path_factory.mktemp("fhir-server")).start()
    except FhirServerUnavailable as exc:
        pytest.skip(f"no FHIR server: {exc}")
    yield server
    server.stop()


class Clock:
    def __init__(self):
        self.t = T0 + dt.timedelta(minutes=1)

    def __call__(self):
        return self.t


def routes_file(tmp_path, lines: list[str]) -> RoutesFile:
    path = tmp_path / "routing.yaml"
    path.write_text("routes:\n" + "".join(lines), encoding="utf-8")
    return RoutesFile(path)


def route(key: str, base: str, extra: str = "") -> str:
    return f'  "{key}": {{mode: push, base_url: "{base}", auth: {{bearer_token_env: MUNI_TOKEN}}{extra}}}\n'


def outbox_rows(engine):
    """The outbox rows, each with its payload (stored once per message, on its first row)."""
    import types

    from adapter.routing.outbox import payload_of

    with engine.connect() as conn:
        return [types.SimpleNamespace(**{**r._mapping, "payload": payload_of(conn, r)})
                for r in conn.execute(select(outbox).order_by(outbox.c.id))]


def on_server(server: FhirServer, payload: dict, by_id: bool = False) -> dict[str, str]:
    """``Type/<our id>`` → ``Type/<the server's id>`` for every entry: a conditional update
    lands on the resource the server has for that identifier, whatever its id (``by_id``:
    the payload went as a message, whose resources the server keeps under our ids)."""
    where = {}
    for e in payload["entry"]:
        rtype, _, query = e["request"]["url"].partition("?")
        ours = f"{e['resource']['resourceType']}/{entry_id(e)}"
        if not query or by_id:
            where[ours] = ours
            continue
        name, _, token = query.partition("=")
        found = server.get(rtype, **{name: unquote(token)})
        assert found.get("total", len(found.get("entry", []))) == 1, (rtype, "one resource per identifier")
        where[ours] = f"{rtype}/{found['entry'][0]['resource']['id']}"
    return where


def _rewritten(obj, where: dict[str, str]):
    if isinstance(obj, dict):
        return {k: (where.get(v, v) if k == "reference" and isinstance(v, str) else _rewritten(v, where))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rewritten(x, where) for x in obj]
    return obj


def assert_whole_on_server(server: FhirServer, payload: dict, by_id: bool = False,
                           skip: tuple[str, ...] = ()) -> None:
    """Every resource of the payload is on the server as sent (apart from meta, and the id a
    conditional update found), references pointing where the server keeps their targets,
    and the plan's Tasks are found by their owner."""
    where = on_server(server, payload, by_id)
    for res in bundle_resources(payload):
        if res["resourceType"] in skip:  # a later message updated them
            continue
        located = where[f"{res['resourceType']}/{res['id']}"]
        got = server.get(located)
        expected = _rewritten(res, where)
        assert {k: v for k, v in got.items() if k not in ("meta", "id")} == \
            {k: v for k, v in expected.items() if k not in ("meta", "id")}
    tasks = [_rewritten(r, where) for r in bundle_resources(payload) if r["resourceType"] == "Task"]
    assert tasks or not any(r["resourceType"] == "ServiceRequest" for r in bundle_resources(payload))
    for owner in {t["owner"]["reference"] for t in tasks}:
        found = server.get("Task", owner=owner)
        ids = {e["resource"]["id"] for e in found.get("entry", [])}
        assert {t["id"] for t in tasks if t["owner"]["reference"] == owner} <= ids


def patient_versions(server: FhirServer, payload: dict) -> int:
    patient = next(ref for ref in on_server(server, payload).values() if ref.startswith("Patient/"))
    return server.get(f"{patient}/_history").get("total")


def _start_adapter(url: str):
    try:
        return start_service(url, REPO / "config" / "clients.sample.yaml", workers=1, wait_for="/healthz")
    except ServiceDidNotStart as exc:
        pytest.fail(str(exc))


def _worker_cli(url: str, routes_path, token: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "ADAPTER_DATABASE_URL": url, "MUNI_TOKEN": token}
    return subprocess.Popen([sys.executable, "-m", "adapter", "worker", "--routes", str(routes_path), *extra],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_generated_plans_posted_to_the_adapter_arrive_whole_gp_copy_only_with_consent(fhir, store_url, tmp_path):
    plans = [m for m in generate_messages(60, seed=23) if m.kind == "ggop" and m.facts["plan_type"] == "almen"]
    consented = next(m for m in plans if m.facts["consent"] == "ja" and not m.facts["gp_deselected"])
    refused = next(m for m in plans if m.facts["consent"] == "nej")
    proc, base = _start_adapter(store_url)
    try:
        for m in (consented, refused):
            ack = requests.post(base + "/medcom", data=m.xml, headers=HOSPITAL, timeout=60)
            assert ack.status_code == 200 and b"<PositiveReceipt>" in ack.content
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    engine = open_store(store_url)
    rows = outbox_rows(engine)
    roles = {}
    for r in rows:
        roles.setdefault(r.message_id, set()).add(r.role)
    first, second = sorted(roles)  # posted in this order: consented, then refused
    assert {"primary", "gp"} <= roles[first] and roles[second] == {"primary"}  # copies only with consent
    copies = [r for r in rows if r.role != "primary"]
    with StubEndpoint() as copy_endpoint:
        lines = [route(f"municipality:{m.facts['municipality_code']}", fhir.base_url) for m in (consented, refused)]
        lines += [route(r.recipient, copy_endpoint.base_url, ", payload: message") for r in copies]
        rf = routes_file(tmp_path, list(dict.fromkeys(lines)))
        worker = _worker_cli(store_url, rf.path, fhir.token, "--once")
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        assert len(copy_endpoint.posts) == len(copies)
        assert all(p.path.endswith("/$process-message") for p in copy_endpoint.posts)
    rows = outbox_rows(engine)
    assert [r.state for r in rows] == ["delivered"] * len(rows)
    for r in rows:
        if r.role == "primary":
            assert r.mode == "push" and r.endpoint == fhir.base_url
            assert_whole_on_server(fhir, r.payload)
    engine.dispose()


def test_endpoint_down_when_the_message_arrives_is_delivered_once_it_is_up(engine, tmp_path):
    port = free_port()
    later = FhirServer(tmp_path / "later", port=port)
    ingest(runtime_for(engine), (DATA / "ggop" / "full-specialiseret.xml").read_bytes(), received_at=T0)
    clock = Clock()
    w = Worker(engine, routes_file(tmp_path, [route("municipality:0851", later.base_url)]), clock=clock,
               rng=random.Random(3), env={"MUNI_TOKEN": later.token})
    w.run(once=True)
    row = outbox_rows(engine)[0]
    assert row.state == "pending" and row.last_error.startswith("no connection") and row.attempts == 1
    try:
        later.start()
    except FhirServerUnavailable as exc:
        pytest.skip(f"no FHIR server: {exc}")
    try:
        clock.t += dt.timedelta(hours=6)
        w.run(once=True)
        row = outbox_rows(engine)[0]
        assert row.state == "delivered" and row.attempts == 2 and row.last_status == 200
        assert_whole_on_server(later, row.payload)
        assert patient_versions(later, row.payload) == 1  # arrived once
        w.run(once=True)
        assert patient_versions(later, row.payload) == 1
    finally:
        later.stop()


def test_503_then_the_real_server_is_delivered_once(fhir, engine, tmp_path):
    letter = (DATA / "xdis91" / "letter-to-municipality.xml").read_bytes()
    ingest(runtime_for(engine), letter, received_at=T0)
    with StubEndpoint([Reply(503, headers={"Retry-After": "30"})], upstream=fhir.base_url,
                      upstream_headers=fhir.headers) as stub:
        clock = Clock()
        w = Worker(engine, routes_file(tmp_path, [route("municipality:0851", stub.base_url)]), clock=clock,
                   env={"MUNI_TOKEN": fhir.token})
        w.run(once=True)
        assert outbox_rows(engine)[0].last_status == 503
        clock.t += dt.timedelta(seconds=30)
        w.run(once=True)
        (row,) = outbox_rows(engine)
        assert row.state == "delivered" and row.attempts == 2 and len(stub.posts) == 2 and stub.completed == 1
    assert_whole_on_server(fhir, row.payload)  # the letter's visitation and answer Tasks included
    codes = {t["code"]["coding"][0]["code"] for t in bundle_resources(row.payload) if t["resourceType"] == "Task"}
    assert codes == {"visitate-child", "answer-letter"}


def test_a_refusal_by_the_real_server_is_a_dead_letter_with_its_reason(fhir, engine, tmp_path):
    ingest(runtime_for(engine), (DATA / "ggop" / "minimal-almen.xml").read_bytes(), received_at=T0)
    wrong_base = fhir.base_url + "/Patient"  # a misconfigured base URL: the server says 400
    Worker(engine, routes_file(tmp_path, [route("municipality:0461", wrong_base)]), clock=Clock(),
           env={"MUNI_TOKEN": fhir.token}).run(once=True)
    (row,) = outbox_rows(engine)
    assert row.state == "dead" and row.last_status == 400
    assert row.last_error == "HTTP 400; refused; OperationOutcome error/invalid"  # no diagnostics text


def test_a_worker_killed_mid_delivery_delivers_once_after_restart(fhir, engine, store_url, tmp_path):
    result = ingest(runtime_for(engine), (DATA / "ggop" / "rehabilitering-corrected.xml").read_bytes(), received_at=T0)
    assert result.state == "accepted"
    import threading

    release = threading.Event()
    with StubEndpoint([Reply(200, hold=release)], upstream=fhir.base_url, upstream_headers=fhir.headers) as stub:
        rf = routes_file(tmp_path, [route("municipality:0851", stub.base_url),
                                    route("gln:5790001234560", stub.base_url)])
        # one lane: the held request is the only one in flight when the worker is killed
        worker = _worker_cli(store_url, rf.path, fhir.token, "--once", "--concurrency", "1")
        assert stub.arrived.wait(120), "the worker never called"
        os.killpg(worker.pid, signal.SIGKILL)  # mid-delivery: the request is sent, no answer yet
        worker.wait(timeout=30)
        states = {r.recipient: (r.state, r.attempts) for r in outbox_rows(engine)}
        assert all(state == "pending" and attempts == 0 for state, attempts in states.values()), states
        release.set()  # the held request still reaches the server, its answer reaches no one
        time.sleep(1)
        worker = _worker_cli(store_url, rf.path, fhir.token, "--once")
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        rows = outbox_rows(engine)
        assert [r.state for r in rows] == ["delivered", "delivered"] and [r.attempts for r in rows] == [1, 1]
        assert len(stub.posts) == 3  # the interrupted one, then one per row
    assert_whole_on_server(fhir, rows[0].payload)
    cpr = next(r for r in bundle_resources(rows[0].payload) if r["resourceType"] == "Patient")["identifier"][0]
    found = fhir.get("Patient", identifier=f"{cpr['system']}|{cpr['value']}")
    assert found.get("total", len(found.get("entry", []))) == 1  # the same resources, never a second copy


def test_the_training_hospital_gets_a_message_bundle_the_real_server_processes(fhir, engine, tmp_path):
    ingest(runtime_for(engine), (DATA / "ggop" / "full-specialiseret.xml").read_bytes(), received_at=T0)
    Worker(engine, routes_file(tmp_path, [route("gln:5790001112226", fhir.base_url, ", payload: message")]),
           clock=Clock(), env={"MUNI_TOKEN": fhir.token}).run(once=True)
    states = {r.role: (r.state, r.mode) for r in outbox_rows(engine)}
    assert states == {"primary": ("delivered", "pull"), "hospital": ("delivered", "push"), "gp": ("unroutable", None)}
    hospital = next(r for r in outbox_rows(engine) if r.role == "hospital")
    assert_whole_on_server(fhir, hospital.payload, by_id=True)  # $process-message stored every entry


def test_a_citizen_the_receiver_knows_under_its_own_id_stays_one_patient(fhir, engine, tmp_path):
    """Two plans from two hospitals and a letter about one citizen, pushed to a municipal
    server that already has the citizen under its own id: one Patient and one Organization
    for the municipality there, every Task and plan pointing at them."""
    citizen = "0404049876"
    own = {"resourceType": "Patient", "id": "kommunens-egen-1", "identifier": [{"system": CPR, "value": citizen}],
           "name": [{"family": "Kendt"}]}
    put = requests.put(f"{fhir.base_url}/Patient/kommunens-egen-1", json=own,
                       headers={**fhir.headers, "Content-Type": "application/fhir+json"}, timeout=30)
    assert put.status_code in (200, 201), put.text
    plans, letter = plans_and_letter("0461", seed=41)
    rt = runtime_for(engine)
    for i, raw in enumerate([*plans, letter]):
        assert ingest(rt, about(raw, citizen), received_at=T0 - dt.timedelta(minutes=10 - i)).state == "accepted"
    Worker(engine, routes_file(tmp_path, [route("municipality:0461", fhir.base_url)]), clock=Clock(),
           env={"MUNI_TOKEN": fhir.token}).run(once=True)
    primary = [r for r in outbox_rows(engine) if r.role == "primary"]
    assert len(primary) == 3 and {r.state for r in primary} == {"delivered"}

    patients = fhir.get("Patient", identifier=f"{CPR}|{citizen}")
    assert [e["resource"]["id"] for e in patients["entry"]] == ["kommunens-egen-1"]
    assert patients["entry"][0]["resource"]["name"] != own["name"]  # updated from the newest message
    municipality = fhir.get("Organization", identifier=f"{MUNICIPALITY_CODES}|0461")
    assert municipality["total"] == 1
    org = f"Organization/{municipality['entry'][0]['resource']['id']}"
    for r in primary:
        later = r is not primary[-1]
        assert_whole_on_server(fhir, r.payload, skip=SHARED_TYPES if later else ())
        where = on_server(fhir, r.payload)
        assert {v for k, v in where.items() if k.startswith("Patient/")} == {"Patient/kommunens-egen-1"}
    tasks = fhir.get("Task", owner=org, _count=100)
    mine = [e["resource"] for e in tasks["entry"] if e["resource"]["for"]["reference"] == "Patient/kommunens-egen-1"]
    assert len(mine) >= 4  # the plans' deadline Tasks


def test_a_receiver_with_two_patients_for_one_cpr_number_is_a_dead_letter_naming_412(fhir, engine, tmp_path):
    """The receiver's own duplicates are its to merge: the conditional update matches two, the
    server refuses the whole transaction with 412, the row waits as a dead letter for an operator."""
    citizen = "0505059876"
    for own in ("dublet-1", "dublet-2"):
        requests.put(f"{fhir.base_url}/Patient/{own}", json={"resourceType": "Patient", "id": own,
                     "identifier": [{"system": CPR, "value": citizen}]},
                     headers={**fhir.headers, "Content-Type": "application/fhir+json"}, timeout=30).raise_for_status()
    plans, _letter = plans_and_letter("0461", seed=43)
    ingest(runtime_for(engine), about(plans[0], citizen), received_at=T0 - dt.timedelta(minutes=5))
    Worker(engine, routes_file(tmp_path, [route("municipality:0461", fhir.base_url)]), clock=Clock(),
           env={"MUNI_TOKEN": fhir.token}).run(once=True)
    (row,) = [r for r in outbox_rows(engine) if r.role == "primary"]
    assert row.state == "dead" and row.last_status == 412
    assert row.last_error == "HTTP 412; refused; OperationOutcome error/multiple-matches"
    assert fhir.get("Patient", identifier=f"{CPR}|{citizen}")["total"] == 2  # nothing half-applied
