"""The hostile corpus (tests/hostile/, each case named by its defect, written by its build.py)
and the large cases made here, pushed to the real service app: every input gets the answer
its ``.expect.json`` names (a receipt or a located refusal), never a 500, within a bound; the
parser never reads a file, whatever the encoding."""

from __future__ import annotations

import datetime as dt
import json
import time
import tracemalloc
from pathlib import Path

import pytest
from tests.support.fhir_world import write_clients
from tests.support.hostile_cases import large_cases

from adapter.api.app import create_app
from adapter.errors import XmlSyntaxError
from adapter.medcom import xmlsafe
from conftest import REPO, runtime_for

HOSTILE = REPO / "tests" / "hostile"
CASES = sorted(HOSTILE.glob("*.xml"))
PUSH = {"Authorization": "Bearer tok-hospital", "Content-Type": "application/xml", "Accept": "application/fhir+json"}
BOUND_SECONDS = 20.0  # a hang detector, not a speed test (bench/ measures speed)
FIGURES: dict[str, tuple[float, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield
    if FIGURES:
        worst = max(FIGURES.items(), key=lambda kv: kv[1][0])
        heaviest = max(FIGURES.items(), key=lambda kv: kv[1][1])
        print(f"\nhostile cases: {len(FIGURES)}; slowest {worst[0]} {worst[1][0]:.2f} s; "
              f"most memory {heaviest[0]} {heaviest[1][1]:.0f} MiB (traced)")


@pytest.fixture
def http(tmp_path):
    """The service app on a store of its own (each case reuses its golden's letter id)."""
    rt = runtime_for(None, database_url=f"sqlite:///{tmp_path}/adapter.db",
                     clients_file=str(write_clients(tmp_path / "clients.yaml")))
    return create_app(rt, lambda: dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)).test_client()


def push(http, name: str, raw: bytes, status: int, codes: list[str]) -> None:
    tracemalloc.start()
    started = time.monotonic()
    r = http.post("/medcom", data=raw, headers=PUSH)
    elapsed = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    FIGURES[name] = (elapsed, peak)
    assert r.status_code == status, (name, r.status_code, r.data[:300])
    assert elapsed < BOUND_SECONDS, name
    body = r.get_json()
    assert body["resourceType"] == "OperationOutcome" and b"Traceback" not in r.data
    got = {c["code"] for i in body["issue"] for c in i.get("details", {}).get("coding", [])}
    assert set(codes) <= got, (name, got)
    if status >= 400:
        assert all("expression" in i or "location" in i for i in body["issue"] if i["severity"] == "error"), name


def test_the_corpus_is_complete():
    assert len(CASES) >= 15
    for case in CASES:
        assert case.with_suffix(".expect.json").exists(), case.name


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_hostile_case(http, case: Path):
    expect = json.loads(case.with_suffix(".expect.json").read_text("utf-8"))
    push(http, case.stem, case.read_bytes(), expect["status"], expect["codes"])


@pytest.mark.parametrize("name", list(large_cases()), ids=str)
def test_large_case_is_answered_within_its_bound(http, name):
    raw, status, codes = large_cases()[name]
    push(http, name, raw, status, codes)


def test_the_parser_itself_never_reads_a_file(tmp_path):
    """Below the DOCTYPE check (which the corpus covers for every encoding): even a document that
    reached the parser could not read a file. A parser that resolves entities would (the control)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("CANARY-7f3a", "utf-8")
    doc = f'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY e SYSTEM "file://{secret}">]><a>&e;</a>'.encode()
    careless = xmlsafe.etree.XMLParser(resolve_entities=True, load_dtd=True)
    assert "CANARY" in xmlsafe.etree.tostring(xmlsafe.etree.fromstring(doc, careless)).decode()
    try:
        root = xmlsafe.etree.fromstring(doc, xmlsafe._parser())
    except (xmlsafe.etree.XMLSyntaxError, XmlSyntaxError):
        return  # refused outright: nothing was read either
    assert "CANARY" not in xmlsafe.etree.tostring(root).decode()


@pytest.mark.parametrize("url, status", [
    ("/fhir/Task/abc/_history/%C2%B2", 404),  # a superscript two is no version number
    ("/fhir/Task/abc/_history/99999999999999999999", 404),
    ("/fhir/Task?_offset=99999999999999999999999", 400),  # beyond any database integer
    ("/fhir/Task/abc/_history?_offset=99999999999999999999", 400),
    ("/fhir/Task?_offset=%C2%B2", 400),
    ("/fhir/Task?_count=99999999999999999999", 200),  # paged at the maximum
    ("/fhir/Task?_count=%D9%A3", 400),  # an Arabic-Indic digit
    ("/fhir/Task?_lastUpdated=ge0001-01-01", 400),
    ("/fhir/Task?_lastUpdated=lt9999-12-31T23:59:59%2B14:00", 400),
    ("/fhir/Task?_lastUpdated=%C2%B2", 400),
    ("/fhir/%C2%B2", 404),
    ("/fhir/Task/%00", 404),
], ids=str)
def test_hostile_urls_are_answered_without_a_500(http, url, status):
    r = http.get(url, headers={"Authorization": "Bearer tok-drift"})
    assert r.status_code == status, r.data[:200]
    assert r.get_json()["resourceType"] == ("Bundle" if status == 200 else "OperationOutcome")


@pytest.mark.parametrize("content", [None, "[]\n", "clients: []\n"], ids=["no-file", "empty-list", "empty-clients"])
def test_without_clients_the_service_does_not_start_unless_opened_for_local_testing(tmp_path, content):
    from adapter.errors import ConfigError

    clients = None
    if content is not None:
        clients = tmp_path / "clients.yaml"
        clients.write_text(content, "utf-8")
    settings = {"database_url": f"sqlite:///{tmp_path}/a.db", "clients_file": str(clients) if clients else None}
    with pytest.raises(ConfigError) as err:
        create_app(runtime_for(None, **settings))
    assert err.value.first.code == "GGOP-E501" and "ADAPTER_OPEN_MEDCOM" in str(err.value)
    opened = create_app(runtime_for(None, **settings, open_medcom=True)).test_client()
    assert opened.post("/medcom", data=b"<x/>", headers={"Content-Type": "application/xml"}).status_code != 401


def test_serve_refuses_to_start_without_clients(tmp_path):
    import subprocess
    import sys

    empty = tmp_path / "clients.yaml"
    empty.write_text("[]\n", "utf-8")
    env = {"PATH": "/usr/bin:/bin", "ADAPTER_CLIENTS_FILE": str(empty), "ADAPTER_DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
           "ADAPTER_ID_KEY_FILE": str(tmp_path / "id.key")}
    done = subprocess.run([sys.executable, "-m", "adapter", "serve", "--port", "1"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "GGOP-E501" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("url", [
    "/fhir/Task?_cursor=WyJfbGFzdFVwZGF0ZWQiLCAiMDAwMS0wMS0wMVQwMDowMDowMCswMTowMCIsICJ4Il0",  # year 1, +01:00
    "/fhir/Task/_history?_cursor=WyJfaGlzdG9yeSIsICIwMDAxLTAxLTAxVDAwOjAwOjAwKzAxOjAwIiwgIlRhc2sveC8xIl0",
    "/fhir/Task?patient=%00",  # a NUL the database refuses
    "/fhir/ServiceRequest?patient=%00000794e7",
], ids=["cursor-year-1", "history-cursor-year-1", "nul-patient", "nul-in-an-id"])
def test_forged_cursors_and_ids_are_400_and_leave_the_service_ready(http, url):
    r = http.get(url, headers={"Authorization": "Bearer tok-drift"})
    assert r.status_code == 400 and r.get_json()["resourceType"] == "OperationOutcome"
    assert http.get("/readyz").status_code == 200


def test_double_slashes_answer_in_fhir_not_an_html_redirect(http):
    r = http.get("/fhir//Task", headers={"Authorization": "Bearer tok-drift"})
    assert r.status_code < 300 or r.get_json() is not None
    assert "text/html" not in r.headers.get("Content-Type", "")
