"""A real FHIR client (fhirpy) against the real service under gunicorn on loopback: search
Tasks by owner and page through them, read the focus ServiceRequest, update a Task with
If-Match; another municipality's token sees none of it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.support.fhir_world import (
    MUNICIPALITY_CODES,
    ODENSE_TASKS,
    OUTPUT,
    load_store,
    plan,
    plans,
    write_clients,
)

from adapter.store.engine import open_store

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"no /healthz within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def server(tmp_path):
    url = f"sqlite:///{tmp_path}/adapter.db"
    engine = open_store(url)
    load_store(engine)
    engine.dispose()
    clients = write_clients(tmp_path / "clients.yaml")
    port = _free_port()
    env = {**os.environ, "ADAPTER_DATABASE_URL": url, "ADAPTER_CLIENTS_FILE": str(clients)}
    env.pop("ADAPTER_CONFIG", None)
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--graceful-timeout", "5", "adapter.api.app:create_app()"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert b"Traceback" not in log.read_bytes()


def _client(base: str, token: str, **extra):
    from fhirpy import SyncFHIRClient

    return SyncFHIRClient(f"{base}/fhir", authorization=f"Bearer {token}", extra_headers=extra or None)


def test_municipality_pulls_and_updates_tasks_with_fhirpy(server):
    from fhirpy.base.exceptions import MultipleResourcesFound, ResourceNotFound

    odense = _client(server, "tok-odense")
    mine = {t["id"] for p in plans() if p.municipality == "0461" for t in p.of_type("Task")}

    # search by owner (the municipality code of the owning Organization), two per page
    by_owner = odense.resources("Task").search(owner=f"{MUNICIPALITY_CODES}|0461").limit(2)
    assert by_owner.count() == len(mine) == ODENSE_TASKS
    first_page = by_owner.fetch()
    assert len(first_page) == 2
    tasks = by_owner.fetch_all()  # follows the next links
    assert sorted(t.id for t in tasks) == sorted(mine)

    # the focus ServiceRequest of a Task
    wanted = plan("minimal-almen").task("offer-start")
    task = next(t for t in tasks if t.id == wanted["id"])
    sr = odense.reference(reference=task["focus"]["reference"]).to_resource()
    assert sr.resource_type == "ServiceRequest" and sr.id == wanted["focus"]["reference"].split("/")[1]
    assert sr["subject"]["reference"] == task["for"]["reference"]

    # update: status accepted and the offered start, with If-Match
    version = task["meta"]["versionId"]
    body = task.serialize()
    body["status"] = "accepted"
    body["output"] = [{"type": {"coding": [{"system": OUTPUT, "code": "offered-start"}]}, "valueDate": "2026-03-06"},
                      {"type": {"coding": [{"system": OUTPUT, "code": "course-started"}]}, "valueDate": "2026-03-06"}]
    writer = _client(server, "tok-odense", **{"If-Match": f'W/"{version}"'})
    saved = writer.resource("Task", **body)
    saved.save()
    assert saved["status"] == "accepted" and saved["meta"]["versionId"] == str(int(version) + 1)
    again = odense.resources("Task").search(_id=task.id).get()
    assert again["status"] == "accepted"
    assert again["output"][0]["valueDate"] == "2026-03-06"
    window = odense.resources("Task").search(focus=sr.id, code="change-level-window").fetch_all()
    assert len(window) == 1  # the first session was held: the re-evaluation made the 14-day window Task
    with pytest.raises(MultipleResourcesFound):  # fhirpy's name for 412: the version is stale now
        writer.resource("Task", **{**body, "status": "in-progress"}).save()

    # another municipality sees none of it
    aalborg = _client(server, "tok-aalborg")
    assert aalborg.resources("Task").search(owner=f"{MUNICIPALITY_CODES}|0461").count() == 0
    theirs = aalborg.resources("Task").limit(3).fetch_all()
    assert theirs and not {t.id for t in theirs} & mine
    with pytest.raises(ResourceNotFound):
        aalborg.get("Task", task.id)
    with pytest.raises(ResourceNotFound):
        aalborg.get("ServiceRequest", sr.id)
