"""`ggop-adapter outbox list|show|replay|cancel`: what is waiting and why, on both stores."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from tests.support.fhir_endpoints import Reply, StubEndpoint

from adapter.cli import main
from adapter.routing.routes import RoutesFile
from adapter.routing.worker import Worker
from adapter.service.ingest import ingest
from adapter.store.engine import open_store
from adapter.store.schema import outbox
from conftest import DATA, runtime_for

FULL = (DATA / "ggop" / "full-specialiseret.xml").read_bytes()
MINIMAL = (DATA / "ggop" / "minimal-almen.xml").read_bytes()
T0 = dt.datetime(2026, 4, 7, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def stuck(store_url, tmp_path, monkeypatch):
    """Three rows: municipality retrying after a 503, GP copy unroutable, hospital dead (400);
    and a fourth, pulled by another municipality."""
    monkeypatch.setenv("ADAPTER_DATABASE_URL", store_url)
    engine = open_store(store_url)
    for raw in (FULL, MINIMAL):
        assert ingest(runtime_for(engine), raw, received_at=T0).state == "accepted"
    with StubEndpoint([Reply(503, headers={"Retry-After": "600"}),
                       Reply(400, {"resourceType": "OperationOutcome", "issue": [
                           {"severity": "error", "code": "required", "diagnostics": "Karen Marie Demodatter"}]})]) \
            as stub:
        path = tmp_path / "routing.yaml"
        path.write_text(f'routes:\n  "municipality:0851": {{mode: push, base_url: "{stub.base_url}"}}\n'
                        f'  "gln:5790001112226": {{mode: push, base_url: "{stub.base_url}"}}\n')
        clock = lambda: T0 + dt.timedelta(minutes=5)
        Worker(engine, RoutesFile(path), clock=clock, rng=random.Random(1)).run(once=True)
        yield engine, stub, path
    engine.dispose()


def cli(*args):
    return CliRunner().invoke(main, ["outbox", *args])


def test_list_says_what_waits_and_why(stuck):
    result = cli("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "outbox: pending 1, unroutable 1, delivered 1, dead 1, cancelled 0"
    assert "ALERT 1 row(s) unroutable" in result.output and "ALERT 1 dead letter(s)" in result.output
    by_id = {int(line.split()[0][1:]): line for line in lines if line.startswith("#")}
    assert set(by_id) == {1, 2, 3}  # the delivered row (pull) is not waiting
    assert "municipality:0851" in by_id[1] and "pending" in by_id[1]
    assert "2026-04-07T15:15:00Z" in by_id[1] and "last status 503" in by_id[1]
    assert "unroutable" in by_id[2] and "no route for gln:5790001234560 (nor ydernummer:012345)" in by_id[2]
    assert "dead letter after 1 attempt(s), last status 400: HTTP 400; refused; OperationOutcome error/required" \
        in by_id[3]
    assert "Demodatter" not in result.output and "1207524006" not in result.output
    everything = cli("list", "--all")
    assert "#4" in everything.output and "pulled from /fhir (mode pull)" in everything.output
    only = cli("list", "--state", "dead", "--json")
    assert only.exit_code == 0 and '"state": "dead"' in only.output and '"municipality:0851"' not in only.output


def test_show_one_row_without_its_patient_data(stuck):
    result = cli("show", "3")
    assert result.exit_code == 0, result.output
    assert "recipient        gln:5790001112226" in result.output and "last_status      400" in result.output
    assert "payload          Bundle" in result.output and "Patient 1" in result.output
    assert "Demodatter" not in result.output
    assert "Demodatter" in cli("show", "3", "--payload").output  # only when asked for
    assert cli("show", "99").exit_code == 2


def test_replay_a_dead_letter_and_cancel_an_unroutable_row(stuck):
    engine, _stub, _path = stuck
    result = cli("replay", "3")
    assert result.exit_code == 0 and "replayed 1 row(s): #3" in result.output
    assert "dead 0" in result.output
    with engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.id == 3)).one()
    assert row.state == "pending" and row.attempts == 0 and row.failing_since is None
    result = cli("cancel", "2")
    assert result.exit_code == 0 and "cancelled 1 row(s): #2" in result.output
    assert "cancelled 1" in result.output
    assert cli("cancel", "4").exit_code == 2  # delivered: nothing to cancel
    assert cli("replay").exit_code == 2  # says what to name


def test_replay_everything_for_a_recipient_after_an_outage(stuck):
    engine, _stub, _path = stuck
    result = cli("replay", "--recipient", "municipality:0461", "--include-delivered")
    assert result.exit_code == 0 and "replayed 1 row(s): #4" in result.output
    with engine.connect() as conn:
        assert conn.execute(select(outbox.c.state).where(outbox.c.id == 4)).scalar_one() == "pending"
