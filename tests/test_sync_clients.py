"""The sync recipe of docs/sync.md, followed by real FHIR client libraries against the real
service under gunicorn while Tasks are being updated.

A store holds about 1,000 Tasks of one municipality (generated G-GOPs, ingested directly). A
client performs the first load exactly as docs/sync.md says (``Task?_sort=_lastUpdated&
_count=500``, ``started`` = the first Bundle's ``meta.lastUpdated``, ``next`` links with the
opaque ``_cursor``, id → versionId kept), while two updater threads change about 10 % of the
Tasks (whole plans: a note, or status ``accepted``, which re-evaluates the plan and may add
Tasks) with real ``PUT``s and ``If-Match`` (read first; a 412 means read again and retry; every
fifth Task is updated by both threads at once). A third of the updates is made between the
first and the second page, so Tasks the walk has already passed move to its end; the next
third while the second page is read, the last while the rest is read and after. The walk alone
must have seen every Task that existed when it started. Once the walk and the updates are
over, the client makes ONE catch-up walk over ``Task/_history?_since=<started − 5 min>``,
applying only versions higher than it holds. Then it must hold every Task of the store, each at
the store's current ``versionId`` (read from ``resources`` with SQLAlchemy), no more, no less.

Both kinds of store: SQLite, and the PostgreSQL server of ADAPTER_TEST_POSTGRES_URL (skipped
without it). The numbers of each run are printed as one JSON line (``-s`` shows them).

Client A is fhirpy (Python); client B is Node's fhir-kit-client, installed at test time into
``build/node-sync-client/`` and driven through ``tests/support/sync_client.mjs`` (skipped with
the reason when node or npm is missing or the install fails).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import math
import os
import queue
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from tests.support import TEST_ID_KEY
from tests.support.citizens import generated
from tests.support.fhir_world import write_clients
from tests.support.private_postgres import drop_database
from tests.support.service_process import start_service, stop_service

from adapter.service.ingest import ingest
from adapter.store.engine import make_engine, open_store
from adapter.store.schema import resources
from conftest import REPO, runtime_for

pytestmark = pytest.mark.slow

MUNICIPALITY = "0461"  # Odense: tok-odense in tests/support/fhir_world.CLIENTS
TOKEN = "tok-odense"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MESSAGES = 460  # about 80 % G-GOPs with 3-4 deadline Tasks each: about 1,000 Tasks
SEED = 4711
UPDATE_SHARE = 0.10
UPDATER_THREADS = 2
PAGE = 500  # _count of docs/sync.md
OVERLAP = dt.timedelta(minutes=5)

FHIR_KIT_VERSION = "2.0.3"
NODE_DIR = REPO / "build" / "node-sync-client"
NODE_SCRIPT = REPO / "tests" / "support" / "sync_client.mjs"


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredTask:
    version: int
    plan: str  # the focus ServiceRequest: the Tasks of one plan are re-evaluated together


def _tasks(url: str) -> dict[str, StoredTask]:
    """The truth: every Task in the store (all the one municipality's), at its current versionId."""
    engine = open_store(url, id_key=TEST_ID_KEY.encode())
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(resources.c.id, resources.c.version_id, resources.c.municipality,
                                       resources.c.content)
                                .where(resources.c.type == "Task", resources.c.deleted.is_(False))).all()
    finally:
        engine.dispose()
    assert {r.municipality for r in rows} <= {MUNICIPALITY}, "every Task belongs to the one municipality"
    return {r.id: StoredTask(r.version_id, (r.content.get("focus") or {}).get("reference", "")) for r in rows}


def _fill(url: str) -> int:
    """About 1,000 Tasks of one municipality, received a day ago (ingested directly)."""
    engine = open_store(url, id_key=TEST_ID_KEY.encode())
    runtime = runtime_for(engine)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
    try:
        for i, message in enumerate(generated(MUNICIPALITY, MESSAGES, SEED)):
            result = ingest(runtime, message.xml, received_at=start + dt.timedelta(seconds=i))
            assert result.state == "accepted", (message.filename, [i.code for i in result.issues])
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(resources)
                                .where(resources.c.type == "Task")).scalar_one()
    finally:
        engine.dispose()


def _admin(url: str):
    return make_engine(url).execution_options(isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def template_store(request, tmp_path_factory):
    """A filled store of each kind, filled once per module; each test syncs from a copy (a
    SQLite file copy; a PostgreSQL ``CREATE DATABASE … TEMPLATE``). PostgreSQL is the server
    of ADAPTER_TEST_POSTGRES_URL (make test and CI start one; skipped without it)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sync-template") / "adapter.db"
        tasks = _fill(f"sqlite:///{path}")
        assert 900 <= tasks <= 1200, tasks
        yield "sqlite", path
        return
    server = os.environ.get("ADAPTER_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("no PostgreSQL: set ADAPTER_TEST_POSTGRES_URL (make test starts a local server)")
    name = f"sync_template_{os.getpid()}"
    admin = _admin(server)
    try:
        drop_database(admin, name)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        tasks = _fill(make_url(server).set(database=name).render_as_string(hide_password=False))
        assert 900 <= tasks <= 1200, tasks
        yield "postgresql", (server, name)
    finally:
        drop_database(admin, name)
        admin.dispose()


@contextlib.contextmanager
def _copy_of(template, tmp_path: Path):
    kind, where = template
    if kind == "sqlite":
        db = tmp_path / "adapter.db"
        for suffix in ("", "-wal"):
            source = where.with_name(where.name + suffix)
            if source.exists():
                shutil.copyfile(source, db.with_name(db.name + suffix))
        yield f"sqlite:///{db}"
        return
    server, template_name = where
    name = f"sync_{os.getpid()}_{next(_COPIES)}"
    admin = _admin(server)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(admin, name)
        admin.dispose()


_COPIES = itertools.count(1)


@pytest.fixture
def service(template_store, tmp_path):
    """The service under gunicorn (2 workers) on a copy of the filled store."""
    with _copy_of(template_store, tmp_path) as url:
        proc, base = start_service(url, write_clients(tmp_path / "clients.yaml"), workers=2, timeout=60)
        try:
            yield url, base
        finally:
            stop_service(proc)


# --------------------------------------------------------------------------------------------
# Concurrent updates: real PUTs with If-Match
# --------------------------------------------------------------------------------------------


class Updater:
    """Threads that update the given Tasks over HTTP, as many as ``allow`` lets them: each Task is
    read for its version and sent back with a note, or with status ``accepted`` (every other
    one, when it is still ``requested`` or ``received``), and ``If-Match``. A 412 (the other
    thread, or a re-evaluation of the plan, wrote the Task meanwhile) means read again and
    retry; a 409 or 503 (a concurrent writer) means retry."""

    def __init__(self, base: str, ids: list[str], threads: int = UPDATER_THREADS):
        self.base = base
        self.todo = list(ids)
        self.allowed = 0
        self.taken = 0
        self.done = 0
        self.stale = 0  # 412s
        self.busy = 0  # 409s and 503s
        self.accepted = 0  # updates that set status accepted
        self.errors: list[str] = []
        self.cond = threading.Condition()
        self.threads = [threading.Thread(target=self._work, name=f"updater-{n}", daemon=True)
                        for n in range(threads)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def allow(self, count: int) -> None:
        with self.cond:
            self.allowed = min(max(self.allowed, count), len(self.todo))
            self.cond.notify_all()

    def wait_done(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.done < count and not self.errors:
                left = deadline - time.monotonic()
                assert left > 0, f"only {self.done} of {count} updates in {timeout:.0f} s"
                self.cond.wait(left)
        assert not self.errors, self.errors[:5]

    def join(self, timeout: float = 90.0) -> None:
        self.allow(len(self.todo))
        self.wait_done(len(self.todo), timeout)
        for t in self.threads:
            t.join(5)

    def _take(self) -> tuple[int, str] | None:
        with self.cond:
            while self.taken >= self.allowed and self.taken < len(self.todo):
                self.cond.wait(1.0)
            if self.taken >= len(self.todo) or self.errors:
                return None
            n = self.taken
            self.taken += 1
            return n, self.todo[n]

    def _work(self) -> None:
        with requests.Session() as http:
            while (job := self._take()) is not None:
                n, task_id = job
                try:
                    self._update(http, n, task_id)
                except Exception as exc:  # noqa: BLE001 - reported by wait_done in the test's thread
                    with self.cond:
                        self.errors.append(f"{task_id}: {type(exc).__name__}: {exc}")
                        self.cond.notify_all()
                    return
                with self.cond:
                    self.done += 1
                    self.cond.notify_all()

    def _update(self, http: requests.Session, n: int, task_id: str) -> None:
        url = f"{self.base}/fhir/Task/{task_id}"
        for _attempt in range(30):
            r = http.get(url, headers=AUTH, timeout=30)
            assert r.status_code == 200, (r.status_code, r.text[:300])
            task = r.json()
            assert r.headers["ETag"] == f'W/"{task["meta"]["versionId"]}"'
            accept = n % 2 == 0 and task.get("status") in ("requested", "received")
            if accept:
                body = {**task, "status": "accepted"}
            else:
                body = {**task, "note": [*task.get("note", []), {"text": f"sync test: update {n}"}]}
            r = http.put(url, data=json.dumps(body),
                         headers={**AUTH, "If-Match": r.headers["ETag"], "Content-Type": "application/fhir+json"},
                         timeout=30)
            if r.status_code == 200:
                assert int(r.json()["meta"]["versionId"]) > int(task["meta"]["versionId"])
                if accept:
                    with self.cond:
                        self.accepted += 1
                return
            if r.status_code == 412:
                with self.cond:
                    self.stale += 1
                continue
            if r.status_code in (409, 503):
                with self.cond:
                    self.busy += 1
                time.sleep(0.05)
                continue
            raise AssertionError(f"PUT answered {r.status_code}: {r.text[:300]}")
        raise AssertionError("no update after 30 attempts")


# --------------------------------------------------------------------------------------------
# The clients
# --------------------------------------------------------------------------------------------


def _since(started: str) -> str:
    """``started`` − 5 minutes, in UTC with milliseconds (docs/sync.md)."""
    at = dt.datetime.fromisoformat(started.replace("Z", "+00:00")) - OVERLAP
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FhirpySync:
    """Client A: fhirpy, the recipe step by step."""

    name = "fhirpy"

    def __init__(self, base: str):
        from fhirpy import SyncFHIRClient

        self.client = SyncFHIRClient(f"{base}/fhir", authorization=f"Bearer {TOKEN}")
        self.held: dict[str, int] = {}
        self.started = ""
        self.pages = 0
        self.walk_entries = 0
        self.bundle: dict = {}
        self.stats: dict = {}

    def _keep(self, resource: dict) -> bool:
        version = int(resource["meta"]["versionId"])
        if version > self.held.get(resource["id"], 0):
            self.held[resource["id"]] = version
            return True
        return False

    def _page(self, bundle: dict) -> None:
        self.bundle = bundle
        self.pages += 1
        for entry in bundle.get("entry", []):
            if entry["resource"]["resourceType"] == "Task" and entry.get("search", {}).get("mode") == "match":
                self._keep(entry["resource"])
                self.walk_entries += 1

    @staticmethod
    def _next(bundle: dict) -> str | None:
        return next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)

    def first_page(self) -> str:
        bundle = self.client.resources("Task").sort("_lastUpdated").limit(PAGE).fetch_raw()
        self.started = bundle["meta"]["lastUpdated"]
        self._page(bundle)
        return self.started

    def has_next(self) -> bool:
        return self._next(self.bundle) is not None

    def next_page(self) -> None:
        url = self._next(self.bundle)
        assert url is not None and "_cursor=" in url and "_offset" not in url, url
        self._page(self.client.execute(url, method="get"))

    def walked(self) -> dict[str, int]:
        return dict(self.held)

    def catch_up(self) -> dict:
        since = _since(self.started)
        bundle = self.client.execute("Task/_history", method="get", params={"_since": since, "_count": PAGE})
        pages = entries = applied = 0
        while bundle is not None:
            assert bundle["type"] == "history"
            pages += 1
            for entry in bundle.get("entry", []):
                if entry["resource"]["resourceType"] == "Task":
                    entries += 1
                    applied += self._keep(entry["resource"])
            url = self._next(bundle)
            bundle = self.client.execute(url, method="get") if url else None
        self.stats = {"since": since, "catch_up_pages": pages, "catch_up_entries": entries, "applied": applied}
        return self.stats


class NodeSync:
    """Client B: Node's fhir-kit-client running tests/support/sync_client.mjs, paced over its
    stdin (``next`` before each further page, ``catch-up`` after the walk)."""

    name = "fhir-kit-client"

    def __init__(self, base: str, workdir: Path, log: Path):
        self.log = log
        self.stderr = log.open("w")
        self.proc = subprocess.Popen(["node", "sync_client.mjs", f"{base}/fhir"], cwd=workdir,
                                     env={**os.environ, "SYNC_TOKEN": TOKEN}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.last: dict = {}
        self.held: dict[str, int] = {}
        self.started = ""
        self.stats: dict = {}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _event(self, expected: str, timeout: float = 60.0) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None:
            self.stderr.flush()
            pytest.fail(f"sync_client.mjs gave no {expected!r} event (exit {self.proc.poll()}):\n"
                        + self.log.read_text(errors="replace")[-3000:])
        event = json.loads(line)
        assert event["event"] == expected, event
        self.last = event
        return event

    def _send(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def first_page(self) -> str:
        self.started = self._event("page")["started"]
        return self.started

    def has_next(self) -> bool:
        return bool(self.last["next"])

    def next_page(self) -> None:
        self._send("next")
        self._event("page")

    def walked(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._event("walked")["held"].items()}

    def catch_up(self) -> dict:
        walked = self.last
        self._send("catch-up")
        done = self._event("done")
        assert self.proc.wait(30) == 0
        self.held = {k: int(v) for k, v in done["held"].items()}
        self.stats = {"walk_pages": walked["pages"], "since": done["since"], "catch_up_pages": done["catchUpPages"],
                      "catch_up_entries": done["catchUpEntries"], "applied": done["applied"]}
        return self.stats

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.stderr.close()


# --------------------------------------------------------------------------------------------
# The scenario
# --------------------------------------------------------------------------------------------


def _choose(tasks: dict[str, StoredTask]) -> list[str]:
    """About 10 % of the Tasks, as whole plans in random order, siblings next to each other:
    the two updater threads often update Tasks of one plan at once, and each update
    re-evaluates the plan (serialised on its ServiceRequest)."""
    plans: dict[str, list[str]] = {}
    for task_id, task in sorted(tasks.items()):
        plans.setdefault(task.plan, []).append(task_id)
    order = sorted(plans)
    random.Random(SEED).shuffle(order)
    chosen: list[str] = []
    for plan in order:
        if len(chosen) >= len(tasks) * UPDATE_SHARE:
            break
        chosen += plans[plan]
    return chosen


def sync_while_updating(url: str, base: str, client_factory: Callable[[], FhirpySync | NodeSync]) -> dict:
    """The first load with a third of the updates between its first and second page, the next
    third while the second page is read, the last while the rest is read (and after); then one
    catch-up. Asserts that the client holds the store's truth and returns the numbers."""
    at_start = {i: t.version for i, t in _tasks(url).items()}
    chosen = _choose(_tasks(url))
    # every fifth Task twice in a row: two threads update it at once, one of them gets a 412
    jobs = [job for n, task_id in enumerate(chosen) for job in ([task_id] * (2 if n % 5 == 0 else 1))]
    step = math.ceil(len(jobs) / 3)
    updater = Updater(base, jobs)
    updater.start()
    began = time.monotonic()

    client = client_factory()
    started = client.first_page()
    pages = 1
    updater.allow(step)
    while client.has_next():
        updater.wait_done(min(pages * step, len(updater.todo)))  # Tasks the walk already passed moved to its end
        updater.allow((pages + 1) * step)  # the next batch runs while the next page is read
        client.next_page()
        pages += 1
    walk_seen = client.walked()
    during_walk = updater.done
    updater.join()
    stats = client.catch_up()
    held = client.held
    elapsed = time.monotonic() - began

    truth = {i: t.version for i, t in _tasks(url).items()}
    missing = sorted(set(truth) - set(held))
    stale = sorted(i for i in truth if i in held and held[i] != truth[i])
    extra = sorted(set(held) - set(truth))
    assert not missing and not stale and not extra, (
        f"{client.name}: {len(missing)} Tasks missing, {len(stale)} at another version, {len(extra)} unknown "
        f"(first: {(missing + stale + extra)[:3]})")
    assert held == truth
    walk_missed = len(set(at_start) - set(walk_seen))
    assert walk_missed == 0, "the cursor walk alone sees every Task that existed when it started (docs/sync.md)"
    changed = sum(1 for i, v in truth.items() if v != at_start.get(i))
    assert changed >= len(chosen)  # each chosen Task changed (and the re-evaluations may add Tasks)
    assert stats["catch_up_entries"] >= len(jobs)  # every update is a version in the feed
    assert during_walk >= min(pages - 1, 2) * step
    numbers = {
        "client": client.name, "store": url.split(":", 1)[0], "tasks": len(truth), "tasks_at_start": len(at_start),
        "updated": len(chosen), "updates": len(jobs), "accepted": updater.accepted, "updates_during_walk": during_walk,
        "tasks_changed": changed, "new_tasks": len(set(truth) - set(at_start)), "retries_412": updater.stale,
        "retries_busy": updater.busy, "walk_pages": pages, "walk_missed": walk_missed, "started": started,
        **stats, "seconds": round(elapsed, 1),
    }
    print(json.dumps(numbers))
    return numbers


def test_fhirpy_first_load_and_catch_up_under_concurrent_updates(service):
    url, base = service
    numbers = sync_while_updating(url, base, lambda: FhirpySync(base))
    assert numbers["walk_pages"] >= 3  # 1,000 Tasks at 500 a page, and the updated ones again


# --------------------------------------------------------------------------------------------
# Client B: Node's fhir-kit-client
# --------------------------------------------------------------------------------------------


def _installed_version() -> str | None:
    try:
        return json.loads((NODE_DIR / "node_modules" / "fhir-kit-client" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def fhir_kit() -> Path:
    """fhir-kit-client (pinned) installed into build/node-sync-client with the sync script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node's fhir-kit-client sync needs node and npm on PATH")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    if not version.startswith("v") or int(version[1:].split(".")[0]) < 20:
        pytest.skip(f"fhir-kit-client {FHIR_KIT_VERSION} needs Node 20 or newer (found {version or 'none'})")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    if _installed_version() != FHIR_KIT_VERSION:
        package = NODE_DIR / "package.json"
        if not package.exists():  # npm installs here, not into a parent folder
            package.write_text(json.dumps({"name": "node-sync-client", "private": True}) + "\n")
        try:
            done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--save-exact",
                                   f"fhir-kit-client@{FHIR_KIT_VERSION}"],
                                  cwd=NODE_DIR, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install fhir-kit-client@{FHIR_KIT_VERSION} did not finish in 300 s")
        if done.returncode != 0 or _installed_version() != FHIR_KIT_VERSION:
            pytest.skip(f"npm install fhir-kit-client@{FHIR_KIT_VERSION} failed ({done.returncode}): "
                        + (done.stderr or done.stdout)[-500:])
    shutil.copyfile(NODE_SCRIPT, NODE_DIR / "sync_client.mjs")
    return NODE_DIR


def test_fhir_kit_client_first_load_and_catch_up_under_concurrent_updates(fhir_kit, service, tmp_path):
    url, base = service
    clients: list[NodeSync] = []

    def factory() -> NodeSync:
        clients.append(NodeSync(base, fhir_kit, tmp_path / "sync_client.log"))
        return clients[-1]

    try:
        numbers = sync_while_updating(url, base, factory)
    finally:
        for c in clients:
            c.close()
    assert numbers["walk_pages"] >= 3  # 1,000 Tasks at 500 a page, and the updated ones again
